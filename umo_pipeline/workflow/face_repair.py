"""Face repair: one more pass through the same three phases, for the faces that went wrong.

    job = prepare_repair(customizer, backend, image, references)   every check, before any GPU time
    crops = generate_repairs(job)                                   the only GPU part
    result = finish_repair(job, crops)                              paste, re-analyse, judge

`prepare_repair` analyses the image with every reference and takes, for each chosen reference (by
default those whose status is not "matched"), the face the Hungarian assignment gave it: a square
crop around that face with context, scaled to the model's working size, a soft elliptical mask over
the face, and a masked re-generation request conditioned on that reference alone (geometry).
`finish_repair` goes face by face on a RepaintCanvas, so a later repaint never undoes an earlier
kept one: each candidate is pasted, the whole image is analysed again with every reference, and
`judge.judge` reads the assignment: the candidates are ranked by the verdict, and the best is kept
only if the judge keeps it (judge.rule() says the rule in words); otherwise the face stays, and the
result says why.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
from PIL import Image

from umo_pipeline import params
from umo_pipeline.analysis import IdentityReport, ReferenceFace, analyze_identity, analyze_reference, resolve_backend
from umo_pipeline.customizers.request import GenerationRequest, Inpainting
from umo_pipeline.errors import InputError
from umo_pipeline.images import load_image_with_alpha
from umo_pipeline.labels import face_label, format_score
from umo_pipeline.matching import MATCHED
from umo_pipeline.workflow import checks
from umo_pipeline.workflow.budget import candidate_seeds, refuse_over_budget, reserved_seconds
from umo_pipeline.workflow.files import generation_settings, save_repair
from umo_pipeline.workflow.geometry import (
    CROP_CONTEXT, MASK_SCALE, RepaintCanvas, crop_box, face_mask, locate_face, working_side,
)
from umo_pipeline.workflow.inputs import reference_input
from umo_pipeline.workflow.job import GpuWork, WorkflowProgress, candidates_at
from umo_pipeline.workflow.repair_result import CandidateRepair, RepairOutcome, RepairResult
from umo_pipeline.judge import MIN_GAIN, OTHERS_MARGIN, judge
from umo_pipeline.workflow.phases import make_panel
from umo_pipeline.workflow.text import backend_note, test_model_note

__all__ = ["CROP_CONTEXT", "DEFAULT_FACE_PROMPT", "MASK_SCALE", "MIN_FACE_SIDE", "MIN_GAIN", "OTHERS_MARGIN",
           "CandidateRepair", "FaceRepair", "RepairJob", "RepairOutcome", "RepairResult", "face_mask",
           "finish_repair", "generate_repairs", "judge_repairs", "prepare_repair", "repair", "repair_gpu_seconds",
           "working_side"]

#: faces smaller than this (the face box's long side, in pixels) are refused: the face embedding that
#: ranks the candidates reads a face from a 112 px (ArcFace) or 150 px (dlib) chip, and a smaller face
#: enlarged more than 2.3x to fill it gives similarities that cannot tell a better repair from a worse
MIN_FACE_SIDE = 48
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
class RepairJob(GpuWork):
    """A checked repair ready for the GPU; crosses into a ZeroGPU worker the way a Job does."""

    image: Image.Image
    reference_names: list[str]
    reference_faces: list[ReferenceFace]
    #: the analysis of the image as given, with every reference
    before: IdentityReport
    faces: list[FaceRepair]
    candidates: int
    seed: int
    notes: list[str] = field(default_factory=list)
    #: the input's alpha channel ("L") when it had transparency: the faces are repaired on the picture
    #: flattened on white, and the repaired file gets this alpha back
    alpha: Image.Image | None = None

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


# -- phase 1: prepare -----------------------------------------------------------------------------
def prepare_repair(customizer, backend, image, references: Sequence[Image.Image], *,
                   reference_names: Sequence[str] | None = None, choose: Sequence[int] | None = None,
                   strength: float | None = None, candidates: int = 1, prompt: str | None = None,
                   face_crops: Sequence[bool] | None = None, settings: GenerationRequest | None = None,
                   seed: int = 0, gpu_seconds_limit: float | None = None,
                   image_name: str = "The image to repair", analysed: tuple | None = None) -> RepairJob:
    """Every check a repair needs, before any GPU time.

    image: a PIL image or a file (checked against the upload limits); one with transparency is
    repaired flattened on white and gets its alpha channel back in the repaired file. choose:
    reference indices (0-based) to repair; default every reference whose status is not "matched"
    and that has a face to repair. strength: params.STRENGTH (default 0.6, see there why).
    candidates: seeds per face, seed, seed + 1, ... (1-4). prompt: what each face is regenerated
    from (DEFAULT_FACE_PROMPT). face_crops[i]: condition on reference i cropped around its face.
    settings: steps, guidance and model settings (the model's defaults). analysed: (each
    reference's ReferenceFace, the IdentityReport of `image` with them) when the caller has them
    already (a placement: the references as the generation analysed them); `references` are then
    what the customizer receives as they are. Raises InputError in plain words.
    """
    backend = resolve_backend(backend)
    image, alpha = load_image_with_alpha(image, name=image_name)
    # each face is repaired from its own reference alone: the model's limit is not this one's
    references = checks.people(references, customizer)
    if not references:
        raise InputError("Add the reference photos: a repair regenerates a face from its own reference.")
    names = checks.reference_names(reference_names, len(references))
    crops = checks.face_crop_choices(face_crops, len(references))
    candidates = params.CANDIDATES.check(candidates)
    strength = params.STRENGTH.check(params.STRENGTH.default if strength is None else strength)
    prompt = params.check_prompt(DEFAULT_FACE_PROMPT if prompt is None or not str(prompt).strip() else prompt)
    base = customizer.check_settings(replace(settings or customizer.defaults, prompt=prompt, inpaint=None))
    seed = params.SEED.check(seed)

    if analysed is None:
        faces = [analyze_reference(picture, backend, name=name) for picture, name in zip(references, names)]
        before = analyze_identity(faces, image, backend, labels=names)
    else:
        faces, before = analysed
    if not before.faces:
        raise InputError("No face was found in the image to repair, so there is nothing to repair.")
    chosen, notes = _chosen_references(before, names, choose)
    if alpha is not None:
        notes.append("The image has transparency: its faces were repaired on it flattened on white, and the "
                     "repaired file keeps its alpha channel.")
    plans = []
    for ref in chosen:
        plan, plan_notes = _plan_face(customizer, image, before, ref, names[ref], base, strength)
        used, warning = references[ref], None
        if analysed is None:
            used, warning = reference_input(references[ref], faces[ref], crops[ref], customizer.face_crop_margin,
                                            names[ref])
        plans.append(replace(plan, conditioning=used))
        notes += plan_notes + ([warning] if warning else [])
    job = RepairJob(customizer, backend, image, names, faces, before, plans, candidates, seed, notes, alpha)
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
                raise InputError(f"There is no reference at index {int(value)}: choose from 0 ({names[0]}) to "
                                 f"{len(names) - 1} ({names[-1]}).")
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
    chosen = [ref for ref in wanted if offered_for_repair(report.statuses[ref], report.assignment[ref])]
    notes = [f"{names[ref]} was not repaired: {_unrepairable(report, ref)}." for ref in wanted if ref not in chosen]
    if not chosen:
        reason = " ".join(notes) if notes else f"every reference is {MATCHED} already."
        raise InputError(f"Nothing to repair: {reason[0].lower()}{reason[1:]} Choose the references to repair "
                         "to repair them anyway.")
    return chosen, notes


def offered_for_repair(status: str, assigned_face: int | None) -> bool:
    """The default choice, here and on the page: a reference that is not matched and has a face
    assigned to it (a reference without a face of its own is never assigned one)."""
    return status != MATCHED and assigned_face is not None


def _unrepairable(report, ref: int) -> str | None:
    """Why reference `ref` has no face to repair, or None."""
    if report.references[ref].face is None:
        return "no face was found in its photo, so it cannot guide a repair"
    if report.assignment[ref] is None:
        return (f"no face in the image was assigned to it (the image has {len(report.faces)} face(s) for "
                f"{len(report.labels)} references)")
    return None


def _plan_face(customizer, image: Image.Image, report, ref: int, name: str, base: GenerationRequest,
               strength: float) -> tuple[FaceRepair, list[str]]:
    face = report.assignment[ref]
    box = tuple(float(v) for v in report.faces[face].bbox)
    width, height = box[2] - box[0], box[3] - box[1]
    if max(width, height) < MIN_FACE_SIDE:
        raise InputError(f"{face_label(face)} ({name}'s face) is {width:.0f} x {height:.0f} pixels, too small to "
                         f"repair: a repair needs a face of at least {MIN_FACE_SIDE} pixels across. Enlarge the "
                         "image first, or repair the other faces.")
    crop, moved = crop_box(box, image.size)
    notes = []
    if moved:
        notes.append(f"{face_label(face)} ({name}) is near the image's edge: its crop was moved inside the image "
                     "(not cut), so the face is off its centre.")
    if crop[2] - crop[0] < CROP_CONTEXT * max(width, height) - 1:
        notes.append(f"{face_label(face)} ({name}) is large for the image: its crop is the image's short side "
                     f"({crop[2] - crop[0]} px), less context than {CROP_CONTEXT:g}x the face.")
    mask = face_mask(crop, box, image.size)
    side = working_side(customizer, crop[2] - crop[0])
    scale = side / (crop[2] - crop[0])
    inpaint = Inpainting(image=image.crop(crop).resize((side, side), Image.Resampling.LANCZOS),
                         mask=face_mask(crop, box, image.size, scale=scale), strength=strength)
    request = customizer.check_request(replace(base, width=side, height=side, inpaint=inpaint))
    return FaceRepair(ref, face, box, crop, moved, mask, request, conditioning=None), notes


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
            which = candidates_at(done, steps, per_call, job.candidates)
            progress(min(offset + done, total), total, f"face {number} of {len(job.faces)}, {which} of {job.candidates}")

        crops.append(job.customizer.generate_batch(repair.request, [repair.conditioning], job.seeds,
                                                   progress=step_done))
        offset += job.face_steps(repair)
    return crops


# -- phase 3: finish ------------------------------------------------------------------------------
def finish_repair(job: RepairJob, crops: Sequence[Sequence[Image.Image]]) -> RepairResult:
    """Face by face on a RepaintCanvas (a later repaint goes beneath the earlier kept ones): paste
    each candidate, analyse the whole image with every reference, judge it on the assignment, keep
    the best if the judge keeps it. `crops`: per face of job.faces, one image per seed, as
    `generate_repairs` returns."""
    image, report, outcomes = judge_repairs(job, crops)
    names = job.reference_names
    before = make_panel("image", "Before repair", job.image, job.before)
    after = make_panel("repaired", "After repair", image, report)
    first = job.faces[0].request
    settings = {"strength": first.inpaint.strength, "candidates": job.candidates, "seeds": job.seeds,
                "prompt": first.prompt, "crop_context": CROP_CONTEXT, "min_gain": MIN_GAIN,
                "others_margin": OTHERS_MARGIN,
                "repaired_references": [names[repair.reference] for repair in job.faces],
                **{key: value for key, value in generation_settings(first).items()
                   if key in ("steps", "guidance", "extra")},
                "denoising_steps": first.denoising_steps}
    return RepairResult(image=image, original=job.image, reference_names=list(names), before=before,
                        after=after, repairs=outcomes, settings=settings, backend=job.backend.name,
                        model=job.customizer.label, notes=_notes(job), backend_note=backend_note(job.backend),
                        alpha=job.alpha)


def judge_repairs(job: RepairJob, crops: Sequence[Sequence[Image.Image]]):
    """(the image with the kept repaints, its analysis, each face's RepairOutcome): face by face on a
    RepaintCanvas, each candidate pasted, analysed with every reference and judged; the best kept
    only if the judge keeps it. `crops` as `generate_repairs` returns them."""
    if len(crops) != len(job.faces) or any(len(found) != len(job.seeds) for found in crops):
        raise InputError(f"Expected {len(job.seeds)} repainted crop(s) for each of the {len(job.faces)} face(s).")
    canvas, report = RepaintCanvas(job.image), job.before
    outcomes = []
    for repair, found in zip(job.faces, crops):
        outcome = _repair_face(job, repair, found, canvas, report)
        if outcome.kept:
            best = outcome.candidates[0]
            canvas.keep(repair.crop_box, repair.mask, best.image)
            report = best.report
        outcomes.append(outcome)
    return canvas.image, report, outcomes


def _repair_face(job: RepairJob, repair: FaceRepair, found, canvas: RepaintCanvas, report) -> RepairOutcome:
    ref, name = repair.reference, job.reference_names[repair.reference]
    # the face as the image stands now (an earlier kept repair may have renumbered the faces)
    face_now = locate_face(report.faces, repair.face_box)
    analysed = []
    for seed, crop in zip(job.seeds, found):
        pasted = canvas.with_repaint(repair.crop_box, repair.mask, crop)
        after = analyze_identity(job.reference_faces, pasted, job.backend, labels=job.reference_names)
        verdict = judge(report, after, ref, face_now, locate_face(after.faces, repair.face_box))
        analysed.append(CandidateRepair(seed, verdict, after, pasted))
    ranked = sorted(analysed, key=lambda candidate: candidate.verdict.rank_key())  # stable: ties keep seed order
    outcome = RepairOutcome(ref, name, repair.face, repair.crop_box, repair.mask, ranked)
    best, verdict = ranked[0], ranked[0].verdict
    tried = f"best of {len(ranked)} candidates" if len(ranked) > 1 else "1 candidate"
    face = face_label(repair.face)
    if verdict.kept:
        outcome.kept_seed = best.seed
        outcome.message = (f"{face} repaired with {name} (seed {best.seed}, {tried}): similarity on the face "
                           f"{format_score(verdict.similarity_before)} -> {format_score(verdict.similarity_after)}, "
                           f"ID-Conf {format_score(verdict.id_conf_before)} -> {format_score(verdict.id_conf_after)}, "
                           f"matching score {format_score(verdict.score_before)} -> "
                           f"{format_score(verdict.score_after)}.")
    else:
        which = f"the best of {len(ranked)} candidates (seed {best.seed})" if len(ranked) > 1 else \
            f"the candidate (seed {best.seed})"
        outcome.message = f"{face} kept as it was: in {which}, {verdict.problem()}."
    return outcome


def _notes(job: RepairJob) -> list[str]:
    notes = list(job.notes)
    if job.customizer.is_test_model:
        notes.append(test_model_note(job.customizer, "repaints"))
    return notes


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
