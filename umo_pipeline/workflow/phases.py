"""The three phases of a generation (prepare -> generate_images -> finish), the analysis of any image
into the same result, and the runs that chain them (generate_and_analyze, run_comparisons)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from PIL import Image

from umo_pipeline import params
from umo_pipeline.analysis import analyze_identity, analyze_reference, resolve_backend
from umo_pipeline.errors import InputError
from umo_pipeline.render import render_comparison_sheet, render_heatmap, render_overlay
from umo_pipeline.workflow import checks
from umo_pipeline.workflow.budget import check_gpu_budget
from umo_pipeline.workflow.candidates import Candidate, Panel, WorkflowResult, deltas, rank_candidates
from umo_pipeline.workflow.files import save_outputs
from umo_pipeline.workflow.inputs import reference_input
from umo_pipeline.workflow.job import Job, WorkflowProgress, candidates_at
from umo_pipeline.workflow.text import backend_note, generation_notes, sheet_title

#: the labelled-faces picture is for the page: wider than this it only costs encoding time
OVERLAY_MAX_WIDTH = 1280


# -- phase 1: prepare ---------------------------------------------------------------------------
def prepare(customizer, backend, request, references: Sequence[Image.Image], *,
            reference_names: Sequence[str] | None = None, compare: bool = False, candidates: int = 1,
            face_crops: Sequence[bool] | None = None, gpu_seconds_limit: float | None = None,
            condition_on: Sequence[int] | None = None, place: bool | None = None) -> Job:
    """Every check a request needs, before any GPU time: settings, references, variants, candidates,
    and the face backend with each reference's face. `face_crops[i]`: give the customizer reference i
    cropped around that face (the whole image, with a note, when it has none). `gpu_seconds_limit`:
    the most GPU time one call may take (ZeroGPU may abort a call past its reserved duration), checked
    against the customizer's estimate. Raises a UMOError in plain words.

    Up to params.MAX_PEOPLE references: the model is conditioned on `condition_on` (indices; default
    the first customizer.max_references), and with `place` every reference whose assigned face is
    not matched is then repaired onto it (workflow.placement; None: on when the model does not see
    everyone)."""
    backend = resolve_backend(backend)
    request = customizer.check_request(request)
    candidates = params.CANDIDATES.check(candidates)
    references = checks.people(references, customizer)
    names = checks.reference_names(reference_names, len(references))
    conditioned = checks.conditioned(condition_on, names, customizer.max_references)
    customizer.check_references([references[index] for index in conditioned])
    unseen = [names[index] for index in range(len(references)) if index not in conditioned]
    place = bool(unseen) if place is None else bool(place)
    crops = checks.face_crop_choices(face_crops, len(references))
    variants = checks.variants(customizer, compare)
    if gpu_seconds_limit is not None:
        check_gpu_budget(customizer, request, len(conditioned), compare, candidates, gpu_seconds_limit)
    # the faces of the whole uploads: the analysis compares with these, crop or not, and a face
    # found for the slot's preview comes from the cache instead of a second detection
    faces = [analyze_reference(image, backend, name=name) for image, name in zip(references, names)]
    inputs, notes = [], []
    for image, face, name, crop in zip(references, faces, names, crops):
        used, warning = reference_input(image, face, crop, customizer.face_crop_margin, name)
        inputs.append(used)
        notes += [warning] if warning else []
    if unseen and not place:
        notes.append(f"{', '.join(unseen)}: not shown to the model and not placed (placing is off), so only scored.")
    return Job(customizer, backend, request, inputs, names, variants, faces, candidates, notes,
               conditioned=conditioned, place=place, gpu_seconds_limit=gpu_seconds_limit)


# -- phase 2: generate (the GPU part) -------------------------------------------------------------
def generate_images(job: Job, progress: WorkflowProgress | None = None) -> dict[str, list[Image.Image]]:
    """variant -> one generated RGB image per seed of `job.seeds`, every variant from the same seeds
    (hence the same noise); the customizer batches the seeds where it can.

    Returns CPU objects only (PIL images), as a ZeroGPU worker must. Failures arrive as UMOErrors
    in plain words (the customizer translates them and releases GPU memory).
    """
    request, customizer = job.request, job.customizer
    per_variant, total = job.steps_per_variant, job.total_steps
    images: dict[str, list[Image.Image]] = {}
    for index, variant in enumerate(job.variants):
        title = customizer.variant_title(variant)
        if job.candidates > 1:
            title += f" ({job.candidates} candidates)"

        # one count, the whole job's steps (a display adds its own "31/120"); the message only says
        # what is being made, so no second count ("step 31/60" of this variant) contradicts it
        def step_done(done: int, steps: int, offset: int = index * per_variant, title: str = title) -> None:
            if progress is not None:
                message = _composing(job, done) if job.place else title
                progress(min(offset + done, total), total, message)

        images[variant] = customizer.generate_batch(request, job.model_references, job.seeds, variant=variant,
                                                    progress=step_done)
    return images


def _composing(job: Job, done: int) -> str:
    """A placing job's message while its scene is generated: "Composing (candidate 2 of 3)"."""
    if job.candidates == 1:
        return "Composing"
    which = candidates_at(done, job.request.denoising_steps, max(1, job.customizer.max_batch), job.candidates)
    return f"Composing ({which} of {job.candidates})"


# -- phase 3: finish ------------------------------------------------------------------------------
def finish(job: Job, images: dict) -> WorkflowResult:
    """Identity analysis and pictures of every generated image, candidates ranked best first, with the
    notes and UMO - base deltas (of the best candidate). `images`: variant -> list of images in seed
    order, as `generate_images` returns (or one image per variant for a single seed)."""
    customizer = job.customizer
    per_variant = {variant: [value] if isinstance(value, Image.Image) else list(value)
                   for variant, value in images.items()}
    seeds = job.seeds
    if any(len(found) != len(seeds) for found in per_variant.values()):
        raise InputError(f"Expected {len(seeds)} image(s) per variant for seeds {seeds}.")
    titles = {variant: customizer.variant_title(variant) for variant in per_variant}
    analysed = [analyze_panels(job.backend, job.reference_faces, job.reference_names,
                               {variant: found[k] for variant, found in per_variant.items()}, titles)
                for k in range(len(seeds))]
    from umo_pipeline.workflow.placement import people_with_faces

    order = rank_candidates([panels[0].report for panels in analysed], people_with_faces(job.reference_faces))
    candidates = [Candidate(rank, seeds[k], analysed[k]) for rank, k in enumerate(order, start=1)]
    best = candidates[0]
    result = WorkflowResult(
        backend=job.backend.name, reference_names=list(job.reference_names), references=list(job.references),
        panels=best.panels, sheet=None, request=replace(job.request, seed=best.seed), model=customizer.label,
        deltas=deltas(best.panels), notes=generation_notes(customizer, job.references) + list(job.notes),
        backend_note=backend_note(job.backend), candidates=candidates,
        conditioned=None if job.conditioned is None else [job.reference_names[index] for index in job.conditioned],
    )
    result.sheet = result_sheet(result, title=sheet_title(result.request, customizer, result.deltas, len(candidates)))
    return result


def generate_and_analyze(
    customizer,
    backend,
    request,
    references: Sequence[Image.Image],
    *,
    reference_names: Sequence[str] | None = None,
    compare: bool = False,
    candidates: int = 1,
    face_crops: Sequence[bool] | None = None,
    progress: WorkflowProgress | None = None,
    condition_on: Sequence[int] | None = None,
    place: bool | None = None,
) -> WorkflowResult:
    """prepare -> generate_images -> finish (-> placement.place_people when placing): UMO (and the
    base model from the same seed in compare mode), every output analysed. candidates=N: N seeds
    from request.seed on, the best first (`result.panels[0].image`; `result.candidates` lists them
    all, best first, with seed, rank and report); face_crops: per reference, whether the customizer
    gets it cropped around the face. Up to params.MAX_PEOPLE references: the model sees
    `condition_on` (default: as many as it takes, first first), and `place` (default: on when it
    does not see everyone) repairs every reference whose assigned face is not matched onto it
    (`result.placement` says what became of each)."""
    job = prepare(customizer, backend, request, references, reference_names=reference_names, compare=compare,
                  candidates=candidates, face_crops=face_crops, condition_on=condition_on, place=place)
    result = finish(job, generate_images(job, progress))
    if job.place:
        from umo_pipeline.workflow.placement import place_people

        result = place_people(job, result, progress=progress)
    return result


def analyze_panels(backend, references, reference_names, images: dict[str, Image.Image], titles: dict[str, str]):
    """One Panel per image: identity report, heatmap (only with references) and labelled boxes."""
    panels = []
    for variant, image in images.items():
        report = analyze_identity(references, image, backend, labels=list(reference_names))
        panels.append(make_panel(variant, titles[variant], image, report, heatmap=bool(references)))
    return panels


def make_panel(variant: str, title: str, image: Image.Image, report, heatmap: bool = True) -> Panel:
    """An analysed image with its pictures: the heatmap (when asked) and the labelled boxes."""
    return Panel(variant, title, image, report, render_heatmap(report, title=title) if heatmap else None,
                 render_overlay(image, report, width=min(image.width, OVERLAY_MAX_WIDTH)))


def analyze_image(
    backend,
    references: Sequence[Image.Image],
    image: Image.Image,
    *,
    reference_names: Sequence[str] | None = None,
) -> WorkflowResult:
    """References + any image (from any tool) -> the same report and pictures as a generation."""
    backend = resolve_backend(backend)
    if not references:
        raise InputError("Add at least one reference photo: the analysis compares the image with them.")
    names = list(reference_names or checks.default_reference_names(len(references)))
    panels = analyze_panels(backend, references, names, {"image": image}, {"image": "Analysed image"})
    result = WorkflowResult(
        backend=backend.name, reference_names=names, references=list(references), panels=panels, sheet=None,
        backend_note=backend_note(backend),
    )
    result.sheet = result_sheet(result, title="Identity analysis")
    return result


def result_sheet(result: WorkflowResult, title: str) -> Image.Image:
    """One column per panel; with several candidates, every candidate's columns best first (in
    compare mode UMO and the base model of the same seed side by side); with people placed, the
    placed image first and the composed scene beside it."""
    if len(result.candidates) > 1:
        panels = [(f"#{candidate.rank} seed {candidate.seed}: {panel.title}", panel.image, panel.report)
                  for candidate in result.candidates for panel in candidate.panels]
    else:
        panels = [(panel.title, panel.image, panel.report) for panel in result.panels]
    placement = result.placement
    if placement is not None and result.panels[0] is not placement.composed:
        placed = result.panels[0]
        panels = [(placed.title, placed.image, placed.report),
                  ("Composed, before placing", placement.composed.image, placement.composed.report), *panels[1:]]
    return render_comparison_sheet(result.references, panels, title)


def run_comparisons(
    customizer,
    backend,
    references: Sequence[Image.Image],
    prompts: Sequence[str],
    seeds: Sequence[int],
    settings,
    folder: str | Path,
    *,
    reference_names: Sequence[str] | None = None,
    progress: WorkflowProgress | None = None,
    condition_on: Sequence[int] | None = None,
    place: bool | None = None,
):
    """For every prompt and seed: base and UMO from the same noise, analysed and saved (comparison
    sheet, both PNGs, JSON) under `folder` as prompt<N>_seed<S>. Yields (result, saved) as each is done.
    `condition_on` and `place` as for generate_and_analyze (a group past the model's limit)."""
    if not prompts or not seeds:
        raise InputError("Give at least one prompt and one seed to compare.")
    for number, prompt in enumerate(prompts, 1):
        for seed in seeds:
            request = replace(settings, prompt=prompt, seed=int(seed))
            result = generate_and_analyze(customizer, backend, request, references, compare=True,
                                          reference_names=reference_names, progress=progress,
                                          condition_on=condition_on, place=place)
            yield result, save_outputs(result, folder, stem=f"prompt{number}_seed{seed}")
