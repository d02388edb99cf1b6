"""Command-line options the app and the CLI share: which model, how it runs, which face backend.

One definition each, so `python app.py --help` and `python -m umo_pipeline generate --help` offer the
same names, choices and meanings, and turn them into the same loader options.
"""

from __future__ import annotations

import argparse


def add_model_arguments(parser: argparse.ArgumentParser, *, default_model: str = "umo-uno") -> None:
    """--model, --device, --offload, --fp8, --compile, --fast-cache, --lora-path."""
    from umo_pipeline.customizers import MODEL_DESCRIPTIONS, available_customizers

    described = "; ".join(f"{name}: {text}" for name, text in MODEL_DESCRIPTIONS.items())
    parser.add_argument("--model", default=default_model, choices=available_customizers(), help=described)
    parser.add_argument("--device", default=None, help="cuda, cuda:1, cpu (default: cuda when available)")
    parser.add_argument("--offload", action="store_true", help="model CPU offload (less GPU memory, slower)")
    parser.add_argument("--fp8", action="store_true",
                        help="fp8 transformer: fp8 matmuls (torchao) on GPUs with fp8 tensor cores (compute "
                             "capability 8.9+), fp8 weight storage with bf16 matmuls elsewhere (less GPU memory)")
    parser.add_argument("--compile", action="store_true",
                        help="compile the transformer's repeated blocks with torch.compile (faster after a "
                             "first, slow generation per new size)")
    parser.add_argument("--fast-cache", action="store_true",
                        help="Faster, approximate: First Block Cache skips most of the transformer on steps "
                             "where little changes (changes the images; off by default)")
    parser.add_argument("--lora-path", default=None, help="a local UMO LoRA file instead of the hub download")


BACKEND_HELP = ("face backend for the analysis (default auto: insightface when its model pack is available, "
                "else dlib)")


def add_backend_argument(parser: argparse.ArgumentParser) -> None:
    """--backend (also spelled --face-backend): the face analysis backend."""
    from umo_pipeline.faces import BACKEND_NAMES

    parser.add_argument("--backend", "--face-backend", dest="backend", choices=BACKEND_NAMES, default="auto",
                        help=BACKEND_HELP)
    parser.add_argument("--download-face-models", action="store_true",
                        help="allow downloading the insightface (ArcFace) pack from the Hugging Face hub when it "
                             "is not on disk (also UMO_INSIGHTFACE_DOWNLOAD=1); the pack is licensed for "
                             "non-commercial research only")


def face_backend(args: argparse.Namespace):
    """The face backend the flags ask for (--backend, --download-face-models)."""
    from umo_pipeline.faces import get_face_backend

    return get_face_backend(args.backend, download=getattr(args, "download_face_models", False) or None)


def extra_settings(pairs: list[str] | None) -> dict:
    """--set NAME=NUMBER pairs as request.extra; the names and values are checked by the model's rules."""
    from umo_pipeline.errors import InputError

    extra = {}
    for pair in pairs or []:
        name, _, value = pair.partition("=")
        try:
            if not name.strip():
                raise ValueError
            extra[name.strip()] = float(value)
        except ValueError:
            raise InputError(f"--set {pair}: expected NAME=NUMBER, e.g. image_guidance=2.0") from None
    return extra


def settings_request(customizer, args: argparse.Namespace, prompt: str = ""):
    """The model's defaults with the settings given on the command line (--width ... --set), checked by
    the model's rules (the prompt is checked later, per request)."""
    chosen = {name: getattr(args, name) for name in ("width", "height", "steps", "guidance")}
    return customizer.check_settings(customizer.request_with(prompt, extra_settings(args.extra), **chosen))


def loader_options(args: argparse.Namespace, device: str | None = None) -> dict:
    """The options for load_customizer that the user set (each model's loader sees only those), with
    `device` standing in when the flags name none."""
    options = {"device": args.device or device, "offload": args.offload or None, "fp8": args.fp8 or None,
               "compile": getattr(args, "compile", False) or None,
               "fast_cache": getattr(args, "fast_cache", False) or None, "lora_path": args.lora_path}
    return {name: value for name, value in options.items() if value is not None}
