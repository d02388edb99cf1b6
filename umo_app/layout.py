"""The whole page: panels.py's blocks placed on two tabs, and every event wired by name (inputs by
the handler's parameter names, which are the API's; outputs by the fields in outputs.py)."""

from __future__ import annotations

import functools
import inspect
from dataclasses import dataclass
from pathlib import Path

import gradio as gr

from umo_app import gradio_internals, memory, outputs, panels
from umo_app.handlers import DemoHandlers, on_the_page, status_line
from umo_app.outputs import AnalyzeOutputs, CandidateShown, GenerateOutputs, in_order
from umo_app.queue_limits import ANALYSIS_CONCURRENCY, ANALYSIS_GROUP, GPU_GROUP
from umo_pipeline import params


@dataclass
class Tab:
    """One tab's components: its reference cards, what feeds its handler (by parameter name), what
    shows the result (by output name), and its other controls."""

    references: panels.ReferenceSlots
    inputs: dict
    outputs: dict
    controls: dict


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
                analysis = _analyze_tab(_max_references(customizer))
        # each tab's status line goes under its button, last in that column; built after every other
        # component, the API's unlabelled outputs keep their numbers (gradio_client's value_<id>)
        for tab, elem_id in ((generation, "umo-gen-status"), (analysis, "umo-ana-status")):
            with tab.controls["column"]:
                tab.controls["status"] = panels.status_line(elem_id)
        for tab in (generation, analysis):
            _wire_previews(handlers, tab.references, counted)
        _wire_generation(handlers, generation, counted)
        _wire_analysis(handlers, analysis, counted)
        demo.unload(handlers.forget_page)
    # results removed from the downloads folder leave Gradio's records of served files too
    handlers.downloads.on_removed = functools.partial(gradio_internals.forget_served_files, demo)
    return demo


def _max_references(customizer) -> int:
    return customizer.max_references if customizer is not None else 4


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
            gr.Markdown(f"**References**: one photo per person (up to {max_refs}). "
                        "Drop, paste or pick a file; the face that will be used appears below it.")
            crop_default = customizer.face_crop_default if customizer is not None else False
            references = panels.reference_slots("umo-gen", max_refs, crop_default)
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
            results = panels.result_panel("umo-gen", "Generated image", below_image=gallery.render)
            candidate_views = gr.State([])
            comparison_group, comparison = panels.comparison_panel()
    gr.Examples(panels.examples(), inputs=[prompt, *references.images], cache_examples=False, examples_per_page=4,
                label="Examples: public-domain photos (sources in examples/SOURCES.md)")
    preset = settings.pop("preset")
    return Tab(references,
               inputs={"prompt": prompt, **references.by_name(), **settings, "compare": compare,
                       "candidates": candidates},
               outputs={"seed": seed_used, **results, **comparison, "gallery": gallery,
                        "candidate_views": candidate_views},
               controls={"preset": preset, "generate": generate_btn, "stop": stop_btn,
                         "comparison": comparison_group, "column": controls_column})


def _analyze_tab(max_refs: int) -> Tab:
    gr.Markdown("Check any picture (from any generator, or a photo) against reference photos: "
                "same heatmap, labelled faces and metrics. Runs on the CPU, no model weights needed.")
    with gr.Row(equal_height=False, elem_classes="umo-main"):
        with gr.Column(scale=5, min_width=320) as controls_column:
            references = panels.reference_slots("umo-ana", max_refs)
            image = panels.reference_image(label="Image to analyse", type="filepath", height=340,
                                           sources=["upload", "clipboard"], elem_id="umo-analyze-image")
            analyze_btn = gr.Button("Analyze", variant="primary", elem_id="umo-analyze-btn")
        with gr.Column(scale=6, min_width=320, elem_classes="umo-results"):
            results = panels.result_panel("umo-ana", None)
    return Tab(references, inputs={**references.by_name(), "image": image}, outputs=results,
               controls={"analyze": analyze_btn, "column": controls_column})


# -- the events -------------------------------------------------------------------------------------
def _wire_previews(handlers: DemoHandlers, slots: panels.ReferenceSlots, counted) -> None:
    """Each reference slot (and its crop box, on the Generate tab) shows the face it will contribute."""
    for index, (image, preview, note) in enumerate(zip(slots.images, slots.previews, slots.notes)):
        crop = slots.crops[index:index + 1]
        gr.on([image.change, *(box.change for box in crop)], counted(handlers.preview_event(index)),
              inputs=[image, *crop], outputs=[preview, note], api_visibility="private", show_progress="minimal",
              concurrency_id=ANALYSIS_GROUP, concurrency_limit=ANALYSIS_CONCURRENCY)


def _wire_generation(handlers: DemoHandlers, tab: Tab, counted) -> None:
    controls, inputs, outputs = tab.controls, tab.inputs, tab.outputs
    controls["preset"].change(panels.apply_preset, inputs=[controls["preset"], inputs["width"], inputs["height"]],
                              outputs=[inputs["width"], inputs["height"]], api_visibility="private", queue=False)
    inputs["compare"].change(lambda on: gr.Group(visible=bool(on)), inputs=inputs["compare"],
                             outputs=controls["comparison"], api_visibility="private", queue=False)
    # Stop shows while a generation runs or waits; pressing it cancels the event as leaving does
    buttons = [controls["generate"], controls["stop"]]
    starting = controls["generate"].click(_running_buttons, outputs=[*buttons, controls["status"]], queue=False,
                                          api_visibility="private")
    generating = _endpoint(starting.then, counted, handlers.generate, GenerateOutputs, tab, api_name="generate",
                           progress_on="image", concurrency_limit=1, concurrency_id=GPU_GROUP)
    generating.then(_ready_buttons, outputs=buttons, queue=False, api_visibility="private")
    generating.failure(_ready_buttons, outputs=buttons, queue=False, api_visibility="private")
    controls["stop"].click(_ready_buttons, outputs=buttons, cancels=[generating], queue=False,
                           api_visibility="private")
    outputs["gallery"].select(handlers.show_candidate_on_the_page, inputs=outputs["candidate_views"],
                              outputs=in_order(CandidateShown, outputs), api_visibility="private", queue=False)


def _wire_analysis(handlers: DemoHandlers, tab: Tab, counted) -> None:
    _endpoint(tab.controls["analyze"].click, counted, handlers.analyze, AnalyzeOutputs, tab, api_name="analyze",
              progress_on="overlay", concurrency_id=ANALYSIS_GROUP, concurrency_limit=ANALYSIS_CONCURRENCY)


def _endpoint(trigger, counted, handler, returns, tab: Tab, *, api_name: str, progress_on: str, **queue):
    """One handler, two events in one concurrency group (`queue`): the API endpoint `api_name`, which
    no page control triggers (gradio_client calls it by name) and which raises its refusals for the
    client to read; and the page's own event on `trigger` (not in the API), which shows a refusal
    as one line by the button and leaves the previous result as it was (handlers.on_the_page), with
    one progress display, on the `progress_on` output. Returns the page's event."""
    inputs, shown = _in_parameter_order(handler, tab.inputs), in_order(returns, tab.outputs)
    gr.on([], counted(handler), inputs=inputs, outputs=shown, api_name=api_name, **queue)
    return trigger(counted(on_the_page(handler, returns, outputs.on_the_page)), inputs=inputs,
                   outputs=[*shown, tab.controls["status"]], api_visibility="private",
                   show_progress_on=[tab.outputs[progress_on]], **queue)


def _in_parameter_order(handler, components: dict) -> list:
    """The components feeding `handler` in the order of its first parameters (Gradio passes inputs by
    position; the parameters after them, such as the progress bar, are Gradio's own)."""
    names = list(inspect.signature(handler).parameters)[:len(components)]
    if set(names) != set(components):
        raise ValueError(f"{handler.__name__} takes {names} first; the page gives {sorted(components)}")
    return [components[name] for name in names]


def _running_buttons():
    # and the line of an earlier refusal goes: it was about the last try
    return gr.Button(visible=False), gr.Button(visible=True), status_line(None)


def _ready_buttons():
    return gr.Button(visible=True), gr.Button(visible=False)
