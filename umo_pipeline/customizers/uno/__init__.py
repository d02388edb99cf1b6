"""UMO on UNO (FLUX.1-dev): UNOPipeline, the UNO/UMO LoRAs, the customizer, a tiny build, AoTI.

Names load lazily so importing the package costs nothing until a model is used.
"""

from __future__ import annotations

from umo_pipeline.customizers import lazy_names

#: the most references UNO takes (UNO's own limit: its reference tokens' positions are laid out for
#: up to 4); the pipeline, the customizer, the AoTI bounds and the page read it from here
MAX_REFERENCES = 4

_LAZY = {
    "UNOPipeline": "pipeline",
    "UNOCustomizer": "customizer",
    "build_tiny_components": "tiny",
}

__all__ = sorted(_LAZY)
__getattr__ = lazy_names(__name__, _LAZY)
