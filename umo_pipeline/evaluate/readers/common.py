"""What the prompt-set readers share: reading a text file, a case's prompt, a JSON list with the
line each element starts on, parquet/arrow tables and the images embedded in them, and the check
that no two cases share an id. Every problem is one InputError naming the file and line (or row)."""

from __future__ import annotations

import json
from pathlib import Path

from umo_pipeline.errors import InputError
from umo_pipeline.evaluate.items import PromptCase


def read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise InputError(f"{path}: not UTF-8 text ({error.reason} at byte {error.start})") from None
    except OSError as error:
        raise InputError(f"{path}: cannot read ({error.strerror or error})") from None


def prompt_text(entry: dict, where: str) -> str:
    """An entry's "prompt", stripped; a plain message when it is missing or blank."""
    prompt = entry.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        raise InputError(f"{where}: \"prompt\" must be a non-empty text")
    return prompt.strip()


def refuse_repeated_ids(cases: list[PromptCase], what: str) -> None:
    seen = {}
    for case in cases:
        if case.id in seen:
            raise InputError(f"{case.where}: {what} already used at {seen[case.id]}")
        seen[case.id] = case.where


# ---------------------------------------------------------------- JSON lists


def json_list_with_lines(text: str, path: Path) -> list[tuple[object, int]]:
    """The elements of a top-level JSON list, each with the line it starts on."""
    decoder = json.JSONDecoder()

    def fail(position: int, message: str):
        line = text.count("\n", 0, position) + 1
        raise InputError(f"{path}:{line}: {message}")

    position = _skip_space(text, 0)
    if position >= len(text) or text[position] != "[":
        fail(position, "expected a JSON list of test cases")
    position = _skip_space(text, position + 1)
    entries = []
    if position < len(text) and text[position] == "]":
        return entries
    while True:
        try:
            entry, end = decoder.raw_decode(text, position)
        except json.JSONDecodeError as error:
            fail(error.pos, f"not valid JSON ({error.msg})")
        entries.append((entry, text.count("\n", 0, position) + 1))
        position = _skip_space(text, end)
        if position < len(text) and text[position] == ",":
            position = _skip_space(text, position + 1)
            continue
        if position < len(text) and text[position] == "]":
            return entries
        fail(position, "expected , or ] after a test case")


def _skip_space(text: str, position: int) -> int:
    while position < len(text) and text[position] in " \t\r\n":
        position += 1
    return position


# ---------------------------------------------------------------- parquet / arrow tables


def table_files(path: Path) -> list[Path]:
    """A .parquet/.arrow file itself, or every one under a folder (sorted: a stable row order)."""
    if path.is_file():
        return [path]
    return sorted(p for p in path.rglob("*") if p.suffix in (".parquet", ".arrow") and p.is_file())


def _read_table(file: Path, dataset: str):
    try:
        import pyarrow.ipc
        import pyarrow.parquet
    except ImportError:
        raise InputError(f"{file}: reading {dataset} needs pyarrow (pip install pyarrow)") from None
    try:
        if file.suffix == ".parquet":
            return pyarrow.parquet.read_table(file)
        with pyarrow.ipc.open_stream(pyarrow.memory_map(str(file))) as reader:
            return reader.read_all()
    except (OSError, pyarrow.ArrowException) as error:
        raise InputError(f"{file}: not a readable {file.suffix[1:]} file ({error})") from None


def table_rows(file: Path, columns, dataset: str, optional=()) -> list[dict]:
    """The rows of a parquet/arrow file, with `columns` (required) and whichever of `optional` it has."""
    table = _read_table(file, dataset)
    missing = [c for c in columns if c not in table.column_names]
    if missing:
        raise InputError(f"{file}: missing column(s) {', '.join(missing)}; {dataset}'s files have "
                         f"{', '.join(columns)}")
    present = [*columns, *(c for c in optional if c in table.column_names)]
    return table.select(present).to_pylist()


def input_images(row: dict, where: str) -> list[bytes]:
    """A dataset row's `input_images` (OmniContext, MultiID-Bench) as encoded files; at least one."""
    data = [embedded_bytes(image, f"{where}: input image {k + 1}")
            for k, image in enumerate(row["input_images"] or [])]
    if not data:
        raise InputError(f"{where}: no input images")
    return data


def embedded_bytes(image, what: str) -> bytes:
    """The bytes of an image column's {"bytes", "path"} struct (how `datasets` stores images)."""
    content = image.get("bytes") if isinstance(image, dict) else None
    if not content:
        raise InputError(f"{what} has no embedded bytes")
    return bytes(content)
