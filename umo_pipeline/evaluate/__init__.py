"""`python -m umo_pipeline evaluate` (its arguments are read in umo_pipeline/cli.py): a prompt set x
seeds x variants, sharded across processes with accelerate, resumable item by item, summarised like
the UMO paper's tables, with an HTML report.

items      prompt cases and work items (case x seed x variant)
readers/   one module per prompt-set format: JSONL, XVerseBench, OmniContext, MultiID-Bench
metrics    per-reference ID-Sim / ID-Conf: the app's rules, or UMO's released evaluation scripts
folder     the run folder: where each file lives, atomic writes, the records that make a run resumable
runner     the sharded, resumable loop
aggregate  the end of a run on the main process: records.jsonl, summaries, plots, report
summary    summary.csv / summary.md
plots      plots/*.png (matplotlib)
report     the self-contained report.html
"""
