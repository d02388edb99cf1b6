"""The path the app, the CLI and Python users share, in three phases:

    job = prepare(customizer, backend, request, references)   every check, before any GPU time
    images = generate_images(job)                             the only GPU part (what spaces.GPU wraps)
    result = finish(job, images)                              identity analysis, pictures, result

`generate_and_analyze` runs the three in a row; `analyze_image` gives any image (from any tool) the
same report and pictures; `save_outputs` writes the PNG (generation settings in its metadata), the
comparison sheet and the JSON report; `describe` is the result in words for every UI. Nothing here
imports gradio.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from PIL import Image

from umo_pipeline import params
from umo_pipeline.errors import InputError
from umo_pipeline.matching import format_delta

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
        return data


# -- phase 1: prepare ---------------------------------------------------------------------------
#: live customizers and face backends, by id: a Job crossing a process boundary (ZeroGPU pickles a
#: GPU function's arguments into a worker forked from this process) carries these keys instead of
#: gigabytes of weights, and the worker finds the same objects in its copy of this table
_SHARED: dict[int, object] = {}


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

    def __getstate__(self):
        state = dict(self.__dict__)
        for name in ("customizer", "backend"):
            _SHARED[id(state[name])] = state[name]
            state[name] = id(state[name])
        return state

    def __setstate__(self, state):
        for name in ("customizer", "backend"):
            state[name] = _SHARED[state[name]]
        self.__dict__.update(state)

    @property
    def compare(self) -> bool:
        return len(self.variants) > 1


def prepare(customizer, backend, request, references: Sequence[Image.Image], *,
            reference_names: Sequence[str] | None = None, compare: bool = False) -> Job:
    """Every check a request needs, before any GPU time: settings, references, variants, and the face
    backend with each reference's face. Raises a UMOError in plain words."""
    from umo_pipeline.analysis import analyze_reference, resolve_backend

    backend = resolve_backend(backend)
    request = customizer.check_request(request)
    references = customizer.check_references(references)
    names = list(reference_names or default_reference_names(len(references)))
    if len(names) != len(references):
        raise InputError(f"{len(names)} names given for {len(references)} references.")
    if compare and "base" not in customizer.variants:
        raise InputError(f"{customizer.name} has no base model to compare with.")
    variants = ("umo", "base") if compare else ("umo",)
    faces = [analyze_reference(image, backend, name=name) for image, name in zip(references, names)]
    return Job(customizer, backend, request, references, names, variants, faces)


def pick_seed(seed, randomize: bool) -> int:
    """The seed to use: a fresh random one when asked (or when none is given), else `seed`."""
    if randomize or seed is None or seed == "":
        return random.randint(0, params.MAX_SEED)
    return params.SEED.check(seed)


def gpu_seconds(customizer, request, n_references: int, compare: bool) -> int:
    """Seconds to reserve on a shared GPU (ZeroGPU): the customizer's estimate plus a margin."""
    n_variants = 2 if compare else 1
    estimate = customizer.estimate_seconds(request, n_references, n_variants)
    return int(min(300, max(20, 1.25 * estimate + 5)))


def job_gpu_seconds(job: Job, *_ignored) -> int:
    return gpu_seconds(job.customizer, job.request, len(job.references), job.compare)


# -- phase 2: generate (the GPU part) -------------------------------------------------------------
def generate_images(job: Job, progress: WorkflowProgress | None = None) -> dict[str, Image.Image]:
    """variant -> generated RGB image, every variant from the same seed (hence the same noise).

    Returns CPU objects only (PIL images), as a ZeroGPU worker must. Failures arrive as UMOErrors
    in plain words (the customizer translates them and releases GPU memory).
    """
    request, customizer = job.request, job.customizer
    total = request.steps * len(job.variants)
    images: dict[str, Image.Image] = {}
    for index, variant in enumerate(job.variants):
        title = customizer.variant_title(variant)

        def step_done(done: int, steps: int, offset: int = index * request.steps, title: str = title) -> None:
            if progress is not None:
                progress(offset + done, total, f"{title}: step {done}/{steps}")

        images[variant] = customizer.generate(request, job.references, variant=variant, progress=step_done)
    return images


# -- phase 3: finish ------------------------------------------------------------------------------
def finish(job: Job, images: dict[str, Image.Image]) -> WorkflowResult:
    """Identity analysis and pictures of every generated image, with the notes and UMO - base deltas."""
    customizer = job.customizer
    titles = {variant: customizer.variant_title(variant) for variant in images}
    panels = analyze_panels(job.backend, job.reference_faces, job.reference_names, images, titles)
    result = WorkflowResult(
        backend=job.backend.name, reference_names=list(job.reference_names), references=list(job.references),
        panels=panels, sheet=None, request=job.request, model=customizer.label, deltas=_deltas(panels),
        notes=_notes(customizer, job.references), backend_note=_backend_note(job.backend),
    )
    result.sheet = _sheet(result, title=_sheet_title(job.request, customizer, result.deltas))
    return result


def generate_and_analyze(
    customizer,
    backend,
    request,
    references: Sequence[Image.Image],
    *,
    reference_names: Sequence[str] | None = None,
    compare: bool = False,
    progress: WorkflowProgress | None = None,
) -> WorkflowResult:
    """prepare -> generate_images -> finish: UMO (and the base model from the same seed in compare
    mode), every output analysed."""
    job = prepare(customizer, backend, request, references, reference_names=reference_names, compare=compare)
    return finish(job, generate_images(job, progress))


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


def reference_preview(image: Image.Image, reference) -> Image.Image:
    """The face a reference contributes, cropped with some context and outlined; the whole photo
    (small) when no face was found, so the user sees which picture the warning is about."""
    from PIL import ImageDraw

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
    crop = crop.resize((max(1, round(crop.width * scale)), max(1, round(crop.height * scale))))
    outline = [(x0 - box[0]) * scale, (y0 - box[1]) * scale, (x1 - box[0]) * scale, (y1 - box[1]) * scale]
    ImageDraw.Draw(crop).rectangle(outline, outline=(46, 204, 113), width=max(2, PREVIEW_SIDE // 80))
    return crop


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


def _sheet_title(request, customizer, deltas: dict | None) -> str:
    # the sheet draws its title on one line; one panel is ~36 characters of it wide
    prompt = request.prompt if len(request.prompt) <= 40 else request.prompt[:37] + "..."
    title = f'"{prompt}"  seed {request.seed}  {customizer.name}'
    if deltas and deltas["id_sim"] is not None:
        title += f"  |  UMO vs base: ID-Sim {100 * deltas['id_sim']:+.1f}"
    return title


def _sheet(result: WorkflowResult, title: str) -> Image.Image:
    from umo_pipeline.render import render_comparison_sheet

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


def _png_metadata(result: WorkflowResult, panel: Panel):
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    if result.request is not None:
        info.add_text("prompt", result.request.prompt)
        info.add_text("seed", str(result.request.seed))
        info.add_text("settings", json.dumps(generation_settings(result.request)))
        info.add_text("model", result.model or "")
    info.add_text("variant", panel.title)
    info.add_text("software", "umo_pipeline")
    return info


def read_png_metadata(path: str | Path) -> dict:
    """The text chunks of a PNG written by `save_outputs` (prompt, seed, settings, model, variant)."""
    with Image.open(path) as image:
        return dict(image.text)
