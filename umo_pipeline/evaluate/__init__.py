"""`python -m umo_pipeline evaluate`: a prompt set x seeds x variants, sharded across processes with
accelerate, resumable item by item, summarised like the UMO paper's tables, with an HTML report.

items    prompt cases and work items (case x seed x variant)
readers  the JSONL prompt-set format, XVerseBench's test lists, OmniContext's parquet files
metrics  per-reference ID-Sim / ID-Conf: the app's rules, or UMO's released evaluation scripts
runner   the sharded, resumable loop and the final aggregation on the main process
summary  summary.csv / summary.md / plots
report   the self-contained report.html
"""
