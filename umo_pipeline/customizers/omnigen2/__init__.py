"""UMO on OmniGen2: our OmniGen2 transformer, scheduler and pipeline, the UMO LoRA, a tiny build.

Names load lazily so importing the package costs nothing until a model is used.
"""

from __future__ import annotations

import importlib

_LAZY = {
    "OmniGen2Transformer2DModel": "transformer",
    "OmniGen2EulerScheduler": "scheduler",
    "OmniGen2DPMSolverScheduler": "scheduler",
    "OmniGen2Pipeline": "pipeline",
    "build_tiny_omnigen2": "tiny",
    "save_tiny_omnigen2": "tiny",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
