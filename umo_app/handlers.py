"""The functions the page's events call: thin, each turns a UMOError into a message the page shows.
Every decision about generation, identity analysis, pictures and files is made in
`umo_pipeline.workflow`, which the CLI shares; what they return is named in outputs.py.

/generate, /analyze, /compare_methods and /repair raise their refusals (gr.Error), which API clients read; the page
calls the same handlers through `on_the_page`, which turns a refusal into one line by the button.
"""

from __future__ import annotations

import functools
import html
import inspect
import logging
from pathlib import Path

import gradio as gr

from umo_app import outputs, zerogpu
from umo_app.slots import per_slot
from umo_app.departures import DepartureWatch
from umo_app.downloads import page_downloads
from umo_pipeline import params, workflow
from umo_pipeline.errors import GenerationCancelled, InputError, UMOError
from umo_pipeline.labels import excerpt, reference_label
from umo_pipeline.workflow.methods import file_stem

log = logging.getLogger("umo.app")


def request_from_inputs(customizer, prompt, width, height, steps, guidance, seed, randomize, extras):
    """The request the page's controls (or an API client) describe, the model's defaults where a
    setting is left out (None); only the extra settings the model declares are kept (the page sends
    every slider, visible or not)."""
    declared = {name: value for name, value in extras.items() if name in customizer.extra_settings}
    return customizer.request_with(prompt or "", declared, width=width, height=height, steps=steps,
                                   guidance=guidance, seed=workflow.pick_seed(seed, randomize))


class DemoHandlers:
    """The functions the page's events call; tests call them directly."""

    def __init__(self, customizer_or_error, face_backend_or_error, downloads_root: Path | None = None):
        self.customizer = None if isinstance(customizer_or_error, (str, Exception)) else customizer_or_error
        self.model_error = None if self.customizer is not None else str(customizer_or_error)
        self.backend = None if isinstance(face_backend_or_error, (str, Exception)) else face_backend_or_error
        self.backend_error = None if self.backend is not None else str(face_backend_or_error)
        self.downloads = page_downloads(downloads_root)

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

    # generation (the parameter names are the /generate API's; slot_images and slot_crops stand for
    # reference_1.. and face_crop_1.., see slots.per_slot)
    @per_slot
    def generate(self, prompt, slot_images=(), width=None, height=None, steps=None, guidance=None, seed=0,
                 randomize_seed=True, compare=False, image_guidance=None, cfg_range_start=None,
                 cfg_range_end=None, candidates=1, slot_crops=(), condition_on=None, place="auto",
                 progress=gr.Progress(), visitor: gr.Request = None):
        """Outputs (GenerateOutputs): seed used (the best candidate's), summary, image, heatmap,
        labelled faces, table, downloads, JSON report (with every candidate best first when there are
        several), then for compare mode (base, UMO) for the slider, base heatmap, base table, then the
        candidates gallery (best first), then for people placed (composed, placed) and the per-person
        table, and the candidates' pictures for clicks on it (not in the API). Settings left out
        (None) take the model's defaults; face_crop_N crops reference N around its face.

        Up to SLOTS people: `condition_on` (slot numbers) are those the model sees (none: the first
        it takes); `place` ("auto": when the model does not see everyone; "on"; "off") then repairs
        every person whose face is not matched, one GPU call each. A streaming endpoint: the composed
        scene comes first, then the image after each person placed; Stop keeps what came."""
        if self.customizer is None:
            raise gr.Error(f"Generation is unavailable here: {self.model_error}", title="No model loaded")
        extras = {"image_guidance": image_guidance, "cfg_range_start": cfg_range_start,
                  "cfg_range_end": cfg_range_end}
        try:
            request = request_from_inputs(self.customizer, prompt, width, height, steps, guidance, seed,
                                          randomize_seed, extras)
            references, names = self._load_references(slot_images)
            job = workflow.prepare(self.customizer, self._require_backend(), request, references,
                                   reference_names=names, compare=bool(compare),
                                   candidates=_candidates(candidates),
                                   face_crops=_face_crops(slot_images, slot_crops),
                                   gpu_seconds_limit=zerogpu.gpu_seconds_limit(),
                                   condition_on=_slot_choices(condition_on, slot_images, "show the model"),
                                   place=_placing(place))
            log.info("Generating %dx%d, %d steps, %d reference(s) (%d seen), %d candidate(s)%s: %r",
                     job.request.width, job.request.height, job.request.steps, len(references),
                     len(job.model_references), job.candidates, ", then placing" if job.place else "",
                     excerpt(job.request.prompt))
            result = workflow.finish(job, _on_the_gpu(zerogpu.generate_on_gpu, job, progress))
        except UMOError as error:
            raise _refusal(error) from None
        if not references:
            gr.Warning("No references: the heatmap and identity metrics need at least one reference photo.")
        for note in job.notes:
            gr.Warning(note)
        session = _session(visitor)
        if not job.place:
            yield outputs.generation_outputs(result, *self._write(result, session))
            return
        # each person is its own GPU call (on ZeroGPU each fits its own budget), the count the job's
        try:
            for placed in workflow.placements(job, result, repair=_placing_on_the_gpu(progress)):
                yield outputs.generation_outputs(placed, *self._write(placed, session))
        except UMOError as error:
            raise _refusal(error) from None

    def show_candidate(self, views, selected: gr.SelectData) -> outputs.CandidateShown:
        """A click on the candidates gallery: that candidate's image, heatmap, labelled faces and table
        (and its base model pictures in compare mode) take the main panel."""
        if not views or selected is None or not 0 <= selected.index < len(views):
            raise gr.Error("Generate first: there is no candidate to show.")
        return outputs.shown_candidate(views[selected.index])

    def show_candidate_on_the_page(self, views, selected: gr.SelectData):
        """show_candidate with its pictures given the room they need (outputs.laid_out), then what
        it offers the *Repair faces* panel (outputs.RepairOffer)."""
        shown = outputs.placement_shown(self.show_candidate(views, selected))
        view = views[selected.index]
        return (*outputs.laid_out(shown, view["faces"]), *outputs.repair_offer(view["identity"]))

    # analysis of any image (the parameter names are the /analyze API's)
    @per_slot
    def analyze(self, slot_images=(), image=None, visitor: gr.Request = None) -> outputs.AnalyzeOutputs:
        """Outputs: summary, heatmap, labelled faces, table, downloads, JSON report. The analysed
        picture itself is not sent back: the caller has it, and the labelled faces show it."""
        try:
            backend = self._require_backend()
            references, names = self._load_references(slot_images)
            if not image:
                raise InputError("Add the image to analyse (a picture from any generator, or a photo).")
            result = workflow.analyze_image(backend, references, workflow.load_output_image(image),
                                            reference_names=names)
        except UMOError as error:
            raise gr.Error(str(error)) from None
        shown, saved = self._write(result, _session(visitor))
        return outputs.analysis_outputs(result, shown, saved)

    # several methods' images against the same references (the parameter names are the
    # /compare_methods API's: reference_1.., then image_1..image_6 and name_1..name_6, see slots.per_slot)
    @per_slot
    def compare_methods(self, slot_images=(), method_images=(), method_names=(),
                        visitor: gr.Request = None) -> outputs.CompareOutputs:
        """Outputs: summary, table (a row per method, best first), gallery (each method's picture and
        heatmap), sheet, downloads (sheet PNG, JSON report, CSV), JSON report. `name_N` names image
        N's method (empty: the file's name without its extension); a name without an image is left
        out. An image that cannot be scored is a row with its message; the others stand."""
        try:
            backend = self._require_backend()
            references, names = self._load_references(slot_images)
            given = [(image, name) for image, name in zip(method_images, method_names) if image]
            result = workflow.compare_methods(backend, references, [image for image, _ in given],
                                              [name for _, name in given], reference_names=names)
        except UMOError as error:
            raise gr.Error(str(error)) from None
        return outputs.comparison_outputs(result, self._write(result, _session(visitor), outputs.write_comparison))

    @staticmethod
    def method_name_for(path, name):
        """A method slot's name once a picture lands in it: the file's name without its extension,
        which the visitor may then edit; a cleared slot keeps its name."""
        stem = file_stem(path) if path else ""
        return stem or name

    # face repair (the parameter names are the /repair API's)
    @per_slot
    def repair(self, image=None, slot_images=(), references=None, strength=None, candidates=None, prompt=None,
               seed=0, slot_crops=(), progress=gr.Progress(), visitor: gr.Request = None) -> outputs.RepairOutputs:
        """Outputs: summary, repaired image, (before, after) for the slider, heatmap, table (per
        reference its face, the similarity on it before, after, change, ID-Conf, status), downloads,
        JSON report. A repair is kept by umo_pipeline.judge (its rule is in the summary).

        `image`: the picture to repair (a result, or any image), checked against the upload limits;
        reference_N: the references as for /analyze. `references`: which to repair, by slot number
        (e.g. [2]); empty or None: every reference that is not matched and has a face assigned to
        it. strength, candidates (seeds per face: seed, seed + 1, ...) and prompt (what each face is
        regenerated from) left out take the library's defaults; face_crop_N conditions that face's
        repair on reference N cropped around its face."""
        if self.customizer is None:
            raise gr.Error(f"Repairing faces needs a generating model, and none is loaded here: {self.model_error}",
                           title="No model loaded")
        try:
            backend = self._require_backend()
            loaded, names = self._load_references(slot_images)
            if not image:
                raise InputError("Add the image to repair (a generated picture, or any photo).")
            job = workflow.prepare_repair(
                self.customizer, backend, image, loaded, reference_names=names,
                choose=_slot_choices(references, slot_images), strength=strength,
                candidates=_candidates(candidates), prompt=prompt,
                face_crops=_face_crops(slot_images, slot_crops),
                seed=0 if seed is None else seed, gpu_seconds_limit=zerogpu.gpu_seconds_limit())
            log.info("Repairing %d face(s) (%s), %d candidate(s) each, strength %g", len(job.faces),
                     ", ".join(names[face.reference] for face in job.faces), job.candidates,
                     job.faces[0].request.inpaint.strength)
            result = workflow.finish_repair(job, _on_the_gpu(zerogpu.repair_on_gpu, job, progress))
        except UMOError as error:
            raise _refusal(error) from None
        return outputs.repair_outputs(result, self._write(result, _session(visitor), outputs.write_repair))

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

    def _write(self, result, session: str | None, write=outputs.write_pictures):
        """The result's files in a new folder of the downloads (see outputs.write_pictures)."""
        folder = self.downloads.new_folder(session)
        try:
            return write(result, folder)
        finally:
            self.downloads.written(folder)


def on_the_page(handler, returns, present=None, also=None):
    """The page's own call of an endpoint's handler (not in the API): the same work and the same
    outputs, plus one more, last: the status line by the button.

    A refusal (the gr.Error the endpoint raises for API clients: settings, references, a missing
    model, a stopped run) leaves the previous result on the page, every output skipped, and comes
    back as that line; a result clears it. `present(outputs)`: how the page shows a result (see
    outputs.laid_out), followed by the values of the page's own outputs named by `also` (a
    NamedTuple class, e.g. outputs.RepairOffer), which a refusal skips too. Anything else still
    fails the way Gradio shows errors: a bug should look like one."""
    skipped = tuple(gr.skip() for _ in (*returns._fields, *(also._fields if also is not None else ())))

    def shown_on_the_page(shown):
        return (*(present(shown) if present is not None else shown), status_line(None))

    if inspect.isgeneratorfunction(handler):  # a streaming endpoint: each of its results in turn
        @functools.wraps(handler)
        def page_stream(*args, **kwargs):
            try:
                for shown in handler(*args, **kwargs):
                    yield shown_on_the_page(shown)
            except gr.Error as refusal:  # what came before it stays on the page
                yield (*skipped, status_line(refusal.message))

        return page_stream

    @functools.wraps(handler)  # the same signature: Gradio passes the progress bar and the request
    def page_call(*args, **kwargs):
        try:
            shown = handler(*args, **kwargs)
        except gr.Error as refusal:
            return (*skipped, status_line(refusal.message))
        return shown_on_the_page(shown)

    return page_call


def status_line(message: str | None) -> str:
    """The HTML of the line by the Generate / Analyze button: a refusal's message, or nothing."""
    if not message:
        return ""
    return f'<p class="umo-refusal" role="alert">{html.escape(message)}</p>'


def _on_the_gpu(gpu_function, job, progress, count=None):
    """A prepared job's GPU phase (a zerogpu entry point): the bar from 0 (or, for one person of a
    group's placing, from where the job's `count` stands), one job on the GPU at a time, and Stop or
    a departed visitor ending it at its next step."""
    if count is None:
        progress((0, job.total_steps), desc="Starting")
    else:
        done, total, message = count.step(0)
        progress((done, total), desc=message)
    with DepartureWatch() as stop, zerogpu.GPU_LOCK:
        if count is None:
            return gpu_function(job, progress, stop)
        return gpu_function(job, progress, stop, count)


def _placing_on_the_gpu(progress):
    """A group's `repair(repair_job, count)` for workflow.placements: each person one GPU call."""
    def repair(repair_job, count):
        return _on_the_gpu(zerogpu.repair_on_gpu, repair_job, progress, count)

    return repair


def _refusal(error: UMOError) -> gr.Error:
    if isinstance(error, GenerationCancelled):  # expected: the log already has its one line
        return gr.Error(str(error), print_exception=False)
    return gr.Error(str(error))


def _slot_choices(numbers, slots, what: str = "repair") -> list[int] | None:
    """Slot numbers (/repair's `references`, /generate's `condition_on`) as indices among the filled
    slots (the library's references); None (the library's default) when none are given. `what`:
    what the choice is for, in the messages ("repair", "show the model")."""
    if not numbers:
        return None
    filled = [slot for slot, path in enumerate(slots) if path]
    chosen = []
    for number in numbers:
        if isinstance(number, bool) or not isinstance(number, (int, float)) or int(number) != number:
            raise InputError(f"Choose the references to {what} by their number (1 to {len(slots)}), not {number!r}.")
        if not 1 <= number <= len(slots):
            raise InputError(f"There is no Reference {int(number)}: the slots are numbered 1 to {len(slots)}.")
        if int(number) - 1 not in filled:
            raise InputError(f"{reference_label(int(number) - 1)} is empty: add its photo, or leave it out of the "
                             f"references to {what}.")
        chosen.append(filled.index(int(number) - 1))
    return chosen


def _session(visitor) -> str | None:
    # the page (or API client) a result belongs to; None when a test calls a handler directly
    return getattr(visitor, "session_hash", None)


def _slot_note(face, face_crop: bool = False) -> str:
    if face.face is None and face_crop:
        return "**Check:** No face found in this image: the whole image will be used, and it cannot be compared."
    if face.warning:
        return f"**Check:** {face.warning[0].upper()}{face.warning[1:]}."
    if face_crop:
        return "One face found: the model will receive this crop around it."
    return "One face found: this is the face that will be used."


#: /generate's `place`: "then repair faces that are not matched"
PLACING = {"auto": None, "on": True, "off": False}


def _placing(value) -> bool | None:
    """/generate's `place` as the library takes it (None: on when the model does not see everyone)."""
    if value is None or isinstance(value, bool):
        return value
    if value not in PLACING:
        raise InputError(f"Repairing faces that are not matched is \"auto\", \"on\" or \"off\", not {value!r}.")
    return PLACING[value]


def _candidates(value) -> int:
    """The candidates a request asked for; left out (an API client), the page's default."""
    return params.CANDIDATES.default if value is None else value


def _face_crops(slots, crops) -> list[bool]:
    """"Use face crop" of each filled slot, in the order of the references loaded from them."""
    return [bool(crop) for path, crop in zip(slots, crops) if path]
