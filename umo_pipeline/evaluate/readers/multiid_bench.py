"""MultiID-Bench (WithAnyone, hub dataset WithAnyone/MultiID-Bench; Doby-Xu/WithAnyone at 996d152),
read from either layout:
  - its parquet files (or .arrow files of save_to_disk): rows with ID, GT (the ground-truth photo),
    input_images (one reference per person), prompt, task_type, bboxes (JSON text), subset and
    num_persons; images are {"bytes", "path"} structs;
  - or the folder MultiID-Bench/hf2bench.py writes: index files p1.json, p2.json, p3.json (before
    its commit a358455: v200_single.json, v202.json, v200_m.json) listing {"prompt", "image_paths",
    "ori_img_path"}, paths relative to <folder>/p1/untar, <folder>/p2/untar and <folder>/p3.
Both subset spellings are read: p1 = v200_single (one person), p2 = v202 (two), p3 = v200_m (three
or four). Category = the subset (as p1/p2/p3); the number of identities = num_persons (the folder
layout: the number of references). The GT photo becomes the case's ground truth. A case is named
<subset>-<row number>, as hf2bench names its files, in both layouts.
"""

from __future__ import annotations

import json
from pathlib import Path

from umo_pipeline.errors import InputError
from umo_pipeline.evaluate.items import PromptCase, safe_id
from umo_pipeline.evaluate.readers.common import (
    embedded_bytes,
    input_images,
    json_list_with_lines,
    prompt_text,
    read_text,
    refuse_repeated_ids,
    table_files,
    table_rows,
)

#: subset spelling (both hf2bench's current and pre-a358455 names) -> the name used as category
MULTIID_SUBSETS = {"p1": "p1", "p2": "p2", "p3": "p3", "v200_single": "p1", "v202": "p2", "v200_m": "p3"}
_MULTIID_COLUMNS = ("GT", "input_images", "prompt", "subset", "num_persons")
_MULTIID_OPTIONAL = ("ID", "task_type", "bboxes")


def read_multiid_bench(path: Path) -> list[PromptCase]:
    """MultiID-Bench from its parquet/arrow files, or from the folder (or one index file) hf2bench writes."""
    if path.is_file() and path.suffix.lower() == ".json":
        cases = _multiid_index_cases(path)
    elif path.is_dir() and (indexes := multiid_index_files(path)):
        cases = [case for index in indexes for case in _multiid_index_cases(index)]
    else:
        files = table_files(path)
        if not files:
            raise InputError(f"{path}: no .parquet or .arrow files and no index files "
                             f"({', '.join(f'{name}.json' for name in MULTIID_SUBSETS)}); expected the "
                             "WithAnyone/MultiID-Bench dataset folder or the folder its hf2bench.py writes")
        cases, row_index = [], 0
        for file in files:
            rows = table_rows(file, _MULTIID_COLUMNS, "MultiID-Bench", _MULTIID_OPTIONAL)
            for number, row in enumerate(rows, start=1):
                cases.append(_multiid_row_case(row, row_index, f"{file}, row {number}"))
                row_index += 1
    refuse_repeated_ids(cases, "case")
    return cases


def multiid_index_files(folder: Path) -> list[Path]:
    """The hf2bench index files (p1.json, ...) a folder holds, in MULTIID_SUBSETS order."""
    return [folder / f"{name}.json" for name in MULTIID_SUBSETS if (folder / f"{name}.json").is_file()]


def has_multiid_columns(file: Path) -> bool:
    """Whether a parquet/arrow file has MultiID-Bench's columns (read from its schema only)."""
    # Unreadable, or no pyarrow: the reader then chosen reports the problem in its own words.
    try:
        import pyarrow.ipc
        import pyarrow.parquet
    except ImportError:
        return False
    try:
        if file.suffix == ".parquet":
            names = pyarrow.parquet.read_schema(file).names
        else:
            with pyarrow.ipc.open_stream(pyarrow.memory_map(str(file))) as reader:
                names = reader.schema.names
    except (OSError, pyarrow.ArrowException):
        return False
    return all(c in names for c in ("GT", "subset", "num_persons"))


def _multiid_subset(value, where: str) -> str:
    if value not in MULTIID_SUBSETS:
        raise InputError(f"{where}: unknown subset {value!r}; MultiID-Bench has "
                         f"{', '.join(MULTIID_SUBSETS)}")
    return MULTIID_SUBSETS[value]


def _multiid_row_case(row: dict, row_index: int, where: str) -> PromptCase:
    subset = _multiid_subset(row["subset"], where)
    prompt = row["prompt"]
    if not isinstance(prompt, str) or not prompt.strip():
        raise InputError(f"{where}: prompt is empty")
    references = tuple(input_images(row, where))
    ground_truth = embedded_bytes(row["GT"], f"{where}: the GT image")
    persons = row["num_persons"]
    if persons is None:
        persons = len(references)
    if isinstance(persons, bool) or not isinstance(persons, int) or persons < 1:
        raise InputError(f"{where}: num_persons must be a whole number from 1 up, not {persons!r}")
    # hf2bench.py names an item's files by its 1-based row number over the whole dataset (line 85):
    # the same name here, so a case reads alike from the parquet and from hf2bench's folder.
    item = f"{row_index + 1:04d}"
    extra = {"id": item, "ID": row.get("ID"), "subset": row["subset"], "num_persons": persons}
    if row.get("task_type") is not None:
        extra["task_type"] = row["task_type"]
    if row.get("bboxes") is not None:
        extra["bboxes"] = _multiid_boxes(row["bboxes"], where)
    return PromptCase(
        id=safe_id(f"{subset}-{item}"), prompt=prompt.strip(), references=references,
        names=tuple(f"{item}_{k + 1}" for k in range(len(references))), identities=tuple(range(len(references))),
        category=subset, n_identities=persons, benchmark="multiid-bench", where=where,
        ground_truth=ground_truth, extra=extra,
    )


def _multiid_boxes(value, where: str):
    """The per-person boxes (xyxy in GT pixels), stored as JSON text; not used by the scores."""
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except json.JSONDecodeError as error:
        raise InputError(f"{where}: bboxes is not valid JSON ({error.msg})") from None


def _multiid_index_cases(index: Path) -> list[PromptCase]:
    """The cases of one hf2bench index file (p1.json, ...; v202.json, ... before a358455)."""
    subset = _multiid_subset(index.stem, str(index))
    entries = json_list_with_lines(read_text(index), index)
    root = None
    cases = []
    for entry, number in entries:
        where = f"{index}:{number}"
        prompt, image_paths, ground_truth = _multiid_index_fields(entry, where)
        if root is None:
            root = _multiid_root(index, ground_truth, where)
        files = []
        for name in [*image_paths, ground_truth]:
            file = root / name
            if not file.is_file():
                raise InputError(f"{where}: image {name} not found (looked for {file})")
            files.append(file)
        # hf2bench names every file of an item by its row number (0005.jpg, 0005_1.jpg): the same id
        # as the parquet's, so a run reads alike from either layout.
        item = Path(ground_truth).stem
        cases.append(PromptCase(
            id=safe_id(f"{subset}-{item}"), prompt=prompt, references=tuple(files[:-1]),
            names=tuple(Path(p).name for p in image_paths), identities=tuple(range(len(image_paths))),
            category=subset, n_identities=len(image_paths), benchmark="multiid-bench", where=where,
            ground_truth=files[-1], extra={"id": item, "subset": index.stem, "ori_img_path": ground_truth},
        ))
    return cases


def _multiid_index_fields(entry, where: str) -> tuple[str, list[str], str]:
    if not isinstance(entry, dict):
        raise InputError(f"{where}: expected an object with \"prompt\", \"image_paths\" and \"ori_img_path\"")
    prompt = prompt_text(entry, where)
    image_paths = entry.get("image_paths")
    if not isinstance(image_paths, list) or not image_paths or not all(isinstance(p, str) for p in image_paths):
        raise InputError(f"{where}: \"image_paths\" must be a list of reference image paths")
    ground_truth = entry.get("ori_img_path")
    if not isinstance(ground_truth, str) or not ground_truth:
        raise InputError(f"{where}: \"ori_img_path\" must name the ground-truth image")
    return prompt, image_paths, ground_truth


def _multiid_root(index: Path, first_ground_truth: str, where: str) -> Path:
    """Where an index's paths start: <folder>/<subset>/untar for p1 and p2, <folder>/<subset> for p3
    (hf2bench.py:64-74); the index's own folder is tried last."""
    folder = index.parent / index.stem
    candidates = [folder / "untar", folder, index.parent]
    for root in candidates:
        if (root / first_ground_truth).is_file():
            return root
    raise InputError(f"{where}: ground-truth image {first_ground_truth} not found in "
                     f"{', '.join(str(c) for c in candidates)}")
