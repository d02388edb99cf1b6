"""The comparison sheet: the references on top, then one column per output (its labelled faces, its
key metrics and its heatmap); a screenshot-ready PNG."""

from __future__ import annotations

from PIL import Image, ImageDraw, ImageOps

from umo_pipeline import labels, matching
from umo_pipeline.images import load_image
from umo_pipeline.render.drawing import BACKGROUND, INK, MUTED, _font, _shortened, _wrap, reference_colour
from umo_pipeline.render.heatmap import DISPLAY_BOX, render_heatmap
from umo_pipeline.render.overlay import render_overlay

#: as wide as the page's heatmap box, so a sheet's heatmap is drawn at one pixel per layout unit
PANEL_WIDTH = DISPLAY_BOX[0]
REFERENCE_THUMB = 128
#: the space around and between the sheet's parts
PAD = 16


def render_comparison_sheet(references, panels, title: str = "UMO identity comparison") -> Image.Image:
    """References on top, then one column per (label, output image, report) panel: the output with
    labelled faces, its key metrics and its heatmap. Meant as a screenshot-ready PNG."""
    columns = [_panel_column(label, image, report) for label, image, report in panels]
    width = max(PAD * 2 + max(1, len(columns)) * (PANEL_WIDTH + PAD) - PAD,
                PAD * 2 + len(references) * (REFERENCE_THUMB + PAD))
    names = list(panels[0][2].labels) if panels else [labels.reference_label(i) for i in range(len(references))]
    title_lines = _wrap(title, _font(28), width - 2 * PAD)
    refs_height = REFERENCE_THUMB + 30 if references else 0
    body = max((c.height for c in columns), default=0)
    top = PAD + 36 * len(title_lines) + 8
    sheet = Image.new("RGB", (width, top + refs_height + PAD + body + PAD), BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    for n, line in enumerate(title_lines):
        draw.text((PAD, PAD + 36 * n), line, font=_font(28), fill=INK)
    for i, reference in enumerate(references):
        x = PAD + i * (REFERENCE_THUMB + PAD)
        sheet.paste(_reference_thumbnail(i, reference, panels), (x, top))
        draw.rectangle((x, top + REFERENCE_THUMB, x + REFERENCE_THUMB - 1, top + REFERENCE_THUMB + 5),
                       fill=reference_colour(i))
        name = names[i] if i < len(names) else labels.reference_label(i)
        draw.text((x, top + REFERENCE_THUMB + 8), _shortened(name, _font(16), REFERENCE_THUMB + PAD - 4),
                  font=_font(16), fill=INK)
    y = top + refs_height + PAD
    for k, column in enumerate(columns):
        sheet.paste(column, (PAD + k * (PANEL_WIDTH + PAD), y))
    return sheet



def _panel_column(label: str, image: Image.Image, report) -> Image.Image:
    overlay = render_overlay(image, report, width=PANEL_WIDTH)
    heatmap = render_heatmap(report, title=label, scale=1)
    if heatmap.width > PANEL_WIDTH:
        heatmap = heatmap.resize((PANEL_WIDTH, round(heatmap.height * PANEL_WIDTH / heatmap.width)),
                                 Image.Resampling.LANCZOS)
    metrics = _metrics_lines(report)
    text_height = 36 + 24 * len(metrics)
    column = Image.new("RGB", (PANEL_WIDTH, text_height + overlay.height + 12 + heatmap.height), BACKGROUND)
    draw = ImageDraw.Draw(column)
    draw.text((0, 0), label, font=_font(24), fill=INK)
    for n, line in enumerate(metrics):
        draw.text((0, 34 + 24 * n), line, font=_font(17), fill=INK if n == 0 else MUTED)
    column.paste(overlay, (0, text_height))
    column.paste(heatmap, (0, text_height + overlay.height + 12))
    return column


def _metrics_lines(report) -> list[str]:
    score = labels.format_score
    kept = report.statuses.count(matching.MATCHED)
    headline = (f"ID-Sim {score(report.mean_id_sim)}   ID-Conf {score(report.mean_id_conf)}   "
                f"Hungarian {score(report.match.mean_assigned_similarity)}   kept {kept}/{len(report.labels)}")
    return [headline] + _wrap(report.summary, _font(17), PANEL_WIDTH)


def _reference_thumbnail(index: int, reference, panels) -> Image.Image:
    """The reference's face as the analysis saw it, or the whole picture when it has no face."""
    for _, _, report in panels:
        if index < len(report.references) and report.references[index].face is not None:
            crop = report.references[index].face.crop.convert("RGB")
            return crop.resize((REFERENCE_THUMB, REFERENCE_THUMB), Image.Resampling.LANCZOS)
    picture = load_image(reference, name=labels.reference_label(index))
    return ImageOps.pad(picture, (REFERENCE_THUMB, REFERENCE_THUMB), color=BACKGROUND)
