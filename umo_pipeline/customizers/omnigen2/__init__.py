"""UMO on OmniGen2: our OmniGen2 transformer, scheduler and pipeline, the UMO LoRA, a tiny build.

Names load lazily so importing the package costs nothing until a model is used.
"""

from __future__ import annotations

from umo_pipeline.customizers import lazy_names

#: the most references OmniGen2 takes: its transformer has one image-index embedding per reference
#: slot (OmniGen2's released weights have 5); the transformer, pipeline and customizer read it here
MAX_REFERENCES = 5

_LAZY = {
    "OmniGen2Transformer2DModel": "transformer",
    "OmniGen2EulerScheduler": "scheduler",
    "OmniGen2DPMSolverScheduler": "scheduler",
    "OmniGen2Pipeline": "pipeline",
    "build_tiny_omnigen2": "tiny",
    "save_tiny_omnigen2": "tiny",
}

__all__ = sorted(_LAZY)
__getattr__ = lazy_names(__name__, _LAZY)
