"""The `score` command's arguments (registered in umo_pipeline/cli.py's COMMANDS); the work is
score.py's. Only argparse is imported here, so `--help` stays fast."""

from __future__ import annotations

from pathlib import Path

from umo_pipeline.options import add_backend_argument

DESCRIPTION = (
    "Score other methods' images for a prompt set with evaluate's rules, and write evaluate's files "
    "(records.jsonl, summary.csv/.md per category and per number of identities, plots, report.html) "
    "with the methods as rows, each minus the baseline. Each --method folder is read in one of these "
    "layouts, detected per folder: this project's evaluate run folder (run.json and items/; "
    "NAME=FOLDER:VARIANT picks base, umo (default) or umo+repair); MultiID-Bench eval.py's "
    "<id>/out.jpg (id: the case id, hf2bench's item name, or either under a subset folder); or "
    "images directly in the folder named <case id>.<ext> or <case id>__s<seed>.<ext> (png, jpg, "
    "jpeg, webp). An image without a seed is the method's image for the first of --seeds. A missing "
    "image is printed and counted as missing. Run it under `accelerate launch -m umo_pipeline score "
    "...` to share the images among processes; run it again to finish an interrupted run."
)


def add_score_command(subcommands) -> None:
    parser = subcommands.add_parser(
        "score", help="score several methods' images for a prompt set side by side (UMO vs UNO, OmniGen2, ...)",
        description=DESCRIPTION,
    )
    parser.add_argument("prompts", type=Path, help="the prompt set, as evaluate reads it: a .jsonl file, an "
                        "XVerseBench_*.json test list, an OmniContext folder, or a MultiID-Bench dataset or "
                        "hf2bench folder")
    parser.add_argument("--format", default="auto",
                        choices=("auto", "jsonl", "xversebench", "omnicontext", "multiid-bench"),
                        help="prompt-set format (default: from the path)")
    parser.add_argument("--method", dest="methods", metavar="NAME=FOLDER[:VARIANT]", action="append", required=True,
                        help="a method's name (letters, digits, . _ + -) and the folder of its images; repeat "
                        "for each method; :VARIANT only for an evaluate run folder")
    parser.add_argument("--baseline", metavar="NAME", help="the method the others are compared with "
                        "(default: the first --method)")
    parser.add_argument("--seeds", default="0", help="which seeds' images to score, e.g. 0,1,2 or 0-3 (default: 0)")
    parser.add_argument("--metrics", default="app", choices=("app", "umo-eval", "multiid-bench"),
                        help="the rules, as in evaluate: app, umo-eval (UMO's released scripts) or multiid-bench "
                        "(MultiID-Bench's eval.py, its detector threshold 0.45 with --backend insightface)")
    parser.add_argument("--limit", type=int, help="only the first N prompts")
    parser.add_argument("--out", type=Path, default=Path("scores"), help="folder for the results (default: scores)")
    add_backend_argument(parser)
    parser.set_defaults(run=run_score)


def run_score(args) -> int:
    from umo_pipeline.cli import _seeds
    from umo_pipeline.errors import InputError
    from umo_pipeline.evaluate import metrics
    from umo_pipeline.evaluate.methods import read_methods
    from umo_pipeline.evaluate.readers import read_prompt_set
    from umo_pipeline.evaluate.score import score

    seeds = _seeds(args.seeds)
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise InputError(f"{out}: exists and is not a folder")
    methods = read_methods(args.methods)
    names = [m.name for m in methods]
    if args.baseline is not None and args.baseline not in names:
        raise InputError(f"--baseline {args.baseline}: not one of the methods ({', '.join(names)})")
    cases = read_prompt_set(args.prompts, args.format)
    if args.limit is not None:
        cases = cases[: args.limit]
    backend = metrics.scoring_backend(args.metrics, args.backend,
                                      download=getattr(args, "download_face_models", False) or None)
    return score(cases, methods, backend, seeds=seeds, out=out, metrics=args.metrics, baseline=args.baseline)
