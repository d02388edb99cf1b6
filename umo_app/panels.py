"""The page's building blocks: header and banners, reference cards, the settings, a result panel, the
candidates gallery, the comparison, the *Repair faces* panel, the Compare tab's method slots and
results, and the examples. Each returns its
components by name; layout.py places the panels and wires their events."""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from pathlib import Path

import gradio as gr

from umo_app import gradio_internals
from umo_app.outputs import COMPARE_TABLE_HEADERS, REPAIR_TABLE_HEADERS
from umo_app.slots import METHODS, SLOTS, crop_name, image_name, method_image_name, method_name_name
from umo_pipeline import params, render
from umo_pipeline.analysis import IdentityReport
from umo_pipeline.customizers.request import GenerationRequest
from umo_pipeline.faces import describe_backend
from umo_pipeline.labels import reference_label

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
#: every picture of a result row is as tall as the box the heatmap is planned for (render.DISPLAY_BOX),
#: so the image, the heatmap and the slider line up and the heatmap's text keeps its size
PICTURE_HEIGHT = render.DISPLAY_BOX[1]
TABLE_HEADERS = list(IdentityReport.TABLE_HEADERS)
#: each column's share of the table's width: all seven in view in a half-page column (style.py
#: keeps fewer on a phone); the numbers with their face ("86.9 (Face 21)") get the most
TABLE_WIDTHS = ["16%", "11%", "16%", "16%", "12%", "15%", "14%"]
#: the repair's table (outputs.repair_table_rows): the status column holds "not found -> matched"
REPAIR_TABLE_WIDTHS = ["15%", "10%", "11%", "11%", "13%", "16%", "24%"]


def header_html(handlers, device: str) -> str:
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


def banner_html(handlers) -> str:
    banners = []
    if handlers.customizer is not None and handlers.customizer.is_test_model:
        banners.append(("warn", "Tiny test model: generated images are random noise from a tiny "
                                "random-weight model, useful only to try the page. Identity analysis is real."))
    if handlers.model_error:
        banners.append(("error", f"Generation unavailable: {handlers.model_error} "
                                 "The Analyze tab still works."))
    if handlers.backend_error:
        banners.append(("error", f"Face analysis unavailable: {handlers.backend_error}"))
    shown = "".join(f'<div class="umo-banner {kind}">{html.escape(text)}</div>' for kind, text in banners)
    if handlers.backend is not None and (handlers.backend.scale_note or handlers.backend.fallback_reason):
        shown += backend_banner(handlers.backend)
    return shown


def backend_banner(backend) -> str:
    """One line for the visitor: which face model scores, and what that means for the numbers. What
    the person running the page needs (the scale in detail, why ArcFace was not used and how to add
    it) is folded away under it; the README's "Identity analysis" says the same."""
    if backend.name.startswith("insightface"):
        line = (f"Identity scores by {backend.name} (ArcFace), the kind of face model the papers score "
                "with: the numbers compare with published ones in kind.")
    else:
        line = (f"Identity scores by {backend.name}, not ArcFace: its numbers are not on the papers' "
                "scale, so compare them with each other, not with published figures.")
    return (f'<div class="umo-banner info"><p class="umo-banner-line">{html.escape(line)}</p>'
            f'<details><summary>About the face backend (for whoever runs this page)</summary>'
            f'<p>{html.escape(describe_backend(backend))}</p>'
            '<p>The README\'s "Identity analysis" section says where ArcFace packs are looked for.</p>'
            '</details></div>')


# -- references -------------------------------------------------------------------------------------
def reference_image(**options) -> gr.Image:
    """A gr.Image slot that hands the uploaded file itself (its path in Gradio's upload cache) to
    the handlers, which read it with umo_pipeline.images like every other caller.

    Gradio's own conversion would turn a 16-bit grayscale photo white and keep the hidden colours of
    transparent pixels; the library handles both (and EXIF rotation, animation, decompression bombs)
    and names the slot in its messages.
    """
    return gradio_internals.hand_over_upload_path(gr.Image(**options))


@dataclass
class ReferenceSlots:
    """SLOTS reference cards: the image slots, the face each will contribute, a note, and (on the
    Generate tab) a "Use face crop" checkbox each; the rows and cards (to reveal them), the "Add a
    person" button and how many cards are shown (`shown`, a gr.State)."""

    images: list = field(default_factory=list)
    previews: list = field(default_factory=list)
    notes: list = field(default_factory=list)
    crops: list = field(default_factory=list)
    rows: list = field(default_factory=list)
    cards: list = field(default_factory=list)
    add: gr.Button | None = None
    shown: gr.State | None = None

    def by_name(self) -> dict:
        """The slots and crop boxes under /generate's and /analyze's parameter names."""
        named = {image_name(n): image for n, image in enumerate(self.images)}
        return named | {crop_name(n): crop for n, crop in enumerate(self.crops)}


def reference_slots(prefix: str, max_references: int, face_crop_default: bool | None = None) -> ReferenceSlots:
    """SLOTS reference cards, two per row, the model's max_references shown and the others revealed
    one by one by "Add a person": the image slot, the face it will contribute (shown once found) and
    a one-line note; with face_crop_default, a "Use face crop" checkbox per slot (its starting value)."""
    slots = ReferenceSlots(shown=gr.State(max_references))
    for first in range(0, SLOTS, 2):
        with gr.Row(equal_height=False, visible=first < max_references) as row:
            slots.rows.append(row)
            for index in range(first, min(first + 2, SLOTS)):
                with gr.Column(min_width=240, visible=index < max_references, elem_classes="umo-ref-card") as card:
                    slots.cards.append(card)
                    _reference_card(slots, prefix, index, face_crop_default)
    slots.add = gr.Button(f"Add a person (up to {SLOTS})", size="sm", variant="secondary",
                          visible=max_references < SLOTS, elem_id=f"{prefix}-add-person")
    return slots


def reveal_slots(shown: int) -> tuple:
    """One more card than `shown`: (the cards now shown, then each row's and card's visibility, then
    the button's: gone once every slot is shown)."""
    shown = min(int(shown) + 1, SLOTS)
    rows = [gr.Row(visible=first < shown) for first in range(0, SLOTS, 2)]
    cards = [gr.Column(visible=index < shown) for index in range(SLOTS)]
    return (shown, *rows, *cards, gr.Button(visible=shown < SLOTS))


def _reference_card(slots: ReferenceSlots, prefix: str, index: int, face_crop_default: bool | None) -> None:
    card = f"{prefix}-ref-{index + 1}"
    slots.images.append(reference_image(
        label=reference_label(index), type="filepath", sources=["upload", "clipboard"],
        height=190, buttons=[], elem_id=card))
    with gr.Row(equal_height=True):
        slots.previews.append(gr.Image(
            label=f"Face used from {reference_label(index)}", height=84, min_width=84, scale=0,
            interactive=False, show_label=False, format="png", visible=False,
            buttons=[], container=False, elem_id=f"{card}-face"))
        slots.notes.append(gr.Markdown("", elem_classes="umo-slot-note", min_height=0, elem_id=f"{card}-note"))
    if face_crop_default is not None:
        slots.crops.append(gr.Checkbox(value=face_crop_default, label="Use face crop", container=False,
                                       elem_id=f"{card}-crop"))


# -- settings ---------------------------------------------------------------------------------------
def settings(customizer) -> dict:
    """The "Settings" accordion: the size preset, then every setting under /generate's parameter names
    (the extra ones shown only for a model that declares them)."""
    defaults = customizer.defaults if customizer is not None else GenerationRequest(prompt="")
    rules = {rule.name: rule for rule in (customizer.rules() if customizer is not None else params.REQUEST_RULES)}
    declared = customizer.extra_settings if customizer is not None else ()
    with gr.Accordion("Settings", open=False):
        shown = {"preset": gr.Dropdown(list(params.SIZE_PRESETS), label="Size",
                                       value=preset_for(defaults.width, defaults.height))}
        with gr.Row():
            shown["width"] = gr.Slider(**rules["width"].ui(defaults.width))
            shown["height"] = gr.Slider(**rules["height"].ui(defaults.height))
        with gr.Row():
            shown["steps"] = gr.Slider(**rules["steps"].ui(defaults.steps))
            shown["guidance"] = gr.Slider(**rules["guidance"].ui(defaults.guidance))
        with gr.Row():
            # no precision: Gradio would round 1.5 to 2 where the rule refuses it
            shown["seed"] = gr.Number(value=defaults.seed, step=1, label=rules["seed"].label,
                                      minimum=rules["seed"].minimum, maximum=rules["seed"].maximum)
            shown["randomize_seed"] = gr.Checkbox(value=True, label="Randomize seed")
        for name, rule in params.EXTRA_RULES.items():
            shown[name] = gr.Slider(**rule.ui(defaults.extra.get(name, rule.default)), visible=name in declared)
    return shown


def preset_for(width: int, height: int) -> str:
    for name, size in params.SIZE_PRESETS.items():
        if size == (width, height):
            return name
    return "Custom"


def apply_preset(name, width, height):
    size = params.SIZE_PRESETS.get(name)
    return (width, height) if size is None else size


# -- results ----------------------------------------------------------------------------------------
def result_panel(prefix: str, image_label: str | None, below_image=None) -> dict:
    """The result's components by output name (summary, image, heatmap, overlay, table, downloads,
    report); `below_image()` builds more of the page right under the image and heatmap. Without an
    `image_label` (an analysis: the person has the picture) there is no image, and the labelled faces
    take its place beside the heatmap."""
    shown = {"summary": gr.Markdown(elem_id=f"{prefix}-summary")}

    def labelled_faces(label, height):
        return gr.Image(label=label, format="png", interactive=False, height=height, min_width=240,
                        elem_id=f"{prefix}-overlay")

    with gr.Row(equal_height=True, elem_classes="umo-pictures"):
        if image_label is None:
            shown["overlay"] = labelled_faces("Labelled faces", PICTURE_HEIGHT)  # half width: a short label
        else:
            # also what a repair takes (/repair's `image`): Gradio hands over the file itself, its PNG,
            # whatever the mode (the page's own copy of the component, made when a result sets its
            # classes, would not keep a replaced preprocess)
            shown["image"] = gr.Image(label=image_label, format="png", type="filepath", image_mode=None,
                                      interactive=False, height=PICTURE_HEIGHT, min_width=240, elem_id=f"{prefix}-image")
        shown["heatmap"] = gr.Image(label="Assignment heatmap (references x faces found)", format="png",
                                    height=PICTURE_HEIGHT, interactive=False, show_label=False, min_width=240,
                                    elem_id=f"{prefix}-heatmap")
    if below_image is not None:
        below_image()
    if image_label is not None:
        shown["overlay"] = labelled_faces("Faces labelled by reference", 440)
    shown["table"] = identity_table(f"{prefix}-table", "Per reference")
    files = "comparison sheet, JSON report"
    shown["downloads"] = gr.File(label=f"Downloads: {files}" if image_label is None else
                                 f"Downloads: PNG with settings in its metadata, {files}",
                                 file_count="multiple", interactive=False, elem_id=f"{prefix}-downloads")
    with gr.Accordion("JSON report", open=False):
        shown["report"] = gr.JSON(label="Identity report", elem_id=f"{prefix}-report")
    return shown


def status_area(elem_id: str) -> gr.HTML:
    """The line under the Generate / Analyze button where a refused request says why."""
    return gr.HTML("", elem_id=elem_id, elem_classes="umo-status", container=False)


def identity_table(elem_id: str, label: str) -> gr.Dataframe:
    """The per-reference table (IdentityReport.table_rows), every column in view."""
    return gr.Dataframe(headers=TABLE_HEADERS, label=label, interactive=False, elem_id=elem_id, wrap=True,
                        column_widths=TABLE_WIDTHS, elem_classes="umo-table")


def candidates_gallery() -> gr.Gallery:
    """Built unrendered: the result panel places it under the image it lets the user swap."""
    return gr.Gallery(label="Candidates, best first: click one to see its heatmap and table", format="png",
                      columns=2, height="auto", object_fit="contain", allow_preview=False, interactive=False,
                      visible=False, render=False, elem_id="umo-candidates-gallery")


def group_controls(customizer) -> dict:
    """What a group past the model's limit needs, by /generate's parameter names: "condition_on"
    (the people the model sees, by slot number; hidden until there are more slots than it takes)
    and "place" (then repair faces that are not matched: "auto", on when the model does not see
    everyone, "on" or "off"), with the one line that says how the extra people are placed ("line")."""
    from umo_pipeline.workflow.placement import how_extra_people_are_placed

    limit = customizer.max_references if customizer is not None else SLOTS
    shown = {"line": gr.Markdown(how_extra_people_are_placed(limit), elem_classes="umo-slot-note",
                                 elem_id="umo-gen-group-line")}
    shown["condition_on"] = gr.CheckboxGroup(
        choices=[(reference_label(slot), slot + 1) for slot in range(SLOTS)], value=[], visible=False,
        label="People the model sees", info=f"Up to {limit}; none ticked: the first {limit}.",
        elem_id="umo-gen-condition-on")
    shown["place"] = gr.Radio(
        choices=[("When the model does not see everyone", "auto"), ("Always", "on"), ("Never", "off")],
        value="auto", label="Then repair faces that are not matched", elem_id="umo-place",
        info="Each person whose face is not matched is repainted from their own photo, kept only if the repair "
             "judge keeps it.")
    return shown


def placement_outputs() -> dict:
    """A group's placing, by output name (outputs.GenerateOutputs): the composed scene against the
    placed one, and per person the similarity on their face before and after; hidden until a
    generation placed someone. Built unrendered: the result panel places them under the image."""
    return {"placed_slider": gr.ImageSlider(label="Composed (left) / people placed (right)", format="png",
                                            interactive=False, height=PICTURE_HEIGHT, visible=False,
                                            render=False, elem_id="umo-gen-placed-slider"),
            "placement_table": gr.Dataframe(headers=REPAIR_TABLE_HEADERS,
                                            label="Per person: similarity on their face, composed and placed",
                                            interactive=False, wrap=True, column_widths=REPAIR_TABLE_WIDTHS,
                                            visible=False, render=False, elem_id="umo-gen-placement-table",
                                            elem_classes="umo-repair-table")}


def comparison_panel() -> tuple[gr.Group, dict]:
    """The base model beside UMO (shown in compare mode): the group, and its components by output name."""
    with gr.Group(visible=False) as group:
        gr.Markdown("### Base model vs UMO (same seed)")
        with gr.Row(equal_height=True):
            slider = gr.ImageSlider(label="Drag: base model (left) / UMO (right)", format="png",
                                    interactive=False, height=PICTURE_HEIGHT, min_width=240, elem_id="umo-slider")
            base_heatmap = gr.Image(label="Base model: assignment heatmap", format="png", interactive=False,
                                    show_label=False, height=PICTURE_HEIGHT, min_width=240, elem_id="umo-base-heatmap")
        base_table = identity_table("umo-base-table", "Base model: per reference")
    return group, {"slider": slider, "base_heatmap": base_heatmap, "base_table": base_table}


def repair_panel(prefix: str) -> dict:
    """*Repair faces*, hidden until a result offers references to repair (outputs.RepairOffer): its
    settings under /repair's parameter names ("references", "strength", "candidates", "prompt",
    "seed"), its outputs under outputs.RepairOutputs' names (in a group shown once a repair is done),
    and its controls: "panel", "results", "repair" and "stop" buttons, the "column" that ends with
    the status line."""
    from umo_pipeline.judge import rule
    from umo_pipeline.workflow.face_repair import DEFAULT_FACE_PROMPT

    shown = {}
    with gr.Accordion("Repair faces", open=True, visible=False, elem_id=f"{prefix}-repair") as shown["panel"]:
        with gr.Column() as shown["column"]:
            gr.Markdown("Regenerate a face that went wrong from its own reference and keep the rest of the "
                        f"image. {rule()}", elem_classes="umo-slot-note", elem_id=f"{prefix}-repair-rule")
            shown["references"] = gr.CheckboxGroup(
                choices=[(reference_label(slot), slot + 1) for slot in range(SLOTS)], value=[],
                label="References to repair", info="Ticked: those not matched. None ticked: the same.",
                elem_id=f"{prefix}-repair-references")
            with gr.Row():
                shown["strength"] = gr.Slider(**params.STRENGTH.ui(), elem_id=f"{prefix}-repair-strength")
                shown["candidates"] = gr.Slider(**{**params.CANDIDATES.ui(params.CANDIDATES.default),
                                                   "label": "Candidates per face",
                                                   "info": "Seeds tried per face; the one with the best matching score "
                                                           "that the rule keeps wins."},
                                                elem_id=f"{prefix}-repair-candidates")
            with gr.Row():
                shown["prompt"] = gr.Textbox(label="Prompt for each face (optional)", placeholder=DEFAULT_FACE_PROMPT,
                                             scale=3, min_width=240, elem_id=f"{prefix}-repair-prompt")
                shown["seed"] = gr.Number(value=0, step=1, label="Seed", minimum=params.SEED.minimum,
                                          maximum=params.SEED.maximum, scale=1, min_width=120,
                                          elem_id=f"{prefix}-repair-seed")
            shown["repair"] = gr.Button("Repair", variant="primary", elem_id=f"{prefix}-repair-btn")
            shown["stop"] = gr.Button("Stop", variant="stop", visible=False, elem_id=f"{prefix}-repair-stop-btn")
        with gr.Group(visible=False) as shown["results"]:
            shown["summary"] = gr.Markdown(elem_id=f"{prefix}-repair-summary", padding=True)
            with gr.Row(equal_height=True, elem_classes="umo-pictures"):
                shown["image"] = gr.Image(label="Repaired image", format="png", interactive=False, height=PICTURE_HEIGHT,
                                          min_width=240, elem_id=f"{prefix}-repair-image")
                shown["heatmap"] = gr.Image(label="Assignment heatmap after the repair", format="png", height=PICTURE_HEIGHT,
                                            interactive=False, show_label=False, min_width=240,
                                            elem_id=f"{prefix}-repair-heatmap")
            shown["slider"] = gr.ImageSlider(label="Before (left) / after (right)", format="png",
                                             interactive=False, height=PICTURE_HEIGHT, elem_id=f"{prefix}-repair-slider")
            shown["table"] = gr.Dataframe(headers=REPAIR_TABLE_HEADERS, label="Per reference: similarity on its face before and after the repair",
                                          interactive=False, wrap=True, column_widths=REPAIR_TABLE_WIDTHS,
                                          elem_id=f"{prefix}-repair-table", elem_classes="umo-repair-table")
            shown["downloads"] = gr.File(label="Downloads: repaired PNG with the repair settings in its metadata, "
                                               "JSON report with before and after", file_count="multiple",
                                         interactive=False, elem_id=f"{prefix}-repair-downloads")
            with gr.Accordion("JSON report of the repair", open=False):
                shown["report"] = gr.JSON(label="Repair report", elem_id=f"{prefix}-repair-report")
    return shown


def repair_unavailable() -> gr.Markdown:
    """The one line that stands where the *Repair faces* panel would, on a page without a generating
    model (the banner above says why there is none)."""
    return gr.Markdown("*Repairing a face needs a generating model, and none is loaded here (see the banner "
                       "above).*", elem_id="umo-ana-repair-unavailable", elem_classes="umo-slot-note")


# -- the Compare tab ----------------------------------------------------------------------------------
#: the compare table's columns: the per-reference cell (up to five references' numbers) gets the most;
#: on a phone (about 320 px for the table) the rank, "Matched" and the scores still fit on one line
COMPARE_TABLE_WIDTHS = ["8%", "20%", "16%", "16%", "40%"]


def method_slots(prefix: str) -> dict:
    """METHODS image slots, three per row, each with its method's name under it: the images under
    /compare_methods' names (image_N) and the name boxes under theirs (name_N)."""
    shown = {}
    for first in range(0, METHODS, 3):
        with gr.Row(equal_height=False):
            for slot in range(first, min(first + 3, METHODS)):
                with gr.Column(min_width=160, elem_classes="umo-method-card"):
                    card = f"{prefix}-image-{slot + 1}"
                    shown[method_image_name(slot)] = reference_image(
                        label=f"Image {slot + 1}", type="filepath", sources=["upload", "clipboard"], height=170,
                        buttons=[], elem_id=card)
                    shown[method_name_name(slot)] = gr.Textbox(
                        label="Method", placeholder="the file's name", max_lines=1, container=False,
                        elem_id=f"{card}-name")
    return shown


def compare_results(prefix: str) -> dict:
    """The Compare tab's result by output name (outputs.CompareOutputs)."""
    shown = {"summary": gr.Markdown(elem_id=f"{prefix}-summary")}
    shown["table"] = gr.Dataframe(headers=COMPARE_TABLE_HEADERS, label="Methods, best first (x100)", interactive=False,
                                  wrap=True, column_widths=COMPARE_TABLE_WIDTHS, elem_id=f"{prefix}-table",
                                  elem_classes="umo-compare-table")
    shown["gallery"] = gr.Gallery(label="Each method's image and its heatmap, best first", format="png", columns=2,
                                  height="auto", object_fit="contain", allow_preview=True, interactive=False,
                                  elem_id=f"{prefix}-gallery")
    shown["sheet"] = gr.Image(label="Comparison sheet (screenshot-ready)", format="png", interactive=False,
                              elem_id=f"{prefix}-sheet")
    shown["downloads"] = gr.File(label="Downloads: comparison sheet PNG (ranking in its metadata), JSON report, CSV",
                                 file_count="multiple", interactive=False, elem_id=f"{prefix}-downloads")
    with gr.Accordion("JSON report", open=False):
        shown["report"] = gr.JSON(label="Methods comparison report", elem_id=f"{prefix}-report")
    return shown


def examples() -> list[list]:
    def ex(name):
        return str(EXAMPLES / name)

    def row(prompt, *photos):
        return [prompt, *(ex(photo) for photo in photos), *([None] * (SLOTS - len(photos)))]

    return [
        row("Two scientists shaking hands in a sunlit 19th-century library, oil painting",
            "isaac_newton.jpg", "carl_friedrich_gauss.jpg"),
        row("Two colleagues laughing over coffee at a cafe terrace, candid photo",
            "grace_hopper.jpg", "astronaut_collins.jpg"),
        row("Two politicians walking side by side in a park, autumn, documentary photo",
            "barack_obama.jpg", "joe_biden.jpg"),
        row("Four friends posing for a group photo on a beach at sunset",
            "barack_obama.jpg", "grace_hopper.jpg", "isaac_newton.jpg", "astronaut_collins.jpg"),
        # more people than UNO sees: the last two are placed after the scene is composed
        row("Six colleagues posing for a team photo on the office stairs, candid photo",
            "barack_obama.jpg", "grace_hopper.jpg", "isaac_newton.jpg", "astronaut_collins.jpg",
            "carl_friedrich_gauss.jpg", "joe_biden.jpg"),
    ]
