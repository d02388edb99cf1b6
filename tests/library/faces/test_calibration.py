"""The threshold rule of docs/calibration.md: on made-up similarities, and on dlib's embeddings of the
test photos, where it must give the thresholds the dlib backend ships."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from umo_pipeline.faces import get_face_backend
from umo_pipeline.faces.base import Thresholds
from umo_pipeline.faces.calibration import (
    labelled_faces,
    pair_similarities,
    share_reaching,
    suggest_thresholds,
    threshold_for_false_rate,
)

PORTRAITS = ["astronaut", "hopper", "obama1", "obama2", "obama3", "biden", "newton", "gauss"]


def test_thresholds_sit_at_the_1_and_10_percent_points_of_the_strangers():
    strangers = [i / 100 for i in range(100)]  # 0.00 .. 0.99, one pair each
    assert threshold_for_false_rate(strangers, 0.01) == 0.99  # only 0.99 itself reaches it
    assert threshold_for_false_rate(strangers, 0.10) == 0.90  # 0.90 .. 0.99: ten pairs
    assert suggest_thresholds(strangers) == Thresholds(match=0.99, weak=0.90, confusion_ratio=0.91)
    assert threshold_for_false_rate([1.0] * 5, 0.01) == 1.0  # no multiple below 1 keeps strangers out


@pytest.fixture(scope="module")
def dlib_faces(photos):
    backend = get_face_backend("dlib")
    portraits = {name: Image.open(photos[name]).convert("RGB") for name in PORTRAITS}
    return backend, labelled_faces(backend, portraits, Image.open(photos["solvay"]).convert("RGB"))


def test_dlib_thresholds_follow_from_the_rule_on_the_test_photos(dlib_faces):
    backend, found = dlib_faces
    same, different = pair_similarities(found)
    # the three Obama photos are the only same-person pairs; every other pair is a stranger pair
    assert {(a, b) for _, a, b in same} == {("obama1", "obama2"), ("obama1", "obama3"), ("obama2", "obama3")}
    assert len(different) == len(found) * (len(found) - 1) // 2 - 3
    strangers = [s for s, *_ in different]
    suggested = suggest_thresholds(strangers)
    assert suggested == backend.thresholds  # what docs/calibration.md reports and dlib_backend.py ships
    assert share_reaching([s for s, *_ in same], suggested.match) == 1.0  # rule 4: the check
    assert share_reaching(strangers, suggested.match) <= 0.01 and share_reaching(strangers, suggested.weak) <= 0.10


def test_a_portrait_without_a_face_cannot_calibrate():
    backend = get_face_backend("dlib")
    gradient = Image.fromarray(np.tile(np.arange(256, dtype=np.uint8), (256, 1))).convert("RGB")
    with pytest.raises(ValueError, match="finds no face in gradient"):
        labelled_faces(backend, {"gradient": gradient})
