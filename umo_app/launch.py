"""Flags, loading the models and serving the page: what `python app.py [flags]` runs."""

from __future__ import annotations

import argparse
import logging
import os

import gradio as gr

from umo_app import style, zerogpu
from umo_app.layout import build_demo
from umo_app.queue_limits import QUEUE_LIMITS, setup_queue
from umo_pipeline.errors import UMOError
from umo_pipeline.options import add_backend_argument, add_model_arguments, face_backend, loader_options

MAX_UPLOAD = "10mb"


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="UMO demo: multi-identity image customization with an "
                                                 "identity heatmap.")
    add_model_arguments(parser)
    add_backend_argument(parser)
    parser.add_argument("--host", default=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("GRADIO_SERVER_PORT", "7860")))
    parser.add_argument("--share", action="store_true", help="public gradio.live link")
    return parser.parse_args(argv)


def default_device(requested: str | None) -> str:
    if requested:
        return requested
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def load_models(args: argparse.Namespace):
    """(customizer or the reason it could not load, face backend or the reason, device)."""
    from umo_pipeline import load_customizer

    # each loader picks when no device is given (tiny: the CPU; full-size models: CUDA, or a plain
    # refusal before any weights are looked for)
    requested = zerogpu.model_device(args.device)
    try:
        customizer = load_customizer(args.model, **loader_options(args, device=requested))
    except UMOError as error:
        customizer = str(error)
    except Exception as error:  # noqa: BLE001 - no CUDA, driver trouble...: the page still serves Analyze
        customizer = f"{args.model} could not be loaded ({type(error).__name__}: {error})."
    device = default_device(requested) if isinstance(customizer, str) else customizer.device
    try:
        backend = face_backend(args)
    except UMOError as error:
        backend = str(error)
    return customizer, backend, device


def load_space_models():
    """On a Space, the models load at import time, before the first request (ZeroGPU moves them to
    the GPU); on ZeroGPU the transformer's blocks are then compiled ahead of time."""
    models = load_models(parse_args([]))
    zerogpu.compile_at_start(models[0])
    return models


def page_options() -> dict:
    """How the page is served, for `Blocks.launch`: upload cap, theme, CSS, no server-side rendering."""
    return dict(max_file_size=MAX_UPLOAD, theme=style.theme(), css=style.CSS, ssr_mode=False, show_error=True,
                footer_links=["api"])


def launch(demo: gr.Blocks, args: argparse.Namespace):
    setup_queue(demo, QUEUE_LIMITS)
    preload_matplotlib()
    return demo.launch(server_name=args.host, server_port=args.port, share=args.share, **page_options())


def main(argv=None, models=None):
    """`python app.py [flags]`; `models`: (customizer, face backend, device) already loaded (a Space)."""
    args = parse_args(argv)
    # one line per generation (with a prompt excerpt) and per stop; other libraries stay at warnings
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("umo").setLevel(logging.INFO)
    customizer, backend, device = models or load_models(args)
    launch(build_demo(customizer, backend, device=device), args)


def preload_matplotlib() -> bool:
    """Import matplotlib with its "agg" backend now; False when it is not installed.

    Gradio switches matplotlib to "agg" around every call it runs, and back to the backend it found.
    The first switch imports matplotlib and pyplot and probes for a backend: 0.4-0.6 s on the
    server's event loop, which holds up every visitor's connection during the first request. Done at
    start, that request costs what the others do; and with "agg" from the start (a server shows no
    windows) every later switch is from "agg" to "agg", even on a desktop where the probe would pick
    a windowing backend.
    """
    try:
        import matplotlib
        import matplotlib.pyplot  # noqa: F401 - what switching backends imports anyway
    except ImportError:
        return False
    matplotlib.use("agg")
    return matplotlib.get_backend() == "agg"
