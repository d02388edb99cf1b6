"""How long identity analysis takes with the dlib backend on this machine (run: python bench/analysis.py).

Prints medians after a warm-up: face detection + embedding of a 1024x1024 photo, and a full analysis
of one 1024x1024 output with four people against four already analysed (cached) references.
Needs the test photos (python -m tests.assets).
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from PIL import Image, ImageOps  # noqa: E402

from tests.assets import photo_paths  # noqa: E402
from tests.test_analysis import face_tile  # noqa: E402
from umo_pipeline.analysis import analyze_identity, analyze_reference  # noqa: E402
from umo_pipeline.faces import get_face_backend  # noqa: E402
from umo_pipeline.render import render_heatmap, render_overlay  # noqa: E402

PEOPLE = ["obama1", "biden", "hopper", "astronaut"]
# The same people in other photos (or mirrored), as a generated image would show them.
OUTPUT_PEOPLE = [("obama2", False), ("biden", True), ("hopper", True), ("astronaut", True)]
RUNS = 9


def median_ms(action, runs: int = RUNS) -> float:
    action()  # warm-up
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        action()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def four_people_output(photos) -> Image.Image:
    """A 1024x1024 image, 2x2 grid: one person per 512 px quarter."""
    canvas = Image.new("RGB", (1024, 1024))
    for k, (name, mirror) in enumerate(OUTPUT_PEOPLE):
        tile = face_tile(photos, name, mirror).resize((512, 512), Image.Resampling.LANCZOS)
        canvas.paste(tile, ((k % 2) * 512, (k // 2) * 512))
    return canvas


def main() -> None:
    photos = photo_paths()
    backend = get_face_backend("dlib")
    portrait = ImageOps.fit(Image.open(photos["obama1"]).convert("RGB"), (1024, 1024), centering=(0.5, 0.3))
    output = four_people_output(photos)
    references = [analyze_reference(photos[name], backend) for name in PEOPLE]
    report = analyze_identity(references, output, backend)
    assert len(report.faces) == 4, f"expected 4 faces in the benchmark image, found {len(report.faces)}"

    detect = median_ms(lambda: backend.detect(portrait))
    full = median_ms(lambda: analyze_identity(references, output, backend))
    output_faces = median_ms(lambda: backend.detect(output))
    cached_paths = median_ms(lambda: analyze_identity([photos[n] for n in PEOPLE], output, backend))
    heatmap = median_ms(lambda: render_heatmap(report))
    overlay = median_ms(lambda: render_overlay(output, report))

    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    print(f"machine: {os.cpu_count()} CPU cores, load average {load} (figures scale with other load)")
    print(f"backend: {backend.name}; median of {RUNS} runs after a warm-up")
    print(f"detection + embedding, 1024x1024 photo, 1 face:           {detect:7.1f} ms")
    print(f"full analysis, 1024x1024 output, 4 faces, 4 cached refs:   {full:7.1f} ms")
    print(f"  of which the backend's detect() on the output:            {output_faces:7.1f} ms")
    print(f"  same, references given as file paths (decode + cache hit): {cached_paths:7.1f} ms")
    print(f"render heatmap (4 x 4):                                    {heatmap:7.1f} ms")
    print(f"render overlay (1024x1024):                                {overlay:7.1f} ms")
    print(f"summary: {report.summary}")


if __name__ == "__main__":
    main()
