"""The face analysis interface every backend implements: one `Face` record per detected face."""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from dataclasses import dataclass, field

import numpy as np
from PIL import Image


@dataclass(frozen=True)
class Thresholds:
    """Per-backend similarity thresholds (cosine of L2-normalised embeddings).

    match: at or above, the reference is "matched" (same person, with confidence).
    weak:  at or above (but below match), the reference is "weak" (resemblance, not convincing).
    Below weak the reference counts as "not found".
    confusion_ratio: a reference whose second-best face scores s2 >= confusion_ratio * s1 is
    flagged as confused (the two faces are nearly equally similar to it).
    """

    match: float
    weak: float
    confusion_ratio: float = 0.9


@dataclass
class Face:
    """One face found in an image.

    bbox is (x0, y0, x1, y1) in the pixels of the image given to `detect` (after EXIF transpose).
    landmarks is (K, 2) in the same pixels (K depends on the backend: 5 for both backends here).
    embedding is float32, shape (D,), L2-normalised.
    crop is a small RGB preview of the face with some margin, for heatmaps and UI previews.
    """

    bbox: tuple[float, float, float, float]
    landmarks: np.ndarray
    det_score: float
    embedding: np.ndarray
    crop: Image.Image = field(repr=False)

    @property
    def area(self) -> float:
        x0, y0, x1, y1 = self.bbox
        return max(0.0, x1 - x0) * max(0.0, y1 - y0)


class FaceBackend(ABC):
    """Detects faces and embeds them. Implementations load their models once, in __init__."""

    #: short name shown with every result ("dlib", "insightface:buffalo_l", ...)
    name: str
    #: calibrated thresholds for this backend's similarity scale
    thresholds: Thresholds
    #: plain words on how this backend's numbers compare with the papers' (shown with the scores)
    scale_note: str = ""
    #: set when "auto" wanted ArcFace but had to use this backend: why, in plain words
    fallback_reason: str | None = None

    def detect(self, image: Image.Image) -> list[Face]:
        """All faces in an RGB image, largest first.

        Calls on one backend run one at a time: dlib's models crash or return garbage when two
        threads enter them at once, and a web page makes concurrent calls (slot previews while an
        analysis runs). Serialising here keeps the app, the CLI and notebooks equally safe.
        """
        with self._detect_lock:
            return self._detect(image)

    @property
    def _detect_lock(self) -> threading.Lock:
        with _LOCK_GUARD:
            lock = self.__dict__.get("_lock")
            if lock is None:
                lock = self.__dict__["_lock"] = threading.Lock()
        return lock

    @abstractmethod
    def _detect(self, image: Image.Image) -> list[Face]:
        """The backend's detection + embedding; called under the backend's lock."""


_LOCK_GUARD = threading.Lock()
