"""Prompt-set readers: this project's JSONL form, XVerseBench's test lists, OmniContext's parquet
files, MultiID-Bench's parquet files or the folder its hf2bench.py writes.

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

MultiID-Bench (WithAnyone, hub dataset WithAnyone/MultiID-Bench; Doby-Xu/WithAnyone at 996d152):
  - its parquet files (or .arrow files of save_to_disk): rows with ID, GT (the ground-truth photo),
    input_images (one reference per person), prompt, task_type, bboxes (JSON text), subset and
    num_persons; images are {"bytes", "path"} structs;
  - or the folder MultiID-Bench/hf2bench.py writes: index files p1.json, p2.json, p3.json (before
    its commit a358455: v200_single.json, v202.json, v200_m.json) listing {"prompt", "image_paths",
    "ori_img_path"}, paths relative to <folder>/p1/untar, <folder>/p2/untar and <folder>/p3.
  Both subset spellings are read: p1 = v200_single (one person), p2 = v202 (two), p3 = v200_m
  (three or four). Category = the subset (as p1/p2/p3); the number of identities = num_persons
  (the folder layout: the number of references). The GT photo becomes the case's ground truth.
  A case is named <subset>-<row number>, as hf2bench names its files, in both layouts.
"""

from __future__ import annotations

import json
from pathlib import Path

from umo_pipeline.errors import InputError
from umo_pipeline.evaluate.items import PromptCase, safe_id

FORMATS = ("auto", "jsonl", "xversebench", "omnicontext", "multiid-bench")
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
    reader = {"jsonl": read_jsonl, "xversebench": read_xversebench, "omnicontext": read_omnicontext,
              "multiid-bench": read_multiid_bench}[kind]
    cases = reader(path)
    if not cases:
        raise InputError(f"{path}: no prompts with identities to evaluate")
    return cases


def guess_format(path: Path) -> str:
    if path.is_dir():
        if _multiid_index_files(path):
            return "multiid-bench"
        tables = _table_files(path)
        return "multiid-bench" if tables and _has_multiid_columns(tables[0]) else "omnicontext"
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        return "jsonl"
    if suffix == ".json":
        return "multiid-bench" if path.stem in MULTIID_SUBSETS else "xversebench"
    if suffix in (".parquet", ".arrow"):
        return "multiid-bench" if _has_multiid_columns(path) else "omnicontext"
    raise InputError(f"{path}: cannot tell the prompt-set format; give --format "
                     f"{', '.join(FORMATS[1:-1])} or {FORMATS[-1]}")


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise InputError(f"{path}: not UTF-8 text ({error.reason} at byte {error.start})") from None
    except OSError as error:
        raise InputError(f"{path}: cannot read ({error.strerror or error})") from None


def _prompt(entry: dict, where: str) -> str:
    """An entry's "prompt", stripped; a plain message when it is missing or blank."""
    prompt = entry.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        raise InputError(f"{where}: \"prompt\" must be a non-empty text")
    return prompt.strip()


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
    prompt = _prompt(entry, where)
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
    prompt = _prompt(entry, where)
    try:
        sources = [x["image_path"] for x in entry["modulation"][0]["src_inputs"]]
    except (KeyError, IndexError, TypeError):
        raise InputError(f"{where}: expected \"modulation\": [{{\"src_inputs\": [{{\"image_path\": ...}}]}}]") from None
    if not sources or not all(isinstance(s, str) for s in sources):
        raise InputError(f"{where}: \"src_inputs\" must list image paths")
    return prompt, sources


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
    files = _table_files(path)
    if not files:
        raise InputError(f"{path}: no .parquet or .arrow files (expected the OmniGen2/OmniContext dataset folder)")
    cases = []
    for file in files:
        for number, row in enumerate(_table_rows(file, _OMNICONTEXT_COLUMNS, "OmniContext"), start=1):
            case = _omnicontext_case(row, f"{file}, row {number}")
            if case is not None:
                cases.append(case)
    _refuse_repeated_ids(cases, "key")
    return cases


def _refuse_repeated_ids(cases: list[PromptCase], what: str) -> None:
    seen = {}
    for case in cases:
        if case.id in seen:
            raise InputError(f"{case.where}: {what} already used at {seen[case.id]}")
        seen[case.id] = case.where


def _table_files(path: Path) -> list[Path]:
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


def _table_rows(file: Path, columns, dataset: str, optional=()) -> list[dict]:
    """The rows of a parquet/arrow file, with `columns` (required) and whichever of `optional` it has."""
    table = _read_table(file, dataset)
    missing = [c for c in columns if c not in table.column_names]
    if missing:
        raise InputError(f"{file}: missing column(s) {', '.join(missing)}; {dataset}'s files have "
                         f"{', '.join(columns)}")
    present = [*columns, *(c for c in optional if c in table.column_names)]
    return table.select(present).to_pylist()


def _input_images(row: dict, where: str) -> list[bytes]:
    """A dataset row's `input_images` (OmniContext, MultiID-Bench) as encoded files; at least one."""
    data = [_embedded_bytes(image, f"{where}: input image {k + 1}")
            for k, image in enumerate(row["input_images"] or [])]
    if not data:
        raise InputError(f"{where}: no input images")
    return data


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
    data = _input_images(row, where)
    # A scene task gives the scene as one of its images; the others are the characters.
    n_identities = max(1, len(data) - 1) if task_type.startswith("scene") else len(data)
    return PromptCase(
        id=safe_id(f"{task_type}-{key}"), prompt=instruction.strip(), references=tuple(data),
        names=tuple(f"{key}_{k + 1}" for k in range(len(data))), identities=tuple(range(len(data))),
        category=task_type, n_identities=n_identities, benchmark="omnicontext", where=where,
        extra={"key": str(key)},
    )


def _embedded_bytes(image, what: str) -> bytes:
    """The bytes of an image column's {"bytes", "path"} struct (how `datasets` stores images)."""
    content = image.get("bytes") if isinstance(image, dict) else None
    if not content:
        raise InputError(f"{what} has no embedded bytes")
    return bytes(content)


# ---------------------------------------------------------------- MultiID-Bench

#: subset spelling (both hf2bench's current and pre-a358455 names) -> the name used as category
MULTIID_SUBSETS = {"p1": "p1", "p2": "p2", "p3": "p3", "v200_single": "p1", "v202": "p2", "v200_m": "p3"}
_MULTIID_COLUMNS = ("GT", "input_images", "prompt", "subset", "num_persons")
_MULTIID_OPTIONAL = ("ID", "task_type", "bboxes")


def read_multiid_bench(path: Path) -> list[PromptCase]:
    """MultiID-Bench from its parquet/arrow files, or from the folder (or one index file) hf2bench writes."""
    if path.is_file() and path.suffix.lower() == ".json":
        cases = _multiid_index_cases(path)
    elif path.is_dir() and (indexes := _multiid_index_files(path)):
        cases = [case for index in indexes for case in _multiid_index_cases(index)]
    else:
        files = _table_files(path)
        if not files:
            raise InputError(f"{path}: no .parquet or .arrow files and no index files "
                             f"({', '.join(f'{name}.json' for name in MULTIID_SUBSETS)}); expected the "
                             "WithAnyone/MultiID-Bench dataset folder or the folder its hf2bench.py writes")
        cases, row_index = [], 0
        for file in files:
            rows = _table_rows(file, _MULTIID_COLUMNS, "MultiID-Bench", _MULTIID_OPTIONAL)
            for number, row in enumerate(rows, start=1):
                cases.append(_multiid_row_case(row, row_index, f"{file}, row {number}"))
                row_index += 1
    _refuse_repeated_ids(cases, "case")
    return cases


def _multiid_index_files(folder: Path) -> list[Path]:
    return [folder / f"{name}.json" for name in MULTIID_SUBSETS if (folder / f"{name}.json").is_file()]


def _has_multiid_columns(file: Path) -> bool:
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
    references = tuple(_input_images(row, where))
    ground_truth = _embedded_bytes(row["GT"], f"{where}: the GT image")
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
    entries = _json_list_with_lines(_read_text(index), index)
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
    prompt = _prompt(entry, where)
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
