"""This project's own prompt-set form, JSONL: one case per line; blank lines and lines starting
with # are skipped.

    {"prompt": "Two friends at a cafe", "references": ["refs/ann.jpg", "refs/bob.jpg"],
     "id": "cafe", "category": "two people", "identities": 2}

references are relative to the JSONL file; id defaults to the line number, category to "all",
identities (the number of people, for the tables by number of identities) to len(references).
"""

from __future__ import annotations

import json
from pathlib import Path

from umo_pipeline.errors import InputError
from umo_pipeline.evaluate.items import PromptCase, safe_id
from umo_pipeline.evaluate.readers.common import prompt_text, read_text


def read_jsonl(path: Path) -> list[PromptCase]:
    cases, seen = [], {}
    for number, line in enumerate(read_text(path).splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        where = f"{path}:{number}"
        try:
            entry = json.loads(line)
        except json.JSONDecodeError as error:
            raise InputError(f"{where}: not valid JSON ({error.msg} at column {error.colno})") from None
        case = _jsonl_case(entry, path, number, where)
        if case.id in seen:
            raise InputError(f"{where}: id {case.id!r} already used on line {seen[case.id]}")
        seen[case.id] = number
        cases.append(case)
    return cases


def _jsonl_case(entry, path: Path, number: int, where: str) -> PromptCase:
    if not isinstance(entry, dict):
        raise InputError(f"{where}: expected an object like {{\"prompt\": ..., \"references\": [...]}}")
    unknown = sorted(set(entry) - {"id", "prompt", "references", "category", "identities"})
    if unknown:
        raise InputError(f"{where}: unknown field(s) {', '.join(unknown)}")
    prompt = prompt_text(entry, where)
    references = entry.get("references")
    if not isinstance(references, list) or not references or not all(isinstance(r, str) for r in references):
        raise InputError(f"{where}: \"references\" must be a list of image paths (relative to {path.name})")
    files = []
    for reference in references:
        file = (path.parent / reference)
        if not file.is_file():
            raise InputError(f"{where}: reference image {reference} not found (looked for {file})")
        files.append(file)
    identities = entry.get("identities", len(files))
    if isinstance(identities, bool) or not isinstance(identities, int) or not 1 <= identities <= len(files):
        raise InputError(f"{where}: \"identities\" must be a whole number from 1 to {len(files)}")
    category = entry.get("category", "all")
    if not isinstance(category, str) or not category.strip():
        raise InputError(f"{where}: \"category\" must be a non-empty text")
    case_id = entry.get("id", f"line{number:04d}")
    if not isinstance(case_id, (str, int)) or not str(case_id).strip():
        raise InputError(f"{where}: \"id\" must be a non-empty text")
    return PromptCase(
        id=safe_id(case_id), prompt=prompt, references=tuple(files),
        names=tuple(Path(r).name for r in references), identities=tuple(range(len(files))),
        category=category.strip(), n_identities=identities, benchmark="jsonl", where=where,
    )
