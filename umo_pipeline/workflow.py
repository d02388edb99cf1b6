"""The path the app, the CLI and Python users share, in three phases:

    job = prepare(customizer, backend, request, references)   every check, before any GPU time
    images = generate_images(job)                             the only GPU part (what spaces.GPU wraps)
    result = finish(job, images)                              identity analysis, pictures, result

With `candidates=N` a request generates N images from the seeds seed, seed + 1, ... (every variant
from the same N seeds), analyses each and ranks them by UMO's matching reward (ties: mean ID-Sim,
then seed order); the result shows the best, and lists every candidate best first. With
`face_crops`, chosen references reach the customizer cropped around the face already found for them.

`generate_and_analyze` runs the three in a row; `analyze_image` gives any image (from any tool) the
same report and pictures; `save_outputs` writes the PNG (generation settings in its metadata), the
comparison sheet and the JSON report; `describe` is the result in words for every UI. Nothing here
imports gradio.
"""

from __future__ import annotations

import json
import random
import weakref
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from PIL import Image

from umo_pipeline import params
from umo_pipeline.errors import InputError
from umo_pipeline.matching import format_delta, format_score, report_number

#: progress(done, total, message) after every denoising step of every variant
WorkflowProgress = Callable[[int, int, str], None]


@dataclass
class Panel:
    """One analysed image: a generated variant ("umo", "base") or an uploaded image ("image")."""

    variant: str
    title: str
    image: Image.Image
    #: the identity analysis (with no references: the faces found, nothing to match them to)
    report: object
    #: None without references: there is nothing to put on its rows
    heatmap: Image.Image | None
    overlay: Image.Image


@dataclass
class WorkflowResult:
    """Everything a UI or the CLI shows or saves after one request."""

    backend: str
    reference_names: list[str]
    references: list[Image.Image]
    panels: list[Panel]
    sheet: Image.Image
    #: set for generations, None for the analysis of an uploaded image
    request: object | None = None
    model: str | None = None
    #: mean ID-Sim / ID-Conf of UMO minus base (compare mode with references), else None
    deltas: dict | None = None
    #: things the user should know (no references, faceless reference, ...), in plain words
    notes: list[str] = field(default_factory=list)
    #: which face model scored the numbers and how they compare with the papers' (describe_backend)
    backend_note: str = ""
    #: every candidate, best first (one for a single seed); `panels` are the best one's
    candidates: list[Candidate] = field(default_factory=list)

    def to_dict(self) -> dict:
        """The JSON report: the first panel's identity report fields at the top level (the same
        fields as `analyze --json`), plus the generation settings and, in compare mode, the base."""
        first = self.panels[0]
        data = first.report.to_dict()
        data["variant"] = first.variant
        data["reference_names"] = list(self.reference_names)
        data["notes"] = list(self.notes)
        if self.request is not None:
            data["model"] = self.model
            data["prompt"] = self.request.prompt
            data["seed"] = self.request.seed
            data["settings"] = generation_settings(self.request)
        if len(self.panels) > 1:
            data["comparison"] = {
                panel.variant: panel.report.to_dict() for panel in self.panels[1:]
            }
            data["comparison"]["delta"] = self.deltas
        if len(self.candidates) > 1:
            data["candidates"] = [candidate.to_dict() for candidate in self.candidates]
        return data


@dataclass
class Candidate:
    """One seed of a request: its analysed image per variant ("umo" first), and its rank (1 = best)."""

    rank: int
    seed: int
    panels: list[Panel]

    @property
    def report(self):
        """The report candidates are ranked by: UMO's (the first variant)."""
        return self.panels[0].report

    def to_dict(self) -> dict:
        report = self.report
        data = {"rank": self.rank, "seed": self.seed, "matching_score": report_number(report.matching_score),
                "mean_id_sim": report_number(report.mean_id_sim), "mean_id_conf": report_number(report.mean_id_conf),
                "summary": report.summary, "report": report.to_dict()}
        if len(self.panels) > 1:
            data["comparison"] = {panel.variant: panel.report.to_dict() for panel in self.panels[1:]}
        return data


def rank_candidates(reports: Sequence) -> list[int]:
    """Indices of `reports` best first: highest matching score (the reward UMO was trained with),
    ties broken by the higher mean ID-Sim, then by the order given (seed order). Reports without a
    score (no references, or no face in the image) come after those with one."""
    def key(index: int):
        report = reports[index]
        score, similarity = report.matching_score, report.mean_id_sim
        return (score is None, -(score or 0.0), similarity is None, -(similarity or 0.0), index)

    return sorted(range(len(reports)), key=key)


def candidate_seeds(seed: int, candidates: int) -> list[int]:
    """seed, seed + 1, ...: consecutive, so one seed reproduces the whole set; wraps past MAX_SEED."""
    return [(int(seed) + k) % (params.MAX_SEED + 1) for k in range(candidates)]


# -- phase 1: prepare ---------------------------------------------------------------------------
#: live customizers and face backends, by id: a Job crossing a process boundary (ZeroGPU pickles a
#: GPU function's arguments into a worker forked from this process) carries these keys instead of
#: gigabytes of weights, and the worker finds the same objects in its copy of this table. Entries are
#: made when a Job is built: spaces forks a new worker first and pickles the arguments after, so an
#: entry made while pickling would be missing in that worker. Weak: a Job does not keep models alive.
_SHARED: weakref.WeakValueDictionary[int, object] = weakref.WeakValueDictionary()


@dataclass
class Job:
    """One request, checked and ready for the GPU: nothing in it can be refused any more."""

    customizer: object
    backend: object
    request: object
    references: list[Image.Image]
    reference_names: list[str]
    #: ("umo",) or ("umo", "base"): every variant from the same seed, hence the same noise
    variants: tuple[str, ...]
    #: the face each reference contributes (analysed once, before generation)
    reference_faces: list
    #: images per variant, from candidate_seeds(request.seed, candidates)
    candidates: int = 1
    #: what the user should know about the inputs (a face crop that fell back to the whole image, ...)
    notes: list[str] = field(default_factory=list)

    def __post_init__(self):
        for shared in (self.customizer, self.backend):
            _SHARED[id(shared)] = shared

    def __getstate__(self):
        state = dict(self.__dict__)
        for name in ("customizer", "backend"):
            state[name] = id(state[name])
        return state

    def __setstate__(self, state):
        for name in ("customizer", "backend"):
            try:
                state[name] = _SHARED[state[name]]
            except KeyError:
                raise RuntimeError(f"This job's {name} is not loaded in this process: a Job can only "
                                   "go to a process forked from the one that prepared it.") from None
        self.__dict__.update(state)

    @property
    def compare(self) -> bool:
        return len(self.variants) > 1

    @property
    def seeds(self) -> list[int]:
        return candidate_seeds(self.request.seed, self.candidates)

    @property
    def steps_per_variant(self) -> int:
        """Denoising steps of one variant's images (one pipeline call per batch of candidates)."""
        return self.request.steps * self.customizer.batch_count(self.candidates)

    @property
    def total_steps(self) -> int:
        return self.steps_per_variant * len(self.variants)


def prepare(customizer, backend, request, references: Sequence[Image.Image], *,
            reference_names: Sequence[str] | None = None, compare: bool = False, candidates: int = 1,
            face_crops: Sequence[bool] | None = None, gpu_seconds_limit: float | None = None) -> Job:
    """Every check a request needs, before any GPU time: settings, references, variants, candidates,
    and the face backend with each reference's face. `face_crops[i]`: give the customizer reference i
    cropped around that face (the whole image, with a note, when it has none). `gpu_seconds_limit`:
    the most GPU time one call may take (ZeroGPU may abort a call past its reserved duration), checked
    against the customizer's estimate. Raises a UMOError in plain words."""
    from umo_pipeline.analysis import analyze_reference, resolve_backend

    backend = resolve_backend(backend)
    request = customizer.check_request(request)
    candidates = params.CANDIDATES.check(candidates)
    references = customizer.check_references(references)
    names = list(reference_names or default_reference_names(len(references)))
    if len(names) != len(references):
        raise InputError(f"{len(names)} names given for {len(references)} references.")
    crops = [bool(crop) for crop in face_crops] if face_crops is not None else [False] * len(references)
    if len(crops) != len(references):
        raise InputError(f"{len(crops)} face-crop choices given for {len(references)} references.")
    if compare and "base" not in customizer.variants:
        raise InputError(f"{customizer.name} has no base model to compare with.")
    variants = ("umo", "base") if compare else ("umo",)
    if gpu_seconds_limit is not None:
        estimate = estimated_gpu_seconds(customizer, request, len(references), compare, candidates)
        if estimate > gpu_seconds_limit:
            raise InputError(
                f"This generation would need about {estimate:.0f} s on the GPU, more than the "
                f"{gpu_seconds_limit:.0f} s one request may use here. Fewer candidates or steps, a smaller "
                f"size{' or Compare off' if compare else ''} will fit.")
    # the faces of the whole uploads: the analysis compares with these, crop or not, and a face
    # found for the slot's preview comes from the cache instead of a second detection
    faces = [analyze_reference(image, backend, name=name) for image, name in zip(references, names)]
    inputs, notes = [], []
    for image, face, name, crop in zip(references, faces, names, crops):
        used, warning = reference_input(image, face, crop, customizer.face_crop_margin, name)
        inputs.append(used)
        notes += [warning] if warning else []
    return Job(customizer, backend, request, inputs, names, variants, faces, candidates, notes)


def face_crop_box(bbox, image_size: tuple[int, int], margin: float) -> tuple[int, int, int, int]:
    """The square (left, top, right, bottom) around a face box, `margin` x its long side added on each
    side; moved inside the image where it would stick out, and no larger than the image's short side."""
    x0, y0, x1, y1 = bbox
    width, height = image_size
    side = min(max(x1 - x0, y1 - y0) * (1 + 2 * margin), width, height)
    left = min(max((x0 + x1) / 2 - side / 2, 0), width - side)
    top = min(max((y0 + y1) / 2 - side / 2, 0), height - side)
    side = max(1, int(side))
    left, top = int(round(left)), int(round(top))
    return left, top, min(width, left + side), min(height, top + side)


def reference_input(image: Image.Image, reference, face_crop: bool, margin: float,
                    name: str = "This reference") -> tuple[Image.Image, str | None]:
    """(what the customizer receives for this reference, a warning or None): the face crop when asked
    for and a face was found, else the whole image (with a warning when a crop was asked for)."""
    if not face_crop:
        return image, None
    if reference.face is None:
        return image, f"{name}: no face found, so the whole image was used instead of a face crop."
    return image.crop(face_crop_box(reference.face.bbox, image.size, margin)), None


def pick_seed(seed, randomize: bool) -> int:
    """The seed to use: a fresh random one when asked (or when none is given), else `seed`."""
    if randomize or seed is None or seed == "":
        return random.randint(0, params.MAX_SEED)
    return params.SEED.check(seed)


#: the most seconds one generation reserves on ZeroGPU; `prepare` refuses a job estimated above it
#: (ZeroGPU may abort a call that overruns its reservation, and the GPU time is then spent for nothing)
GPU_SECONDS_CAP = 300


def estimated_gpu_seconds(customizer, request, n_references: int, compare: bool, candidates: int = 1) -> float:
    """The customizer's estimate of a job's GPU time.

    Candidates count as whole images: a batch saves the text and reference encodings, but at these
    sizes a GPU is busy with one image's tokens already, so N images cost about N times the work.
    """
    n_images = (2 if compare else 1) * candidates
    return customizer.estimate_seconds(request, n_references, n_images)


def gpu_seconds(customizer, request, n_references: int, compare: bool, candidates: int = 1) -> int:
    """Seconds to reserve on a shared GPU (ZeroGPU): the estimate plus a margin, within the cap."""
    estimate = estimated_gpu_seconds(customizer, request, n_references, compare, candidates)
    return int(min(GPU_SECONDS_CAP, max(20, 1.25 * estimate + 5)))


def job_gpu_seconds(job: Job, *_ignored) -> int:
    return gpu_seconds(job.customizer, job.request, len(job.references), job.compare, job.candidates)


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

        def step_done(done: int, steps: int, offset: int = index * per_variant, title: str = title) -> None:
            if progress is not None:
                progress(min(offset + done, total), total, f"{title}: step {done}/{steps}")

        images[variant] = customizer.generate_batch(request, job.references, job.seeds, variant=variant,
                                                    progress=step_done)
    return images


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
    order = rank_candidates([panels[0].report for panels in analysed])
    candidates = [Candidate(rank, seeds[k], analysed[k]) for rank, k in enumerate(order, start=1)]
    best = candidates[0]
    result = WorkflowResult(
        backend=job.backend.name, reference_names=list(job.reference_names), references=list(job.references),
        panels=best.panels, sheet=None, request=replace(job.request, seed=best.seed), model=customizer.label,
        deltas=_deltas(best.panels), notes=_notes(customizer, job.references) + list(job.notes),
        backend_note=_backend_note(job.backend), candidates=candidates,
    )
    result.sheet = _sheet(result, title=_sheet_title(result.request, customizer, result.deltas, len(candidates)))
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
) -> WorkflowResult:
    """prepare -> generate_images -> finish: UMO (and the base model from the same seed in compare
    mode), every output analysed. candidates=N: N seeds from request.seed on, the best first (see
    `best_of`); face_crops: per reference, whether the customizer gets it cropped around the face."""
    job = prepare(customizer, backend, request, references, reference_names=reference_names, compare=compare,
                  candidates=candidates, face_crops=face_crops)
    return finish(job, generate_images(job, progress))


def best_of(customizer, backend, request, references: Sequence[Image.Image], candidates: int = 4,
            **options) -> WorkflowResult:
    """The Python helper for "try a few seeds and keep the one that keeps the identities best":
    `candidates` images from request.seed, request.seed + 1, ..., ranked by UMO's matching score.
    `result.panels[0].image` is the best, `result.candidates` lists them all best first (seed, rank,
    report). Other options as for `generate_and_analyze`."""
    return generate_and_analyze(customizer, backend, request, references, candidates=candidates, **options)


#: the labelled-faces picture is for the page: wider than this it only costs encoding time
OVERLAY_MAX_WIDTH = 1280


def analyze_panels(backend, references, reference_names, images: dict[str, Image.Image], titles: dict[str, str]):
    """One Panel per image: identity report, heatmap (only with references) and labelled boxes."""
    from umo_pipeline.analysis import analyze_identity
    from umo_pipeline.render import render_heatmap, render_overlay

    panels = []
    for variant, image in images.items():
        report = analyze_identity(references, image, backend, labels=list(reference_names))
        heatmap = render_heatmap(report, title=titles[variant]) if references else None
        overlay = render_overlay(image, report, width=min(image.width, OVERLAY_MAX_WIDTH))
        panels.append(Panel(variant, titles[variant], image, report, heatmap, overlay))
    return panels


def analyze_image(
    backend,
    references: Sequence[Image.Image],
    image: Image.Image,
    *,
    reference_names: Sequence[str] | None = None,
) -> WorkflowResult:
    """References + any image (from any tool) -> the same report and pictures as a generation."""
    from umo_pipeline.analysis import resolve_backend

    backend = resolve_backend(backend)
    if not references:
        raise InputError("Add at least one reference photo: the analysis compares the image with them.")
    names = list(reference_names or default_reference_names(len(references)))
    panels = analyze_panels(backend, references, names, {"image": image}, {"image": "Analysed image"})
    result = WorkflowResult(
        backend=backend.name, reference_names=names, references=list(references), panels=panels, sheet=None,
        backend_note=_backend_note(backend),
    )
    result.sheet = _sheet(result, title="Identity analysis")
    return result


def default_reference_names(count: int) -> list[str]:
    from umo_pipeline.analysis import reference_label

    return [reference_label(index) for index in range(count)]


def load_reference_image(source, name: str) -> Image.Image:
    """An upright RGB reference photo; InputError naming the slot when it cannot be used."""
    from umo_pipeline.images import load_image

    return load_image(source, name=name)


def load_output_image(source) -> Image.Image:
    from umo_pipeline.images import load_image

    return load_image(source, name="Image to analyse")


def load_reference(source, name: str, backend):
    """(upright RGB image, ReferenceFace): the face this reference will contribute, for previews."""
    from umo_pipeline.analysis import analyze_reference

    image = load_reference_image(source, name)
    return image, analyze_reference(image, backend, name=name)


#: previews show the face with this much of its size as margin on each side
PREVIEW_MARGIN = 0.45
PREVIEW_SIDE = 256


def reference_preview(image: Image.Image, reference, face_crop_margin: float | None = None) -> Image.Image:
    """The face a reference contributes, cropped with some context and outlined; the whole photo
    (small) when no face was found, so the user sees which picture the warning is about. With
    face_crop_margin (the slot's "Use face crop"): the face crop the customizer will receive."""
    from PIL import ImageDraw

    if face_crop_margin is not None and reference.face is not None:
        crop, _ = reference_input(image, reference, True, face_crop_margin)
        return crop.resize(_preview_size(crop))
    if reference.face is None:
        preview = image.copy()
        preview.thumbnail((PREVIEW_SIDE, PREVIEW_SIDE))
        return preview
    x0, y0, x1, y1 = reference.face.bbox
    margin = PREVIEW_MARGIN * max(x1 - x0, y1 - y0)
    box = (max(0, int(x0 - margin)), max(0, int(y0 - margin)),
           min(image.width, int(x1 + margin)), min(image.height, int(y1 + margin)))
    crop = image.crop(box)
    scale = PREVIEW_SIDE / max(crop.size)
    crop = crop.resize(_preview_size(crop))
    outline = [(x0 - box[0]) * scale, (y0 - box[1]) * scale, (x1 - box[0]) * scale, (y1 - box[1]) * scale]
    ImageDraw.Draw(crop).rectangle(outline, outline=(46, 204, 113), width=max(2, PREVIEW_SIDE // 80))
    return crop


def _preview_size(picture: Image.Image) -> tuple[int, int]:
    """The size that scales `picture` to PREVIEW_SIDE on its long side."""
    scale = PREVIEW_SIDE / max(picture.size)
    return max(1, round(picture.width * scale)), max(1, round(picture.height * scale))


def _notes(customizer, references) -> list[str]:
    notes = []
    if not references:
        notes.append("No references: the image was generated from the prompt alone. "
                     "The identity heatmap and metrics need at least one reference photo.")
    if customizer.is_test_model:
        notes.append(f"{customizer.label}: a tiny test model with random weights; its images are noise.")
    return notes


def _deltas(panels: list[Panel]) -> dict | None:
    by_variant = {panel.variant: panel.report for panel in panels}
    umo, base = by_variant.get("umo"), by_variant.get("base")
    if umo is None or base is None or not umo.labels:
        return None
    return {
        metric: _difference(_mean(umo, metric), _mean(base, metric)) for metric in ("id_sim", "id_conf")
    }


def _mean(report, metric: str) -> float | None:
    return report.mean_id_sim if metric == "id_sim" else report.mean_id_conf


def _difference(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a - b


def describe(result: WorkflowResult) -> list[tuple[str | None, str]]:
    """The result in words, as (label or None, text) lines, for the page, the CLI and logs alike."""
    lines: list[tuple[str | None, str]] = []
    request = result.request
    if request is not None:
        lines.append((f"Seed {request.seed}", f"{request.width}x{request.height}, {request.steps} steps, "
                                              f"guidance {request.guidance:g}"))
    for panel in result.panels:
        summary = panel.report.summary if panel.report is not None else "No identity analysis (no references)."
        lines.append((panel.title if len(result.panels) > 1 or request is not None else None, summary))
    if len(result.candidates) > 1:
        lines.append((f"Best of {len(result.candidates)} candidates", _candidates_line(result.candidates)))
    if result.deltas:
        by_variant = {panel.variant: panel.report for panel in result.panels}
        umo, base = by_variant["umo"], by_variant["base"]
        lines.append(("UMO minus base (same seed)", ", ".join(
            f"{label} {format_delta(_mean(umo, key), _mean(base, key))}"
            for key, label in (("id_sim", "ID-Sim"), ("id_conf", "ID-Conf")))))
    lines += [("Note", note) for note in result.notes]
    backend = result.backend_note or f"{result.backend}."
    lines.append(("Face backend", f"{backend} ID-Sim and ID-Conf are x100; higher is better."))
    return lines


def _backend_note(backend) -> str:
    from umo_pipeline.faces import describe_backend

    note = describe_backend(backend).removeprefix("Face backend: ")
    return note if note.endswith(".") else note + "."


def candidate_caption(candidate: Candidate) -> str:
    """"#1 seed 42: score 12.3, ID-Sim 45.6" (x100, like every figure on the page)."""
    report = candidate.report
    if report.matching_score is None:
        return f"#{candidate.rank} seed {candidate.seed}: no score ({'no face found' if report.labels else 'no references'})"
    return (f"#{candidate.rank} seed {candidate.seed}: score {format_score(report.matching_score)}, "
            f"ID-Sim {format_score(report.mean_id_sim)}")


def _candidates_line(candidates: list[Candidate]) -> str:
    return ("ranked by UMO's matching score (the reward it was trained with; ties: mean ID-Sim): "
            + "; ".join(candidate_caption(candidate) for candidate in candidates))


def _sheet_title(request, customizer, deltas: dict | None, n_candidates: int = 1) -> str:
    # the sheet draws its title on one line; one panel is ~36 characters of it wide
    prompt = request.prompt if len(request.prompt) <= 40 else request.prompt[:37] + "..."
    title = f'"{prompt}"  seed {request.seed}  {customizer.name}'
    if n_candidates > 1:
        title = f'"{prompt}"  best of {n_candidates} seeds  {customizer.name}'
    if deltas and deltas["id_sim"] is not None:
        title += f"  |  UMO vs base: ID-Sim {100 * deltas['id_sim']:+.1f}"
    return title


def _sheet(result: WorkflowResult, title: str) -> Image.Image:
    """One column per panel; with several candidates, every candidate's columns best first (in
    compare mode UMO and the base model of the same seed side by side)."""
    from umo_pipeline.render import render_comparison_sheet

    if len(result.candidates) > 1:
        panels = [(f"#{candidate.rank} seed {candidate.seed}: {panel.title}", panel.image, panel.report)
                  for candidate in result.candidates for panel in candidate.panels]
    else:
        panels = [(panel.title, panel.image, panel.report) for panel in result.panels]
    return render_comparison_sheet(result.references, panels, title)


def generation_settings(request) -> dict:
    settings = asdict(request)
    settings.pop("prompt")
    return settings


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
):
    """For every prompt and seed: base and UMO from the same noise, analysed and saved (comparison
    sheet, both PNGs, JSON) under `folder` as prompt<N>_seed<S>. Yields (result, saved) as each is done."""
    if not prompts or not seeds:
        raise InputError("Give at least one prompt and one seed to compare.")
    for number, prompt in enumerate(prompts, 1):
        for seed in seeds:
            request = replace(settings, prompt=prompt, seed=int(seed))
            result = generate_and_analyze(customizer, backend, request, references, compare=True,
                                          reference_names=reference_names, progress=progress)
            yield result, save_outputs(result, folder, stem=f"prompt{number}_seed{seed}")


@dataclass
class SavedOutputs:
    """Paths of the files written for one result, in the order a UI should offer them."""

    images: list[Path]
    sheet: Path
    report: Path

    @property
    def all(self) -> list[Path]:
        return [*self.images, self.sheet, self.report]


#: zlib level for the PNGs written per request (lossless at any level): saving the 29-face Solvay
#: analysis took 2.3 s at Pillow's default level 6 and 0.65 s at level 1 (bench/analysis.py, 2 cores)
PNG_COMPRESS_LEVEL = 1


def save_outputs(result: WorkflowResult, folder: str | Path, stem: str | None = None) -> SavedOutputs:
    """Full-resolution PNG per panel (generation settings in the PNG text chunks), the comparison
    sheet PNG and the JSON report, written into `folder` (created if needed)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if stem is None:
        stem = f"seed{result.request.seed}" if result.request is not None else "analysis"
    images = []
    if len(result.candidates) > 1:
        # every candidate, best first, named by its own seed
        for candidate in result.candidates:
            for panel in candidate.panels:
                path = folder / f"{panel.variant}_{stem}_rank{candidate.rank}_seed{candidate.seed}.png"
                panel.image.save(path, format="PNG", pnginfo=_png_metadata(result, panel, candidate),
                                 compress_level=PNG_COMPRESS_LEVEL)
                images.append(path)
    else:
        for panel in result.panels:
            if panel.variant == "image":
                continue  # an analysed upload: the person has that picture already
            path = folder / f"{panel.variant}_{stem}.png"
            panel.image.save(path, format="PNG", pnginfo=_png_metadata(result, panel), compress_level=PNG_COMPRESS_LEVEL)
            images.append(path)
    sheet = folder / f"comparison_{stem}.png"
    result.sheet.save(sheet, format="PNG", compress_level=PNG_COMPRESS_LEVEL)
    report = folder / f"report_{stem}.json"
    report.write_text(json.dumps(result.to_dict(), indent=2))
    return SavedOutputs(images=images, sheet=sheet, report=report)


def _png_metadata(result: WorkflowResult, panel: Panel, candidate: Candidate | None = None):
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    request = result.request
    if request is not None:
        # a candidate's settings are the request's with its own seed: generating them again with one
        # candidate gives this image
        request = replace(request, seed=candidate.seed) if candidate is not None else request
        info.add_text("prompt", request.prompt)
        info.add_text("seed", str(request.seed))
        info.add_text("settings", json.dumps(generation_settings(request)))
        info.add_text("model", result.model or "")
    if candidate is not None:
        info.add_text("candidate", f"{candidate.rank} of {len(result.candidates)}")
        if candidate.report.matching_score is not None:
            info.add_text("matching_score", f"{candidate.report.matching_score:.4f}")
    info.add_text("variant", panel.title)
    info.add_text("software", "umo_pipeline")
    return info


def read_png_metadata(path: str | Path) -> dict:
    """The text chunks of a PNG written by `save_outputs` (prompt, seed, settings, model, variant)."""
    with Image.open(path) as image:
        return dict(image.text)
