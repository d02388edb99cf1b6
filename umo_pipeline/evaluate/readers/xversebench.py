"""XVerseBench (bytedance/XVerse, eval/tools/XVerseBench_{single,multi}.json): a JSON list of
{"index", "prompt", "modulation": [{"src_inputs": [{"image_path", "caption"}, ...]}]}; image paths
are relative to the XVerse checkout (assets/XVerseBench/{human,object,animal}/...). As in UMO's
eval/id_conf_xversebench.py, only references under human/ are scored; the others are still given
to the generator. Cases without a human are left out (they carry no identity).
"""

from __future__ import annotations

from pathlib import Path

from umo_pipeline.errors import InputError
from umo_pipeline.evaluate.items import PromptCase, safe_id
from umo_pipeline.evaluate.readers.common import json_list_with_lines, prompt_text, read_text


def read_xversebench(path: Path) -> list[PromptCase]:
    text = read_text(path)
    entries = json_list_with_lines(text, path)
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
    prompt = prompt_text(entry, where)
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
