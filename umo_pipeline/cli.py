"""The command line, `python -m umo_pipeline <command> ...`: one argparse subcommand per task.

To add a command, write `add_<name>_command(subcommands)` that adds a parser whose defaults set
`run` to a function taking the parsed arguments and returning an exit status, and list it in
COMMANDS. Errors meant for the user (UMOError) become one line on stderr, never a traceback.
The library is imported inside the commands: `--help` and argument errors answer in ~40 ms, not the
~350 ms that importing the workflow (numpy, Pillow, the pictures) costs.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

from umo_pipeline import params
from umo_pipeline.errors import InputError, UMOError
from umo_pipeline.evaluate.score_command import add_score_command
from umo_pipeline.judge import rule as judge_rule
from umo_pipeline.labels import format_signed
from umo_pipeline.options import (
    add_backend_argument, add_model_arguments, extra_settings, face_backend, loader_options, settings_request,
)

EXIT_OK = 0
EXIT_FAILED = 1     # the inputs were fine but something could not run (missing model, ...)
EXIT_BAD_INPUT = 2  # like argparse: the user's inputs cannot be used


def add_analyze_command(subcommands) -> None:
    parser = subcommands.add_parser(
        "analyze",
        help="match the faces of an output image against reference photos",
        description="Find the faces of an output image, match them to the largest face of each "
        "reference (Hungarian assignment) and report ID-Sim, ID-Conf and what went wrong.",
    )
    _add_references(parser)
    parser.add_argument("--image", required=True, metavar="IMAGE", help="the output image to analyse")
    add_backend_argument(parser)
    parser.add_argument("--json", dest="json_path", metavar="FILE", type=Path,
                        help="write the report here (default: print it)")
    parser.add_argument("--heatmap", metavar="FILE", type=Path, help="save the similarity heatmap picture")
    parser.add_argument("--overlay", metavar="FILE", type=Path, help="save the image with labelled face boxes")
    parser.set_defaults(run=run_analyze)


def run_analyze(args) -> int:
    from umo_pipeline import render
    from umo_pipeline.analysis import analyze_identity
    from umo_pipeline.images import load_image

    _check_destinations(args)
    # Loaded here so every message names the file as the user typed it.
    references = [load_image(path, name=path) for path in args.references]
    image = load_image(args.image, name=args.image)
    backend = face_backend(args)
    report = analyze_identity(references, image, backend)

    text = json.dumps(report.to_dict(), indent=2)
    if args.json_path is None:
        print(text)
    else:
        _write(args.json_path, lambda path: path.write_text(text + "\n", encoding="utf-8"))
    if args.heatmap is not None:
        _save_picture(render.render_heatmap(report), args.heatmap)
    if args.overlay is not None:
        _save_picture(render.render_overlay(image, report), args.overlay)
    if args.json_path is not None:
        print(f"[{report.backend}] {report.summary}")
    for warning in report.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    if backend.scale_note or backend.fallback_reason:
        from umo_pipeline.faces import describe_backend

        print(f"note: {describe_backend(backend)}", file=sys.stderr)
    return EXIT_OK


def _check_destinations(args) -> None:
    """Refuse unusable output paths before spending time on the analysis."""
    from PIL import Image

    pictures = [p for p in (args.heatmap, args.overlay) if p is not None]
    for path in pictures:
        if path.suffix.lower() not in Image.registered_extensions():
            raise InputError(f"{path}: unknown picture format; use a .png, .jpg or .webp name")
    for path in pictures + ([args.json_path] if args.json_path is not None else []):
        if not path.parent.is_dir():
            raise InputError(f"{path}: cannot write (folder {path.parent} does not exist)")


def _save_picture(picture, path: Path) -> None:
    from umo_pipeline.workflow import save_png

    if path.suffix.lower() == ".png":
        _write(path, lambda target: save_png(picture, target))
    else:
        _write(path, picture.save)


def _write(path: Path, write) -> None:
    try:
        write(path)
    except ValueError:  # Pillow: no format for this file extension
        raise InputError(f"{path}: unknown picture format; use a .png, .jpg or .webp name") from None
    except OSError as error:
        raise InputError(f"{path}: cannot write ({error.strerror or error})") from None


# ---------------------------------------------------------------- generate and compare
# The work itself is umo_pipeline.workflow's, shared with the app; these only parse and print.


def _add_generation_options(parser) -> None:
    parser.add_argument("--ref", dest="references", metavar="IMAGE", action="append", default=[],
                        help=f"a reference photo, one per person (Reference 1, 2, ... in this order), up to "
                             f"{params.MAX_PEOPLE}: {_groups()}")
    add_model_arguments(parser)
    _add_settings(parser)
    add_backend_argument(parser)
    _add_out(parser)


def _add_references(parser) -> None:
    parser.add_argument("--ref", dest="references", metavar="IMAGE", action="append", required=True,
                        help="a reference photo, one per person (Reference 1, 2, ... in this order)")


def _model_limits() -> str:
    """How many references each model takes, in the words --help uses: "umo-uno 4, umo-omnigen2 5"."""
    from umo_pipeline.customizers import omnigen2, uno

    return f"umo-uno {uno.MAX_REFERENCES}, umo-omnigen2 {omnigen2.MAX_REFERENCES}"


def _groups() -> str:
    """How a group past the model's limit is made, in one line for --help (workflow.placement does it)."""
    return (f"the model sees as many as it takes ({_model_limits()}) and each other person is then repaired onto "
            "the face the assignment gives them, from their own photo")


def _add_out(parser, default: str = "outputs") -> None:
    parser.add_argument("--out", type=Path, default=Path(default), help=f"folder for the results (default: {default})")


def _add_settings(parser, size: bool = True, steps_help: str = "denoising steps (default: the model's)") -> None:
    """The generation settings (the model's defaults when left out; checked by the same rules as the
    app's); without `size`, no --width/--height (they default to None, the model's)."""
    if size:
        parser.add_argument("--width", type=float, help="multiple of 16 (default: the model's)")
        parser.add_argument("--height", type=float, help="multiple of 16 (default: the model's)")
    else:
        parser.set_defaults(width=None, height=None)
    parser.add_argument("--steps", type=float, help=steps_help)
    parser.add_argument("--guidance", type=float, help="guidance (default: the model's)")
    parser.add_argument("--set", dest="extra", metavar="NAME=VALUE", action="append", default=[],
                        help="a model-specific setting, e.g. image_guidance=2.0 for umo-omnigen2")


def add_generate_command(subcommands) -> None:
    parser = subcommands.add_parser(
        "generate", help="generate an image from a prompt and reference photos, then analyse its identities",
        description="Generate with UMO (and the base model from the same seed with --compare), then write "
        "the PNG (settings in its metadata), a comparison sheet and the JSON identity report (and "
        f"placed_*.png when people were placed). Up to {params.MAX_PEOPLE} people: {_groups()} (--place).",
    )
    parser.add_argument("--prompt", required=True)
    parser.add_argument("--seed", type=int, help="default: a random seed (printed and saved with the image)")
    parser.add_argument("--compare", action="store_true", help="also generate the base model from the same seed")
    parser.add_argument("--candidates", type=int, default=params.CANDIDATES.default, metavar="N",
                        help="generate N images from seeds SEED, SEED+1, ... and keep the one that keeps the "
                             "identities best (UMO's matching score); all are saved, best first in the report "
                             f"({params.CANDIDATES.span()}, default {params.CANDIDATES.default:g})")
    parser.add_argument("--face-crop", action="store_true",
                        help="give the model each reference cropped around its face (a reference without a "
                             "face is used whole, with a warning)")
    _add_group_options(parser)
    _add_generation_options(parser)
    parser.set_defaults(run=run_generate)


def _add_group_options(parser) -> None:
    """--condition and --place: who the model sees of a group, and placing the others."""
    parser.add_argument("--condition", dest="condition_on", type=int, action="append", metavar="N",
                        help="condition the model on Reference N (1 = the first --ref); repeat for each person it "
                             f"sees, at most as many as it takes ({_model_limits()}) (default: the first ones)")
    parser.add_argument("--place", action=argparse.BooleanOptionalAction, default=None,
                        help="then repair faces that are not matched: once the scene is made, every reference "
                             "whose assigned face is not matched is repaired onto that face, one repair per "
                             "person, kept only by the judge (default: on when there are more --ref than the "
                             "model takes)")


def add_compare_command(subcommands) -> None:
    parser = subcommands.add_parser(
        "compare", help="base model vs UMO for several prompts and seeds: screenshot-ready comparison sheets",
        description="For every prompt and seed, generate the base model and UMO from the same noise, analyse "
        "both and write a comparison sheet, both PNGs and the JSON report; print the ID-Sim / ID-Conf gains.",
    )
    parser.add_argument("--prompt", dest="prompts", action="append", default=[], help="repeat for several prompts")
    parser.add_argument("--prompts-file", type=Path,
                        help="a text file with one prompt per line (blank lines and lines starting with # skipped)")
    parser.add_argument("--seed", dest="seeds", type=int, action="append", help="repeat for several seeds (default: 0)")
    _add_group_options(parser)
    _add_generation_options(parser)
    parser.set_defaults(run=run_compare)


def run_generate(args) -> int:
    from umo_pipeline import workflow

    candidates = params.CANDIDATES.check(args.candidates)  # before the model loads
    condition_on = _reference_indices(args.condition_on, len(args.references), "--condition")
    customizer, backend, references = _load_for_generation(args)
    request = replace(settings_request(customizer, args, args.prompt),
                      seed=workflow.pick_seed(args.seed, args.seed is None))
    result = workflow.generate_and_analyze(customizer, backend, request, references, compare=args.compare,
                                           candidates=candidates, face_crops=[args.face_crop] * len(references),
                                           progress=_progress_printer(), condition_on=condition_on,
                                           place=args.place)
    saved = workflow.save_outputs(result, args.out)
    _print_result(result)
    print("wrote " + ", ".join(str(path) for path in saved.all))
    return EXIT_OK


def run_compare(args) -> int:
    from umo_pipeline import workflow

    prompts = list(args.prompts) + (_read_prompts(args.prompts_file) if args.prompts_file else [])
    if not prompts:
        raise InputError("give at least one --prompt or a --prompts-file")
    condition_on = _reference_indices(args.condition_on, len(args.references), "--condition")
    customizer, backend, references = _load_for_generation(args)
    settings = settings_request(customizer, args)
    gains = []
    runs = workflow.run_comparisons(customizer, backend, references, prompts, args.seeds or [0], settings,
                                    args.out, progress=_progress_printer(), condition_on=condition_on,
                                    place=args.place)
    for result, saved in runs:
        _print_result(result)
        print(f"sheet: {saved.sheet}")
        if result.deltas and result.deltas["id_sim"] is not None:
            gains.append(result.deltas["id_sim"])
    if gains:
        print(f"mean ID-Sim gain of UMO over the base model: {format_signed(sum(gains) / len(gains))} "
              f"over {len(gains)} comparison(s)")
    return EXIT_OK


def _read_prompts(path: Path) -> list[str]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise InputError(f"{path}: cannot read the prompts file ({error})") from None
    return [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]


def _load_for_generation(args):
    """(customizer, face backend, reference images): inputs first, so bad ones fail before the model loads."""
    from umo_pipeline import load_customizer
    from umo_pipeline.images import load_image

    if args.out.exists() and not args.out.is_dir():
        raise InputError(f"{args.out}: exists and is not a folder")
    if len(args.references) > params.MAX_PEOPLE:  # the workflow refuses too, but only once the model is loaded
        raise InputError(f"--ref is given {len(args.references)} times: at most {params.MAX_PEOPLE} people can be "
                         "given, one photo each.")
    extra_settings(args.extra)  # a malformed --set
    references = [load_image(path, name=path) for path in args.references]
    backend = face_backend(args)
    customizer = load_customizer(args.model, **loader_options(args))
    return customizer, backend, references


def _reference_indices(numbers: list[int] | None, count: int, flag: str) -> list[int] | None:
    """Reference numbers as the user types them (1 = the first --ref) as the library's indices
    (0-based), each checked against the --ref given; None stays None (the library's default)."""
    if numbers is None:
        return None
    numbered = f"the references are numbered 1 to {count}, in the order of --ref" if count else "no --ref was given"
    for number in numbers:
        if not 1 <= number <= count:
            raise InputError(f"{flag} {number}: there is no Reference {number}; {numbered}.")
    return [number - 1 for number in numbers]


def _progress_printer():
    if not sys.stderr.isatty():
        return None

    def show(done: int, total: int, message: str) -> None:
        print(f"\r{message} ({done}/{total})", end="\n" if done == total else "", file=sys.stderr, flush=True)

    return show


def _print_result(result) -> None:
    from umo_pipeline.workflow import describe

    request = result.request
    print(f'"{request.prompt}" seed {request.seed}, {request.width}x{request.height}, {request.steps} steps')
    for label, text in describe(result)[1:]:  # the first line is the settings printed above
        print(f"  {label}: {text}" if label else f"  {text}")


# ---------------------------------------------------------------- repair
# The work is umo_pipeline.workflow's repair phases, shared with the app; these parse and print.


def add_repair_command(subcommands) -> None:
    parser = subcommands.add_parser(
        "repair", help="regenerate the faces that lost their identity, each from its own reference",
        description="Analyse an image with its references, regenerate the face assigned to each chosen "
        "reference (default: every reference not matched) inside a soft mask, conditioned on that reference "
        "alone, and keep it only by the judge: " + judge_rule() + " Writes the repaired PNG (repair settings in "
        "its metadata; an input's transparency kept) and a JSON report with before/after.",
    )
    parser.add_argument("--image", required=True, metavar="IMAGE", help="the image to repair")
    parser.add_argument("--reference", dest="chosen", type=int, action="append", metavar="N",
                        help="repair the face of Reference N (1 = the first --ref); repeat for several "
                             "(default: every reference whose status is not matched)")
    parser.add_argument("--strength", type=float,
                        help=f"share of the steps redrawn, {params.STRENGTH.span()} (default "
                             f"{params.STRENGTH.default:g}: enough to rebuild a wrong face)")
    parser.add_argument("--candidates", type=int, default=params.CANDIDATES.default, metavar="N",
                        help="repaints per face from seeds SEED, SEED+1, ...; the one with the best matching "
                             f"score that the rule keeps wins ({params.CANDIDATES.span()}, default "
                             f"{params.CANDIDATES.default:g})")
    parser.add_argument("--prompt", help="what each face is regenerated from (default: a close-up face prompt)")
    parser.add_argument("--seed", type=int, default=0, help="the first candidate's seed (default: 0)")
    parser.add_argument("--face-crop", action="store_true",
                        help="give the model each reference cropped around its face")
    _add_references(parser)
    add_model_arguments(parser)
    # no --width/--height: each face is regenerated at its own crop's working size
    _add_settings(parser, size=False, steps_help="denoising steps before strength's share (default: the model's)")
    add_backend_argument(parser)
    _add_out(parser)
    parser.set_defaults(run=run_repair)


def run_repair(args) -> int:
    from umo_pipeline import workflow
    from umo_pipeline.images import load_image

    params.CANDIDATES.check(args.candidates)  # before the model loads
    if args.strength is not None:
        params.STRENGTH.check(args.strength)
    load_image(args.image, name=args.image)  # a bad image is said before the model loads
    chosen = _reference_indices(args.chosen, len(args.references), "--reference")
    customizer, backend, references = _load_for_generation(args)
    # the file itself, not the picture loaded above: a repair keeps an image's transparency
    result = workflow.repair(customizer, backend, args.image, references, choose=chosen, strength=args.strength,
                             candidates=args.candidates, prompt=args.prompt, seed=args.seed,
                             settings=settings_request(customizer, args),
                             face_crops=[args.face_crop] * len(references), folder=args.out,
                             progress=_progress_printer(), image_name=args.image)
    for label, text in workflow.describe_repair(result):
        print(f"  {label}: {text}")
    print("wrote " + ", ".join(str(path) for path in result.files))
    return EXIT_OK


# ---------------------------------------------------------------- evaluate
# The work is umo_pipeline.evaluate's; these read its arguments.


def add_evaluate_command(subcommands) -> None:
    parser = subcommands.add_parser(
        "evaluate", help="a prompt set x seeds x base/UMO, sharded with accelerate, resumable, with an HTML report",
        description="Generate every prompt x seed x variant of a prompt set (this project's JSONL form, "
        "XVerseBench's test list, the OmniContext dataset folder, or MultiID-Bench's dataset or hf2bench "
        "folder), analyse the identities, and write "
        "records.jsonl, summary.csv/.md, plots and report.html. A case with more references than the model "
        "takes is generated from the first ones and scored against all. Run it under `accelerate launch -m "
        "umo_pipeline evaluate ...` to share the items among processes, GPUs and nodes; run it again "
        "to finish an interrupted run.",
    )
    parser.add_argument("prompts", type=Path, help="a .jsonl prompt set, an XVerseBench_*.json test list, "
                        "an OmniContext dataset folder, or a MultiID-Bench dataset folder (parquet) or hf2bench folder")
    parser.add_argument("--format", default="auto",
                        choices=("auto", "jsonl", "xversebench", "omnicontext", "multiid-bench"),
                        help="prompt-set format (default: from the path)")
    _add_out(parser, "evaluation")
    add_model_arguments(parser)
    parser.add_argument("--variants", default="base,umo",
                        help="comma-separated: base, umo, umo+repair (generate's \"then repair faces that are not "
                        "matched\", --place: the UMO image of the same prompt and seed with every reference that "
                        "is not matched repaired by `repair`'s defaults, so a case with more references than the "
                        "model takes gets the others placed; made from the umo item when the run has it) "
                        "(default: base,umo)")
    parser.add_argument("--seeds", default="0", help="e.g. 0,1,2 or 0-3 (default: 0)")
    _add_settings(parser)
    add_backend_argument(parser)
    parser.add_argument("--metrics", default="app", choices=("app", "umo-eval", "multiid-bench"),
                        help="app: the app's ID-Sim/ID-Conf; umo-eval: the rules of UMO's released evaluation "
                        "scripts; multiid-bench: the rules of MultiID-Bench's eval.py (Hungarian-assigned "
                        "similarities, outlier-trimmed means of per-image means)")
    parser.add_argument("--limit", type=int, help="only the first N prompts (a quick look at a big set)")
    parser.set_defaults(run=run_evaluate)


def run_evaluate(args) -> int:
    from umo_pipeline import load_customizer
    from umo_pipeline.evaluate import metrics, runner
    from umo_pipeline.evaluate.readers import read_prompt_set

    variants = _names(args.variants, "--variants")
    seeds = _seeds(args.seeds)
    if args.metrics not in metrics.METRICS:
        raise InputError(f"--metrics {args.metrics}: choose one of {', '.join(metrics.METRICS)}")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise InputError(f"{out}: exists and is not a folder")
    cases = read_prompt_set(args.prompts, args.format)
    if args.limit is not None:
        cases = cases[: args.limit]

    state = runner.process_state(args.device)
    # the rule set's detector threshold (MultiID-Bench's 0.45 for insightface), not the app's
    backend = metrics.scoring_backend(args.metrics, args.backend,
                                      download=getattr(args, "download_face_models", False) or None)
    customizer = load_customizer(args.model, **loader_options(args, device=args.device or str(state.device)))
    request = settings_request(customizer, args)
    return runner.evaluate(cases, customizer, backend, request, seeds=seeds, variants=variants, out=out,
                           metrics=args.metrics, model=args.model, state=state)


def _names(text: str, flag: str) -> list[str]:
    names = [part.strip() for part in text.split(",") if part.strip()]
    if not names or len(set(names)) != len(names):
        raise InputError(f"{flag} {text}: give a comma-separated list without repeats, e.g. base,umo")
    return names


def _seeds(text: str) -> list[int]:
    """"0,1,2" or a range "0-3" (inclusive) or a mix: "0-3,10"."""
    seeds = []
    for part in (p.strip() for p in text.split(",")):
        try:
            if "-" in part:
                low, high = part.split("-", 1)
                seeds.extend(range(int(low), int(high) + 1))
            else:
                seeds.append(int(part))
        except ValueError:
            raise InputError(f"--seeds {text}: expected whole numbers like 0,1,2 or a range like 0-3") from None
    if not seeds or len(set(seeds)) != len(seeds) or any(s < 0 for s in seeds):
        raise InputError(f"--seeds {text}: give distinct seeds from 0 up, like 0,1,2 or 0-3")
    return seeds


#: Every subcommand's registration function, in the order `--help` lists them.
COMMANDS = [add_generate_command, add_analyze_command, add_compare_command, add_repair_command,
            add_evaluate_command, add_score_command]


def build_parser(commands=None) -> argparse.ArgumentParser:
    # installed (`pip install .`), the command is `umo`; from a checkout, `python -m umo_pipeline`
    parser = argparse.ArgumentParser(
        prog="umo" if Path(sys.argv[0]).name == "umo" else "python -m umo_pipeline",
        description="UMO multi-identity customization: generate, analyse and compare identities.",
    )
    subcommands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for add_command in commands if commands is not None else COMMANDS:
        add_command(subcommands)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except InputError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except UMOError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
