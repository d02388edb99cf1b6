"""The command line, `python -m umo_pipeline <command> ...`: one argparse subcommand per task.

To add a command, write `add_<name>_command(subcommands)` that adds a parser whose defaults set
`run` to a function taking the parsed arguments and returning an exit status, and list it in
COMMANDS. Errors meant for the user (UMOError) become one line on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from umo_pipeline.errors import InputError, UMOError

EXIT_OK = 0
EXIT_FAILED = 1     # the inputs were fine but something could not run (missing model, ...)
EXIT_BAD_INPUT = 2  # like argparse: the user's inputs cannot be used

FACE_BACKENDS = ("auto", "dlib", "insightface")


def add_analyze_command(subcommands) -> None:
    parser = subcommands.add_parser(
        "analyze",
        help="match the faces of an output image against reference photos",
        description="Find the faces of an output image, match them to the largest face of each "
        "reference (Hungarian assignment) and report ID-Sim, ID-Conf and what went wrong.",
    )
    parser.add_argument("--ref", dest="references", metavar="IMAGE", action="append", required=True,
                        help="a reference photo; repeat for each identity (Reference 1, 2, ... in this order)")
    parser.add_argument("--image", required=True, metavar="IMAGE", help="the output image to analyse")
    parser.add_argument("--backend", choices=FACE_BACKENDS, default="auto",
                        help="face backend (default: insightface when its models are on disk, else dlib)")
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
    report = analyze_identity(references, image, args.backend)

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
    _write(path, picture.save)


def _write(path: Path, write) -> None:
    try:
        write(path)
    except ValueError:  # Pillow: no format for this file extension
        raise InputError(f"{path}: unknown picture format; use a .png, .jpg or .webp name") from None
    except OSError as error:
        raise InputError(f"{path}: cannot write ({error.strerror or error})") from None


#: Every subcommand's registration function, in the order `--help` lists them.
COMMANDS = [add_analyze_command]


def build_parser(commands=None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m umo_pipeline",
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
