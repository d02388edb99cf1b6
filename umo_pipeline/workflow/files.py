"""Files of a result: the PNGs (generation settings in their text chunks), the comparison sheet and
the JSON report, a repair's PNG and report, and a methods comparison's sheet, report and CSV.
`save_png` is the one PNG writer of the app, the CLI and the evaluation, and `png_text` the one way
they label a picture with what made it."""

from __future__ import annotations

import csv
import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from PIL import Image
from PIL.PngImagePlugin import PngInfo

from umo_pipeline.workflow.png import encode_png

if TYPE_CHECKING:
    from umo_pipeline.workflow.face_repair import RepairResult
    from umo_pipeline.workflow.methods import MethodComparison

#: zlib level for every PNG written (lossless at any level): saving the 29-face Solvay analysis took
#: 2.3 s at Pillow's default level 6 and 0.65 s at level 1 (bench/analysis.py, 2 cores)
PNG_COMPRESS_LEVEL = 1


def save_png(image: Image.Image, path: str | Path, text: dict[str, str] | None = None) -> None:
    """Write `image` as a PNG at `path` (whatever its name ends with), `text` in its text chunks
    (png.encode_png, twice as fast as Pillow's encoder; Pillow for the modes it does not write)."""
    encoded = encode_png(image, text, PNG_COMPRESS_LEVEL)
    if encoded is not None:
        Path(path).write_bytes(encoded)
        return
    info = None
    if text:
        info = PngInfo()
        for key, value in text.items():
            info.add_text(key, value)
    image.save(path, format="PNG", pnginfo=info, compress_level=PNG_COMPRESS_LEVEL)


def png_text(variant: str, *, software: str = "umo_pipeline", **fields) -> dict[str, str]:
    """The text chunks of a picture this project writes: what made it (`fields`, in order: prompt,
    seed, settings, model, ...; a dict or list as JSON with sorted keys, None left out), then its
    variant and the software that wrote it."""
    text = {}
    for key, value in fields.items():
        if value is not None:
            text[key] = json.dumps(value, sort_keys=True) if isinstance(value, (dict, list)) else str(value)
    return text | {"variant": variant, "software": software}


def read_png_metadata(path: str | Path) -> dict:
    """The text chunks of a PNG written by `save_outputs` (prompt, seed, settings, model, variant)."""
    with Image.open(path) as image:
        return dict(image.text)


def generation_settings(request) -> dict:
    """A request's settings without its prompt (the JSON and PNG keep the prompt apart); of an
    inpainting only its strength (the picture and mask are images, not settings)."""
    inpaint = getattr(request, "inpaint", None)
    settings = asdict(replace(request, inpaint=None) if inpaint is not None else request)
    settings.pop("prompt")
    settings.pop("inpaint", None)
    if inpaint is not None:
        settings["inpaint_strength"] = inpaint.strength
    return settings


@dataclass
class SavedOutputs:
    """Paths of the files written for one result, in the order a UI should offer them."""

    images: list[Path]
    sheet: Path
    report: Path
    #: the image after placing people (result.placement), when there is one; `images` hold the composed
    placed: Path | None = None

    @property
    def all(self) -> list[Path]:
        return [*([self.placed] if self.placed is not None else []), *self.images, self.sheet, self.report]


def save_outputs(result, folder: str | Path, stem: str | None = None) -> SavedOutputs:
    """Full-resolution PNG per panel of a WorkflowResult (generation settings in the PNG text chunks),
    the comparison sheet PNG and the JSON report, written into `folder` (created if needed)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if stem is None:
        stem = f"seed{result.request.seed}" if result.request is not None else "analysis"
    images = []
    placement = getattr(result, "placement", None)
    placed = None
    if placement is not None and result.panels[0] is not placement.composed:
        # the image after placing, with who was placed in its text; `images` stay the generated ones
        placed = folder / f"placed_{stem}.png"
        save_png(result.panels[0].image, placed, {**_png_text(result, result.panels[0]), **png_text(
            result.panels[0].title, placed=placement.placed, conditioned=placement.conditioned)})
    if len(result.candidates) > 1:
        # every candidate, best first, named by its own seed
        for candidate in result.candidates:
            for panel in candidate.panels:
                path = folder / f"{panel.variant}_{stem}_rank{candidate.rank}_seed{candidate.seed}.png"
                save_png(panel.image, path, _png_text(result, panel, candidate))
                images.append(path)
    else:
        generated = result.panels if placed is None else [placement.composed, *result.panels[1:]]
        for panel in generated:
            if panel.variant == "image":
                continue  # an analysed upload: the person has that picture already
            path = folder / f"{panel.variant}_{stem}.png"
            save_png(panel.image, path, _png_text(result, panel))
            images.append(path)
    sheet = folder / f"comparison_{stem}.png"
    save_png(result.sheet, sheet)
    report = folder / f"report_{stem}.json"
    report.write_text(json.dumps(result.to_dict(), indent=2))
    return SavedOutputs(images=images, sheet=sheet, report=report, placed=placed)


def _png_text(result, panel, candidate=None) -> dict[str, str]:
    made = {}
    request = result.request
    if request is not None:
        # a candidate's settings are the request's with its own seed: generating them again with one
        # candidate gives this image
        request = replace(request, seed=candidate.seed) if candidate is not None else request
        made.update(prompt=request.prompt, seed=request.seed, settings=generation_settings(request),
                    model=result.model or "")
    if candidate is not None:
        made["candidate"] = f"{candidate.rank} of {len(result.candidates)}"
        if candidate.report.matching_score is not None:
            made["matching_score"] = f"{candidate.report.matching_score:.4f}"
    return png_text(panel.title, **made)


def save_repair(result: RepairResult, folder: str | Path, stem: str = "repaired") -> list[Path]:
    """The repaired PNG (repair settings in its text chunks; the input's alpha where it had one) and
    the JSON report with before/after."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    image, report = folder / f"{stem}.png", folder / f"report_{stem}.json"
    kept = [f"{repair.reference_name}: seed {repair.kept_seed}" for repair in result.repairs if repair.kept]
    save_png(result.picture(), image, png_text("Repaired", repair=result.settings, model=result.model,
                                               kept="; ".join(kept) or "none"))
    report.write_text(json.dumps(result.to_dict(), indent=2))
    result.files = [image, report]
    return result.files


#: the CSV of a methods comparison: one row per method x reference (similarities as cosines, 0..1,
#: as in the JSON; a failed image has one row with its message and no reference)
METHODS_CSV_COLUMNS = ("method", "rank", "reference", "assigned_face", "id_sim", "id_conf", "status",
                       "matching_score", "message")


def save_method_comparison(result: MethodComparison, folder: str | Path, stem: str = "methods") -> list[Path]:
    """A methods comparison's files: the sheet PNG (the methods in rank order, their scores, the
    references and the face backend in its text chunks), the JSON report (every method's report,
    rank, score and message) and the CSV (METHODS_CSV_COLUMNS)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    sheet, report, table = (folder / f"{stem}_comparison.png", folder / f"{stem}_report.json",
                            folder / f"{stem}_scores.csv")
    ranking = [{"rank": method.rank, "method": method.name, "matching_score": method.to_dict()["matching_score"]}
               for method in result.methods]
    # the sheet's PNG (zlib, which releases the GIL) is encoded while the JSON and CSV are written
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="umo-sheet") as encoding:
        written = encoding.submit(save_png, result.sheet, sheet, png_text(
            "Method comparison", methods=ranking, references=result.reference_names, backend=result.backend))
        report.write_text(json.dumps(result.to_dict(), indent=2))
        with open(table, "w", newline="") as out:
            writer = csv.writer(out)
            writer.writerow(METHODS_CSV_COLUMNS)
            writer.writerows(method_csv_rows(result))
        written.result()
    return [sheet, report, table]


def method_csv_rows(result: MethodComparison) -> list[list]:
    rows = []
    for method in result.methods:
        if method.failed:
            rows.append([method.name, "", "", "", "", "", "", "", method.message])
            continue
        data = method.report.to_dict()
        for reference in data["references"]:
            rows.append([method.name, method.rank, reference["label"], reference["assigned_face_label"] or "",
                         _csv_number(reference["id_sim"]), _csv_number(reference["id_conf"]), reference["status"],
                         _csv_number(data["matching_score"]), ""])
    return rows


def _csv_number(value) -> str:
    return "" if value is None else f"{value:.4f}"
