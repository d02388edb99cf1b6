"""Face repair: one more pass through the same three phases, for the faces that went wrong.

    job = prepare_repair(customizer, backend, image, references)   every check, before any GPU time
    crops = generate_repairs(job)                                   the only GPU part
    result = finish_repair(job, crops)                              paste, re-analyse, keep or not

`prepare_repair` analyses the image with every reference and takes, for each chosen reference (by
default those whose status is not "matched"), the face the Hungarian assignment gave it: a square
crop around that face with context, scaled to the model's working size, a soft elliptical mask over
the face, and a masked re-generation request conditioned on that reference alone. `finish_repair`
goes face by face: each candidate is pasted back through the feathered mask, the whole image is
analysed again with every reference, and the candidate with the best ID-Sim for its reference is
kept only if it improves on the current image (by MIN_GAIN) without costing another reference more
than OTHERS_MARGIN; otherwise the original stays, and the result says so.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
from PIL import Image

from umo_pipeline import params
from umo_pipeline.analysis import analyze_identity, analyze_reference, resolve_backend
from umo_pipeline.customizers.base import GenerationRequest, Inpainting
from umo_pipeline.errors import InputError
from umo_pipeline.images import load_image
from umo_pipeline.labels import face_label, format_delta, format_score, status_change
from umo_pipeline.matching import MATCHED, report_number
from umo_pipeline.workflow import checks
from umo_pipeline.workflow.budget import candidate_seeds, refuse_over_budget, reserved_seconds
from umo_pipeline.workflow.candidates import Panel
from umo_pipeline.workflow.files import generation_settings, save_png
from umo_pipeline.workflow.inputs import face_crop_box, reference_input
from umo_pipeline.workflow.job import Job, WorkflowProgress
from umo_pipeline.workflow.phases import make_panel
from umo_pipeline.workflow.text import backend_note

#: the crop's side is this many times the face box's long side. FaceDetailer's default (crop_factor
#: 3.0), kept for our own reasons: the face then fills a third of the crop, so the model sees the
#: hair, neck and light around it and draws a face that fits them, and the feathered mask (at most
#: 0.81 face sides from the centre) fades out well inside the crop, so no square edge can show; a
#: larger crop gives the face fewer of the working size's pixels (at 512 px it keeps ~170).
CROP_CONTEXT = 3.0
#: the working size's side is the crop's, brought into this range (on the model's size grid): small
#: faces are drawn again at 512 px (the size detailers work at, and where a face gets enough tokens),
#: and a crop never costs more than the default 768 x 768 generation does
WORKING_SIDE_RANGE = (512, 768)
#: faces smaller than this (the face box's long side, in pixels) are refused: the face embedding that
#: ranks the candidates reads a face from a 112 px (ArcFace) or 150 px (dlib) chip, and a smaller face
#: enlarged more than 2.3x to fill it gives similarities that cannot tell a better repair from a worse
MIN_FACE_SIDE = 48
#: the mask's ellipse has axes MASK_SCALE x the face box (detector boxes stop at the brows and chin,
#: a face's forehead and jaw reach beyond them); it fades from full to nothing over +-MASK_FEATHER of
#: its radius, so the repaint blends into the original instead of ending at an edge
MASK_SCALE = 1.3
MASK_FEATHER = 0.25
#: a repaint is kept only if it raises its reference's ID-Sim by at least this much (0.5 points x100):
#: a crop scaled to the working size and back with nothing repainted moved dlib's ID-Sim by up to
#: 0.25 points (4 faces, tests/library/test_repair.py's scenes), and a change of face for less than
#: twice that noise is no repair
MIN_GAIN = 0.005
#: a repair may lower another reference's ID-Sim by at most this much (2 points x100), eight times
#: that round-trip noise: a bigger drop means the repaint took something from another identity (the
#: other reference's best face was this one, or a neighbouring face was touched)
OTHERS_MARGIN = 0.02
#: what each face is regenerated from when no prompt is given: the crop shows one face, so the
#: image's own prompt (several people, a scene) would ask for what the crop cannot hold
DEFAULT_FACE_PROMPT = "a close-up photo of a person's face, natural skin, sharp focus"


# -- what the phases pass on ------------------------------------------------------------------------
@dataclass
class FaceRepair:
    """The plan for one face: where it is, the crop and mask around it, and its masked request."""

    reference: int
    #: the face's index in the analysis of the image as given (reading order)
    face: int
    face_box: tuple[float, float, float, float]
    #: (left, top, right, bottom) in the image: a square, moved inside the image where it would leave it
    crop_box: tuple[int, int, int, int]
    moved: bool
    #: the paste mask at crop_box's size ("L", 0 outside the feathered ellipse)
    mask: Image.Image
    #: the crop-level request (request.inpaint set), at the model's working size
    request: GenerationRequest
    #: what the customizer receives for this face's reference (the reference, or its face crop)
    conditioning: Image.Image


@dataclass
class RepairJob:
    """A checked repair ready for the GPU; crosses into a ZeroGPU worker the way a Job does."""

    customizer: object
    backend: object
    image: Image.Image
    reference_names: list[str]
    reference_faces: list
    #: the analysis of the image as given, with every reference
    before: object
    faces: list[FaceRepair]
    candidates: int
    seed: int
    notes: list[str] = field(default_factory=list)

    # the same registry of live models as a Job's, so the same pickling rules apply
    __post_init__ = Job.__post_init__
    __getstate__ = Job.__getstate__
    __setstate__ = Job.__setstate__

    @property
    def seeds(self) -> list[int]:
        return candidate_seeds(self.seed, self.candidates)

    def face_steps(self, repair: FaceRepair) -> int:
        """Denoising steps one face takes: the steps strength leaves, per pipeline call."""
        return repair.request.denoising_steps * self.customizer.batch_count(self.candidates)

    @property
    def total_steps(self) -> int:
        return sum(self.face_steps(repair) for repair in self.faces)

    def estimated_gpu_seconds(self) -> float:
        """Every face x candidate, each at its crop's working size and the steps strength leaves."""
        return sum(self.customizer.estimate_seconds(repair.request, 1, self.candidates) for repair in self.faces)


def repair_gpu_seconds(job: RepairJob, *_ignored) -> int:
    """Seconds to reserve on ZeroGPU for a prepared repair (spaces.GPU's `duration` callable), with
    the margin a generation gets."""
    return reserved_seconds(job.estimated_gpu_seconds())


@dataclass
class CandidateRepair:
    """One seed's repaint of a face, pasted and analysed."""

    seed: int
    #: the repaired reference's ID-Sim in the pasted image
    id_sim: float
    #: the largest drop of another reference's ID-Sim (negative: they all rose)
    others_drop: float
    #: False when another reference lost more than OTHERS_MARGIN
    allowed: bool
    report: object = field(repr=False)
    #: the whole image with this repaint pasted in
    image: Image.Image = field(repr=False, default=None)


@dataclass
class RepairOutcome:
    """What became of one chosen face."""

    reference: int
    reference_name: str
    face: int
    crop_box: tuple[int, int, int, int]
    mask: Image.Image = field(repr=False)
    #: best first: allowed ones by ID-Sim (ties: seed order), then the others
    candidates: list[CandidateRepair] = field(default_factory=list)
    #: the reference's ID-Sim before this face's repair and after it (equal when the original stayed)
    before: float = 0.0
    after: float = 0.0
    kept_seed: int | None = None
    message: str = ""

    @property
    def kept(self) -> bool:
        return self.kept_seed is not None

    def to_dict(self) -> dict:
        return {"reference": self.reference_name, "face": face_label(self.face), "crop_box": list(self.crop_box),
                "kept": self.kept, "kept_seed": self.kept_seed, "id_sim_before": report_number(self.before),
                "id_sim_after": report_number(self.after), "message": self.message,
                "candidates": [{"seed": c.seed, "id_sim": report_number(c.id_sim),
                                "largest_drop_of_another_reference": report_number(c.others_drop),
                                "allowed": c.allowed} for c in self.candidates]}


@dataclass
class RepairResult:
    """The repaired image, before/after per reference, which repairs were kept, and notes."""

    image: Image.Image
    original: Image.Image
    reference_names: list[str]
    before: Panel
    after: Panel
    repairs: list[RepairOutcome]
    settings: dict
    backend: str
    model: str
    notes: list[str] = field(default_factory=list)
    backend_note: str = ""
    #: the files written by `repair(..., folder=...)` / `save_repair`
    files: list[Path] = field(default_factory=list)

    def paste_mask(self) -> Image.Image:
        """Where the repaired image may differ from the original ("L", 0 = byte-identical)."""
        mask = Image.new("L", self.image.size, 0)
        for repair in self.repairs:
            if repair.kept:
                region = mask.crop(repair.crop_box)
                mask.paste(Image.fromarray(np.maximum(np.asarray(region), np.asarray(repair.mask))), repair.crop_box)
        return mask

    def changes(self) -> list[dict]:
        """Per reference: ID-Sim and status before and after (values are cosines, None undefined)."""
        old, new = self.before.report, self.after.report
        return [{"reference": name, "id_sim_before": report_number(old.id_sim[i]),
                 "id_sim_after": report_number(new.id_sim[i]),
                 "delta": report_number(None if old.id_sim[i] is None or new.id_sim[i] is None
                                        else new.id_sim[i] - old.id_sim[i]),
                 "status_before": old.statuses[i], "status_after": new.statuses[i]}
                for i, name in enumerate(self.reference_names)]

    def to_dict(self) -> dict:
        return {"reference_names": list(self.reference_names), "model": self.model, "backend": self.backend,
                "settings": dict(self.settings), "references": self.changes(),
                "repairs": [repair.to_dict() for repair in self.repairs], "notes": list(self.notes),
                "before": self.before.report.to_dict(), "after": self.after.report.to_dict()}


# -- phase 1: prepare -----------------------------------------------------------------------------
def prepare_repair(customizer, backend, image, references: Sequence[Image.Image], *,
                   reference_names: Sequence[str] | None = None, choose: Sequence[int] | None = None,
                   strength: float | None = None, candidates: int = 1, prompt: str | None = None,
                   face_crops: Sequence[bool] | None = None, settings: GenerationRequest | None = None,
                   seed: int = 0, gpu_seconds_limit: float | None = None,
                   image_name: str = "The image to repair") -> RepairJob:
    """Every check a repair needs, before any GPU time.

    image: a PIL image or a file (checked against the upload limits). choose: reference indices
    (0-based) to repair; default every reference whose status is not "matched" and that has a face
    to repair. strength: params.STRENGTH (default 0.6, see there why). candidates: seeds per face,
    seed, seed + 1, ... (1-4). prompt: what each face is regenerated from (DEFAULT_FACE_PROMPT).
    face_crops[i]: condition on reference i cropped around its face. settings: steps, guidance and
    model settings (the model's defaults). Raises InputError in plain words.
    """
    backend = resolve_backend(backend)
    image = load_image(image, name=image_name)
    references = customizer.check_references(references)
    if not references:
        raise InputError("Add the reference photos: a repair regenerates a face from its own reference.")
    names = checks.reference_names(reference_names, len(references))
    crops = checks.face_crop_choices(face_crops, len(references))
    candidates = params.CANDIDATES.check(candidates)
    strength = params.STRENGTH.check(params.STRENGTH.default if strength is None else strength)
    prompt = params.check_prompt(DEFAULT_FACE_PROMPT if prompt is None or not str(prompt).strip() else prompt)
    base = customizer.check_settings(replace(settings or customizer.defaults, prompt=prompt, inpaint=None))
    seed = params.SEED.check(seed)

    faces = [analyze_reference(picture, backend, name=name) for picture, name in zip(references, names)]
    before = analyze_identity(faces, image, backend, labels=names)
    if not before.faces:
        raise InputError("No face was found in the image to repair, so there is nothing to repair.")
    chosen, notes = _chosen_references(before, names, choose)
    plans = []
    for ref in chosen:
        plan, note = _plan_face(customizer, image, before, ref, names[ref], base, strength)
        used, warning = reference_input(references[ref], faces[ref], crops[ref], customizer.face_crop_margin,
                                        names[ref])
        plans.append(replace(plan, conditioning=used))
        notes += [text for text in (note, warning) if text]
    job = RepairJob(customizer, backend, image, names, faces, before, plans, candidates, seed,
                    notes)
    if gpu_seconds_limit is not None:
        refuse_over_budget("repair", job.estimated_gpu_seconds(), gpu_seconds_limit,
                           "Fewer faces or candidates, or a lower strength, will fit.")
    return job


def _chosen_references(report, names: list[str], choose) -> tuple[list[int], list[str]]:
    """The references to repair (checked), and notes on those the default left out."""
    if choose is not None:
        chosen = []
        for value in choose:
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
                raise InputError(f"Choose references by their number, not {value!r}.")
            if not 0 <= value < len(names):
                raise InputError(f"There is no Reference {value + 1}: {len(names)} reference(s) were given.")
            if value in chosen:
                raise InputError(f"{names[value]} was chosen twice.")
            chosen.append(int(value))
        if not chosen:
            raise InputError("Choose at least one reference to repair.")
        for ref in chosen:
            problem = _unrepairable(report, ref)
            if problem:
                raise InputError(f"{names[ref]} cannot be repaired: {problem}.")
        return chosen, []
    wanted = [ref for ref, status in enumerate(report.statuses) if status != MATCHED]
    chosen = [ref for ref in wanted if not _unrepairable(report, ref)]
    notes = [f"{names[ref]} was not repaired: {_unrepairable(report, ref)}." for ref in wanted if ref not in chosen]
    if not chosen:
        reason = " ".join(notes) if notes else f"every reference is {MATCHED} already."
        raise InputError(f"Nothing to repair: {reason[0].lower()}{reason[1:]} Choose the references to repair "
                         "to repair them anyway.")
    return chosen, notes


def _unrepairable(report, ref: int) -> str | None:
    """Why reference `ref` has no face to repair, or None."""
    if report.references[ref].face is None:
        return "no face was found in its photo, so it cannot guide a repair"
    if report.assignment[ref] is None:
        return (f"no face in the image was assigned to it (the image has {len(report.faces)} face(s) for "
                f"{len(report.labels)} references)")
    return None


def _plan_face(customizer, image: Image.Image, report, ref: int, name: str, base: GenerationRequest,
               strength: float) -> tuple[FaceRepair, str | None]:
    face = report.assignment[ref]
    box = tuple(float(v) for v in report.faces[face].bbox)
    width, height = box[2] - box[0], box[3] - box[1]
    if max(width, height) < MIN_FACE_SIDE:
        raise InputError(f"{face_label(face)} ({name}'s face) is {width:.0f} x {height:.0f} pixels, too small to "
                         f"repair: a repair needs a face of at least {MIN_FACE_SIDE} pixels across. Enlarge the "
                         "image first, or repair the other faces.")
    crop, moved = _crop_box(box, image.size)
    note = None
    if moved:
        note = (f"{face_label(face)} ({name}) is near the image's edge: its crop was moved inside the image "
                "(not cut), so the face is off its centre.")
    if crop[2] - crop[0] < CROP_CONTEXT * max(width, height) - 1:
        note = (f"{face_label(face)} ({name}) is large for the image: its crop is the image's short side "
                f"({crop[2] - crop[0]} px), less context than {CROP_CONTEXT:g}x the face.")
    mask = face_mask(crop, box, image.size)
    side = working_side(customizer, crop[2] - crop[0])
    scale = side / (crop[2] - crop[0])
    inpaint = Inpainting(image=image.crop(crop).resize((side, side), Image.Resampling.LANCZOS),
                         mask=face_mask(crop, box, image.size, scale=scale), strength=strength)
    request = customizer.check_request(replace(base, width=side, height=side, inpaint=inpaint))
    return FaceRepair(ref, face, box, crop, moved, mask, request, conditioning=None), note


def _crop_box(box, image_size) -> tuple[tuple[int, int, int, int], bool]:
    """The square CROP_CONTEXT x the face's long side around it, moved inside the image; whether it moved."""
    crop = face_crop_box(box, image_size, (CROP_CONTEXT - 1) / 2)
    side = crop[2] - crop[0]
    centred_left = (box[0] + box[2]) / 2 - side / 2
    centred_top = (box[1] + box[3]) / 2 - side / 2
    return crop, abs(crop[0] - centred_left) > 1 or abs(crop[1] - centred_top) > 1


def working_side(customizer, crop_side: int) -> int:
    """The side the crop is regenerated at: its own, brought into WORKING_SIDE_RANGE and the model's
    limits, on the model's size grid."""
    step = customizer.size_step
    low = max(WORKING_SIDE_RANGE[0], customizer.min_side)
    high = max(low, min(WORKING_SIDE_RANGE[1], customizer.max_side))
    side = min(max(crop_side, low), high)
    side = int(round(side / step)) * step
    return min(max(side, -(-low // step) * step), high // step * step)


def face_mask(crop, box, image_size, *, scale: float = 1.0) -> Image.Image:
    """The soft elliptical mask over the face, at the crop's size x `scale` ("L": 255 inside, fading to
    exactly 0 over MASK_FEATHER). Where the fade would reach a crop edge inside the image (a crop
    the image's size cut down), the ellipse shrinks so the mask still ends at 0 before that edge."""
    left, top, right, bottom = crop
    cx, cy = (box[0] + box[2]) / 2 - left, (box[1] + box[3]) / 2 - top
    axes = np.array([(box[2] - box[0]) / 2, (box[3] - box[1]) / 2]) * MASK_SCALE
    reach = 1 + MASK_FEATHER
    room = []
    if left > 0:
        room.append(cx / axes[0])
    if right < image_size[0]:
        room.append((right - left - cx) / axes[0])
    if top > 0:
        room.append(cy / axes[1])
    if bottom < image_size[1]:
        room.append((bottom - top - cy) / axes[1])
    axes = axes * min([1.0] + [space / reach for space in room])
    size = (round((right - left) * scale), round((bottom - top) * scale))
    xs = (np.arange(size[0]) + 0.5) / scale - cx
    ys = (np.arange(size[1]) + 0.5) / scale - cy
    distance = np.sqrt((xs[None, :] / axes[0]) ** 2 + (ys[:, None] / axes[1]) ** 2)
    weight = np.clip((reach - distance) / (2 * MASK_FEATHER), 0.0, 1.0)
    weight = weight * weight * (3 - 2 * weight)  # smoothstep: no kink where the fade starts or ends
    return Image.fromarray(np.round(weight * 255).astype(np.uint8), mode="L")


# -- phase 2: generate (the GPU part) ---------------------------------------------------------------
def generate_repairs(job: RepairJob, progress: WorkflowProgress | None = None) -> list[list[Image.Image]]:
    """Per chosen face, one repainted crop per seed of `job.seeds` (at the working size). Returns
    CPU objects only (PIL images), as a ZeroGPU worker must; failures arrive as UMOErrors."""
    total, offset, crops = job.total_steps, 0, []
    per_call = max(1, job.customizer.max_batch)
    for number, repair in enumerate(job.faces, start=1):
        steps = repair.request.denoising_steps

        def step_done(done: int, _total: int, offset: int = offset, number: int = number, steps: int = steps):
            if progress is None:
                return
            # the message says where the job is; the count (done, total) is the whole job's, as for a
            # generation, so a display shows one count only
            first = max(done - 1, 0) // steps * per_call + 1
            last = min(first + per_call - 1, job.candidates)
            which = f"candidate {first}" if first == last else f"candidates {first}-{last}"
            progress(min(offset + done, total), total, f"face {number} of {len(job.faces)}, {which} of {job.candidates}")

        crops.append(job.customizer.generate_batch(repair.request, [repair.conditioning], job.seeds,
                                                   progress=step_done))
        offset += job.face_steps(repair)
    return crops


# -- phase 3: finish ------------------------------------------------------------------------------
def finish_repair(job: RepairJob, crops: Sequence[Sequence[Image.Image]]) -> RepairResult:
    """Face by face, on the image as the earlier faces left it: paste each candidate, analyse the whole
    image with every reference, keep the best allowed candidate if it raises its reference's ID-Sim.
    `crops`: per face of job.faces, one image per seed, as `generate_repairs` returns."""
    if len(crops) != len(job.faces) or any(len(found) != len(job.seeds) for found in crops):
        raise InputError(f"Expected {len(job.seeds)} repainted crop(s) for each of the {len(job.faces)} face(s).")
    current, report = job.image, job.before
    outcomes = []
    for repair, found in zip(job.faces, crops):
        outcome = _repair_face(job, repair, found, current, report)
        if outcome.kept:
            current, report = outcome.candidates[0].image, outcome.candidates[0].report
        outcomes.append(outcome)
    names = job.reference_names
    before = make_panel("image", "Before repair", job.image, job.before)
    after = make_panel("repaired", "After repair", current, report)
    first = job.faces[0].request
    settings = {"strength": first.inpaint.strength, "candidates": job.candidates, "seeds": job.seeds,
                "prompt": first.prompt, "crop_context": CROP_CONTEXT, "others_margin": OTHERS_MARGIN,
                "repaired_references": [names[repair.reference] for repair in job.faces],
                **{key: value for key, value in generation_settings(first).items()
                   if key in ("steps", "guidance", "extra")},
                "denoising_steps": first.denoising_steps}
    return RepairResult(image=current, original=job.image, reference_names=list(names), before=before, after=after,
                        repairs=outcomes, settings=settings, backend=job.backend.name, model=job.customizer.label,
                        notes=_notes(job), backend_note=backend_note(job.backend))


def paste_repair(image: Image.Image, repair: FaceRepair, crop: Image.Image) -> Image.Image:
    """`image` with the repainted crop scaled back and blended in through the face's mask: every pixel
    where the mask is 0 is the input's, byte for byte."""
    box = repair.crop_box
    region = image.crop(box)
    scaled = crop.convert("RGB").resize(region.size, Image.Resampling.LANCZOS)
    pasted = image.copy()
    pasted.paste(Image.composite(scaled, region, repair.mask), box)
    return pasted


def _repair_face(job: RepairJob, repair: FaceRepair, found, current, report) -> RepairOutcome:
    ref, name = repair.reference, job.reference_names[repair.reference]
    analysed = []
    for seed, crop in zip(job.seeds, found):
        pasted = paste_repair(current, repair, crop)
        after = analyze_identity(job.reference_faces, pasted, job.backend, labels=job.reference_names)
        analysed.append(CandidateRepair(seed, *judge_repair(report, after, ref), after, pasted))
    ranked = sorted(analysed, key=lambda c: (not c.allowed, -c.id_sim))  # stable: ties keep seed order
    outcome = RepairOutcome(ref, name, repair.face, repair.crop_box, repair.mask, ranked,
                            before=report.id_sim[ref], after=report.id_sim[ref])
    best = ranked[0]
    tried = f"{len(ranked)} candidate{'s' if len(ranked) > 1 else ''}"
    if best.allowed and best.id_sim >= outcome.before + MIN_GAIN:
        outcome.kept_seed, outcome.after = best.seed, best.id_sim
        outcome.message = (f"{face_label(repair.face)} repaired with {name} (seed {best.seed}, best of {tried}): "
                           f"ID-Sim {format_score(outcome.before)} -> {format_score(best.id_sim)}.")
    elif best.allowed:
        outcome.message = (f"{face_label(repair.face)} kept as it was: none of {tried} raised {name}'s ID-Sim "
                           f"from {format_score(outcome.before)} by {format_score(MIN_GAIN)} or more "
                           f"(best {format_score(best.id_sim)}).")
    else:
        outcome.message = (f"{face_label(repair.face)} kept as it was: each of {tried} lowered another "
                           f"reference's ID-Sim by more than {format_score(OTHERS_MARGIN)}.")
    return outcome


def judge_repair(before, after, reference: int) -> tuple[float, float, bool]:
    """(the reference's ID-Sim after, the largest drop of another reference's ID-Sim, whether that
    drop is within OTHERS_MARGIN) for an analysis `after` a repaint against the one `before` it."""
    drop = max([before.id_sim[other] - after.id_sim[other] for other in range(len(before.labels))
                if other != reference and before.id_sim[other] is not None and after.id_sim[other] is not None],
               default=0.0)
    return after.id_sim[reference], drop, drop <= OTHERS_MARGIN


def _notes(job: RepairJob) -> list[str]:
    notes = list(job.notes)
    if job.customizer.is_test_model:
        notes.append(f"{job.customizer.label}: a tiny test model with random weights; its repaints are noise.")
    return notes


def describe_repair(result: RepairResult) -> list[tuple[str, str]]:
    """The result in words, as (label, text) lines: per reference ID-Sim before -> after (delta) and
    status, then what became of each face, then the notes."""
    lines = []
    for change, old, new in zip(result.changes(), result.before.report.id_sim, result.after.report.id_sim):
        status = status_change(change["status_before"], change["status_after"])
        lines.append((change["reference"], f"ID-Sim {format_score(old)} -> {format_score(new)} "
                                           f"({format_delta(new, old)}), {status}"))
    lines += [("Kept" if repair.kept else "Not kept", repair.message) for repair in result.repairs]
    lines += [("Note", note) for note in result.notes]
    lines.append(("Face backend", f"{result.backend_note or result.backend} ID-Sim is x100; higher is better."))
    return lines


# -- the three in a row, and the files ------------------------------------------------------------
def repair(customizer, backend, image, references: Sequence[Image.Image], *, folder: str | Path | None = None,
           progress: WorkflowProgress | None = None, **options) -> RepairResult:
    """prepare_repair -> generate_repairs -> finish_repair (options: those of prepare_repair); with
    `folder`, the repaired PNG and the JSON report are written there (`result.files`)."""
    job = prepare_repair(customizer, backend, image, references, **options)
    result = finish_repair(job, generate_repairs(job, progress))
    if folder is not None:
        save_repair(result, folder)
    return result


def save_repair(result: RepairResult, folder: str | Path, stem: str = "repaired") -> list[Path]:
    """The repaired PNG (repair settings in its text chunks) and the JSON report with before/after."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    image, report = folder / f"{stem}.png", folder / f"report_{stem}.json"
    kept = [f"{repair.reference_name}: seed {repair.kept_seed}" for repair in result.repairs if repair.kept]
    save_png(result.image, image, {"repair": json.dumps(result.settings), "model": result.model,
                                   "kept": "; ".join(kept) or "none", "variant": "Repaired",
                                   "software": "umo_pipeline"})
    report.write_text(json.dumps(result.to_dict(), indent=2))
    result.files = [image, report]
    return result.files
