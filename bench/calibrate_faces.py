"""Similarity distributions of a face backend on the test photos, and the thresholds they suggest.

Run: python -m tests.assets && python bench/calibrate_faces.py [--backend dlib]
Same person: the three Obama photos. Different people: every other pair of portraits (astronaut,
hopper, obama*, biden, newton, gauss) and every pair of faces in the 1927 Solvay photo (29 people),
plus every portrait against every Solvay face. The rule that turns these into thresholds is
written in docs/calibration.md and lives in the library (umo_pipeline/faces/calibration.py).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.local import photo_paths  # noqa: E402
from umo_pipeline.faces import get_face_backend  # noqa: E402
from umo_pipeline.faces.base import Thresholds  # noqa: E402
from umo_pipeline.faces.calibration import (  # noqa: E402
    labelled_faces,
    pair_similarities,
    share_reaching,
    suggest_thresholds,
)

PORTRAITS = ["astronaut", "hopper", "obama1", "obama2", "obama3", "biden", "newton", "gauss"]


def faces_on_test_photos(backend) -> list:
    """(label, person, embedding): the largest face of each portrait and every Solvay face."""
    from PIL import Image

    paths = photo_paths()
    portraits = {name: Image.open(paths[name]).convert("RGB") for name in PORTRAITS}
    try:
        return labelled_faces(backend, portraits, Image.open(paths["solvay"]).convert("RGB"), group_name="solvay")
    except ValueError as error:
        raise SystemExit(str(error)) from error


def rates(thresholds: Thresholds, same: list[float], different: list[float]) -> str:
    return (f"same >= match {share_reaching(same, thresholds.match):.0%}, "
            f">= weak {share_reaching(same, thresholds.weak):.0%}; "
            f"different >= match {share_reaching(different, thresholds.match):.1%}, "
            f">= weak {share_reaching(different, thresholds.weak):.1%}")


def describe(name: str, values: list[float]) -> str:
    q = np.percentile(values, [0, 10, 50, 90, 99, 100])
    return (f"{name:10s} n={len(values):4d}  min {q[0]:.3f}  p10 {q[1]:.3f}  median {q[2]:.3f}  "
            f"p90 {q[3]:.3f}  p99 {q[4]:.3f}  max {q[5]:.3f}")


def histogram(same: list[float], different: list[float], bins: int = 20) -> str:
    low, high = min(same + different), 1.0
    edges = np.linspace(low, high, bins + 1)
    counts_same, _ = np.histogram(same, edges)
    counts_diff, _ = np.histogram(different, edges)
    rows = []
    for i in range(bins):
        rows.append(f"  {edges[i]:.3f}-{edges[i + 1]:.3f}  diff {counts_diff[i]:4d} {'#' * min(60, int(counts_diff[i]) // 2):60s}"
                    f" same {counts_same[i]:2d} {'*' * int(counts_same[i])}")
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default="dlib", choices=["dlib", "insightface"])
    parser.add_argument("--insightface-root", default=None)
    args = parser.parse_args()
    backend = get_face_backend(args.backend, insightface_root=args.insightface_root)
    start = time.perf_counter()
    found = faces_on_test_photos(backend)
    print(f"backend {backend.name}: {len(found)} faces embedded in {time.perf_counter() - start:.1f} s")
    same, different = pair_similarities(found)
    same_values = [s for s, *_ in same]
    diff_values = [s for s, *_ in different]
    portraits_only = [s for s, a, b in different if not a.startswith("solvay") and not b.startswith("solvay")]
    print(describe("same", same_values))
    print(describe("different", diff_values))
    print(describe("diff/portr", portraits_only))
    print(describe("diff/solvay", [s for s, a, b in different if a.startswith("solvay") and b.startswith("solvay")]))
    print("same-person pairs:", ", ".join(f"{a}~{b} {s:.3f}" for s, a, b in same))
    print("closest different-people pairs:", ", ".join(f"{a}~{b} {s:.3f}" for s, a, b in different[-5:]))
    print(histogram(same_values, diff_values))
    suggested = suggest_thresholds(diff_values)
    print(f"suggested: {suggested}  ({rates(suggested, same_values, diff_values)})")
    print(f"in use:    {backend.thresholds}  ({rates(backend.thresholds, same_values, diff_values)})")


if __name__ == "__main__":
    main()
