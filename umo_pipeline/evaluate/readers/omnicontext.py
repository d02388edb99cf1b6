"""OmniContext (hub dataset OmniGen2/OmniContext, a folder of parquet files, or of .arrow files
from datasets' save_to_disk): rows with key, task_type, instruction and input_images (images
stored as bytes). As in UMO's eval/id_omnicontext.py the *_object task types are left out.
"""

from __future__ import annotations

from pathlib import Path

from umo_pipeline.errors import InputError
from umo_pipeline.evaluate.items import PromptCase, safe_id
from umo_pipeline.evaluate.readers.common import input_images, refuse_repeated_ids, table_files, table_rows

#: Task types UMO's eval/id_omnicontext.py skips (no person in them).
OMNICONTEXT_SKIPPED = ("single_object", "multi_object", "scene_object")
_OMNICONTEXT_COLUMNS = ("key", "task_type", "instruction", "input_images")


def read_omnicontext(path: Path) -> list[PromptCase]:
    files = table_files(path)
    if not files:
        raise InputError(f"{path}: no .parquet or .arrow files (expected the OmniGen2/OmniContext dataset folder)")
    cases = []
    for file in files:
        for number, row in enumerate(table_rows(file, _OMNICONTEXT_COLUMNS, "OmniContext"), start=1):
            case = _omnicontext_case(row, f"{file}, row {number}")
            if case is not None:
                cases.append(case)
    refuse_repeated_ids(cases, "key")
    return cases


def _omnicontext_case(row: dict, where: str) -> PromptCase | None:
    task_type, key, instruction = row["task_type"], row["key"], row["instruction"]
    if not isinstance(task_type, str) or not task_type:
        raise InputError(f"{where}: task_type is empty")
    if task_type in OMNICONTEXT_SKIPPED:
        return None
    if not isinstance(instruction, str) or not instruction.strip():
        raise InputError(f"{where}: instruction is empty")
    if key is None or not str(key).strip():
        raise InputError(f"{where}: key is empty")
    data = input_images(row, where)
    # A scene task gives the scene as one of its images; the others are the characters.
    n_identities = max(1, len(data) - 1) if task_type.startswith("scene") else len(data)
    return PromptCase(
        id=safe_id(f"{task_type}-{key}"), prompt=instruction.strip(), references=tuple(data),
        names=tuple(f"{key}_{k + 1}" for k in range(len(data))), identities=tuple(range(len(data))),
        category=task_type, n_identities=n_identities, benchmark="omnicontext", where=where,
        extra={"key": str(key)},
    )
