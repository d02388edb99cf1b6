"""Shared test set-up: offline hub, few threads, real photos from registry packages."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("OMP_NUM_THREADS", "2")

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

from tests import assets  # noqa: E402


@pytest.fixture(scope="session")
def photos() -> dict[str, Path]:
    """name -> path: astronaut, hopper, obama1, obama2, obama3, biden, newton, gauss, solvay."""
    return assets.photo_paths()


@pytest.fixture(scope="session")
def dlib_backend():
    """The dlib face backend (the one that needs no model download), built once for the whole run."""
    from umo_pipeline.faces import get_face_backend

    return get_face_backend("dlib")


@pytest.fixture(scope="session")
def output_dir() -> Path:
    """Where tests save pictures a person should look at (screenshots, heatmaps)."""
    path = Path(__file__).resolve().parent / "output"
    path.mkdir(exist_ok=True)
    return path
