"""Several methods' images scored side by side against the same references (`compare_methods`): the
references analysed once, each image given the same report as `analyze_image`, the methods ranked by
the matching score (UMO's reward), a failed image kept as a row with its message."""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

from umo_pipeline import matching
from umo_pipeline.analysis import IdentityReport, ReferenceFace, analyze_identity, analyze_references, resolve_backend
from umo_pipeline.errors import InputError
from umo_pipeline.images import load_image
from umo_pipeline.labels import format_score
from umo_pipeline.render import render_heatmap, render_methods_sheet
from umo_pipeline.workflow import checks
from umo_pipeline.workflow.candidates import rank_candidates
from umo_pipeline.workflow.text import backend_note

#: how many images one comparison takes: two is the least that compares anything; six is what the
#: sheet and the page's table keep legible side by side (and the methods a paper's figure shows)
MIN_METHODS, MAX_METHODS = 2, 6


@dataclass
class MethodResult:
    """One method's image scored against the references; `message` (starting with the method's name)
    instead of numbers when it failed."""

    name: str
    #: where it came in the input (0-based): ties in the ranking keep this order
    index: int
    #: 1 = best; None for an image that failed (it is listed after the ranked ones)
    rank: int | None = None
    image: Image.Image | None = None
    report: IdentityReport | None = None
    #: render.render_heatmap of the report, titled with the method's name (None when it failed)
    heatmap: Image.Image | None = None
    message: str | None = None

    @property
    def failed(self) -> bool:
        return self.message is not None

    @property
    def matching_score(self) -> float | None:
        return None if self.failed else self.report.matching_score

    @property
    def mean_id_sim(self) -> float | None:
        return None if self.failed else self.report.mean_id_sim

    @property
    def matched(self) -> int | None:
        """How many references the image keeps (status *matched*)."""
        return None if self.failed else self.report.statuses.count(matching.MATCHED)

    def caption(self) -> str:
        """"#1 UNO: score 12.3, ID-Sim 45.6, 2/2 matched", or the method's name and its message."""
        if self.failed:
            return self.message
        return (f"#{self.rank} {self.name}: score {format_score(self.matching_score)}, "
                f"ID-Sim {format_score(self.mean_id_sim)}, {self.matched}/{len(self.report.labels)} matched")

    def to_dict(self) -> dict:
        return {"rank": self.rank, "method": self.name, "input_order": self.index + 1,
                "matching_score": matching.report_number(self.matching_score),
                "mean_id_sim": matching.report_number(self.mean_id_sim), "matched": self.matched,
                "message": self.message, "report": self.report.to_dict() if self.report is not None else None}


@dataclass
class MethodComparison:
    """Every method's result, best first (failed images last, in input order), and the sheet."""

    backend: str
    reference_names: list[str]
    #: the faces the references contribute, found once for every method
    reference_faces: list[ReferenceFace]
    methods: list[MethodResult]
    sheet: Image.Image | None = None
    backend_note: str = ""
    notes: list[str] = field(default_factory=list)

    @property
    def ranked(self) -> list[MethodResult]:
        return [method for method in self.methods if not method.failed]

    def to_dict(self) -> dict:
        return {"kind": "method comparison", "backend": self.backend, "reference_names": list(self.reference_names),
                "ranked_by": matching.DEFINITIONS["matching_score"] + " (ties: mean ID-Sim, then input order)",
                "methods": [method.to_dict() for method in self.methods], "notes": list(self.notes)}


def compare_methods(backend, references: Sequence, images: Sequence, names: Sequence[str | None] | None = None,
                    reference_names: Sequence[str] | None = None) -> MethodComparison:
    """Score each method's image (`images`: PIL images, paths or bytes, one per method) against the
    same `references` with one face backend: one report, one Hungarian assignment and one heatmap
    each, ranked by the matching score. `names[i]` names image i's method (default: its file name's
    stem). An image that cannot be used (not an image, too large, no face in it) stays as a row with
    its message; the others stand. Refuses (InputError) no references, fewer than MIN_METHODS or more
    than MAX_METHODS images, and a missing or repeated method name."""
    backend = resolve_backend(backend)
    if not references:
        raise InputError("Add at least one reference photo: each method's image is scored against them.")
    method_names = checked_method_names(images, names)
    labels = checks.reference_names(reference_names, len(references))
    # each reference's face found once here, and handed to every method's analysis as it is
    labels, faces = analyze_references(references, backend, labels)
    # each heatmap is drawn in a second thread while the next image is analysed: the face
    # embedding (onnxruntime) and Pillow's resampling release the GIL, and the drawing fits in there
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="umo-heatmaps") as drawing:
        methods, heatmaps = [], []
        for index, (name, image) in enumerate(zip(method_names, images)):
            method = _scored(backend, faces, labels, name, index, image)
            methods.append(method)
            if not method.failed:
                heatmaps.append((method, drawing.submit(render_heatmap, method.report, title=name)))
        for method, heatmap in heatmaps:
            method.heatmap = heatmap.result()
    ranked = [method for method in methods if not method.failed]
    order = rank_candidates([method.report for method in ranked])
    for rank, position in enumerate(order, start=1):
        ranked[position].rank = rank
    result = MethodComparison(
        backend=backend.name, reference_names=labels, reference_faces=faces,
        methods=[ranked[position] for position in order] + [method for method in methods if method.failed],
        backend_note=backend_note(backend),
        notes=[f"{label}: {face.warning}" for label, face in zip(labels, faces) if face.warning])
    result.sheet = render_methods_sheet(result)
    return result


def checked_method_names(images: Sequence, names: Sequence[str | None] | None) -> list[str]:
    """One trimmed name per image (an empty one: the image's file name's stem), or InputError in words."""
    count = len(images)
    if count < MIN_METHODS:
        raise InputError(f"Add at least {MIN_METHODS} images to compare (one per method); "
                         f"{'one was' if count == 1 else 'none were'} given. To score a single image, use Analyze.")
    if count > MAX_METHODS:
        raise InputError(f"At most {MAX_METHODS} images can be compared at once; {count} were given.")
    given = list(names) if names is not None else [None] * count
    if len(given) != count:
        raise InputError(f"{len(given)} method names given for {count} images.")
    checked, seen = [], {}
    for number, (name, image) in enumerate(zip(given, images), start=1):
        name = " ".join(str(name or "").split()) or file_stem(image)
        if not name:
            raise InputError(f"Image {number} has no method name: name the method it comes from.")
        if name.casefold() in seen:
            # said without numbers: a page numbers its slots, and may leave some empty
            raise InputError(f'Two images are both named "{name}": give each method its own name.')
        seen[name.casefold()] = number
        checked.append(name)
    return checked


def file_stem(image) -> str:
    """The stem of the file an image came from ("uno_output" for .../uno_output.png); "" when it has none."""
    path = image if isinstance(image, (str, os.PathLike)) else getattr(image, "filename", None) or getattr(
        image, "name", None)
    return " ".join(Path(path).stem.split()) if isinstance(path, (str, os.PathLike)) and str(path) else ""


def _scored(backend, faces: list[ReferenceFace], labels: list[str], name: str, index: int, image) -> MethodResult:
    method = MethodResult(name=name, index=index)
    try:
        method.image = load_image(image, name=name)
        method.report = analyze_identity(faces, method.image, backend, labels=labels)
    except InputError as error:
        # the image's own problem, said with the method's name in front (load_image names it so)
        text = str(error)
        method.message = text if text.startswith(f"{name}:") else f"{name}: {text}"
        return method
    if not method.report.faces:
        # nothing to assign: a score of "no face" would rank it beside an image that lost everyone
        method.message = f"{name}: no face found in this image, so it cannot be scored."
    return method
