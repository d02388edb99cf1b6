"""How long identity analysis takes with the dlib backend on this machine (run: python bench/analysis.py).

Prints medians after a warm-up: face detection + embedding of a 1024x1024 photo, a full analysis
of one 1024x1024 output with four people against four already analysed (cached) references, and
the 29-face 1927 Solvay photo through the path the app's Analyze tab takes
(workflow.analyze_image: analysis + pictures, then workflow.save_outputs: the files), against
detection + embedding alone. Needs the test photos (python -m tests.assets).
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from PIL import Image, ImageOps  # noqa: E402

from bench.local import photo_paths  # noqa: E402
from umo_pipeline.analysis import analyze_identity, analyze_reference  # noqa: E402
from umo_pipeline.faces import get_face_backend  # noqa: E402
from umo_pipeline.images import load_image  # noqa: E402
from umo_pipeline.render import render_comparison_sheet, render_heatmap, render_overlay  # noqa: E402
from umo_pipeline.workflow import analyze_image, face_crop_box, save_outputs  # noqa: E402

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


def timed_ms(action) -> float:
    start = time.perf_counter()
    action()
    return (time.perf_counter() - start) * 1000


def four_people_output(photos) -> Image.Image:
    """A 1024x1024 image, 2x2 grid: one person per 512 px quarter, their face (as dlib finds it) half
    the quarter's side."""
    backend = get_face_backend("dlib")
    canvas = Image.new("RGB", (1024, 1024))
    for k, (name, mirror) in enumerate(OUTPUT_PEOPLE):
        photo = load_image(photos[name])
        face = analyze_reference(photo, backend).face
        tile = photo.crop(face_crop_box(face.bbox, photo.size, 0.5)).resize((512, 512), Image.Resampling.LANCZOS)
        canvas.paste(ImageOps.mirror(tile) if mirror else tile, ((k % 2) * 512, (k // 2) * 512))
    return canvas


def main() -> None:
    photos = photo_paths()
    backend = get_face_backend("dlib")
    portrait = ImageOps.fit(Image.open(photos["obama1"]).convert("RGB"), (1024, 1024), centering=(0.5, 0.3))
    output = four_people_output(photos)
    references = [analyze_reference(photos[name], backend) for name in PEOPLE]
    references_as_images = [load_image(photos[name]) for name in PEOPLE]
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
    app_path_4 = median_ms(lambda: analyze_image(backend, references_as_images, output))
    print(f"Analyze tab path, 4 faces (analysis + heatmap + overlay + sheet): {app_path_4:7.1f} ms  (goal < 300)")
    group_photo(backend, photos)


def group_photo(backend, photos, runs: int = 3) -> None:
    """The Solvay photo (3000x2171, 29 faces) against four of its own faces, as the app runs it."""
    image = load_image(photos["solvay"])
    faces = backend.detect(image)
    references = []
    for face in faces[:4]:
        x0, y0, x1, y1 = face.bbox
        margin = 0.6 * (x1 - x0)
        references.append(image.crop((round(x0 - margin), round(y0 - margin), round(x1 + margin), round(y1 + margin))))
    for reference in references:  # the slots were analysed when they were filled
        analyze_reference(reference, backend)
    folder = Path(tempfile.mkdtemp(prefix="umo_bench_"))
    result = analyze_image(backend, references, image)
    report = result.panels[0].report

    heatmap = median_ms(lambda: render_heatmap(report), runs)
    overlay = median_ms(lambda: render_overlay(image, report), runs)
    sheet = median_ms(lambda: render_comparison_sheet(references, [("Analysed image", image, report)]), runs)
    # Other people's jobs share these cores: each run times detection, the pictures path and the
    # whole path back to back, and the ratios are taken within a run.
    detects, pictures_runs, wholes, files_runs = [], [], [], []
    for _ in range(runs):
        detects.append(timed_ms(lambda: backend.detect(image)))
        pictures_runs.append(timed_ms(lambda: analyze_image(backend, references, image)))
        files_runs.append(timed_ms(lambda: save_outputs(result, folder)))
        wholes.append(timed_ms(lambda: save_outputs(analyze_image(backend, references, image), folder)))
    detect, pictures = statistics.median(detects), statistics.median(pictures_runs)
    files, whole = statistics.median(files_runs), statistics.median(wholes)
    ratio = statistics.median(w / d for w, d in zip(wholes, detects))
    pictures_ratio = statistics.median(p / d for p, d in zip(pictures_runs, detects))

    print(f"\n1927 Solvay photo {image.width}x{image.height}, {len(report.faces)} faces, 4 references; "
          f"median of {runs} runs")
    print(f"detection + embedding (backend.detect):                     {detect:7.1f} ms")
    print(f"  render_heatmap: {heatmap:6.1f} ms   render_overlay (full size): {overlay:6.1f} ms   sheet: {sheet:6.1f} ms")
    print(f"workflow.analyze_image (analysis + all pictures):            {pictures:7.1f} ms")
    print(f"workflow.save_outputs (sheet PNG + JSON):                    {files:7.1f} ms")
    print(f"whole path, analyze_image + save_outputs:                    {whole:7.1f} ms")
    print(f"ratio whole path / detection + embedding: {ratio:4.2f}x   (analysis + pictures only: "
          f"{pictures_ratio:4.2f}x; goal <= 1.5x)")


if __name__ == "__main__":
    main()
