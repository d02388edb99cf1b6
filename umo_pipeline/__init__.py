"""UMO multi-identity customization toolkit: customizers, face analysis, ID metrics, pictures.

`import umo_pipeline` is cheap: torch, diffusers and the face models are imported only when the
names that need them are first used.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_LAZY = {
    "UNOPipeline": "umo_pipeline.customizers.uno",
    "OmniGen2Pipeline": "umo_pipeline.customizers.omnigen2",
    "load_customizer": "umo_pipeline.customizers",
    "get_face_backend": "umo_pipeline.faces",
    "analyze_identity": "umo_pipeline.analysis",
    "IdentityReport": "umo_pipeline.analysis",
    "compare_with_ground_truth": "umo_pipeline.ground_truth",
    "load_image": "umo_pipeline.images",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'umo_pipeline' has no attribute {name!r}")
