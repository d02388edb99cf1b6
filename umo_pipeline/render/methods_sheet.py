"""The methods comparison sheet: the references down the left, then one column per method in rank
order (its name and numbers, its image, its heatmap under it); a screenshot-ready PNG that stays
legible with six methods and four references."""

from __future__ import annotations

from PIL import Image, ImageDraw

from umo_pipeline import labels
from umo_pipeline.render.drawing import (
    BACKGROUND, INK, MUTED, UNASSIGNED_COLOUR, _centred_text, _font, _shortened, _thumbnail, _wrap, reference_colour,
)
from umo_pipeline.render.heatmap import MIN_TEXT, PIXEL_SCALE
from umo_pipeline.render.sheet import PAD, PANEL_WIDTH

#: a method's column: at least this wide (its name and numbers on one line each), and at most the
#: page's heatmap box, so that a heatmap is drawn at one pixel per layout unit and its text keeps
#: MIN_TEXT px; in between, as wide as the widest heatmap
METHOD_MIN_WIDTH, METHOD_MAX_WIDTH = 360, PANEL_WIDTH
#: a reference's face down the left, with its name under it
REFERENCE_SIDE = 144
#: text sizes (px at the sheet's own size): never below the heatmap's smallest
TITLE_TEXT, NAME_TEXT, SCORE_TEXT, NUMBERS_TEXT, NOTE_TEXT = 28, 24, 22, 18, max(16, MIN_TEXT)
_HEADER_H = 34 + 30 + 26  # name, matching score, ID-Sim and matched
_MESSAGE_LINES = 4


def render_methods_sheet(comparison) -> Image.Image:
    """References on the left, one column per method of `comparison` (workflow.MethodComparison,
    best first): "#rank name", its matching score, mean ID-Sim and references matched, its image and
    its heatmap; a failed image shows its message instead of numbers.

    Where each method's parts landed is kept in `sheet.info["method_boxes"]`: name -> {"column",
    "image", "heatmap"} boxes (left, top, right, bottom; None where it has no such part)."""
    methods = comparison.methods
    # the page's heatmaps are drawn at PIXEL_SCALE; at half size here their text is MIN_TEXT px again
    heatmaps = [_at_sheet_size(method.heatmap) for method in methods]
    width = min(max([METHOD_MIN_WIDTH, *(h.width for h in heatmaps if h is not None)]), METHOD_MAX_WIDTH)
    pictures = [_fitted(method.image, width) if method.image is not None else None for method in methods]
    image_band = max([p.height for p in pictures if p is not None], default=width // 2)
    heatmap_band = max([h.height for h in heatmaps if h is not None], default=0)
    left = PAD + REFERENCE_SIDE + 2 * PAD
    sheet_width = left + len(methods) * (width + PAD)
    title = (f"Method comparison: {len(methods)} methods, {len(comparison.reference_names)} "
             f"reference{'s' if len(comparison.reference_names) != 1 else ''}")
    title_lines = _wrap(title, _font(TITLE_TEXT), sheet_width - 2 * PAD)
    top = PAD + 36 * len(title_lines) + 8
    references_height = len(comparison.reference_names) * (REFERENCE_SIDE + 36)
    body = _HEADER_H + image_band + PAD + heatmap_band
    footer = [labels.SCALE_NOTE + " Ranked by the matching score (UMO's reward); ties: mean ID-Sim.",
              f"Face backend: {comparison.backend_note or comparison.backend}"]
    footer_lines = [line for text in footer for line in _wrap(text, _font(NOTE_TEXT), sheet_width - 2 * PAD)]
    height = top + max(body, references_height) + PAD + 22 * len(footer_lines) + PAD
    sheet = Image.new("RGB", (sheet_width, height), BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    for n, line in enumerate(title_lines):
        draw.text((PAD, PAD + 36 * n), line, font=_font(TITLE_TEXT), fill=INK)
    _draw_references(sheet, draw, comparison, top)
    boxes = {}
    for k, (method, picture, heatmap) in enumerate(zip(methods, pictures, heatmaps)):
        x = left + k * (width + PAD)
        boxes[method.name] = _draw_method(sheet, draw, method, picture, heatmap, x, top, width, image_band)
    y = top + max(body, references_height) + PAD
    for n, line in enumerate(footer_lines):
        draw.text((PAD, y + 22 * n), line, font=_font(NOTE_TEXT), fill=MUTED)
    sheet.info["method_boxes"] = boxes
    return sheet


def _fitted(image: Image.Image, side: int) -> Image.Image:
    """`image` within side x side: box-reduced by the whole factor first, then Lanczos for the rest
    (10 ms -> 4 ms from 1024 px to 366 px here, six of them per sheet; at a third of the size the
    box's softening does not show)."""
    scale = min(1.0, side / max(image.size))
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    return image.convert("RGB").resize(size, Image.Resampling.LANCZOS, reducing_gap=1.0)


def _at_sheet_size(heatmap: Image.Image | None) -> Image.Image | None:
    """The page's heatmap (drawn at PIXEL_SCALE) at one pixel per layout unit, where its smallest text
    is MIN_TEXT px; narrower still when it would be wider than a column."""
    if heatmap is None:
        return None
    if PIXEL_SCALE == 2 and heatmap.width <= 2 * METHOD_MAX_WIDTH:
        return heatmap.reduce(2)  # each pixel the mean of four: exact halving, and the fastest
    scale = PIXEL_SCALE * max(1.0, heatmap.width / PIXEL_SCALE / METHOD_MAX_WIDTH)
    size = (max(1, round(heatmap.width / scale)), max(1, round(heatmap.height / scale)))
    return heatmap.resize(size, Image.Resampling.LANCZOS)


def _draw_references(sheet, draw, comparison, top: int) -> None:
    """Each reference's face as the analysis saw it, with its colour and name; a grey box where none
    was found."""
    for i, (name, reference) in enumerate(zip(comparison.reference_names, comparison.reference_faces)):
        y = top + i * (REFERENCE_SIDE + 36)
        box = (PAD, y, PAD + REFERENCE_SIDE - 1, y + REFERENCE_SIDE - 1)
        if reference.face is not None:
            sheet.paste(_thumbnail(reference.face.crop, REFERENCE_SIDE), box[:2])
        else:
            draw.rectangle(box, fill=UNASSIGNED_COLOUR)
            _centred_text(draw, box, "no face", _font(NOTE_TEXT), "#FFFFFF")
        draw.rectangle((PAD, y + REFERENCE_SIDE, PAD + REFERENCE_SIDE - 1, y + REFERENCE_SIDE + 5),
                       fill=reference_colour(i))
        draw.text((PAD, y + REFERENCE_SIDE + 9), _shortened(name, _font(NOTE_TEXT), REFERENCE_SIDE + PAD),
                  font=_font(NOTE_TEXT), fill=INK)


def _draw_method(sheet, draw, method, picture, heatmap, x: int, top: int, width: int, image_band: int) -> dict:
    """One method's column; returns where its parts are."""
    rank = f"#{method.rank} " if method.rank is not None else ""
    draw.text((x, top), _shortened(rank + method.name, _font(NAME_TEXT), width), font=_font(NAME_TEXT), fill=INK)
    if method.failed:
        lines = _wrap(method.message, _font(NOTE_TEXT), width)
        if len(lines) > _MESSAGE_LINES:
            lines = lines[:_MESSAGE_LINES - 1] + [_shortened(" ".join(lines[_MESSAGE_LINES - 1:]), _font(NOTE_TEXT), width)]
        for n, line in enumerate(lines):
            draw.text((x, top + 34 + 20 * n), line, font=_font(NOTE_TEXT), fill=MUTED)
    else:
        score = labels.format_score
        draw.text((x, top + 34), f"Matching score {score(method.matching_score)}", font=_font(SCORE_TEXT), fill=INK)
        draw.text((x, top + 64), f"ID-Sim {score(method.mean_id_sim)}   matched {method.matched}/"
                                 f"{len(method.report.labels)}", font=_font(NUMBERS_TEXT), fill=MUTED)
    y = top + _HEADER_H
    parts = {"column": (x, top, x + width, y + image_band), "image": None, "heatmap": None}
    if picture is not None:
        # centred in the band, so that every heatmap starts on one line
        at = (x + (width - picture.width) // 2, y + (image_band - picture.height) // 2)
        sheet.paste(picture, at)
        parts["image"] = (*at, at[0] + picture.width, at[1] + picture.height)
    else:
        box = (x, y, x + width - 1, y + image_band - 1)
        draw.rectangle(box, outline=UNASSIGNED_COLOUR, width=2)
        _centred_text(draw, box, "no picture", _font(NOTE_TEXT), MUTED)
    if heatmap is not None:
        at = (x, y + image_band + PAD)
        sheet.paste(heatmap, at)
        parts["heatmap"] = (*at, at[0] + heatmap.width, at[1] + heatmap.height)
        parts["column"] = (x, top, x + width, parts["heatmap"][3])
    return parts
