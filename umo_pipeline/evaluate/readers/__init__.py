"""Prompt-set readers, one module per benchmark: this project's JSONL form (jsonl), XVerseBench's
test lists (xversebench), OmniContext's parquet files (omnicontext), MultiID-Bench's parquet files
or the folder its hf2bench.py writes (multiid_bench); what they share is in common. Each module's
docstring describes its format.

Every problem is reported as one InputError naming the file and the line (or row) at fault.
A new benchmark: a module here with a `read_<name>(path) -> list[PromptCase]`, named in FORMATS,
`read_prompt_set` and `guess_format`.
"""

from __future__ import annotations

from pathlib import Path

from umo_pipeline.errors import InputError
from umo_pipeline.evaluate.items import PromptCase
from umo_pipeline.evaluate.readers.common import table_files
from umo_pipeline.evaluate.readers.jsonl import read_jsonl
from umo_pipeline.evaluate.readers.multiid_bench import (
    MULTIID_SUBSETS,
    has_multiid_columns,
    multiid_index_files,
    read_multiid_bench,
)
from umo_pipeline.evaluate.readers.omnicontext import OMNICONTEXT_SKIPPED, read_omnicontext
from umo_pipeline.evaluate.readers.xversebench import read_xversebench

__all__ = ["FORMATS", "MULTIID_SUBSETS", "OMNICONTEXT_SKIPPED", "guess_format", "read_jsonl",
           "read_multiid_bench", "read_omnicontext", "read_prompt_set", "read_xversebench"]

FORMATS = ("auto", "jsonl", "xversebench", "omnicontext", "multiid-bench")


def read_prompt_set(path, kind: str = "auto") -> list[PromptCase]:
    """The cases of a prompt set; `kind` is one of FORMATS ("auto" guesses from the path)."""
    path = Path(path)
    if kind not in FORMATS:
        raise InputError(f"unknown prompt-set format {kind!r}; choose one of: {', '.join(FORMATS)}")
    if not path.exists():
        raise InputError(f"{path}: no such file or folder")
    if kind == "auto":
        kind = guess_format(path)
    reader = {"jsonl": read_jsonl, "xversebench": read_xversebench, "omnicontext": read_omnicontext,
              "multiid-bench": read_multiid_bench}[kind]
    cases = reader(path)
    if not cases:
        raise InputError(f"{path}: no prompts with identities to evaluate")
    return cases


def guess_format(path: Path) -> str:
    if path.is_dir():
        if multiid_index_files(path):
            return "multiid-bench"
        tables = table_files(path)
        return "multiid-bench" if tables and has_multiid_columns(tables[0]) else "omnicontext"
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        return "jsonl"
    if suffix == ".json":
        return "multiid-bench" if path.stem in MULTIID_SUBSETS else "xversebench"
    if suffix in (".parquet", ".arrow"):
        return "multiid-bench" if has_multiid_columns(path) else "omnicontext"
    raise InputError(f"{path}: cannot tell the prompt-set format; give --format "
                     f"{', '.join(FORMATS[1:-1])} or {FORMATS[-1]}")
