"""Prompt sets in each benchmark's published layout, built in a temporary folder for the evaluate
tests: the committed layouts under tests/data/evaluate/ plus real face photos from tests/.assets
(which are fetched, not committed), and OmniContext's and MultiID-Bench's parquet files written
with pyarrow."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

from PIL import Image, ImageOps

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


# ---------------------------------------------------------------- MultiID-Bench

#: per case of the MultiID-Bench fixtures: (subset as the parquet spells it, references, people in
#: the ground truth); photos obama1-3 are one person, so each ground truth shows him in another photo
#: than his reference; hopper and biden have one photo each, shown mirrored and re-framed (their
#: copy-paste scores compare near-copies, so tests read them only for being defined)
MULTIID_CASES = (
    ("p1", ("obama1",), ("obama2",)),
    ("v202", ("obama1", "hopper"), ("obama3", "hopper")),
    ("p3", ("obama1", "hopper", "biden"), ("obama2", "hopper", "biden")),
)
MULTIID_PROMPTS = tuple(json.loads((DATA / "multiid" / f"{name}.json").read_text())[0]["prompt"]
                        for name in ("p1", "p2", "p3"))


def scene(photos: dict, names, tile=(192, 256), mirror: bool = True) -> Image.Image:
    """A ground-truth stand-in: the people side by side, each photo framed anew and (by default)
    mirrored, so it is not the reference photo's pixels."""
    canvas = Image.new("RGB", (tile[0] * len(names), tile[1]), (110, 110, 120))
    for k, name in enumerate(names):
        with Image.open(photos[name]) as photo:
            photo = photo.convert("RGB")
            framed = ImageOps.fit(ImageOps.mirror(photo) if mirror else photo, tile, centering=(0.5, 0.3))
        canvas.paste(framed, (k * tile[0], 0))
    return canvas


def _jpeg_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=92)
    return buffer.getvalue()


def multiid_rows(photos: dict) -> list[dict]:
    """Rows as WithAnyone/MultiID-Bench stores them: GT and input_images as {"bytes", "path"}
    structs, bboxes as JSON text; the third row has no ID (the cases are named by row number, as
    hf2bench names its files)."""
    rows = []
    for number, (subset, references, people) in enumerate(MULTIID_CASES, start=1):
        item = f"{number:04d}"
        boxes = [[k * 192 + 20, 30, k * 192 + 170, 220] for k in range(len(people))]
        rows.append({
            "ID": f"mid-{number * 7}" if number < 3 else None,
            "GT": {"bytes": _jpeg_bytes(scene(photos, people)), "path": f"{item}.jpg"},
            "input_images": [{"bytes": _png_bytes(photos[name]), "path": f"{item}_{k + 1}.png"}
                             for k, name in enumerate(references)],
            "prompt": MULTIID_PROMPTS[number - 1],
            "task_type": "multi_id" if len(references) > 1 else "single_id",
            "bboxes": json.dumps(boxes),
            "subset": subset,
            "num_persons": len(people),
        })
    return rows


def multiid_parquet_set(folder: Path, photos: dict, rows: list[dict] | None = None) -> Path:
    """The dataset folder with its one parquet shard (data/train-00000-of-00001.parquet)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = multiid_rows(photos) if rows is None else rows
    image = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    schema = pa.schema([("ID", pa.string()), ("GT", image), ("input_images", pa.list_(image)),
                        ("prompt", pa.string()), ("task_type", pa.string()), ("bboxes", pa.string()),
                        ("subset", pa.string()), ("num_persons", pa.int32())])
    path = folder / "data" / "train-00000-of-00001.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), path)
    return folder


#: hf2bench.py's names at HEAD and before its commit a358455
MULTIID_SPELLINGS = {"new": ("p1", "p2", "p3"), "old": ("v200_single", "v202", "v200_m")}


def multiid_folder_set(folder: Path, photos: dict, spelling: str = "new") -> Path:
    """The folder hf2bench.py writes: <subset>.json indexes (committed under tests/data/evaluate/
    multiid), p1/untar/ and p2/untar/ with the images, p3/num_3/ and p3/refs/person_<i>/."""
    folder.mkdir(parents=True, exist_ok=True)
    for (name, (_, references, people)), subset in zip(zip(("p1", "p2", "p3"), MULTIID_CASES),
                                                        MULTIID_SPELLINGS[spelling]):
        entry = json.loads((DATA / "multiid" / f"{name}.json").read_text())[0]
        root = folder / subset if name == "p3" else folder / subset / "untar"
        (folder / f"{subset}.json").write_text((DATA / "multiid" / f"{name}.json").read_text())
        for path, person in zip(entry["image_paths"], references):
            small_copy(photos[person], root / path)
        (root / entry["ori_img_path"]).parent.mkdir(parents=True, exist_ok=True)
        scene(photos, people).save(root / entry["ori_img_path"], quality=92)
    return folder
