"""UMO demo: the Gradio page, its flags, and the one GPU entry point (ZeroGPU-ready).

Layout and event wiring only: every decision about generation, identity analysis, pictures and
downloads is made in `umo_pipeline.workflow`, which the CLI shares.
"""

import spaces  # noqa: I001 - on ZeroGPU, spaces must be imported before anything touches CUDA

import argparse
import functools
import html
import logging
import os
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import gradio as gr

import serving
from umo_pipeline import params, workflow
from umo_pipeline.analysis import IdentityReport, reference_label
from umo_pipeline.customizers.base import GenerationRequest
from umo_pipeline.errors import GenerationCancelled, InputError, UMOError
from umo_pipeline.faces import describe_backend
from umo_pipeline.matching import format_score
from umo_pipeline.options import add_backend_argument, add_model_arguments, face_backend, loader_options

# before the server and the models start threads: memory stays flat after bursts of visitors
serving.limit_malloc_arenas()

ROOT = Path(__file__).resolve().parent
log = logging.getLogger("umo.app")
EXAMPLES = ROOT / "examples"
#: slots built once; a model shows `max_references` of them (UNO 4, OmniGen2 5)
SLOTS = 5
MAX_UPLOAD = "10mb"
#: how many may wait: generations for the one GPU slot, analyses (CPU only) in a line of their own
QUEUE_LIMITS = serving.QueueLimits(
    {serving.GPU_GROUP: 16, serving.ANALYSIS_GROUP: 64},
    {serving.GPU_GROUP: ("generation", "generations"), serving.ANALYSIS_GROUP: ("analysis", "analyses")},
)
#: analyses (and reference previews) running side by side; face detection itself is serialised
#: inside each backend, the rest (decoding, drawing, writing files) overlaps
ANALYSIS_CONCURRENCY = max(2, min(4, os.cpu_count() or 2))
#: the downloads folder: result files are removed oldest first beyond this size or this age
DOWNLOADS_MAX_BYTES = int(float(os.environ.get("UMO_DOWNLOADS_MAX_MB", "1024")) * 2**20)
DOWNLOADS_MAX_AGE_S = 3600

SIZE_PRESETS = {
    "Square 768 x 768": (768, 768),
    "Square 1024 x 1024": (1024, 1024),
    "Portrait 768 x 1024": (768, 1024),
    "Landscape 1024 x 768": (1024, 768),
    "Wide 1216 x 704": (1216, 704),
    "Small 512 x 512": (512, 512),
    "Custom": None,
}

PROMPT_TIPS = """
- **Say how many people** and give each one a place and an action: *"two scientists shaking hands
  in a lab, the one on the left wears glasses"*.
- **Describe the scene, not the faces**: the references carry the identities; describe clothes,
  setting, lighting and style.
- **Keep the reference order in mind**: Reference 1 is usually the leftmost or first-named person.
- One clear, front-facing face per reference works best. Two people is the sweet spot; more than
  two identities is harder for the base model (this is what UMO improves).
"""

# System fonts: the page must not fetch web fonts (offline machines, privacy, first paint).
THEME_FONT = ["ui-sans-serif", "system-ui", "-apple-system", "Segoe UI", "Roboto", "sans-serif"]

TABLE_HEADERS = list(IdentityReport.TABLE_HEADERS)

CSS = """
.umo-header {display:flex; flex-wrap:wrap; align-items:center; justify-content:space-between; gap:8px}
.umo-header h1 {margin:0; font-size:1.6rem}
.umo-header p {margin:2px 0 0 0; opacity:.8}
.umo-badges {display:flex; flex-wrap:wrap; gap:6px}
.umo-badge {border-radius:999px; padding:3px 10px; font-size:.8rem; background:var(--neutral-100);
  border:1px solid var(--neutral-200); overflow-wrap:anywhere}
.dark .umo-badge {background:var(--neutral-800); border-color:var(--neutral-700)}
.umo-banner {border-radius:8px; padding:10px 14px; margin-top:6px; font-size:.92rem}
.umo-banner.warn {background:#fff7e6; border:1px solid #f5c16c; color:#7a4b00}
.umo-banner.info {background:#eef4fb; border:1px solid #a9c6e8; color:#1d3b5e}
.umo-banner.error {background:#fdecec; border:1px solid #f19999; color:#7d1b1b}
.umo-slot-note {font-size:.8rem; min-height:1.4em; padding:0 4px}
.umo-ref-card {gap:4px !important}
.umo-slot-note p {margin:0}
#umo-generate-btn, #umo-analyze-btn {min-height:48px; font-size:1.05rem}
footer {display:none !important}
#umo-candidates-gallery .fixed-height {max-height:none; min-height:0}
"""


def request_from_inputs(customizer, prompt, width, height, steps, guidance, seed, randomize, extras):
    """The request the page's controls (or an API client) describe; only the extra settings the
    model declares are kept (the page sends every slider, visible or not)."""
    seed_used = workflow.pick_seed(seed, randomize)
    declared = {name: value for name, value in extras.items() if name in customizer.extra_settings}
    return GenerationRequest(prompt=prompt or "", width=width, height=height, steps=steps,
                             guidance=guidance, seed=seed_used, extra=declared)


# -- the single GPU entry point ------------------------------------------------------------------
# ZeroGPU runs it in a forked worker; the Job pickles its customizer and face backend as keys that
# the worker resolves in its inherited copy, and only PIL images come back.
# Gradio frees a cancelled event's queue slot while its thread still runs; this lock keeps such an
# orphaned generation (it stops at its next step) from sharing the pipeline with the next one.
_GPU_LOCK = threading.Lock()


@spaces.GPU(duration=workflow.job_gpu_seconds)
def generate_on_gpu(job, progress=None, stop=None):
    """`stop` (a serving.StopFlag, readable inside a ZeroGPU worker too) ends the job at its next step."""
    def report_step(done, total, message):
        if stop is not None and stop.is_set():
            log.warning(
                "Stopping a generation at step %d/%d: its client disconnected or pressed Stop.", done, total)
            raise GenerationCancelled("The generation was stopped: Stop was pressed or the page was closed.")
        if progress is not None:
            progress((done, total), desc=message)

    return workflow.generate_images(job, report_step)


def gpu_seconds_limit() -> float | None:
    """On ZeroGPU, the most GPU time one generation may reserve; elsewhere no limit."""
    return workflow.GPU_SECONDS_CAP if os.environ.get("SPACES_ZERO_GPU") else None


# -- handlers: thin, each turns a UMOError into a message the page shows --------------------------
class DemoHandlers:
    """The functions the page's events call; tests call them directly."""

    def __init__(self, customizer_or_error, face_backend_or_error, downloads_root: Path | None = None):
        self.customizer = None if isinstance(customizer_or_error, (str, Exception)) else customizer_or_error
        self.model_error = None if self.customizer is not None else str(customizer_or_error)
        self.backend = None if isinstance(face_backend_or_error, (str, Exception)) else face_backend_or_error
        self.backend_error = None if self.backend is not None else str(face_backend_or_error)
        # inside Gradio's upload folder, Gradio serves the files as they are instead of copying them
        self.downloads = serving.DownloadsFolder(downloads_root or serving.gradio_upload_folder() / "umo_downloads",
                                                 DOWNLOADS_MAX_BYTES, DOWNLOADS_MAX_AGE_S)

    @property
    def downloads_root(self) -> Path:
        return self.downloads.root

    # reference slots
    def preview_reference(self, slot: int, path, face_crop: bool = False):
        """(preview image, note) for the face a reference slot will contribute; with face_crop, the
        crop the model will receive (from the same detection the analysis uses)."""
        if not path:
            return None, ""
        name = reference_label(slot)
        if self.backend is None:
            return None, f"**Check:** face analysis is unavailable: {self.backend_error}"
        try:
            image, face = workflow.load_reference(path, name, self.backend)
        except UMOError as error:
            return None, f"**Problem:** {error}"
        margin = self.customizer.face_crop_margin if face_crop and self.customizer is not None else None
        return workflow.reference_preview(image, face, margin), _slot_note(face, face_crop)

    def preview_event(self, slot: int):
        """The slot's change handler: the preview only takes room once there is something to show."""
        def show(path, face_crop=False):
            preview, note = self.preview_reference(slot, path, bool(face_crop))
            return gr.Image(value=preview, visible=preview is not None), note

        return show

    # generation (the parameter names are the /generate API's)
    def generate(self, prompt, reference_1=None, reference_2=None, reference_3=None, reference_4=None,
                 reference_5=None, width=None, height=None, steps=None, guidance=None, seed=0,
                 randomize_seed=True, compare=False, image_guidance=None, cfg_range_start=None,
                 cfg_range_end=None, candidates=1, face_crop_1=False, face_crop_2=False, face_crop_3=False,
                 face_crop_4=False, face_crop_5=False, progress=gr.Progress(), visitor: gr.Request = None):
        """Outputs: seed used (the best candidate's), summary, image, heatmap, labelled faces, table,
        downloads, JSON report (with every candidate best first when there are several), then for
        compare mode (base, UMO) for the slider, base heatmap, base table, then the candidates
        gallery (best first) and the candidates' pictures for clicks on it (not in the API). Settings
        left out (None) take the model's defaults; face_crop_N crops reference N around its face."""
        if self.customizer is None:
            raise gr.Error(f"Generation is unavailable here: {self.model_error}", title="No model loaded")
        defaults = self.customizer.defaults
        width, height, steps, guidance = (default if value is None else value for value, default in (
            (width, defaults.width), (height, defaults.height), (steps, defaults.steps), (guidance, defaults.guidance)))
        given = {"image_guidance": image_guidance, "cfg_range_start": cfg_range_start,
                 "cfg_range_end": cfg_range_end}
        extras = {**defaults.extra, **{name: value for name, value in given.items() if value is not None}}
        slots = [reference_1, reference_2, reference_3, reference_4, reference_5]
        crops = [face_crop_1, face_crop_2, face_crop_3, face_crop_4, face_crop_5]
        try:
            request = request_from_inputs(self.customizer, prompt, width, height, steps, guidance, seed,
                                          randomize_seed, extras)
            references, names = self._load_references(slots)
            job = workflow.prepare(self.customizer, self._require_backend(), request, references,
                                   reference_names=names, compare=bool(compare),
                                   candidates=params.CANDIDATES.default if candidates is None else candidates,
                                   face_crops=[bool(crop) for path, crop in zip(slots, crops) if path],
                                   gpu_seconds_limit=gpu_seconds_limit())
            log.info("Generating %dx%d, %d steps, %d reference(s), %d candidate(s): %r", job.request.width,
                     job.request.height, job.request.steps, len(references), job.candidates,
                     params.excerpt(job.request.prompt))
            progress((0, job.total_steps), desc="Starting")
            with serving.DepartureWatch() as stop, _GPU_LOCK:
                images = generate_on_gpu(job, progress, stop)
            result = workflow.finish(job, images)
        except GenerationCancelled as error:  # expected: the log already has its one line
            raise gr.Error(str(error), print_exception=False) from None
        except UMOError as error:
            raise gr.Error(str(error)) from None
        if not references:
            gr.Warning("No references: the heatmap and identity metrics need at least one reference photo.")
        for note in job.notes:
            gr.Warning(note)
        return self._outputs(result, session=_session(visitor))

    def show_candidate(self, views, selected: gr.SelectData):
        """A click on the candidates gallery: that candidate's image, heatmap, labelled faces and table
        (and its base model pictures in compare mode) take the main panel."""
        if not views or selected is None or not 0 <= selected.index < len(views):
            raise gr.Error("Generate first: there is no candidate to show.")
        view = views[selected.index]
        return tuple(view[key] for key in CANDIDATE_VIEW_KEYS)

    # analysis of any image (the parameter names are the /analyze API's)
    def analyze(self, reference_1=None, reference_2=None, reference_3=None, reference_4=None,
                reference_5=None, image=None, visitor: gr.Request = None):
        """Outputs: summary, heatmap, labelled faces, table, downloads, JSON report. The analysed
        picture itself is not sent back: the caller has it, and the labelled faces show it."""
        try:
            backend = self._require_backend()
            references, names = self._load_references(
                [reference_1, reference_2, reference_3, reference_4, reference_5])
            if not image:
                raise InputError("Add the image to analyse (a picture from any generator, or a photo).")
            result = workflow.analyze_image(backend, references, workflow.load_output_image(image),
                                            reference_names=names)
        except UMOError as error:
            raise gr.Error(str(error)) from None
        return self._outputs(result, session=_session(visitor))

    def forget_page(self, visitor: gr.Request):
        """The page closed: its latest results need not outlive other files any more."""
        if session := _session(visitor):
            self.downloads.forget(session)

    def _require_backend(self):
        if self.backend is None:
            raise InputError(f"Face analysis is unavailable: {self.backend_error}")
        return self.backend

    def _load_references(self, refs):
        """Filled slots in order, named after their slot ("Reference 3" stays Reference 3)."""
        references, names = [], []
        for slot, path in enumerate(refs):
            if path:
                name = reference_label(slot)
                references.append(workflow.load_reference_image(path, name))
                names.append(name)
        return references, names

    def _outputs(self, result, session: str | None = None):
        # The pictures go back as files written once here: the image is the downloadable PNG itself,
        # heatmaps and labelled faces are written in quick formats, and Gradio serves them as they
        # are instead of encoding each picture again and copying the downloads into its cache.
        # Pillow encodes without holding the GIL: the previews are written on a second thread while
        # this one writes the downloads.
        folder = self.downloads.new_folder(session)
        try:
            with ThreadPoolExecutor(1, thread_name_prefix="umo-previews") as writer:
                previews = [writer.submit(_write_previews, panel, folder) for panel in result.panels]
                saved = workflow.save_outputs(result, folder)
                shown = [preview.result() for preview in previews]
        finally:
            self.downloads.written(folder)
        # a generation's panels were written as PNGs in panel order (an analysed upload is not copied)
        for view, image in zip(shown, saved.images):
            view["image"] = str(image)
        first = shown[0]
        outputs = [
            _summary_markdown(result),
            first["heatmap"],
            first["overlay"],
            _table_rows(result.panels[0].report),
            [str(p) for p in saved.all],
            result.to_dict(),
        ]
        if result.request is None:  # an analysis: the caller has the picture, the labelled faces show it
            return tuple(outputs)
        outputs.insert(1, first["image"])
        comparison = _comparison_outputs(shown, result.panels)
        # save_outputs wrote each candidate's panels in a row, best first: the gallery shows those PNGs
        n = len(result.panels)
        views = [_candidate_view(candidate, [str(path) for path in saved.images[k * n:(k + 1) * n]])
                 for k, candidate in enumerate(result.candidates)]
        # one candidate: nothing to choose from, so no gallery (and no copies of the image to serve)
        several = len(views) > 1
        gallery = gr.update(value=[(view["image"], view["label"]) for view in views] if several else None,
                            visible=several, selected_index=None)
        return (result.request.seed, *outputs, *comparison, gallery, views)


def _session(visitor) -> str | None:
    # the page (or API client) a result belongs to; None when a test calls a handler directly
    return getattr(visitor, "session_hash", None)


def _write_previews(panel, folder: Path) -> dict:
    """Paths of what the page shows for one panel beside its image (the downloadable PNG): the
    heatmap (a small PNG, fast compression) and the labelled faces (JPEG: a photo-sized preview)."""
    shown = {"heatmap": None}
    if panel.heatmap is not None:
        heatmap = folder / f"heatmap_{panel.variant}.png"
        panel.heatmap.save(heatmap, format="PNG", compress_level=1)
        shown["heatmap"] = str(heatmap)
    overlay = folder / f"faces_{panel.variant}.jpg"
    panel.overlay.convert("RGB").save(overlay, format="JPEG", quality=90)
    shown["overlay"] = str(overlay)
    return shown


#: what a click on the candidates gallery puts back on the page, in the order of its outputs
CANDIDATE_VIEW_KEYS = ("image", "heatmap", "overlay", "table", "slider", "base_heatmap", "base_table")


def _comparison_outputs(shown: list[dict], panels) -> list:
    """(base, UMO) for the slider, the base heatmap and the base table; empty without a comparison.
    `shown`: per panel, the pictures the page shows ("image", "heatmap": files or images)."""
    if len(panels) < 2:
        return [None, None, _table_rows(None)]
    umo, base = shown[0], shown[1]
    return [(base["image"], umo["image"]), base["heatmap"], _table_rows(panels[1].report)]


def _candidate_view(candidate, written: list[str]) -> dict:
    """What a click on this candidate shows: its written PNGs, and its pictures from the analysis."""
    shown = [{"image": path, "heatmap": panel.heatmap} for path, panel in zip(written, candidate.panels)]
    umo = candidate.panels[0]
    slider, base_heatmap, base_table = _comparison_outputs(shown, candidate.panels)
    return {"label": _gallery_label(candidate), "seed": candidate.seed, "image": shown[0]["image"],
            "heatmap": umo.heatmap, "overlay": umo.overlay, "table": _table_rows(umo.report), "slider": slider,
            "base_heatmap": base_heatmap, "base_table": base_table}


def _gallery_label(candidate) -> str:
    # a thumbnail's caption shows ~28 characters (two columns at 1280 px): the score before the seed,
    # which a ten-digit seed would push out of sight; the summary gives the full ranking
    score = candidate.report.matching_score
    shown = "no score" if score is None else f"score {format_score(score)}"
    return f"#{candidate.rank} · {shown} · seed {candidate.seed}"


def _slot_note(face, face_crop: bool = False) -> str:
    if face.face is None and face_crop:
        return "**Check:** No face found in this image: the whole image will be used, and it cannot be compared."
    if face.warning:
        return f"**Check:** {face.warning[0].upper()}{face.warning[1:]}."
    if face_crop:
        return "One face found: the model will receive this crop around it."
    return "One face found: this is the face that will be used."


def _table_rows(report) -> list[list]:
    return [] if report is None else report.table_rows()


def _summary_markdown(result) -> str:
    lines = []
    for label, text in workflow.describe(result):
        text = html.escape(text)
        if label == "Note":
            lines.append(f"*{text}*")
        elif label == "Face backend":  # the banner above the page carries the backend's full note
            lines.append(f"<small>Face backend: {html.escape(result.backend)}. ID-Sim and ID-Conf are x100; "
                         "higher is better.</small>")
        else:
            lines.append(f"**{html.escape(label)}:** {text}" if label else text)
    return "\n\n".join(lines)


# -- layout ----------------------------------------------------------------------------------------
def _header_html(handlers: DemoHandlers, device: str) -> str:
    customizer = handlers.customizer
    model = customizer.label if customizer is not None else "no model loaded"
    backend = handlers.backend.name if handlers.backend is not None else "unavailable"
    badges = "".join(
        f'<span class="umo-badge">{html.escape(k)}: <b>{html.escape(v)}</b></span>'
        for k, v in (("Model", model), ("Face backend", backend), ("Device", device))
    )
    return (
        '<div class="umo-header"><div><h1>UMO: keep every face in multi-person images</h1>'
        "<p>Give one photo per person and a prompt; UMO keeps each identity and stops them mixing. "
        "The heatmap shows which reference went where.</p></div>"
        f'<div class="umo-badges">{badges}</div></div>'
    )


def _banner_html(handlers: DemoHandlers) -> str:
    banners = []
    if handlers.customizer is not None and handlers.customizer.is_test_model:
        banners.append(("warn", "Tiny test model: generated images are random noise from a tiny "
                                "random-weight model, useful only to try the page. Identity analysis is real."))
    if handlers.model_error:
        banners.append(("error", f"Generation unavailable: {handlers.model_error} "
                                 "The Analyze tab still works."))
    if handlers.backend_error:
        banners.append(("error", f"Face analysis unavailable: {handlers.backend_error}"))
    elif handlers.backend.scale_note or handlers.backend.fallback_reason:
        banners.append(("info", describe_backend(handlers.backend)))
    return "".join(f'<div class="umo-banner {kind}">{html.escape(text)}</div>' for kind, text in banners)


def reference_image(**options) -> gr.Image:
    """A gr.Image slot that hands the uploaded file itself (its path in Gradio's upload cache) to
    the handlers, which read it with umo_pipeline.images like every other caller.

    Gradio's own conversion would turn a 16-bit grayscale photo white and keep the hidden colours of
    transparent pixels; the library handles both (and EXIF rotation, animation, decompression bombs)
    and names the slot in its messages. The instance's preprocess is replaced: a gr.Image subclass
    would make Gradio write a .pyi stub next to this file at import time.
    """
    image = gr.Image(**options)

    def preprocess(payload):
        return None if payload is None else payload.path

    image.preprocess = preprocess
    return image


def _reference_slots(prefix: str, max_references: int, face_crop_default: bool | None = None):
    """SLOTS reference cards (the model's max shown), two per row: the image slot, the face it will
    contribute (shown once found) and a one-line note; with face_crop_default, a "Use face crop"
    checkbox per slot (its starting value)."""
    slots, previews, notes, crops = [], [], [], []
    for first in range(0, SLOTS, 2):
        with gr.Row(equal_height=False, visible=first < max_references):
            for index in range(first, min(first + 2, SLOTS)):
                with gr.Column(min_width=240, visible=index < max_references, elem_classes="umo-ref-card"):
                    slots.append(reference_image(
                        label=reference_label(index), type="filepath", sources=["upload", "clipboard"],
                        height=190, buttons=[], elem_id=f"{prefix}-ref-{index + 1}"))
                    with gr.Row(equal_height=True):
                        previews.append(gr.Image(
                            label=f"Face used from {reference_label(index)}", height=84, min_width=84, scale=0,
                            interactive=False, show_label=False, format="png", visible=False,
                            buttons=[], container=False, elem_id=f"{prefix}-ref-{index + 1}-face"))
                        notes.append(gr.Markdown("", elem_classes="umo-slot-note", min_height=0,
                                                 elem_id=f"{prefix}-ref-{index + 1}-note"))
                    if face_crop_default is not None:
                        crops.append(gr.Checkbox(value=face_crop_default, label="Use face crop", container=False,
                                                 elem_id=f"{prefix}-ref-{index + 1}-crop"))
    return slots, previews, notes, crops


def _result_panel(prefix: str, image_label: str | None, below_image=None):
    """The result's components (summary, image, heatmap, labelled faces, table, downloads, report);
    `below_image()` builds more of the page right under the image and heatmap. Without an
    `image_label` (an analysis: the person has the picture) there is no image, and the labelled faces
    take its place beside the heatmap."""
    summary = gr.Markdown(elem_id=f"{prefix}-summary")

    def labelled_faces(label, height):
        return gr.Image(label=label, format="png", interactive=False, height=height, min_width=240,
                        elem_id=f"{prefix}-overlay")

    with gr.Row(equal_height=True):
        if image_label is None:
            overlay = labelled_faces("Labelled faces", 340)  # half width: a short label
        else:
            image = gr.Image(label=image_label, format="png", interactive=False, height=340, min_width=240,
                             elem_id=f"{prefix}-image")
        heatmap = gr.Image(label="Assignment heatmap (references x faces found)", format="png", height=340,
                           interactive=False, show_label=False, min_width=240, elem_id=f"{prefix}-heatmap")
    if below_image is not None:
        below_image()
    if image_label is not None:
        overlay = labelled_faces("Faces labelled by reference", 440)
    table = gr.Dataframe(headers=TABLE_HEADERS, label="Per reference", interactive=False,
                         elem_id=f"{prefix}-table", wrap=True)
    files = "comparison sheet, JSON report"
    downloads = gr.File(label=f"Downloads: {files}" if image_label is None else
                        f"Downloads: PNG with settings in its metadata, {files}",
                        file_count="multiple", interactive=False, elem_id=f"{prefix}-downloads")
    with gr.Accordion("JSON report", open=False):
        report = gr.JSON(label="Identity report", elem_id=f"{prefix}-report")
    shown = [heatmap, overlay] if image_label is None else [image, heatmap, overlay]
    return [summary, *shown, table, downloads, report]


def _candidates_gallery() -> gr.Gallery:
    """Built unrendered: the result panel places it under the image it lets the user swap."""
    return gr.Gallery(label="Candidates, best first: click one to see its heatmap and table", format="png",
                      columns=2, height="auto", object_fit="contain", allow_preview=False, interactive=False,
                      visible=False, render=False, elem_id="umo-candidates-gallery")


def _examples():
    def ex(name):
        return str(EXAMPLES / name)

    return [
        ["Two scientists shaking hands in a sunlit 19th-century library, oil painting",
         ex("isaac_newton.jpg"), ex("carl_friedrich_gauss.jpg"), None, None, None],
        ["Two colleagues laughing over coffee at a cafe terrace, candid photo",
         ex("grace_hopper.jpg"), ex("astronaut_collins.jpg"), None, None, None],
        ["Two politicians walking side by side in a park, autumn, documentary photo",
         ex("barack_obama.jpg"), ex("joe_biden.jpg"), None, None, None],
        ["Four friends posing for a group photo on a beach at sunset",
         ex("barack_obama.jpg"), ex("grace_hopper.jpg"), ex("isaac_newton.jpg"), ex("astronaut_collins.jpg"), None],
    ]


def build_demo(customizer_or_error, face_backend_or_error, *, device: str | None = None,
               downloads_root: Path | None = None) -> gr.Blocks:
    """The whole page. Pass a loaded customizer, or the error (text) that prevented loading it."""
    handlers = DemoHandlers(customizer_or_error, face_backend_or_error, downloads_root)
    customizer = handlers.customizer
    max_refs = customizer.max_references if customizer is not None else 4
    defaults = customizer.defaults if customizer is not None else GenerationRequest(prompt="")
    rules = {rule.name: rule for rule in (customizer.rules() if customizer is not None else params.REQUEST_RULES)}
    extra_declared = customizer.extra_settings if customizer is not None else ()
    device = device or (customizer.device if customizer is not None else "cpu")
    # requests are counted so that free heap pages go back to the system once the server is idle
    counted = serving.IDLE_TRIM.around

    with gr.Blocks(title="UMO: multi-identity image customization", delete_cache=(3600, 3600)) as demo:
        gr.HTML(_header_html(handlers, device), elem_id="umo-header")
        gr.HTML(_banner_html(handlers), elem_id="umo-banner")
        with gr.Tabs():
            with gr.Tab("Generate", id="generate"):
                with gr.Row(equal_height=False):
                    with gr.Column(scale=5, min_width=320):
                        prompt = gr.Textbox(label="Prompt", lines=3, elem_id="umo-prompt",
                                            placeholder="Two friends cooking together in a sunny kitchen")
                        with gr.Accordion("Tips for multi-person prompts", open=False):
                            gr.Markdown(getattr(customizer, "prompt_tips", None) or PROMPT_TIPS)
                        gr.Markdown(f"**References**: one photo per person (up to {max_refs}). "
                                    "Drop, paste or pick a file; the face that will be used appears below it.")
                        crop_default = customizer.face_crop_default if customizer is not None else False
                        slots, previews, notes, crops = _reference_slots("umo-gen", max_refs, crop_default)
                        with gr.Accordion("Settings", open=False):
                            preset = gr.Dropdown(list(SIZE_PRESETS), label="Size",
                                                 value=_preset_for(defaults.width, defaults.height))
                            with gr.Row():
                                width = gr.Slider(**rules["width"].ui(defaults.width))
                                height = gr.Slider(**rules["height"].ui(defaults.height))
                            with gr.Row():
                                steps = gr.Slider(**rules["steps"].ui(defaults.steps))
                                guidance = gr.Slider(**rules["guidance"].ui(defaults.guidance))
                            with gr.Row():
                                # no precision: Gradio would round 1.5 to 2 where the rule refuses it
                                seed = gr.Number(value=defaults.seed, step=1, label=rules["seed"].label,
                                                 minimum=rules["seed"].minimum, maximum=rules["seed"].maximum)
                                randomize = gr.Checkbox(value=True, label="Randomize seed")
                            extras = [gr.Slider(**rule.ui(defaults.extra.get(name, rule.default)),
                                                visible=name in extra_declared)
                                      for name, rule in params.EXTRA_RULES.items()]
                        can_compare = customizer is not None and "base" in customizer.variants
                        compare = gr.Checkbox(value=False, label="Compare with base model (same seed)",
                                              interactive=can_compare, elem_id="umo-compare",
                                              info="Generates the base model and UMO from the same noise.")
                        candidates = gr.Slider(**params.CANDIDATES.ui(params.CANDIDATES.default),
                                               elem_id="umo-candidates")
                        generate_btn = gr.Button("Generate", variant="primary", elem_id="umo-generate-btn")
                        stop_btn = gr.Button("Stop", variant="stop", visible=False, elem_id="umo-stop-btn")
                    with gr.Column(scale=6, min_width=320):
                        # the summary shows the seed; this field carries it for API clients
                        seed_used = gr.Number(label="Seed used", interactive=False, precision=0, visible=False,
                                              elem_id="umo-seed-used")
                        gallery = _candidates_gallery()
                        results = _result_panel("umo-gen", "Generated image", below_image=gallery.render)
                        candidate_views = gr.State([])
                        with gr.Group(visible=False) as comparison_group:
                            gr.Markdown("### Base model vs UMO (same seed)")
                            with gr.Row(equal_height=True):
                                slider = gr.ImageSlider(label="Drag: base model (left) / UMO (right)",
                                                        format="png", interactive=False, height=340,
                                                        min_width=240, elem_id="umo-slider")
                                base_heatmap = gr.Image(label="Base model: assignment heatmap", format="png",
                                                        interactive=False, show_label=False, height=340,
                                                        min_width=240, elem_id="umo-base-heatmap")
                            base_table = gr.Dataframe(headers=TABLE_HEADERS, label="Base model: per reference",
                                                      interactive=False, elem_id="umo-base-table", wrap=True)
                gr.Examples(_examples(), inputs=[prompt, *slots], cache_examples=False, examples_per_page=4,
                            label="Examples: public-domain photos (sources in examples/SOURCES.md)")
            with gr.Tab("Analyze an image", id="analyze"):
                gr.Markdown("Check any picture (from any generator, or a photo) against reference photos: "
                            "same heatmap, labelled faces and metrics. Runs on the CPU, no model weights needed.")
                with gr.Row(equal_height=False):
                    with gr.Column(scale=5, min_width=320):
                        analysis_slots, analysis_previews, analysis_notes, _ = _reference_slots("umo-ana", max_refs)
                        analysed_image = reference_image(label="Image to analyse", type="filepath", height=340,
                                                        sources=["upload", "clipboard"], elem_id="umo-analyze-image")
                        analyze_btn = gr.Button("Analyze", variant="primary", elem_id="umo-analyze-btn")
                    with gr.Column(scale=6, min_width=320):
                        analysis_results = _result_panel("umo-ana", None)

        slot_groups = zip([*slots, *analysis_slots], [*previews, *analysis_previews], [*notes, *analysis_notes])
        for number, (slot, preview, note) in enumerate(slot_groups):
            index = number % SLOTS
            inputs = [slot, crops[index]] if number < SLOTS else slot
            triggers = [slot.change, crops[index].change] if number < SLOTS else [slot.change]
            gr.on(triggers, counted(handlers.preview_event(index)), inputs=inputs, outputs=[preview, note],
                  api_visibility="private", show_progress="minimal",
                  concurrency_id=serving.ANALYSIS_GROUP, concurrency_limit=ANALYSIS_CONCURRENCY)
        preset.change(_apply_preset, inputs=[preset, width, height], outputs=[width, height],
                      api_visibility="private", queue=False)
        compare.change(lambda on: gr.Group(visible=bool(on)), inputs=compare, outputs=comparison_group,
                       api_visibility="private", queue=False)
        # Stop shows while a generation runs or waits; pressing it cancels the event as leaving does
        buttons = [generate_btn, stop_btn]
        generating = generate_btn.click(_running_buttons, outputs=buttons, queue=False, api_visibility="private").then(
            counted(handlers.generate),
            inputs=[prompt, *slots, width, height, steps, guidance, seed, randomize, compare, *extras,
                    candidates, *crops],
            outputs=[seed_used, *results, slider, base_heatmap, base_table, gallery, candidate_views],
            api_name="generate", concurrency_limit=1, concurrency_id=serving.GPU_GROUP)
        generating.then(_ready_buttons, outputs=buttons, queue=False, api_visibility="private")
        generating.failure(_ready_buttons, outputs=buttons, queue=False, api_visibility="private")
        stop_btn.click(_ready_buttons, outputs=buttons, cancels=[generating], queue=False, api_visibility="private")
        image_out, heatmap_out, overlay_out, table_out = results[1:5]
        gallery.select(handlers.show_candidate, inputs=candidate_views,
                       outputs=[image_out, heatmap_out, overlay_out, table_out, slider, base_heatmap, base_table],
                       api_visibility="private", queue=False)
        analyze_btn.click(counted(handlers.analyze), inputs=[*analysis_slots, analysed_image],
                          outputs=analysis_results, api_name="analyze",
                          concurrency_id=serving.ANALYSIS_GROUP, concurrency_limit=ANALYSIS_CONCURRENCY)
        demo.unload(handlers.forget_page)
    # results removed from the downloads folder leave Gradio's records of served files too
    handlers.downloads.on_removed = functools.partial(serving.forget_served_files, demo)
    return demo


def _running_buttons():
    return gr.Button(visible=False), gr.Button(visible=True)


def _ready_buttons():
    return gr.Button(visible=True), gr.Button(visible=False)


def _preset_for(width: int, height: int) -> str:
    for name, size in SIZE_PRESETS.items():
        if size == (width, height):
            return name
    return "Custom"


def _apply_preset(name, width, height):
    size = SIZE_PRESETS.get(name)
    return (width, height) if size is None else size


# -- flags, loading, launching ---------------------------------------------------------------------
def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="UMO demo: multi-identity image customization with an "
                                                 "identity heatmap.")
    add_model_arguments(parser)
    add_backend_argument(parser)
    parser.add_argument("--host", default=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("GRADIO_SERVER_PORT", "7860")))
    parser.add_argument("--share", action="store_true", help="public gradio.live link")
    return parser.parse_args(argv)


def default_device(requested: str | None) -> str:
    if requested:
        return requested
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def load_models(args: argparse.Namespace):
    """(customizer or the reason it could not load, face backend or the reason, device)."""
    from umo_pipeline import load_customizer

    # ZeroGPU attaches the GPU per call, so models go to "cuda" there; otherwise each loader picks
    # (tiny: the CPU; full-size models: CUDA, or a plain refusal before any weights are looked for)
    requested = args.device or ("cuda" if os.environ.get("SPACES_ZERO_GPU") else None)
    try:
        customizer = load_customizer(args.model, **loader_options(args, device=requested))
    except UMOError as error:
        customizer = str(error)
    except Exception as error:  # noqa: BLE001 - no CUDA, driver trouble...: the page still serves Analyze
        customizer = f"{args.model} could not be loaded ({type(error).__name__}: {error})."
    device = default_device(requested) if isinstance(customizer, str) else customizer.device
    try:
        backend = face_backend(args)
    except UMOError as error:
        backend = str(error)
    return customizer, backend, device


def theme():
    return gr.themes.Soft(primary_hue="indigo", secondary_hue="amber", font=THEME_FONT,
                          font_mono=["ui-monospace", "SFMono-Regular", "Menlo", "monospace"])


def launch(demo: gr.Blocks, args: argparse.Namespace):
    serving.setup_queue(demo, QUEUE_LIMITS)
    serving.preload_matplotlib()
    return demo.launch(server_name=args.host, server_port=args.port, share=args.share,
                       max_file_size=MAX_UPLOAD, theme=theme(), css=CSS,
                       ssr_mode=False, show_error=True, footer_links=["api"])


def main(argv=None):
    args = parse_args(argv)
    # one line per generation (with a prompt excerpt) and per stop; other libraries stay at warnings
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("umo").setLevel(logging.INFO)
    customizer, backend, device = _SPACE_MODELS if _SPACE_MODELS else load_models(args)
    demo = build_demo(customizer, backend, device=device)
    launch(demo, args)


@spaces.GPU(duration=900)
def _compile_blocks_in_gpu_worker(directory: str) -> dict:
    # runs in ZeroGPU's forked worker, which holds the same loaded model; only strings come back
    from umo_pipeline.customizers import aoti

    return aoti.compile_packages(_SPACE_MODELS[0], aoti.SpacesAOTI(directory))


def compile_on_zerogpu(customizer, compile_in_worker=None) -> dict | None:
    """ZeroGPU: the transformer's blocks compiled ahead of time, once, at start (see
    umo_pipeline/customizers/aoti.py); the report of what was compiled, or None when not applicable.
    Any failure leaves those blocks eager: the page works either way."""
    from umo_pipeline.customizers import aoti

    if isinstance(customizer, str) or not aoti.supported(customizer):
        return None
    directory = str(Path(tempfile.gettempdir()) / "umo_aoti")
    try:
        report = (compile_in_worker or _compile_blocks_in_gpu_worker)(directory)
        states = aoti.install(customizer, aoti.SpacesAOTI(directory), report)
    except Exception as error:  # noqa: BLE001 - compilation is an optimisation, never a reason to fail
        logging.getLogger("umo.app").warning("Ahead-of-time compilation failed (%s: %s); running eagerly.",
                                             type(error).__name__, error)
        return None
    logging.getLogger("umo.app").info("Ahead-of-time compilation: %s", report)
    if any(state.programs for state in states.values()):
        customizer.label += ", blocks compiled ahead of time (ZeroGPU AoTI)"
    return report


# On a Space the models load at import time, before the first request (ZeroGPU moves them to the GPU);
# on ZeroGPU the transformer's blocks are then compiled ahead of time (UMO_AOTI=0 skips it).
_SPACE_MODELS = load_models(parse_args([])) if os.environ.get("SPACE_ID") else None
if _SPACE_MODELS and os.environ.get("SPACES_ZERO_GPU") and os.environ.get("UMO_AOTI", "1") != "0":
    compile_on_zerogpu(_SPACE_MODELS[0])

if __name__ == "__main__":
    main()
