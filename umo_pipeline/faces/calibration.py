"""The rule that turns a backend's face similarities into its `Thresholds` (docs/calibration.md).

Faces come labelled with the person they show; every pair of faces of different people is a
stranger pair. The thresholds are placed on the strangers alone (there are many of them and few
same-person pairs); the same-person pairs only check the result.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping

import numpy as np
from PIL import Image

from umo_pipeline.faces.base import FaceBackend, Thresholds

#: share of stranger pairs allowed to reach each threshold (false match rate)
MATCH_FALSE_RATE = 0.01
WEAK_FALSE_RATE = 0.10
#: thresholds are multiples of this
STEP = 0.01

#: (similarity, label a, label b), one per pair of faces
Pair = tuple[float, str, str]


def labelled_faces(backend: FaceBackend, portraits: Mapping[str, Image.Image], group: Image.Image | None = None,
                   group_name: str = "group") -> list[tuple[str, str, np.ndarray]]:
    """(label, person, embedding): the largest face of each portrait and every face of a group photo.

    A portrait's person is its name without trailing digits ("obama1" and "obama2" are one person);
    each face of the group photo ("<group_name>#<i>") is a person of its own."""
    found = []
    for name, image in portraits.items():
        faces = backend.detect(image)
        if not faces:
            raise ValueError(f"{backend.name} finds no face in {name}: cannot calibrate")
        found.append((name, name.rstrip("0123456789"), faces[0].embedding))
    faces = backend.detect(group) if group is not None else []
    return found + [(f"{group_name}#{i}", f"{group_name}#{i}", face.embedding) for i, face in enumerate(faces)]


def pair_similarities(found: Iterable[tuple[str, str, np.ndarray]]) -> tuple[list[Pair], list[Pair]]:
    """(same-person pairs, stranger pairs), each sorted by similarity, lowest first."""
    same, different = [], []
    for (label_a, person_a, a), (label_b, person_b, b) in itertools.combinations(found, 2):
        similarity = float(a @ b)
        (same if person_a == person_b else different).append((similarity, label_a, label_b))
    return sorted(same), sorted(different)


def share_reaching(similarities: Iterable[float], threshold: float) -> float:
    """The share of pairs scoring at or above `threshold` (with a float-rounding allowance)."""
    return float(np.mean(np.asarray(list(similarities)) >= threshold - 1e-9))


def threshold_for_false_rate(different: Iterable[float], rate: float) -> float:
    """The lowest multiple of STEP that at most `rate` of the stranger pairs reach."""
    different = list(different)
    for candidate in np.arange(-1.0, 1.0 + STEP, STEP):
        if share_reaching(different, candidate) <= rate:
            return round(float(candidate), 2)
    return 1.0


def suggest_thresholds(different: Iterable[float]) -> Thresholds:
    """match: at most 1 % of stranger pairs reach it; weak: at most 10 % do. confusion_ratio:
    weak / match, i.e. a second face is a rival when it scores, relative to the best face, the way
    a weak resemblance scores relative to a match."""
    different = list(different)
    match = threshold_for_false_rate(different, MATCH_FALSE_RATE)
    weak = threshold_for_false_rate(different, WEAK_FALSE_RATE)
    return Thresholds(match=match, weak=weak, confusion_ratio=round(weak / match, 2))
