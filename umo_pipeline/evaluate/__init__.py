"""`python -m umo_pipeline evaluate` (its arguments are read in umo_pipeline/cli.py): a prompt set x
seeds x variants, sharded across processes with accelerate, resumable item by item, summarised like
the UMO paper's tables, with an HTML report; `python -m umo_pipeline score`: other methods' images
for a prompt set, scored and reported the same way with the methods as rows.

items      prompt cases and work items (case x seed x variant)
readers/   one module per prompt-set format: JSONL, XVerseBench, OmniContext, MultiID-Bench
metrics    per-reference ID-Sim / ID-Conf: the app's rules, or UMO's released evaluation scripts
folder     the run folder: where each file lives, atomic writes, the records that make a run resumable
runner     the sharded, resumable loop (run_shards, shared with score) and evaluate's items
methods    score's method folders: an evaluate run, MultiID-Bench eval.py's <id>/out.jpg, flat files
score      score's items: a method's image analysed and scored; score_command: its arguments
aggregate  the end of a run on the main process: records.jsonl, summaries, plots, report
summary    summary.csv / summary.md
plots      plots/*.png (matplotlib)
report     the self-contained report.html
"""
