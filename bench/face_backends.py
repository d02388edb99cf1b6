"""Milliseconds per `detect` (find + landmarks + embed) of the face backends on 1024x1024 images.

Run: python -m tests.assets && python bench/face_backends.py [--repeat 5]
Images: one face (the astronaut photo enlarged to 1024x1024), four faces (a 2x2 grid of 512x512
portraits, like a generated picture of four people), and the 3000x2171 Solvay photo (29 faces).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from PIL import Image  # noqa: E402

from bench.local import photo_paths  # noqa: E402
from umo_pipeline.faces import get_face_backend  # noqa: E402


def square(path: Path, side: int) -> Image.Image:
    image = Image.open(path).convert("RGB")
    short = min(image.size)
    # Portraits have the face in the upper part: keep the top of tall photos.
    left, top = (image.width - short) // 2, (image.height - short) // 10
    return image.crop((left, top, left + short, top + short)).resize((side, side), Image.LANCZOS)


def test_images() -> dict[str, Image.Image]:
    paths = photo_paths()
    grid = Image.new("RGB", (1024, 1024))
    for i, name in enumerate(["astronaut", "hopper", "obama1", "biden"]):
        grid.paste(square(paths[name], 512), ((i % 2) * 512, (i // 2) * 512))
    return {
        "1 face 1024x1024": square(paths["astronaut"], 1024),
        "4 faces 1024x1024": grid,
        "solvay 3000x2171": Image.open(paths["solvay"]).convert("RGB"),
    }


def timed(backend, image: Image.Image, repeat: int) -> tuple[float, float, int]:
    """Median wall and CPU milliseconds; CPU time is the steadier figure on a shared machine."""
    backend.detect(image)  # warm-up: first calls allocate
    wall, cpu = [], []
    for _ in range(repeat):
        start, start_cpu = time.perf_counter(), time.process_time()
        faces = backend.detect(image)
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return statistics.median(wall) * 1000, statistics.median(cpu) * 1000, len(faces)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default="dlib", choices=["dlib", "insightface"])
    parser.add_argument("--insightface-root", default=None)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    backend = get_face_backend(args.backend, insightface_root=args.insightface_root)
    for label, image in test_images().items():
        repeat = 1 if label.startswith("solvay") else args.repeat
        wall, cpu, count = timed(backend, image, repeat)
        print(f"{backend.name:24s} {label:20s} {count:2d} faces  wall {wall:6.0f} ms  cpu {cpu:6.0f} ms")


if __name__ == "__main__":
    main()
