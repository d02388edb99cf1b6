"""What the Compare methods tab's library path costs against finding the faces alone (run: python
bench/compare_methods.py [--runs N]).

Six 1024x1024 "methods' images" (the four people of bench/analysis.py in six arrangements) against
four references, dlib: workflow.compare_methods (every image analysed, ranked, a heatmap each and the
sheet) and save_method_comparison (sheet PNG, JSON, CSV), against backend.detect (detection +
embedding) on the six images alone. The references are found once per comparison: warm, as on the
page (each slot's preview found its face when the photo landed), and cold (the cache emptied first:
the four references' detection is then part of the call). Each run times the three back to back and
the ratios are taken within a run, since other jobs share these cores. Needs the test photos.
"""

from __future__ import annotations

import argparse
import itertools
import os
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from PIL import Image, ImageOps  # noqa: E402

from bench.analysis import OUTPUT_PEOPLE, PEOPLE, timed_ms  # noqa: E402
from bench.local import photo_paths  # noqa: E402
from umo_pipeline import workflow  # noqa: E402
from umo_pipeline.analysis import analyze_reference, clear_reference_cache  # noqa: E402
from umo_pipeline.faces import get_face_backend  # noqa: E402
from umo_pipeline.images import load_image  # noqa: E402

NAMES = ["UMO-UNO", "UNO", "OmniGen2", "XVerse", "DreamO", "WithAnyone"]


def method_images(photos, backend) -> list[Image.Image]:
    """Six 1024x1024 images, each the four people (one per 512 px quarter, the face half the quarter's
    side) in another arrangement, as six methods would place them."""
    tiles = []
    for name, mirror in OUTPUT_PEOPLE:
        photo = load_image(photos[name])
        face = analyze_reference(photo, backend).face
        tile = photo.crop(workflow.face_crop_box(face.bbox, photo.size, 0.5)).resize((512, 512), Image.Resampling.LANCZOS)
        tiles.append(ImageOps.mirror(tile) if mirror else tile)
    images = []
    for order in itertools.islice(itertools.permutations(range(4)), 0, 24, 4):  # six spread-out orders
        canvas = Image.new("RGB", (1024, 1024))
        for quarter, person in enumerate(order):
            canvas.paste(tiles[person], ((quarter % 2) * 512, (quarter // 2) * 512))
        images.append(canvas)
    return images


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    photos = photo_paths()
    backend = get_face_backend("dlib")
    references = [photos[name] for name in PEOPLE]
    images = method_images(photos, backend)
    folder = Path(tempfile.mkdtemp(prefix="umo_bench_methods_"))

    def detect_alone():
        for image in images:
            backend.detect(image)

    def compare():
        return workflow.compare_methods(backend, references, images, NAMES)

    def compare_and_save():
        workflow.save_method_comparison(compare(), folder)

    def cold():
        clear_reference_cache()
        compare_and_save()

    result = compare()  # warm-up; the references are now cached, as the page's previews leave them
    assert all(method.matched == 4 for method in result.methods), [m.caption() for m in result.methods]
    detects, compares, wholes, colds = [], [], [], []
    for _ in range(args.runs):
        detects.append(timed_ms(detect_alone))
        compares.append(timed_ms(compare))
        wholes.append(timed_ms(compare_and_save))
        colds.append(timed_ms(cold))
    clear_reference_cache()

    def ratio(times):
        return statistics.median(t / d for t, d in zip(times, detects))

    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    print(f"machine: {os.cpu_count()} CPU cores, load average {load}; backend {backend.name}; "
          f"median of {args.runs} runs after a warm-up")
    print(f"6 images 1024x1024 (4 faces each), 4 references; sheet {result.sheet.width}x{result.sheet.height}")
    print(f"detection + embedding of the 6 images alone:            {statistics.median(detects):8.1f} ms")
    print(f"compare_methods (analysis, ranking, heatmaps, sheet):   {statistics.median(compares):8.1f} ms  "
          f"{ratio(compares):4.2f}x")
    print(f"  + save_method_comparison (sheet PNG, JSON, CSV):      {statistics.median(wholes):8.1f} ms  "
          f"{ratio(wholes):4.2f}x  (goal <= 1.3x)")
    print(f"  the same with the references found in the call:      {statistics.median(colds):8.1f} ms  "
          f"{ratio(colds):4.2f}x  (4 reference photos detected once)")


if __name__ == "__main__":
    main()
