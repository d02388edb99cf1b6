"""The path the app and the CLI share: generate -> analyze identities -> pictures -> downloads.

Plain functions on plain values: `generate_and_analyze` (prompt + references -> image(s) with their
identity reports and pictures, both variants from the same noise in compare mode), `analyze_image`
(references + any image -> the same pictures), `save_outputs` (PNG with the generation settings in
its metadata, a comparison sheet, the JSON report). Nothing here imports gradio.
"""

from __future__ import annotations

import gc
import json
import random
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from PIL import Image

from umo_pipeline.errors import GenerationError, InputError, UMOError

#: sizes the app and CLI accept; the customizers work on a 16-pixel grid (UNO floors to it)
SIZE_STEP = 16
MIN_SIDE = 256
MAX_SIDE = 2048
MAX_STEPS = 100
MAX_GUIDANCE = 30.0
MAX_SEED = 2**32 - 1

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


def check_request(request, customizer) -> object:
    """The request, checked against what the app supports; InputError in plain words otherwise."""
    prompt = (request.prompt or "").strip()
    if not prompt:
        raise InputError("The prompt is empty: describe the picture you want, e.g. 'two friends at a cafe'.")
    for side_name, value in (("Width", request.width), ("Height", request.height)):
        _check_side(side_name, value)
    steps = int(request.steps)
    if not 1 <= steps <= MAX_STEPS:
        raise InputError(f"Steps must be between 1 and {MAX_STEPS} (got {request.steps}).")
    if not 0.0 <= float(request.guidance) <= MAX_GUIDANCE:
        raise InputError(f"Guidance must be between 0 and {MAX_GUIDANCE:g} (got {request.guidance}).")
    if not 0 <= int(request.seed) <= MAX_SEED:
        raise InputError(f"The seed must be a whole number between 0 and {MAX_SEED} (got {request.seed}).")
    unknown = sorted(set(request.extra) - set(customizer.extra_settings))
    if unknown:
        raise InputError(f"{customizer.name} has no setting called {', '.join(unknown)}.")
    return replace(request, prompt=prompt, width=int(request.width), height=int(request.height),
                   steps=steps, guidance=float(request.guidance), seed=int(request.seed))


def _check_side(side_name: str, value) -> None:
    if value is None or int(value) != value:
        raise InputError(f"{side_name} must be a whole number of pixels (got {value}).")
    value = int(value)
    if not MIN_SIDE <= value <= MAX_SIDE:
        raise InputError(f"{side_name} must be between {MIN_SIDE} and {MAX_SIDE} pixels (got {value}).")
    if value % SIZE_STEP:
        lower = value - value % SIZE_STEP
        raise InputError(
            f"{side_name} must be a multiple of {SIZE_STEP} (got {value}; try {lower} or {lower + SIZE_STEP})."
        )


def pick_seed(seed, randomize: bool) -> int:
    """The seed to use: a fresh random one when asked (or when none is given), else `seed`."""
    if randomize or seed is None or seed == "":
        return random.randint(0, MAX_SEED)
    if float(seed) != int(float(seed)):
        raise InputError(f"The seed must be a whole number (got {seed}).")
    return int(float(seed))


def check_references(customizer, references: Sequence[Image.Image]) -> None:
    if len(references) > customizer.max_references:
        raise InputError(
            f"{customizer.name} takes at most {customizer.max_references} references (got {len(references)})."
        )


def variants_for(customizer, compare: bool) -> tuple[str, ...]:
    """("umo",) or, in compare mode, ("umo", "base"); InputError when the model cannot compare."""
    if not compare:
        return ("umo",)
    if "base" not in customizer.variants:
        raise InputError(f"{customizer.name} has no base model to compare with.")
    return ("umo", "base")


def variant_title(customizer, variant: str) -> str:
    titles = getattr(customizer, "variant_titles", None) or {}
    if variant in titles:
        return titles[variant]
    return {"umo": "With UMO", "base": "Base model (no UMO)"}.get(variant, variant)


def gpu_seconds(customizer, request, n_references: int, compare: bool) -> int:
    """Seconds to reserve on a shared GPU (ZeroGPU): the customizer's estimate plus a margin."""
    n_variants = 2 if compare else 1
    estimate = customizer.estimate_seconds(request, n_references, n_variants)
    return int(min(300, max(20, 1.25 * estimate + 5)))


def generate_images(
    customizer,
    request,
    references: Sequence[Image.Image],
    variants: Sequence[str],
    progress: WorkflowProgress | None = None,
) -> dict[str, Image.Image]:
    """variant -> generated RGB image, every variant from the same seed (hence the same noise).

    Returns CPU objects only (PIL images), as a ZeroGPU worker must. Any failure, out of memory
    included, releases the memory and becomes a GenerationError the server survives.
    """
    total = request.steps * len(variants)
    images: dict[str, Image.Image] = {}
    for index, variant in enumerate(variants):
        title = variant_title(customizer, variant)

        def step_done(done: int, steps: int, offset: int = index * request.steps, title: str = title) -> None:
            if progress is not None:
                progress(offset + done, total, f"{title}: step {done}/{steps}")

        try:
            images[variant] = customizer.generate(request, references, variant=variant, progress=step_done)
        except UMOError:
            release_memory()
            raise
        except Exception as error:  # noqa: BLE001 - any model failure must leave the server usable
            release_memory()
            raise GenerationError(_generation_failure_message(error, request, len(references))) from error
    return images


def _generation_failure_message(error: Exception, request, n_references: int) -> str:
    text = str(error)
    if "out of memory" in text.lower() or type(error).__name__ == "OutOfMemoryError":
        return (
            f"The GPU ran out of memory generating {request.width}x{request.height} with "
            f"{n_references} reference(s). Try a smaller size, fewer references or no comparison, "
            "or start the app with --offload or --fp8. The memory was released; you can try again."
        )
    first_line = text.strip().splitlines()[0] if text.strip() else type(error).__name__
    return f"Generation failed ({type(error).__name__}: {first_line}). The app is still running; try again."


def release_memory() -> None:
    """Free what a failed generation left behind (GPU cache included, when torch is loaded)."""
    gc.collect()
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()


def analyze_panels(backend, references, reference_names, images: dict[str, Image.Image], titles: dict[str, str]):
    """One Panel per image: identity report, heatmap (only with references) and labelled boxes."""
    from umo_pipeline.analysis import analyze_identity
    from umo_pipeline.render import render_heatmap, render_overlay

    panels = []
    for variant, image in images.items():
        report = analyze_identity(references, image, backend, labels=list(reference_names))
        heatmap = render_heatmap(report) if references else None
        panels.append(Panel(variant, titles[variant], image, report, heatmap, render_overlay(image, report)))
    return panels


def generate_and_analyze(
    customizer,
    backend,
    request,
    references: Sequence[Image.Image],
    *,
    reference_names: Sequence[str] | None = None,
    compare: bool = False,
    progress: WorkflowProgress | None = None,
    images: dict[str, Image.Image] | None = None,
) -> WorkflowResult:
    """Generate (UMO, and base from the same seed in compare mode), then analyse every output.

    `images` lets a caller that generated elsewhere (the app's GPU worker) pass the outputs in.
    """
    request = check_request(request, customizer)
    check_references(customizer, references)
    names = list(reference_names or default_reference_names(len(references)))
    variants = variants_for(customizer, compare)
    if images is None:
        images = generate_images(customizer, request, references, variants, progress)
    titles = {variant: variant_title(customizer, variant) for variant in images}
    panels = analyze_panels(backend, references, names, images, titles)
    result = WorkflowResult(
        backend=backend.name, reference_names=names, references=list(references), panels=panels,
        sheet=None, request=request, model=customizer.label, deltas=_deltas(panels),
        notes=_notes(customizer, references),
    )
    result.sheet = _sheet(result, title=_sheet_title(request, customizer, result.deltas))
    return result


def analyze_image(
    backend,
    references: Sequence[Image.Image],
    image: Image.Image,
    *,
    reference_names: Sequence[str] | None = None,
) -> WorkflowResult:
    """References + any image (from any tool) -> the same report and pictures as a generation."""
    if not references:
        raise InputError("Add at least one reference photo: the analysis compares the image with them.")
    names = list(reference_names or default_reference_names(len(references)))
    panels = analyze_panels(backend, references, names, {"image": image}, {"image": "Analysed image"})
    result = WorkflowResult(
        backend=backend.name, reference_names=names, references=list(references), panels=panels, sheet=None
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


def save_outputs(result: WorkflowResult, folder: str | Path, stem: str | None = None) -> SavedOutputs:
    """Full-resolution PNG per panel (generation settings in the PNG text chunks), the comparison
    sheet PNG and the JSON report, written into `folder` (created if needed)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if stem is None:
        stem = f"seed{result.request.seed}" if result.request is not None else "analysis"
    images = []
    for panel in result.panels:
        path = folder / f"{panel.variant}_{stem}.png"
        panel.image.save(path, format="PNG", pnginfo=_png_metadata(result, panel))
        images.append(path)
    sheet = folder / f"comparison_{stem}.png"
    result.sheet.save(sheet, format="PNG")
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
