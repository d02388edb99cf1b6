"""Prompt-set readers: this project's JSONL form, XVerseBench's test lists, OmniContext's parquet files.

Every problem is reported as one InputError naming the file and the line (or row) at fault.

JSONL (one case per line; blank lines and lines starting with # are skipped):
    {"prompt": "Two friends at a cafe", "references": ["refs/ann.jpg", "refs/bob.jpg"],
     "id": "cafe", "category": "two people", "identities": 2}
  references are relative to the JSONL file; id defaults to the line number, category to "all",
  identities (the number of people, for the tables by number of identities) to len(references).

XVerseBench (bytedance/XVerse, eval/tools/XVerseBench_{single,multi}.json): a JSON list of
  {"index", "prompt", "modulation": [{"src_inputs": [{"image_path", "caption"}, ...]}]}; image
  paths are relative to the XVerse checkout (assets/XVerseBench/{human,object,animal}/...). As in
  UMO's eval/id_conf_xversebench.py, only references under human/ are scored; the others are still
  given to the generator. Cases without a human are left out (they carry no identity).

OmniContext (hub dataset OmniGen2/OmniContext, a folder of parquet files, or of .arrow files from
  datasets' save_to_disk): rows with key, task_type, instruction and input_images (images stored
  as bytes). As in UMO's eval/id_omnicontext.py the *_object task types are left out.
"""

from __future__ import annotations

import json
from pathlib import Path

from umo_pipeline.errors import InputError
from umo_pipeline.evaluate.items import PromptCase, safe_id

FORMATS = ("auto", "jsonl", "xversebench", "omnicontext")
#: Task types UMO's eval/id_omnicontext.py skips (no person in them).
OMNICONTEXT_SKIPPED = ("single_object", "multi_object", "scene_object")
_OMNICONTEXT_COLUMNS = ("key", "task_type", "instruction", "input_images")


def read_prompt_set(path, kind: str = "auto") -> list[PromptCase]:
    """The cases of a prompt set; `kind` is one of FORMATS ("auto" guesses from the path)."""
    path = Path(path)
    if kind not in FORMATS:
        raise InputError(f"unknown prompt-set format {kind!r}; choose one of: {', '.join(FORMATS)}")
    if not path.exists():
        raise InputError(f"{path}: no such file or folder")
    if kind == "auto":
        kind = guess_format(path)
    reader = {"jsonl": read_jsonl, "xversebench": read_xversebench, "omnicontext": read_omnicontext}[kind]
    cases = reader(path)
    if not cases:
        raise InputError(f"{path}: no prompts with identities to evaluate")
    return cases


def guess_format(path: Path) -> str:
    if path.is_dir():
        return "omnicontext"
    if path.suffix.lower() == ".jsonl":
        return "jsonl"
    if path.suffix.lower() == ".json":
        return "xversebench"
    raise InputError(f"{path}: cannot tell the prompt-set format; give --format jsonl, xversebench or omnicontext")


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise InputError(f"{path}: not UTF-8 text ({error.reason} at byte {error.start})") from None
    except OSError as error:
        raise InputError(f"{path}: cannot read ({error.strerror or error})") from None


# ---------------------------------------------------------------- JSONL


def read_jsonl(path: Path) -> list[PromptCase]:
    cases, seen = [], {}
    for number, line in enumerate(_read_text(path).splitlines(), start=1):
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
    prompt = entry.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        raise InputError(f"{where}: \"prompt\" must be a non-empty text")
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
        id=safe_id(case_id), prompt=prompt.strip(), references=tuple(files),
        names=tuple(Path(r).name for r in references), identities=tuple(range(len(files))),
        category=category.strip(), n_identities=identities, benchmark="jsonl", where=where,
    )


# ---------------------------------------------------------------- XVerseBench


def read_xversebench(path: Path) -> list[PromptCase]:
    text = _read_text(path)
    entries = _json_list_with_lines(text, path)
    root = None
    cases = []
    for position, (entry, number) in enumerate(entries):
        where = f"{path}:{number}"
        prompt, sources = _xverse_fields(entry, where)
        if root is None:
            root = _xverse_root(path, sources[0], where)
        names = tuple("_".join(Path(s).parts[-2:]) for s in sources)
        # Like eval/id_conf_xversebench.py: a reference is an identity when its name starts with "human".
        identities = tuple(i for i, name in enumerate(names) if name.startswith("human"))
        if not identities:
            continue
        files = []
        for source in sources:
            file = root / source
            if not file.is_file():
                raise InputError(f"{where}: reference image {source} not found (looked for {file})")
            files.append(file)
        kinds = "+".join(sorted(Path(s).parts[-2] for s in sources))
        index = entry.get("index", position)
        cases.append(PromptCase(
            id=safe_id(f"{path.stem}-{index:03d}" if isinstance(index, int) else f"{path.stem}-{index}"),
            prompt=prompt, references=tuple(files), names=names, identities=identities,
            category=kinds, n_identities=len(identities), benchmark="xversebench", where=where,
            extra={"index": index},
        ))
    return cases


def _xverse_fields(entry, where: str) -> tuple[str, list[str]]:
    if not isinstance(entry, dict):
        raise InputError(f"{where}: expected an object with \"prompt\" and \"modulation\"")
    prompt = entry.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        raise InputError(f"{where}: \"prompt\" must be a non-empty text")
    try:
        sources = [x["image_path"] for x in entry["modulation"][0]["src_inputs"]]
    except (KeyError, IndexError, TypeError):
        raise InputError(f"{where}: expected \"modulation\": [{{\"src_inputs\": [{{\"image_path\": ...}}]}}]") from None
    if not sources or not all(isinstance(s, str) for s in sources):
        raise InputError(f"{where}: \"src_inputs\" must list image paths")
    return prompt.strip(), sources


def _xverse_root(path: Path, first_source: str, where: str) -> Path:
    """The XVerse checkout the image paths are relative to: the test list lives in eval/tools/ of
    it, but any folder above the list that holds the first image will do."""
    for folder in [path.parent, *path.parent.parents]:
        if (folder / first_source).is_file():
            return folder
    raise InputError(f"{where}: reference image {first_source} not found in any folder above {path.parent} "
                     "(keep the test list inside the XVerse checkout, under eval/tools/)")


def _json_list_with_lines(text: str, path: Path) -> list[tuple[object, int]]:
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


# ---------------------------------------------------------------- OmniContext


def read_omnicontext(path: Path) -> list[PromptCase]:
    files = [path] if path.is_file() else sorted(
        p for p in path.rglob("*") if p.suffix in (".parquet", ".arrow") and p.is_file()
    )
    if not files:
        raise InputError(f"{path}: no .parquet or .arrow files (expected the OmniGen2/OmniContext dataset folder)")
    cases = []
    for file in files:
        for number, row in enumerate(_table_rows(file), start=1):
            case = _omnicontext_case(row, f"{file}, row {number}")
            if case is not None:
                cases.append(case)
    seen = {}
    for case in cases:
        if case.id in seen:
            raise InputError(f"{case.where}: key already used at {seen[case.id]}")
        seen[case.id] = case.where
    return cases


def _table_rows(file: Path):
    try:
        import pyarrow.ipc
        import pyarrow.parquet
    except ImportError:
        raise InputError(f"{file}: reading OmniContext needs pyarrow (pip install pyarrow)") from None
    try:
        if file.suffix == ".parquet":
            table = pyarrow.parquet.read_table(file)
        else:
            with pyarrow.ipc.open_stream(pyarrow.memory_map(str(file))) as reader:
                table = reader.read_all()
    except (OSError, pyarrow.ArrowException) as error:
        raise InputError(f"{file}: not a readable {file.suffix[1:]} file ({error})") from None
    missing = [c for c in _OMNICONTEXT_COLUMNS if c not in table.column_names]
    if missing:
        raise InputError(f"{file}: missing column(s) {', '.join(missing)}; an OmniContext file has "
                         f"{', '.join(_OMNICONTEXT_COLUMNS)}")
    return table.select(list(_OMNICONTEXT_COLUMNS)).to_pylist()


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
    images = row["input_images"] or []
    data = []
    for k, image in enumerate(images):
        content = image.get("bytes") if isinstance(image, dict) else None
        if not content:
            raise InputError(f"{where}: input image {k + 1} has no embedded bytes")
        data.append(bytes(content))
    if not data:
        raise InputError(f"{where}: no input images")
    # A scene task gives the scene as one of its images; the others are the characters.
    n_identities = max(1, len(data) - 1) if task_type.startswith("scene") else len(data)
    return PromptCase(
        id=safe_id(f"{task_type}-{key}"), prompt=instruction.strip(), references=tuple(data),
        names=tuple(f"{key}_{k + 1}" for k in range(len(data))), identities=tuple(range(len(data))),
        category=task_type, n_identities=n_identities, benchmark="omnicontext", where=where,
        extra={"key": str(key)},
    )
