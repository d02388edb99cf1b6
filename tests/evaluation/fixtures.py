"""Prompt sets in each benchmark's published layout, built in a temporary folder for the evaluate
tests: the committed layouts under tests/data/evaluate/ plus real face photos from tests/.assets
(which are fetched, not committed), and OmniContext's parquet file written with pyarrow."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

from PIL import Image

DATA = Path(__file__).resolve().parents[1] / "data" / "evaluate"
#: the line each case of the committed XVerseBench list starts on
XVERSE_LINES = (2, 38, 74, 110)


def small_copy(source: Path, destination: Path, side: int = 256) -> Path:
    """A smaller copy of a photo (keeps the tests fast; faces stay large enough for dlib)."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    with Image.open(source) as image:
        image = image.convert("RGB")
        image.thumbnail((side, side))
        image.save(destination, quality=92)
    return destination


def plain_picture(destination: Path, colour=(200, 60, 40)) -> Path:
    """A face-free stand-in for XVerseBench's object and animal pictures."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (128, 128), colour).save(destination)
    return destination


def jsonl_set(folder: Path, photos: dict) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "prompts.jsonl"
    shutil.copy(DATA / "prompts.jsonl", path)
    for name in ("obama1", "hopper", "astronaut", "biden"):
        suffix = photos[name].suffix
        small_copy(photos[name], folder / "refs" / f"{name}{suffix}")
    return path


def xversebench_set(folder: Path, photos: dict) -> Path:
    shutil.copytree(DATA / "xverse", folder, dirs_exist_ok=True)
    assets = folder / "assets" / "XVerseBench"
    small_copy(photos["obama1"], assets / "human" / "00_man.jpg")
    small_copy(photos["hopper"], assets / "human" / "01_woman.jpg")
    small_copy(photos["biden"], assets / "human" / "02_man.jpg")
    plain_picture(assets / "object" / "00_motorcycle.jpg")
    plain_picture(assets / "object" / "01_ball.jpg", (30, 90, 200))
    return folder / "eval" / "tools" / "XVerseBench_multi.json"


def _png_bytes(path: Path, side: int = 256) -> bytes:
    with Image.open(path) as image:
        image = image.convert("RGB")
        image.thumbnail((side, side))
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
    return buffer.getvalue()


def omnicontext_rows(photos: dict) -> list[dict]:
    """Rows as the hub dataset stores them: images are {"bytes", "path"} structs."""
    def images(*names):
        return [{"bytes": _png_bytes(photos[n]) if n in photos else _plain_bytes(), "path": f"{n}.png"} for n in names]

    return [
        {"key": "sc_0001", "task_type": "single_character", "instruction": "The person reads a book in a library.",
         "input_images": images("obama1")},
        {"key": "mc_0001", "task_type": "multi_character", "instruction": "The two people shake hands on a stage.",
         "input_images": images("obama2", "hopper")},
        {"key": "so_0001", "task_type": "single_object", "instruction": "The cup stands on a wooden table.",
         "input_images": images("cup")},
        {"key": "scn_0001", "task_type": "scene_character", "instruction": "The person walks through this street.",
         "input_images": images("street", "biden")},
    ]


def _plain_bytes() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (96, 96), (90, 140, 60)).save(buffer, format="PNG")
    return buffer.getvalue()


def omnicontext_set(folder: Path, photos: dict, rows: list[dict] | None = None) -> Path:
    """The dataset folder with its parquet shard (data/train-00000-of-00001.parquet)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = omnicontext_rows(photos) if rows is None else rows
    image = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    schema = pa.schema([("task_type", pa.string()), ("instruction", pa.string()),
                        ("input_images", pa.list_(image)), ("key", pa.string())])
    path = folder / "data" / "train-00000-of-00001.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), path)
    return folder
