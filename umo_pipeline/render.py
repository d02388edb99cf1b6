"""Pictures of an identity report: the similarity heatmap, labelled face boxes on the output, and a
side-by-side comparison sheet. Pillow only; colours are colour-blind safe (Okabe-Ito, viridis).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from umo_pipeline import matching

#: One colour per reference (Okabe-Ito, vermillion left out), reused in every picture and the UI.
REFERENCE_COLOURS = ["#E69F00", "#56B4E9", "#009E73", "#F0E442", "#0072B2", "#CC79A7"]
UNASSIGNED_COLOUR = "#9A9A9A"
BACKGROUND = "#FFFFFF"
INK = "#1A1A1A"
MUTED = "#666666"
#: Assigned heatmap cells get a black ring with a white ring inside: visible on any viridis colour.
OUTLINE_OUTER = (0, 0, 0)
OUTLINE_INNER = (255, 255, 255)

# viridis sampled at 0, 1/8, ..., 1 (a perceptually uniform, colour-blind safe scale)
_VIRIDIS = np.array([
    [68, 1, 84], [71, 44, 122], [59, 81, 139], [44, 113, 142], [33, 144, 141],
    [39, 173, 129], [92, 200, 99], [170, 220, 50], [253, 231, 37],
], dtype=np.float64)

CELL = 92          # heatmap cell and face thumbnail side
PAD = 16
ROW_LABEL_WIDTH = 150


@lru_cache(maxsize=None)
def _font(size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.load_default(size=size)


def reference_colour(index: int) -> str:
    return REFERENCE_COLOURS[index % len(REFERENCE_COLOURS)]


def _text_width(text: str, font) -> int:
    left, _, right, _ = font.getbbox(text)
    return right - left


def _wrap(text: str, font, width: int) -> list[str]:
    lines, line = [], ""
    for word in text.split():
        candidate = f"{line} {word}".strip()
        if line and _text_width(candidate, font) > width:
            lines.append(line)
            line = word
        else:
            line = candidate
    return lines + [line] if line else lines


def _ink_for(fill) -> str:
    r, g, b = fill[:3]
    return INK if 0.299 * r + 0.587 * g + 0.114 * b > 140 else "#FFFFFF"


def _hex_to_rgb(colour: str) -> tuple[int, int, int]:
    return tuple(int(colour[i:i + 2], 16) for i in (1, 3, 5))


# ---------------------------------------------------------------- colour scale

def display_position(value: float, thresholds) -> float:
    """Where a similarity sits on the colour scale (0..1), piecewise so that each backend's
    "not found" / "weak" / "matched" bands land on the same colours whatever its similarity scale."""
    floor = max(0.0, 2 * thresholds.weak - 1)
    knots = [floor, thresholds.weak, thresholds.match, 1.0]
    return float(np.interp(value, knots, [0.0, 0.45, 0.65, 1.0]))


def similarity_colour(value: float, thresholds) -> tuple[int, int, int]:
    t = display_position(value, thresholds) * (len(_VIRIDIS) - 1)
    low = int(np.floor(t))
    high = min(low + 1, len(_VIRIDIS) - 1)
    mixed = _VIRIDIS[low] + (t - low) * (_VIRIDIS[high] - _VIRIDIS[low])
    return tuple(int(round(c)) for c in mixed)


# ---------------------------------------------------------------- heatmap

def heatmap_cell_box(report, ref: int, face: int) -> tuple[int, int, int, int]:
    """Pixel box of the (reference, face) cell in `render_heatmap(report)`."""
    x0 = PAD + CELL + 8 + ROW_LABEL_WIDTH + face * CELL
    y0 = _heatmap_grid_top(report) + ref * CELL
    return x0, y0, x0 + CELL, y0 + CELL


def _heatmap_header_height(report) -> int:
    width = _heatmap_width(report)
    lines = _wrap(report.summary, _font(15), width - 2 * PAD)
    return PAD + 28 + 20 * len(lines) + 12


def _heatmap_grid_top(report) -> int:
    return _heatmap_header_height(report) + CELL + 24


def _heatmap_width(report) -> int:
    columns = max(len(report.faces), 3)
    return PAD + CELL + 8 + ROW_LABEL_WIDTH + columns * CELL + PAD


def render_heatmap(report) -> Image.Image:
    """References as rows, output faces as columns, similarities in the cells, assignment outlined."""
    width = _heatmap_width(report)
    grid_top = _heatmap_grid_top(report)
    rows = max(len(report.references), 1)
    height = grid_top + rows * CELL + 16 + _LEGEND_HEIGHT + PAD
    canvas = Image.new("RGB", (width, height), BACKGROUND)
    draw = ImageDraw.Draw(canvas)

    _draw_heatmap_title(draw, report, width)
    _draw_face_headers(canvas, draw, report)
    _draw_reference_rows(canvas, draw, report)
    _draw_cells(draw, report)
    _draw_legend(draw, report.thresholds, PAD, grid_top + rows * CELL + 16, width - 2 * PAD)
    return canvas


def _draw_heatmap_title(draw, report, width: int) -> None:
    draw.text((PAD, PAD), f"Identity similarity ({report.backend} faces)", font=_font(22), fill=INK)
    y = PAD + 30
    for line in _wrap(report.summary, _font(15), width - 2 * PAD):
        draw.text((PAD, y), line, font=_font(15), fill=MUTED)
        y += 20


def _draw_face_headers(canvas, draw, report) -> None:
    top = _heatmap_header_height(report)
    if not report.faces:
        x0, _, _, _ = heatmap_cell_box(report, 0, 0)
        draw.text((x0 + 6, top + CELL // 2 - 10), "no face found in the output", font=_font(16), fill=MUTED)
        return
    owners = report.face_identities
    for j, face in enumerate(report.faces):
        x0, _, _, _ = heatmap_cell_box(report, 0, j)
        canvas.paste(_thumbnail(face.crop), (x0 + 4, top))
        colour = reference_colour(owners[j]) if owners[j] is not None else UNASSIGNED_COLOUR
        draw.rectangle((x0 + 4, top + CELL - 8, x0 + CELL - 5, top + CELL - 4), fill=colour)
        label = f"Face {j + 1}"
        draw.text((x0 + (CELL - _text_width(label, _font(14))) / 2, top + CELL + 2), label,
                  font=_font(14), fill=INK)


def _draw_reference_rows(canvas, draw, report) -> None:
    grid_top = _heatmap_grid_top(report)
    if not report.references:
        draw.text((PAD, grid_top + CELL // 2 - 10), "no references", font=_font(16), fill=MUTED)
        return
    for i, reference in enumerate(report.references):
        y0 = grid_top + i * CELL
        if reference.face is not None:
            canvas.paste(_thumbnail(reference.face.crop), (PAD, y0 + 4))
        else:
            draw.rectangle((PAD, y0 + 4, PAD + CELL - 8, y0 + CELL - 4), fill="#EEEEEE", outline="#CCCCCC")
            draw.text((PAD + 10, y0 + CELL // 2 - 8), "no face", font=_font(14), fill=MUTED)
        x = PAD + CELL + 8
        draw.rectangle((x, y0 + 26, x + 12, y0 + 38), fill=reference_colour(i))
        draw.text((x + 18, y0 + 22), report.labels[i], font=_font(17), fill=INK)
        draw.text((x + 18, y0 + 46), report.statuses[i], font=_font(14), fill=MUTED)


def _draw_cells(draw, report) -> None:
    for i, row in enumerate(report.similarity):
        for j, value in enumerate(row):
            box = heatmap_cell_box(report, i, j)
            if np.isnan(value):
                draw.rectangle(box, fill="#EEEEEE", outline=BACKGROUND)
                _centred_text(draw, box, "n/a", _font(18), MUTED)
                continue
            fill = similarity_colour(value, report.thresholds)
            draw.rectangle(box, fill=fill, outline=BACKGROUND)
            _centred_text(draw, box, f"{value:.2f}", _font(20), _ink_for(fill))
    for i, j in enumerate(report.assignment):
        if j is not None:
            x0, y0, x1, y1 = heatmap_cell_box(report, i, j)
            draw.rectangle((x0, y0, x1 - 1, y1 - 1), outline=OUTLINE_OUTER, width=4)
            draw.rectangle((x0 + 4, y0 + 4, x1 - 5, y1 - 5), outline=OUTLINE_INNER, width=2)


def _centred_text(draw, box, text: str, font, fill) -> None:
    x0, y0, x1, y1 = box
    left, top, right, bottom = font.getbbox(text)
    draw.text(((x0 + x1 - (right - left)) / 2 - left, (y0 + y1 - (bottom - top)) / 2 - top), text,
              font=font, fill=fill)


def _thumbnail(crop: Image.Image) -> Image.Image:
    return crop.convert("RGB").resize((CELL - 8, CELL - 8), Image.Resampling.LANCZOS)


_LEGEND_HEIGHT = 44


def _draw_legend(draw, thresholds, x: int, y: int, width: int) -> None:
    """A colour bar with the backend's weak / match thresholds marked."""
    bar_width = min(width - 140, 420)  # room on the right for the outline note
    floor = max(0.0, 2 * thresholds.weak - 1)
    for k in range(bar_width):
        position = k / (bar_width - 1)
        value = float(np.interp(position, [0.0, 0.45, 0.65, 1.0], [floor, thresholds.weak, thresholds.match, 1.0]))
        draw.line((x + k, y, x + k, y + 12), fill=similarity_colour(value, thresholds))
    for value, name in ((thresholds.weak, "weak"), (thresholds.match, "match")):
        tick = x + display_position(value, thresholds) * (bar_width - 1)
        draw.line((tick, y - 2, tick, y + 16), fill=INK, width=2)
        draw.text((tick - 20, y + 18), f"{name} {value:.2f}", font=_font(13), fill=INK)
    draw.text((x + bar_width + 10, y - 2), "outlined: assigned", font=_font(13), fill=MUTED)


# ---------------------------------------------------------------- overlay

def render_overlay(image: Image.Image, report, *, width: int | None = None) -> Image.Image:
    """The output image (resized to `width` if given) with each face boxed in the colour of the
    reference it shows and labelled; faces that show no reference get a grey dashed box."""
    canvas = image.convert("RGB")
    if width is not None and width != canvas.width:
        canvas = canvas.resize((width, max(1, round(canvas.height * width / canvas.width))),
                               Image.Resampling.LANCZOS)
    else:
        canvas = canvas.copy()
    # Boxes are in the pixels of the analysed image, which may have been a larger or smaller copy.
    scale = canvas.width / report.image_size[0]
    draw = ImageDraw.Draw(canvas)
    short = min(canvas.size)
    line = max(2, round(short / 180))
    owners = report.face_identities
    for j, face in enumerate(report.faces):
        box = tuple(round(v * scale) for v in face.bbox)
        # Tags about as wide as their face, so neighbours' tags rarely overlap.
        font = _font(min(48, max(12, round(short / 24)), max(12, round((box[2] - box[0]) / 7))))
        owner = owners[j]
        if owner is None:
            _dashed_rectangle(draw, box, UNASSIGNED_COLOUR, line)
            _tag(draw, box, f"Face {j + 1}: no match", UNASSIGNED_COLOUR, font, canvas.size)
            continue
        colour = reference_colour(owner)
        draw.rectangle(box, outline=colour, width=line)
        similarity = report.similarity[owner][j]
        _tag(draw, box, f"{report.labels[owner]} · {similarity:.2f}", colour, font, canvas.size)
    return canvas


def _tag(draw, box, text: str, colour: str, font, size) -> None:
    left, top, right, bottom = font.getbbox(text)
    w, h = right - left + 10, bottom - top + 8
    x0, y0 = box[0], box[1] - h
    if y0 < 0:  # no room above the face: put the tag just inside the top of the box
        y0 = box[1]
    x0 = min(max(0, x0), max(0, size[0] - w))
    fill = _hex_to_rgb(colour)
    draw.rectangle((x0, y0, x0 + w, y0 + h), fill=fill)
    draw.text((x0 + 5 - left, y0 + 4 - top), text, font=font, fill=_ink_for(fill))


def _dashed_rectangle(draw, box, colour: str, width: int) -> None:
    x0, y0, x1, y1 = box
    dash = max(6, width * 3)
    for start in range(x0, x1, 2 * dash):
        end = min(start + dash, x1)
        draw.line((start, y0, end, y0), fill=colour, width=width)
        draw.line((start, y1, end, y1), fill=colour, width=width)
    for start in range(y0, y1, 2 * dash):
        end = min(start + dash, y1)
        draw.line((x0, start, x0, end), fill=colour, width=width)
        draw.line((x1, start, x1, end), fill=colour, width=width)


# ---------------------------------------------------------------- comparison sheet

PANEL_WIDTH = 520
REFERENCE_THUMB = 128


def render_comparison_sheet(references, panels, title: str = "UMO identity comparison") -> Image.Image:
    """References on top, then one column per (label, output image, report) panel: the output with
    labelled faces, its key metrics and its heatmap. Meant as a screenshot-ready PNG."""
    columns = [_panel_column(label, image, report) for label, image, report in panels]
    width = max(PAD * 2 + max(1, len(columns)) * (PANEL_WIDTH + PAD) - PAD,
                PAD * 2 + len(references) * (REFERENCE_THUMB + PAD))
    names = list(panels[0][2].labels) if panels else [f"Reference {i + 1}" for i in range(len(references))]
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
        name = names[i] if i < len(names) else f"Reference {i + 1}"
        draw.text((x, top + REFERENCE_THUMB + 8), _shortened(name, _font(16), REFERENCE_THUMB + PAD - 4),
                  font=_font(16), fill=INK)
    y = top + refs_height + PAD
    for k, column in enumerate(columns):
        sheet.paste(column, (PAD + k * (PANEL_WIDTH + PAD), y))
    return sheet


def _shortened(text: str, font, width: int) -> str:
    while len(text) > 1 and _text_width(text, font) > width:
        text = text[:-4] + "..."
    return text


def _panel_column(label: str, image: Image.Image, report) -> Image.Image:
    overlay = render_overlay(image, report, width=PANEL_WIDTH)
    heatmap = render_heatmap(report)
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
    def percent(value):
        return "n/a" if value is None else f"{100 * value:.1f}"

    kept = report.statuses.count(matching.MATCHED)
    headline = (f"ID-Sim {percent(report.mean_id_sim)}   ID-Conf {percent(report.mean_id_conf)}   "
                f"kept {kept}/{len(report.labels)}")
    return [headline] + _wrap(report.summary, _font(17), PANEL_WIDTH)


def _reference_thumbnail(index: int, reference, panels) -> Image.Image:
    """The reference's face as the analysis saw it, or the whole picture when it has no face."""
    from PIL import ImageOps

    from umo_pipeline.images import load_image

    for _, _, report in panels:
        if index < len(report.references) and report.references[index].face is not None:
            crop = report.references[index].face.crop.convert("RGB")
            return crop.resize((REFERENCE_THUMB, REFERENCE_THUMB), Image.Resampling.LANCZOS)
    picture = load_image(reference, name=f"Reference {index + 1}")
    return ImageOps.pad(picture, (REFERENCE_THUMB, REFERENCE_THUMB), color=BACKGROUND)
