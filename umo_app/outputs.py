"""What each endpoint gives back, by name: the outputs of /generate, /analyze, /compare_methods and
/repair and of a click on the candidates gallery are named tuples whose field order is the order of the page's
components (and, for the endpoints, what an API client receives). Handlers build them by name; the
layout lists components with `in_order`; tests read them by name. One new output: one field here,
one component in the layout.

Also the shaping of a result into those outputs: pictures written once as files, the summary text,
the table rows, each candidate's view, and what a result offers the *Repair faces* panel below it.
"""

from __future__ import annotations

import html
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, NamedTuple

import gradio as gr

from PIL import Image

from umo_pipeline import render, workflow
from umo_pipeline.labels import (
    SCALE_NOTE, candidate_caption, format_delta, format_score, reference_label, status_change,
)
from umo_pipeline.workflow.face_repair import offered_for_repair


class GenerateOutputs(NamedTuple):
    """/generate. The last field, every candidate's view for clicks on the gallery, is the page's own
    state and not in the API."""

    seed: int  # the best candidate's
    summary: str
    image: str
    heatmap: Any
    overlay: Any
    table: list
    downloads: list[str]
    report: dict  # with every candidate best first when there are several
    slider: Any  # compare mode: (base, UMO)
    base_heatmap: Any
    base_table: list
    gallery: dict  # the candidates, best first (hidden with one candidate)
    placed_slider: Any  # people placed: (composed, placed); else None
    placement_table: list  # people placed: per person their face, similarity composed -> placed, ...
    candidate_views: list[dict]


class AnalyzeOutputs(NamedTuple):
    """/analyze. The analysed picture is not sent back: the caller has it, the labelled faces show it."""

    summary: str
    heatmap: Any
    overlay: Any
    table: list
    downloads: list[str]
    report: dict


class RepairOutputs(NamedTuple):
    """/repair: the repaired image and how each reference fared before and after."""

    summary: str  # per reference before -> after (delta) and status, the matching score, each face, the rule
    image: str  # the repaired PNG (the download itself)
    slider: Any  # (before, after)
    heatmap: Any  # of the repaired image
    table: list  # per reference: its face, similarity on it before, after, change, ID-Conf, status
    downloads: list[str]  # the repaired PNG (repair settings in its metadata), the JSON report
    report: dict  # settings, before / after per reference, every face's candidates


class CompareOutputs(NamedTuple):
    """/compare_methods: several methods' images ranked against the same references."""

    summary: str  # the ranking in words, the images that could not be scored, the notes
    table: list  # per method, best first: rank, method, matching score, matched, per reference
    gallery: list  # per method, best first: its image, then its heatmap (captioned with its numbers)
    sheet: str  # the comparison sheet (also downloads[0])
    downloads: list[str]  # the sheet PNG (ranking in its metadata), the JSON report, the CSV
    report: dict  # every method's rank, score, message and identity report


class RepairOffer(NamedTuple):
    """What a new result (or a click on a candidate) does to the *Repair faces* panel below it (the
    page's own outputs, not in any API): the panel shown when there is a reference to repair, the
    references offered (ticked where not matched and a face was assigned), the previous repair's
    results put away and its status line cleared: they were about another image."""

    panel: Any
    references: Any
    results: Any
    status: str


class RepairShown(NamedTuple):
    """The page's own output after a repair: the group of its results, shown."""

    results: Any


class CandidateShown(NamedTuple):
    """What a click on the candidates gallery puts in the main panel (and the comparison below it);
    the best candidate of a group is shown placed, with its placing's slider and table."""

    image: Any
    heatmap: Any
    overlay: Any
    table: list
    slider: Any
    base_heatmap: Any
    base_table: list
    placed_slider: Any
    placement_table: list


def in_order(outputs: type[NamedTuple], components: dict) -> list:
    """The page's components (by output name) in the order of `outputs`' fields: the one place where
    names become positions."""
    return [components[name] for name in outputs._fields]


# -- from a result to the outputs -------------------------------------------------------------------
def write_pictures(result, folder: Path):
    """(per panel, the files the page shows: "image", "heatmap", "overlay"; the saved downloads).

    The pictures go back as files written once here: the image is the downloadable PNG itself,
    heatmaps and labelled faces are written in quick formats, and Gradio serves them as they are
    instead of encoding each picture again and copying the downloads into its cache. Pillow encodes
    without holding the GIL: the previews are written on a second thread while this one writes the
    downloads."""
    with ThreadPoolExecutor(1, thread_name_prefix="umo-previews") as writer:
        previews = [writer.submit(_write_previews, panel, folder) for panel in result.panels]
        saved = workflow.save_outputs(result, folder)
        shown = [preview.result() for preview in previews]
    # a generation's panels were written as PNGs in panel order (an analysed upload is not copied);
    # with people placed, the first panel is the placed image and the first PNG the composed one
    for view, image in zip(shown, saved.images):
        view["image"] = str(image)
    if getattr(saved, "placed", None) is not None:
        shown[0]["composed"], shown[0]["image"] = shown[0]["image"], str(saved.placed)
    return shown, saved


def analysis_outputs(result, shown: list[dict], saved) -> AnalyzeOutputs:
    return AnalyzeOutputs(**_panel_outputs(result, shown, saved))


def generation_outputs(result, shown: list[dict], saved) -> GenerateOutputs:
    # save_outputs wrote each candidate's panels in a row, best first: the gallery shows those PNGs
    n = len(result.panels)
    placing = {}
    if "composed" in shown[0]:  # people placed on the best candidate: it is shown placed
        placing = {"placed_slider": (shown[0]["composed"], shown[0]["image"]),
                   "placement_table": placement_table_rows(result)}

    def view(k: int, candidate) -> dict:
        written = [str(path) for path in saved.images[k * n:(k + 1) * n]]
        if k == 0 and placing:  # the placed PNG and panels in the place of the composed UMO image's
            return candidate_view(candidate, [shown[0]["image"], *written[1:]], result.panels, placing)
        return candidate_view(candidate, written)

    views = [view(k, candidate) for k, candidate in enumerate(result.candidates)]
    # one candidate: nothing to choose from, so no gallery (and no copies of the image to serve)
    several = len(views) > 1
    gallery = gr.update(value=[(view["image"], view["label"]) for view in views] if several else None,
                        visible=several, selected_index=None)
    return GenerateOutputs(seed=result.request.seed, image=shown[0]["image"],
                           **_panel_outputs(result, shown, saved),
                           **_comparison_outputs(shown, result.panels), gallery=gallery,
                           placed_slider=placing.get("placed_slider"),
                           placement_table=placing.get("placement_table", []), candidate_views=views)


def _panel_outputs(result, shown: list[dict], saved) -> dict:
    first = shown[0]
    return {"summary": summary_markdown(result), "heatmap": first["heatmap"], "overlay": first["overlay"],
            "table": table_rows(result.panels[0].report), "downloads": [str(p) for p in saved.all],
            "report": result.to_dict()}


def _write_previews(panel, folder: Path) -> dict:
    """Paths of what the page shows for one panel beside its image (the downloadable PNG): the
    heatmap (a small PNG, fast compression) and the labelled faces (JPEG: a photo-sized preview)."""
    shown = {"heatmap": None}
    if panel.heatmap is not None:
        heatmap = folder / f"heatmap_{panel.variant}.png"
        workflow.save_png(panel.heatmap, heatmap)
        shown["heatmap"] = str(heatmap)
    overlay = folder / f"faces_{panel.variant}.jpg"
    panel.overlay.convert("RGB").save(overlay, format="JPEG", quality=90)
    shown["overlay"] = str(overlay)
    return shown


def _comparison_outputs(shown: list[dict], panels) -> dict:
    """(base, UMO) for the slider, the base heatmap and the base table; empty without a comparison.
    `shown`: per panel, the pictures the page shows ("image", "heatmap": files or images)."""
    if len(panels) < 2:
        return {"slider": None, "base_heatmap": None, "base_table": table_rows(None)}
    umo, base = shown[0], shown[1]
    return {"slider": (base["image"], umo["image"]), "base_heatmap": base["heatmap"],
            "base_table": table_rows(panels[1].report)}


# -- a methods comparison ---------------------------------------------------------------------------
#: the Compare tab's table: a row per method, "#" its rank; "Per reference" holds each reference's ID-Sim / ID-Conf
#: and status, one after the other (a failed image: its message)
COMPARE_TABLE_HEADERS = ["#", "Method", "Score", "Matched", "Per reference: ID-Sim / ID-Conf, status"]
#: the longest side of a method's picture in the gallery (the upload itself may be far larger)
GALLERY_SIDE = 1024


def write_comparison(result, folder: Path) -> dict:
    """The files the page shows for a methods comparison: "downloads" (workflow.save_method_comparison)
    and "gallery", per method best first its picture (a JPEG preview) and its heatmap (PNG), captioned."""
    downloads = workflow.save_method_comparison(result, folder)
    gallery = []
    for number, method in enumerate(result.methods, start=1):
        if method.image is not None:
            picture = folder / f"method_{number}.jpg"
            preview = method.image.copy()
            preview.thumbnail((GALLERY_SIDE, GALLERY_SIDE))
            preview.save(picture, format="JPEG", quality=90)
            gallery.append((str(picture), method.caption()))
        if method.heatmap is not None:
            heatmap = folder / f"heatmap_method_{number}.png"
            workflow.save_png(method.heatmap, heatmap)
            gallery.append((str(heatmap), f"{method.name}: assignment heatmap"))
    return {"downloads": [str(path) for path in downloads], "gallery": gallery}


def comparison_outputs(result, shown: dict) -> CompareOutputs:
    return CompareOutputs(summary=_markdown(workflow.describe_methods(result), result.backend),
                          table=compare_table_rows(result), gallery=shown["gallery"], sheet=shown["downloads"][0],
                          downloads=shown["downloads"], report=result.to_dict())


def compare_table_rows(result) -> list[list]:
    """COMPARE_TABLE_HEADERS' rows, best first (x100; a failed image: its message)."""
    rows = []
    for method in result.methods:
        if method.failed:
            rows.append(["-", method.name, "n/a", "n/a", method.message])
            continue
        report = method.report
        references = "; ".join(f"{label}: {format_score(id_sim)} / {format_score(id_conf)}, {status}"
                               for label, id_sim, id_conf, status in
                               zip(report.labels, report.id_sim, report.id_conf, report.statuses))
        rows.append([str(method.rank), method.name, format_score(method.matching_score),
                     f"{method.matched}/{len(report.labels)}", references])
    return rows


# -- a face repair ----------------------------------------------------------------------------------
#: "Before" / "After": the similarity on the reference's assigned face (what the repair judge reads), not
#: its best face; the table's label says so
REPAIR_TABLE_HEADERS = ["Reference", "Face", "Before", "After", "Change", "ID-Conf", "Status"]


def write_repair(result, folder: Path) -> dict:
    """The files the page shows for a repair ("image": the repaired PNG with its settings, "before":
    the image as given, for the slider, "heatmap"), and "downloads" (the PNG and the JSON report)."""
    downloads = [str(path) for path in workflow.save_repair(result, folder)]
    before = folder / "before_repair.png"
    workflow.save_png(result.original, before)
    heatmap = None
    if result.after.heatmap is not None:
        heatmap = folder / "heatmap_repaired.png"
        workflow.save_png(result.after.heatmap, heatmap)
    return {"image": downloads[0], "before": str(before), "heatmap": heatmap and str(heatmap),
            "downloads": downloads}


def repair_outputs(result, shown: dict) -> RepairOutputs:
    return RepairOutputs(summary=repair_summary_markdown(result), image=shown["image"],
                         slider=(shown["before"], shown["image"]), heatmap=shown["heatmap"],
                         table=repair_table_rows(result), downloads=shown["downloads"], report=result.to_dict())


def repair_table_rows(result) -> list[list[str]]:
    """Per reference (result.changes()): the face it has after the repair, the similarity on its
    assigned face before and after (x100) and the change, ID-Conf before -> after, its status
    before -> after."""
    return change_rows(result.changes())


def placement_table_rows(result) -> list[list[str]]:
    """repair_table_rows for a group's placing: per person, composed -> placed."""
    return change_rows(result.placement.changes(result.panels[0].report))


def change_rows(changes: list[dict]) -> list[list[str]]:
    """REPAIR_TABLE_HEADERS' rows of repair_result.changes."""
    return [[change["reference"], change["face_after"] or "n/a", format_score(change["similarity_before"]),
             format_score(change["similarity_after"]),
             format_delta(change["similarity_after"], change["similarity_before"]),
             f"{format_score(change['id_conf_before'])} -> {format_score(change['id_conf_after'])}",
             status_change(change["status_before"], change["status_after"])]
            for change in changes]


def repair_summary_markdown(result) -> str:
    return _markdown(workflow.describe_repair(result), result.backend)


def repair_offer(identity: dict | None) -> RepairOffer:
    """The *Repair faces* panel for a result whose identity analysis is `identity` (its "labels",
    "statuses" and "assignment", as in the JSON report). Choices are the references' slot numbers,
    which /repair takes."""
    labels = list((identity or {}).get("labels") or [])
    statuses, assignment = identity["statuses"] if labels else [], identity["assignment"] if labels else []
    choices = [(f"{label} ({status})", _slot_number(label)) for label, status in zip(labels, statuses)]
    ticked = [number for (_, number), status, face in zip(choices, statuses, assignment)
              if offered_for_repair(status, face)]
    return RepairOffer(panel=gr.update(visible=bool(labels)), references=gr.update(choices=choices, value=ticked),
                       results=gr.update(visible=False), status="")


def placement_shown(shown):
    """The placing's slider and table (of GenerateOutputs or CandidateShown) shown only when people
    were placed on what is shown (the API gets the plain values)."""
    placed = shown.placed_slider is not None
    return shown._replace(placed_slider=gr.update(value=shown.placed_slider, visible=placed),
                          placement_table=gr.update(value=shown.placement_table, visible=placed))


def repair_laid_out(shown: RepairOutputs) -> tuple:
    """A repair as the page shows it: its pictures given their room (laid_out), its results shown."""
    return (*laid_out(shown, len(shown.report["after"]["faces"])), *RepairShown(gr.update(visible=True)))


def _slot_number(label: str) -> int:
    """The slot number (1, 2, ...) of a reference named by reference_label."""
    return next(slot + 1 for slot in range(64) if reference_label(slot) == label)


def identity_of(report) -> dict:
    """The part of an identity report (IdentityReport or its JSON) a repair offer reads."""
    if isinstance(report, dict):
        return {key: report.get(key) for key in ("labels", "statuses", "assignment")}
    return {"labels": list(report.labels), "statuses": list(report.statuses), "assignment": list(report.assignment)}


# -- how the page shows the pictures -----------------------------------------------------------------
#: a picture beside another in the result column, in CSS px at a 1280 px window; the heatmap is
#: planned in these units (render.DISPLAY_BOX): wider, it would shrink its text below render.MIN_TEXT
HALF_PANEL_PX = 320
#: CSS classes (style.py): the pictures one above the other at the column's width; the whole result
#: below the inputs at the page's width (a crowd: small faces with short tags); a picture at that
#: width and its own height (a crowd's labelled faces)
WIDE, CROWD, TALL = "umo-wide", "umo-crowd", "umo-tall"


def laid_out(shown, faces: int | None = None):
    """`shown` (GenerateOutputs, AnalyzeOutputs or CandidateShown) as the page shows it: its pictures
    with the room they need to be read, as CSS classes (the API gets the plain values). A heatmap
    wider than a half panel takes the column's width, and so does the picture beside it; with more
    faces than the heatmap has columns, the result takes the page's width and the labelled faces
    their own height there. `faces`: how many were found (read from the report when `shown` has
    one). Every result sets the classes again: the one before may have been a crowd."""
    if faces is None:
        faces = len(shown.report.get("faces", ())) if getattr(shown, "report", None) else 0
    crowd = faces > render.MAX_COLUMNS
    classes = ([WIDE] if _heatmap_width(shown.heatmap) > HALF_PANEL_PX else []) + ([CROWD] if crowd else [])
    pictures = {name: gr.update(value=getattr(shown, name), elem_classes=classes)
                for name in ("image", "heatmap") if name in shown._fields}
    if "overlay" in shown._fields:
        pictures["overlay"] = gr.update(value=shown.overlay, elem_classes=classes + ([TALL] if crowd else []))
    return shown._replace(**pictures)


def _heatmap_width(heatmap) -> float:
    """The heatmap's width in CSS px at its planned size (0 without one); a file's header is enough."""
    if heatmap is None:
        return 0
    if isinstance(heatmap, Image.Image):
        return heatmap.width / render.PIXEL_SCALE
    with Image.open(heatmap) as picture:
        return picture.width / render.PIXEL_SCALE


# -- the candidates --------------------------------------------------------------------------------
def candidate_view(candidate, written: list[str], panels=None, placing: dict | None = None) -> dict:
    """What a click on this candidate shows (CandidateShown's fields), with its caption and seed: its
    written PNGs, and its pictures from the analysis; `panels` and `placing` ("placed_slider",
    "placement_table"): the best candidate as people placed on it left it."""
    panels = panels or candidate.panels
    shown = [{"image": path, "heatmap": panel.heatmap} for path, panel in zip(written, panels)]
    umo = panels[0]
    picture = CandidateShown(image=shown[0]["image"], heatmap=umo.heatmap, overlay=umo.overlay,
                             table=table_rows(umo.report), **_comparison_outputs(shown, panels),
                             placed_slider=(placing or {}).get("placed_slider"),
                             placement_table=(placing or {}).get("placement_table", []))
    return {"label": candidate_caption(candidate, compact=True), "seed": candidate.seed,
            "faces": len(umo.report.faces), "identity": identity_of(umo.report), **picture._asdict()}


def shown_candidate(view: dict) -> CandidateShown:
    return CandidateShown(**{name: view[name] for name in CandidateShown._fields})


# -- text ------------------------------------------------------------------------------------------
def table_rows(report) -> list[list]:
    return [] if report is None else report.table_rows()


def summary_markdown(result) -> str:
    return _markdown(workflow.describe(result), result.backend)


def _markdown(described: list[tuple[str, str]], backend: str) -> str:
    """(label, text) lines (workflow.describe, describe_repair) as the page's summary."""
    lines = []
    for label, text in described:
        text = html.escape(text)
        if label == "Note":
            lines.append(f"*{text}*")
        elif label == "Face backend":  # the banner above the page carries the backend's full note
            lines.append(f"<small>Face backend: {html.escape(backend)}. {SCALE_NOTE}</small>")
        else:
            lines.append(f"**{html.escape(label)}:** {text}" if label else text)
    return "\n\n".join(lines)
