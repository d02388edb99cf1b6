"""The whole page: panels.py's blocks placed on three tabs, and every event wired by name (inputs by
the handler's parameter names, which are the API's; outputs by the fields in outputs.py).

Each endpoint is wired twice (see `_endpoint`): the API's event, and the page's own chain, whose
first step (not queued, so it answers at once) asks whether the request's line has room: a full
line is said on the status line under the button, like any other refusal, and the request never
joins it; Gradio's own refusal (its pop-up) is left for a line that fills in between."""

from __future__ import annotations

import functools
import inspect
from dataclasses import dataclass
from pathlib import Path

import gradio as gr

from umo_app import gradio_internals, memory, outputs, panels
from umo_app.handlers import DemoHandlers, on_the_page, status_line
from umo_app.outputs import (
    AnalyzeOutputs, CandidateShown, CompareOutputs, GenerateOutputs, RepairOffer, RepairOutputs, RepairShown, in_order,
)
from umo_app.queue_limits import ANALYSIS_CONCURRENCY, ANALYSIS_GROUP, GPU_GROUP
from umo_app.slots import METHODS, SLOTS, method_image_name, method_name_name
from umo_pipeline import params


@dataclass
class Tab:
    """One tab's components: its reference cards, what feeds its handler (by parameter name), what
    shows the result (by output name), and its other controls."""

    references: panels.ReferenceSlots
    inputs: dict
    outputs: dict
    controls: dict
    #: the *Repair faces* panel's components (panels.repair_panel), and what feeds /repair from this
    #: tab (by parameter name); None where the tab has no panel (no generating model)
    repair: dict | None = None
    repair_inputs: dict | None = None


def build_demo(customizer_or_error, face_backend_or_error, *, device: str | None = None,
               downloads_root: Path | None = None) -> gr.Blocks:
    """The whole page. Pass a loaded customizer, or the error (text) that prevented loading it."""
    handlers = DemoHandlers(customizer_or_error, face_backend_or_error, downloads_root)
    customizer = handlers.customizer
    device = device or (customizer.device if customizer is not None else "cpu")
    # requests are counted so that free heap pages go back to the system once the server is idle
    counted = memory.IDLE_TRIM.around

    with gr.Blocks(title="UMO: multi-identity image customization", delete_cache=(3600, 3600)) as demo:
        gr.HTML(panels.header_html(handlers, device), elem_id="umo-header")
        gr.HTML(panels.banner_html(handlers), elem_id="umo-banner")
        with gr.Tabs():
            with gr.Tab("Generate", id="generate"):
                generation = _generate_tab(customizer)
            with gr.Tab("Analyze an image", id="analyze"):
                analysis = _analyze_tab(_max_references(customizer), can_repair=customizer is not None)
            # last: the tabs before it keep their components' numbers (see the status lines below)
            with gr.Tab("Compare methods", id="compare"):
                comparison = _compare_tab(_max_references(customizer))
        # each tab's status line goes under its button, last in that column; built after every other
        # component, the API's unlabelled outputs keep their numbers (gradio_client's value_<id>)
        for tab, prefix in ((generation, "umo-gen"), (analysis, "umo-ana"), (comparison, "umo-cmp")):
            with tab.controls["column"]:
                tab.controls["status"] = panels.status_area(f"{prefix}-status")
            if tab.repair is not None:
                with tab.repair["column"]:
                    tab.repair["status"] = panels.status_area(f"{prefix}-repair-status")
        for tab in (generation, analysis, comparison):
            _wire_previews(handlers, tab.references, counted)
            _wire_add_person(tab)
        _wire_generation(handlers, generation, counted, demo)
        _wire_analysis(handlers, analysis, counted, demo)
        _wire_comparison(handlers, comparison, counted, demo)
        _wire_repair(handlers, [tab for tab in (generation, analysis) if tab.repair is not None], counted, demo)
        demo.unload(handlers.forget_page)
    # results removed from the downloads folder leave Gradio's records of served files too
    handlers.downloads.on_removed = functools.partial(gradio_internals.forget_served_files, demo)
    return demo


def _max_references(customizer) -> int:
    """The slots a tab shows: the model's; without a model, those of the default model (UNO)."""
    from umo_pipeline.customizers import uno

    return customizer.max_references if customizer is not None else uno.MAX_REFERENCES


# -- the tabs ---------------------------------------------------------------------------------------
def _generate_tab(customizer) -> Tab:
    max_refs = _max_references(customizer)
    with gr.Row(equal_height=False, elem_classes="umo-main"):
        with gr.Column(scale=5, min_width=320) as controls_column:
            prompt = gr.Textbox(label="Prompt", lines=3, elem_id="umo-prompt",
                                placeholder="Two friends cooking together in a sunny kitchen")
            tips = customizer.prompt_tips if customizer is not None else None
            if tips:
                with gr.Accordion("Tips for multi-person prompts", open=False):
                    gr.Markdown(tips)
            gr.Markdown(f"**References**: one photo per person (the model sees up to {max_refs}; *Add a person* "
                        f"for up to {SLOTS}). Drop, paste or pick a file; the face that will be used appears below it.")
            crop_default = customizer.face_crop_default if customizer is not None else False
            references = panels.reference_slots("umo-gen", max_refs, crop_default)
            group = panels.group_controls(customizer)
            settings = panels.settings(customizer)
            can_compare = customizer is not None and "base" in customizer.variants
            compare = gr.Checkbox(value=False, label="Compare with base model (same seed)",
                                  interactive=can_compare, elem_id="umo-compare",
                                  info="Generates the base model and UMO from the same noise.")
            candidates = gr.Slider(**params.CANDIDATES.ui(params.CANDIDATES.default), elem_id="umo-candidates")
            generate_btn = gr.Button("Generate", variant="primary", elem_id="umo-generate-btn")
            stop_btn = gr.Button("Stop", variant="stop", visible=False, elem_id="umo-stop-btn")
        with gr.Column(scale=6, min_width=320, elem_classes="umo-results"):
            # the summary shows the seed; this field carries it for API clients
            seed_used = gr.Number(label="Seed used", interactive=False, precision=0, visible=False,
                                  elem_id="umo-seed-used")
            gallery = panels.candidates_gallery()
            placement = panels.placement_outputs()  # unrendered too: they go under the image, with the gallery

            def below_image():
                for shown in (gallery, *placement.values()):
                    shown.render()

            results = panels.result_panel("umo-gen", "Generated image", below_image=below_image)
            candidate_views = gr.State([])
            comparison_group, comparison = panels.comparison_panel()
            repair = panels.repair_panel("umo-gen")
    gr.Examples(panels.examples(), inputs=[prompt, *references.images], cache_examples=False, examples_per_page=5,
                label="Examples: public-domain photos (sources in examples/SOURCES.md)")
    preset = settings.pop("preset")
    return Tab(references,
               inputs={"prompt": prompt, **references.by_name(), **settings, "compare": compare,
                       "candidates": candidates, "condition_on": group["condition_on"], "place": group["place"]},
               outputs={"seed": seed_used, **results, **comparison, "gallery": gallery, **placement,
                        "candidate_views": candidate_views},
               controls={"preset": preset, "generate": generate_btn, "stop": stop_btn,
                         "comparison": comparison_group, "column": controls_column,
                         "limit": max_refs, "group_condition_on": group["condition_on"]},
               # the image shown (the best candidate, or the one clicked) is the one repaired
               repair=repair, repair_inputs=_repair_inputs(results["image"], references, repair))


def _repair_inputs(image, references: panels.ReferenceSlots, repair: dict) -> dict:
    settings = ("references", "strength", "candidates", "prompt", "seed")
    return {"image": image, **references.by_name(), **{name: repair[name] for name in settings}}


def _analyze_tab(max_refs: int, can_repair: bool) -> Tab:
    gr.Markdown("Check any picture (from any generator, or a photo) against reference photos: "
                "same heatmap, labelled faces and metrics. Runs on the CPU, no model weights needed.")
    with gr.Row(equal_height=False, elem_classes="umo-main"):
        with gr.Column(scale=5, min_width=320) as controls_column:
            references = panels.reference_slots("umo-ana", max_refs)
            image = panels.reference_image(label="Image to analyse", type="filepath", height=panels.PICTURE_HEIGHT,
                                           sources=["upload", "clipboard"], elem_id="umo-analyze-image")
            analyze_btn = gr.Button("Analyze", variant="primary", elem_id="umo-analyze-btn")
        with gr.Column(scale=6, min_width=320, elem_classes="umo-results"):
            results = panels.result_panel("umo-ana", None)
            repair = panels.repair_panel("umo-ana") if can_repair else None
            if not can_repair:
                panels.repair_unavailable()
    return Tab(references, inputs={**references.by_name(), "image": image}, outputs=results,
               controls={"analyze": analyze_btn, "column": controls_column}, repair=repair,
               repair_inputs=_repair_inputs(image, references, repair) if can_repair else None)


def _compare_tab(max_refs: int) -> Tab:
    gr.Markdown("Score several methods' pictures (UMO, UNO, OmniGen2, XVerse, DreamO, ...) against the same "
                "reference photos: one face model, one assignment and one heatmap each, ranked by the matching "
                "score UMO was trained with. Runs on the CPU, no model weights needed.")
    with gr.Row(equal_height=False, elem_classes="umo-main"):
        with gr.Column(scale=5, min_width=320) as controls_column:
            references = panels.reference_slots("umo-cmp", max_refs)
            gr.Markdown(f"**Images**: one per method (2 to {METHODS}); each is named after its file until you "
                        "rename it.")
            images = panels.method_slots("umo-cmp")
            compare_btn = gr.Button("Compare", variant="primary", elem_id="umo-compare-btn")
        with gr.Column(scale=6, min_width=320, elem_classes="umo-results"):
            results = panels.compare_results("umo-cmp")
    return Tab(references, inputs={**references.by_name(), **images}, outputs=results,
               controls={"compare": compare_btn, "column": controls_column})


# -- the events -------------------------------------------------------------------------------------
def _wire_previews(handlers: DemoHandlers, slots: panels.ReferenceSlots, counted) -> None:
    """Each reference slot (and its crop box, on the Generate tab) shows the face it will contribute."""
    for index, (image, preview, note) in enumerate(zip(slots.images, slots.previews, slots.notes)):
        crop = slots.crops[index:index + 1]
        gr.on([image.change, *(box.change for box in crop)], counted(handlers.preview_event(index)),
              inputs=[image, *crop], outputs=[preview, note], api_visibility="private", show_progress="minimal",
              concurrency_id=ANALYSIS_GROUP, concurrency_limit=ANALYSIS_CONCURRENCY)


def _wire_add_person(tab: Tab) -> None:
    """"Add a person" reveals the next reference card, and a hidden card that receives a photo (an
    example) is revealed with those before it; on the Generate tab, past the model's limit, the
    choice of who the model sees shows too."""
    slots = tab.references
    limit = tab.controls.get("limit")
    revealed = [slots.shown, *slots.rows, *slots.cards, slots.add]
    if limit is not None:
        revealed.append(tab.controls["group_condition_on"])

    def reveal(shown: int) -> tuple:
        now = panels.reveal_slots(shown)
        return now if limit is None else (*now, gr.CheckboxGroup(visible=now[0] > limit))

    def reveal_up_to(slot: int):
        def received(shown, photo):
            if not photo or int(shown) > slot:
                return tuple(gr.skip() for _ in revealed)
            return reveal(slot)
        return received

    slots.add.click(reveal, inputs=slots.shown, outputs=revealed, queue=False, api_visibility="private")
    for slot in range(len(slots.images)):
        slots.images[slot].change(reveal_up_to(slot), inputs=[slots.shown, slots.images[slot]], outputs=revealed,
                                  queue=False, api_visibility="private", show_progress="hidden")


def _wire_generation(handlers: DemoHandlers, tab: Tab, counted, demo) -> None:
    controls, inputs, shown = tab.controls, tab.inputs, tab.outputs
    controls["preset"].change(panels.apply_preset, inputs=[controls["preset"], inputs["width"], inputs["height"]],
                              outputs=[inputs["width"], inputs["height"]], api_visibility="private", queue=False)
    inputs["compare"].change(lambda on: gr.Group(visible=bool(on)), inputs=inputs["compare"],
                             outputs=controls["comparison"], api_visibility="private", queue=False)
    offer = in_order(RepairOffer, tab.repair)
    _endpoint(controls["generate"].click, demo, counted, handlers.generate, GenerateOutputs,
              inputs, shown, controls["status"], api_name="generate", progress_on="image",
              buttons=[controls["generate"], controls["stop"]], present=_generation_with_offer,
              also=(RepairOffer, offer),
              concurrency_limit=1, concurrency_id=GPU_GROUP)
    shown["gallery"].select(handlers.show_candidate_on_the_page, inputs=shown["candidate_views"],
                            outputs=[*in_order(CandidateShown, shown), *offer], api_visibility="private", queue=False)


def _wire_analysis(handlers: DemoHandlers, tab: Tab, counted, demo) -> None:
    offer = (RepairOffer, in_order(RepairOffer, tab.repair)) if tab.repair is not None else None
    _endpoint(tab.controls["analyze"].click, demo, counted, handlers.analyze, AnalyzeOutputs, tab.inputs, tab.outputs,
              tab.controls["status"], api_name="analyze", progress_on="overlay",
              present=_with_offer if offer else outputs.laid_out, also=offer,
              concurrency_id=ANALYSIS_GROUP, concurrency_limit=ANALYSIS_CONCURRENCY)


def _wire_comparison(handlers: DemoHandlers, tab: Tab, counted, demo) -> None:
    """/compare_methods and the Compare button, in the analyses' line (CPU only, never behind a
    generation); each method's name follows its picture's file name until edited."""
    for slot in range(METHODS):
        image, name = tab.inputs[method_image_name(slot)], tab.inputs[method_name_name(slot)]
        image.change(handlers.method_name_for, inputs=[image, name], outputs=name, queue=False,
                     api_visibility="private", show_progress="hidden")
    _endpoint(tab.controls["compare"].click, demo, counted, handlers.compare_methods, CompareOutputs, tab.inputs,
              tab.outputs, tab.controls["status"], api_name="compare_methods", progress_on="table", present=None,
              concurrency_id=ANALYSIS_GROUP, concurrency_limit=ANALYSIS_CONCURRENCY)


def _wire_repair(handlers: DemoHandlers, tabs: list[Tab], counted, demo) -> None:
    """/repair (once, on the first tab's components) and each tab's Repair button, with its Stop."""
    for number, tab in enumerate(tabs):
        panel = tab.repair
        _endpoint(panel["repair"].click, demo, counted, handlers.repair, RepairOutputs, tab.repair_inputs, panel,
                  panel["status"], api_name="repair" if number == 0 else None, progress_on="references",
                  buttons=[panel["repair"], panel["stop"]], present=outputs.repair_laid_out,
                  also=(RepairShown, in_order(RepairShown, panel)), concurrency_limit=1, concurrency_id=GPU_GROUP)


def _generation_with_offer(shown: GenerateOutputs) -> tuple:
    """_with_offer, with the placing's slider and table shown only when someone was placed."""
    return _with_offer(outputs.placement_shown(shown))


def _with_offer(shown) -> tuple:
    """A generation's or an analysis' result as the page shows it, then what it offers the *Repair
    faces* panel below it."""
    return (*outputs.laid_out(shown), *outputs.repair_offer(outputs.identity_of(shown.report)))


def _endpoint(trigger, demo, counted, handler, returns, inputs: dict, shown: dict, status, *, api_name: str | None,
              progress_on: str, present, also=None, buttons=None, **queue):
    """One handler, two events in one concurrency group (`queue`): the API endpoint `api_name` (none
    when None), which no page control triggers (gradio_client calls it by name) and which raises its
    refusals for the client to read; and the page's own chain on `trigger` (not in the API), which
    first asks whether the line has room (`_admitted`: `buttons`, (start, stop), swap while the
    request runs or waits), then calls the handler through handlers.on_the_page: a refusal shows as
    one line on `status` and leaves the previous result as it was, with one progress display, on
    the `progress_on` output. `also`: (NamedTuple class, components) of page-only outputs that
    `present` adds after the handler's. Returns the page's event that runs the handler."""
    ordered, shown_in_order = _in_parameter_order(handler, inputs), in_order(returns, shown)
    if api_name is not None:
        gr.on([], counted(handler), inputs=ordered, outputs=shown_in_order, api_name=api_name, **queue)
    extra_class, extra = also if also is not None else (None, [])
    running = _admitted(trigger, demo, queue["concurrency_id"], status, buttons).success(
        counted(on_the_page(handler, returns, present, extra_class)), inputs=ordered,
        outputs=[*shown_in_order, *extra, status], api_visibility="private",
        show_progress_on=[shown[progress_on]], **queue)
    if buttons is not None:
        running.then(_ready_buttons, outputs=buttons, queue=False, api_visibility="private")
        # Stop cancels the request as leaving does (departures.py stops the GPU work at its next step)
        buttons[1].click(_ready_buttons, outputs=buttons, cancels=[running], queue=False, api_visibility="private")
    return running


def _admitted(trigger, demo, group: str, status, buttons=None):
    """The page's first steps on `trigger`, not queued: when `group`'s line is full (the queue's own
    check, read by gradio_internals.refusal_to_join) the status line says so in the server's words
    and the chain ends there, silently; otherwise the line of an earlier refusal goes and, with
    `buttons` (start, stop), Stop takes the start button's place. Returns the event to chain the
    request on with `.success`."""
    admitted = gr.State(False)

    def check():
        refusal = gradio_internals.refusal_to_join(demo, group)
        swap = [] if buttons is None else [gr.Button(visible=refusal is not None),
                                           gr.Button(visible=refusal is None)]
        return (*swap, status_line(refusal), refusal is None)

    checked = trigger(check, outputs=[*(buttons or []), status, admitted], queue=False, api_visibility="private",
                      show_progress="hidden")
    return checked.success(_end_unless_admitted, inputs=admitted, queue=False, api_visibility="private",
                           show_progress="hidden")


def _end_unless_admitted(admitted: bool) -> None:
    # ends the chain without a word: the status line has said why (an invisible error shows nothing)
    if not admitted:
        raise gr.Error("The line is full.", visible=False, print_exception=False)


def _in_parameter_order(handler, components: dict) -> list:
    """The components feeding `handler` in the order of its first parameters (Gradio passes inputs by
    position; the parameters after them, such as the progress bar, are Gradio's own)."""
    names = list(inspect.signature(handler).parameters)[:len(components)]
    if set(names) != set(components):
        raise ValueError(f"{handler.__name__} takes {names} first; the page gives {sorted(components)}")
    return [components[name] for name in names]


def _ready_buttons():
    return gr.Button(visible=True), gr.Button(visible=False)
