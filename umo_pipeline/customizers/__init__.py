"""Base customizers (UNO on FLUX, OmniGen2) with the UMO LoRA, and a tiny offline build.

`load_customizer(name, **options)` is the one entry point the app and CLI use; each name maps to a
loader function, imported only when that name is loaded so this package stays cheap to import.

One sub-package per base model (uno/, omnigen2/: pipeline, customizer, LoRA format, tiny build),
beside what they share: base.py (the generation recipe), loading.py (loader helpers), speed.py (the
speed-up sequence), lora.py (reading and loading LoRA adapters), pipeline_inputs.py (pipeline checks).
"""

from __future__ import annotations

import importlib
import inspect
import sys
from collections.abc import Callable

from umo_pipeline.customizers.base import Customizer
from umo_pipeline.customizers.request import GenerationRequest, Inpainting
from umo_pipeline.errors import InputError

#: name -> loader, or "module:function" of a loader imported on first use
_LOADERS: dict[str, Callable[..., Customizer] | str] = {
    "umo-uno": "umo_pipeline.customizers.uno.customizer:load_umo_uno",
    "tiny": "umo_pipeline.customizers.uno.customizer:load_tiny",
    "umo-omnigen2": "umo_pipeline.customizers.omnigen2.customizer:load_umo_omnigen2",
    "tiny-omnigen2": "umo_pipeline.customizers.omnigen2.customizer:load_tiny_omnigen2",
}


#: what each built-in model is, in the words the app's and the CLI's --help use
MODEL_DESCRIPTIONS = {
    "umo-uno": "UNO on FLUX.1-dev with the UMO LoRA (needs a CUDA GPU and the weights)",
    "umo-omnigen2": "OmniGen2 with the UMO LoRA (needs a CUDA GPU and the weights)",
    "tiny": "a tiny random-weight UNO build that runs anywhere and outputs noise (for trying the page)",
    "tiny-omnigen2": "the same for OmniGen2",
}


def register_customizer(name: str, loader: Callable[..., Customizer] | str) -> None:
    """Make `load_customizer(name, ...)` call `loader(...)` (a function or "module:function")."""
    _LOADERS[name] = loader


def available_customizers() -> list[str]:
    return sorted(_LOADERS)


def load_customizer(name: str, **options) -> Customizer:
    """Load a customizer by name: "umo-uno", "tiny", ... Options go to that model's loader.

    "umo-uno": device, dtype, mode ("compare": UNO and UMO adapters; "fused": UMO only, faster),
    offload, fp8, flux_path, uno_lora_path, lora_path, token, cache_dir.
    "tiny": random-weight test build (outputs are noise): device, dtype, mode, fp8, seed.
    """
    loader = _LOADERS.get(name)
    if loader is None:
        raise InputError(f"Unknown model {name!r}; available: {', '.join(available_customizers())}.")
    if isinstance(loader, str):
        module, function = loader.split(":")
        loader = getattr(importlib.import_module(module), function)
    parameters = inspect.signature(loader).parameters
    if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        unknown = sorted(set(options) - set(parameters))
        if unknown:
            raise InputError(f"The {name!r} model does not take the option(s) {', '.join(unknown)}.")
    return loader(**options)


def lazy_names(package: str, modules: dict[str, str]) -> Callable[[str], object]:
    """A model sub-package's `__getattr__`: each name in `modules` is imported from its module of the
    package on first use (and then kept), so importing the sub-package costs nothing."""

    def __getattr__(name: str):
        if name not in modules:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{package}.{modules[name]}"), name)
        setattr(sys.modules[package], name, value)
        return value

    return __getattr__


__all__ = ["MODEL_DESCRIPTIONS", "Customizer", "GenerationRequest", "Inpainting", "available_customizers",
           "load_customizer", "register_customizer"]
