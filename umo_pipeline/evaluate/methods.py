"""The method folders `score` reads: one method's images for a prompt set, in one of three layouts,
detected per folder (in this order):

  run     this project's evaluate run folder (run.json and items/): its item records map
          (case, seed, variant) to an image; NAME=FOLDER:VARIANT picks the variant (default umo).
  eval    MultiID-Bench eval.py's folder: <root>/<id>/out.jpg (also .png, .jpeg, .webp), <id> being
          the case id (p2-0005), hf2bench's item name (0005) or either under a subset folder
          (p2/0005/out.jpg); one image per case.
  flat    images directly in the folder: <case id>.<ext> or <case id>__s<seed>.<ext> (the seed
          after a double underscore, as evaluate names its items), ext png, jpg, jpeg or webp.

An image without a seed (eval, and flat files without __s<seed>) is the method's image for the
first of --seeds; for the other seeds that method has none (reported as missing).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from umo_pipeline.errors import InputError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")
LAYOUTS = ("run", "eval", "flat")
#: a flat file's seed: <case id>__s<seed>
SEEDED = re.compile(r"^(?P<case>.+)__s(?P<seed>\d+)$")
#: method names become file names (items/<case>__s<seed>__<name>.json) and table headers
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]*$")
DEFAULT_VARIANT = "umo"


@dataclass(frozen=True)
class MethodFolder:
    """One method: its name, folder, layout and images by (case id or eval folder name, seed or None)."""

    name: str
    folder: Path
    layout: str
    variant: str | None = None
    images: dict = field(default_factory=dict, compare=False)

    def image_for(self, case, seed: int, first_seed: int) -> Path | None:
        """The image this method made for `case` at `seed`, or None."""
        for key in self._keys(case):
            found = self.images.get((key, seed))
            if found is None and seed == first_seed:
                found = self.images.get((key, None))
            if found is not None:
                return found if found.is_file() else None
        return None

    def looked_for(self, case, seed: int) -> str:
        """Where the image of `case` at `seed` was looked for, for the "missing" line."""
        if self.layout == "run":
            return f"no {self.variant} item for seed {seed} in {self.folder / 'items'}"
        if self.layout == "eval":
            return "no " + " or ".join(f"{self.folder / key}/out.jpg" for key in self._keys(case))
        return f"no {case.id}__s{seed}.<ext> or {case.id}.<ext> ({', '.join(IMAGE_SUFFIXES)}) in {self.folder}"

    def settings(self) -> dict:
        """What a record of this method depends on: another folder or variant is scored anew."""
        return {"folder": str(self.folder), "layout": self.layout, "variant": self.variant}

    def unmatched(self, cases) -> list[str]:
        """Image names that belong to no case of the set (a misnamed file reads as missing)."""
        known = {key for case in cases for key in self._keys(case)}
        return sorted({str(key) for key, _ in self.images if key not in known})

    def _keys(self, case) -> list[str]:
        if self.layout != "eval":
            return [case.id]
        short = case.extra.get("id")
        keys = [case.id]
        if short:
            keys += [str(short), f"{case.category}/{short}"]
            if case.extra.get("subset"):
                keys.append(f"{case.extra['subset']}/{short}")
        return list(dict.fromkeys(keys))


def parse_method(text: str) -> tuple[str, Path, str | None]:
    """NAME=FOLDER or NAME=FOLDER:VARIANT -> (name, folder, variant or None)."""
    name, sep, where = text.partition("=")
    name = name.strip()
    if not sep or not where:
        raise InputError(f"--method {text}: expected NAME=FOLDER (or NAME=FOLDER:VARIANT for an evaluate run)")
    if not NAME.match(name):
        raise InputError(f"--method {text}: a method name is letters, digits and . _ + - (it names files), "
                         f"e.g. UMO-UNO=runs/umo")
    variant = None
    # A folder whose own name holds a colon wins over the :VARIANT reading.
    if ":" in where and not Path(where).exists():
        where, variant = where.rsplit(":", 1)
        if not variant or "/" in variant:
            raise InputError(f"--method {text}: {where}:{variant} is not a folder nor FOLDER:VARIANT")
    return name, Path(where), variant


def read_methods(specs: list[str]) -> list[MethodFolder]:
    """Every --method, its folder read; duplicate names or folders are refused."""
    methods = [read_method(*parse_method(spec)) for spec in specs]
    names = [m.name for m in methods]
    for name in names:
        if names.count(name) > 1:
            raise InputError(f"--method {name} is given twice; each method needs its own name")
    seen = {}
    for method in methods:
        key = (method.folder, method.variant)
        if key in seen:
            raise InputError(f"--method {method.name} and --method {seen[key]} read the same images "
                             f"({method.folder}{'' if method.variant is None else ':' + method.variant})")
        seen[key] = method.name
    return methods


def read_method(name: str, folder: Path, variant: str | None = None) -> MethodFolder:
    """The method's folder, its layout detected (see the module's docstring)."""
    if not folder.exists():
        raise InputError(f"--method {name}={folder}: no such folder")
    if not folder.is_dir():
        raise InputError(f"--method {name}={folder}: not a folder (give the folder holding the method's images)")
    folder = folder.resolve()
    try:
        if (folder / "run.json").is_file() and (folder / "items").is_dir():
            return _run_folder(name, folder, variant or DEFAULT_VARIANT)
        if variant is not None:
            raise InputError(f"--method {name}={folder}:{variant}: a variant is chosen only in an evaluate run "
                             "folder (one with run.json and items/)")
        eval_images = _eval_images(folder)
        if eval_images:
            return MethodFolder(name, folder, "eval", None, eval_images)
        flat = _flat_images(name, folder)
        if flat:
            return MethodFolder(name, folder, "flat", None, flat)
    except PermissionError as error:
        raise InputError(f"--method {name}={folder}: cannot read ({error.strerror})") from None
    raise InputError(f"--method {name}={folder}: no images in a layout score reads (an evaluate run folder, "
                     "MultiID-Bench eval.py's <id>/out.jpg, or <case id>[__s<seed>].png|jpg|jpeg|webp)")


def _run_folder(name: str, folder: Path, variant: str) -> MethodFolder:
    """(case, seed) -> image of `variant`, from the run's item records (the images they name)."""
    images, variants = {}, set()
    for path in sorted((folder / "items").glob("*.json")):
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
            case, seed, kind, image = record["case"], record["seed"], record["variant"], record["image"]
        except (OSError, json.JSONDecodeError, KeyError, TypeError):
            continue  # an item caught mid-write by a killed run: not an image of the run
        variants.add(kind)
        if kind == variant:
            images[(case, seed)] = folder / image
    if not images:
        has = f"it has {', '.join(sorted(variants))}" if variants else "it has no item records"
        raise InputError(f"--method {name}={folder}: no {variant} images in this evaluate run ({has}); "
                         f"pick one with {name}={folder}:VARIANT")
    return MethodFolder(name, folder, "run", variant, images)


def _out_image(folder: Path) -> Path | None:
    for suffix in IMAGE_SUFFIXES:
        if (folder / f"out{suffix}").is_file():
            return folder / f"out{suffix}"
    return None


def _eval_images(folder: Path) -> dict:
    """(<id> or <subset>/<id>, None) -> out.jpg of MultiID-Bench eval.py's layout."""
    images = {}
    for sub in sorted(p for p in folder.iterdir() if p.is_dir()):
        found = _out_image(sub)
        if found is not None:
            images[(sub.name, None)] = found
            continue
        for inner in sorted(p for p in sub.iterdir() if p.is_dir()):
            found = _out_image(inner)
            if found is not None:
                images[(f"{sub.name}/{inner.name}", None)] = found
    return images


def _flat_images(name: str, folder: Path) -> dict:
    """(case id, seed or None) -> <case id>[__s<seed>].<ext> directly in the folder."""
    images = {}
    for path in sorted(folder.iterdir()):
        if path.suffix.lower() not in IMAGE_SUFFIXES or not path.is_file() or path.name.startswith("."):
            continue
        seeded = SEEDED.match(path.stem)
        key = (seeded["case"], int(seeded["seed"])) if seeded else (path.stem, None)
        if key in images:
            raise InputError(f"--method {name}={folder}: two images for case {key[0]}"
                             f"{'' if key[1] is None else f' seed {key[1]}'}: {images[key].name} and {path.name}")
        images[key] = path
    return images
