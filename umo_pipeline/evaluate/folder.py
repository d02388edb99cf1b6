"""The run folder (--out): where each file of a run lives, atomic writes, and the records that make a
run resumable item by item.

    run.json                 the settings of the run; a rerun with other settings is refused
    items/<item>.png         the generated image, its settings in the PNG metadata
    items/<item>.faces.png   the image with its labelled faces
    items/<item>.json        the record; written last, so its presence marks the item complete
    references/              small copies of the references for the report
    records.jsonl, summary.csv, summary.md, plots/*.png, report.html   (main process, at the end)

Every file is written to a temporary name and moved into place with os.replace, so a killed run
leaves each item either complete or absent (a PNG without its record is redone).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from umo_pipeline.errors import InputError
from umo_pipeline.evaluate.items import WorkItem

#: bumped when a record's fields change: older records are then redone, not misread
RECORD_VERSION = 1


def atomic_write(path: Path, write) -> None:
    """write(tmp_path), then move it over `path` in one step (a reader never sees half a file)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def check_run_file(out: Path, settings: dict, is_main_process: bool) -> None:
    """Refuse a folder holding a run made with other settings; the main process records new ones."""
    path = out / "run.json"
    if path.exists():
        try:
            stored = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            stored = None
        if stored is not None and stored != settings:
            changed = sorted(k for k in set(stored) | set(settings) if stored.get(k) != settings.get(k))
            raise InputError(f"{out} holds results made with other settings ({', '.join(changed)}); "
                             "use another --out folder or the same settings")
    elif is_main_process:
        atomic_write_text(path, json.dumps(settings, indent=2) + "\n")


def item_paths(out: Path, item: WorkItem) -> tuple[Path, Path, Path]:
    """(image, labelled faces, record) of one item."""
    folder = out / "items"
    return folder / f"{item.id}.png", folder / f"{item.id}.faces.png", folder / f"{item.id}.json"


def complete_record(out: Path, item: WorkItem, settings: dict) -> dict | None:
    """The item's record when it exists, is readable, is for these settings, and its image is the
    one it names (by content: score's images live in the methods' folders, and one replaced there
    is scored again); else None."""
    _, overlay, record_path = item_paths(out, item)
    try:
        record = json.loads(record_path.read_text(encoding="utf-8"))
        complete = (record.get("settings") == settings and record.get("version") == RECORD_VERSION
                    and overlay.is_file() and sha256(out / record["image"]) == record.get("image_sha256"))
    except (OSError, json.JSONDecodeError, AttributeError, KeyError, TypeError):
        return None
    return record if complete else None


def is_complete(out: Path, item: WorkItem, settings: dict) -> bool:
    return complete_record(out, item, settings) is not None


def count_complete(out: Path, items: list[WorkItem]) -> int:
    """Items with a record, by any process (a cheap listing for the progress bar)."""
    try:
        names = set(os.listdir(out / "items"))
    except OSError:
        return 0
    return sum(f"{item.id}.json" in names for item in items)


def remove_leftovers(out: Path) -> None:
    """Temporary files of items that were in flight when an earlier run was killed."""
    for leftover in (out / "items").glob(".*.tmp"):
        leftover.unlink(missing_ok=True)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()
