"""Pictures of an identity report: the similarity heatmap, labelled face boxes on the output, a
side-by-side comparison sheet, and the preview of the face a reference contributes. Pillow only;
colours are colour-blind safe (Okabe-Ito, viridis).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw, ImageFont, ImageOps

from umo_pipeline import labels, matching
from umo_pipeline.images import load_image

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

#: Where the page shows a heatmap: a box about this many CSS pixels (width, height). The layout is
#: planned in these units, so text drawn at >= MIN_TEXT units shows at >= MIN_TEXT px on the page.
DISPLAY_BOX = (600, 340)
MIN_TEXT = 12
#: image pixels per layout unit: 2 keeps text crisp on high-density screens and when zoomed
PIXEL_SCALE = 2
#: more output faces than this: show the assigned ones and the strongest rivals, say how many more
MAX_COLUMNS = 8
PAD = 16


@lru_cache(maxsize=None)
def _font(size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.load_default(size=size)


@lru_cache(maxsize=4096)
def _text_box(text: str, size: int) -> tuple[int, int, int, int]:
    # Measuring text is the slow part of drawing it; labels repeat across cells and pictures.
    return _font(size).getbbox(text)


def reference_colour(index: int) -> str:
    return REFERENCE_COLOURS[index % len(REFERENCE_COLOURS)]


def _text_width(text: str, font) -> int:
    left, _, right, _ = _text_box(text, font.size)
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
    return tuple(int(c) for c in scale_colours(np.array([display_position(value, thresholds)]))[0])


def scale_colours(positions: np.ndarray) -> np.ndarray:
    """uint8 RGB for positions (0..1) on the colour scale: viridis, linearly between its stops."""
    t = np.clip(positions, 0.0, 1.0) * (len(_VIRIDIS) - 1)
    low = np.floor(t).astype(int)
    high = np.minimum(low + 1, len(_VIRIDIS) - 1)
    mixed = _VIRIDIS[low] + (t - low)[:, None] * (_VIRIDIS[high] - _VIRIDIS[low])
    return np.round(mixed).astype(np.uint8)


# ---------------------------------------------------------------- heatmap
# Sizes in layout units (see DISPLAY_BOX); every font is at least MIN_TEXT units.
_MARGIN = 8
_TITLE_TEXT, _SMALL_TEXT, _LABEL_TEXT, _VALUE_TEXT = 16, MIN_TEXT, 13, 14
_TITLE_H, _SUBTITLE_H, _FACE_LABEL_H, _NOTE_H, _LEGEND_H = 22, 18, 16, 17, 34
_ROW_MIN, _ROW_MAX = 30, 56
_COLUMN_MIN, _COLUMN_MAX = 44, 72
_LABEL_MAX = 130


def heatmap_columns(report, max_columns: int = MAX_COLUMNS) -> list[int]:
    """The output faces the heatmap shows, in face-number order: all of them up to `max_columns`;
    beyond that the assigned faces, each reference's best and runner-up face, then the faces most
    similar to any reference. The JSON keeps the full matrix."""
    n_faces = len(report.faces)
    if n_faces <= max_columns:
        return list(range(n_faces))
    match = report.match
    chosen: list[int] = []
    groups = [match.assignment, match.best_face, match.runner_up_face]
    S = np.nan_to_num(np.asarray(report.similarity, dtype=np.float64), nan=-np.inf)
    strongest = list(np.argsort(-S.max(axis=0), kind="stable")) if S.size else []
    for group in [*groups, strongest]:
        for face in group:
            if face is not None and int(face) not in chosen and (len(chosen) < max_columns or group is groups[0]):
                chosen.append(int(face))
    return sorted(chosen)


#: said in the face header row when the output has no face
NO_FACE_TEXT = "no face found in the output"


class _HeatmapLayout:
    """Where everything goes, in layout units; `px` turns units into image pixels. Wide enough for
    every line of text it holds: the title, the subtitle, the no-face line."""

    def __init__(self, report, title: str, scale: float):
        self.scale = scale
        self.columns = heatmap_columns(report)
        self.hidden = len(report.faces) - len(self.columns)
        n_rows = max(len(report.references), 1)
        n_columns = max(len(self.columns), 1)
        width, height = DISPLAY_BOX
        fixed = 2 * _MARGIN + _TITLE_H + _SUBTITLE_H + _FACE_LABEL_H + _LEGEND_H + (_NOTE_H if self.hidden else 0)
        self.row = int(np.clip((height - fixed) / (n_rows + 1), _ROW_MIN, _ROW_MAX))
        names = [*report.labels, *report.statuses] or ["no references"]
        self.label_width = min(_LABEL_MAX, max(_text_width(t, _font(_LABEL_TEXT)) for t in names) + 22)
        self.grid_left = _MARGIN + self.row + 4 + self.label_width
        room = width - _MARGIN - self.grid_left
        self.column = int(np.clip(room / n_columns, _COLUMN_MIN, _COLUMN_MAX))
        self.header_top = _MARGIN + _TITLE_H + _SUBTITLE_H
        self.grid_top = self.header_top + self.row + _FACE_LABEL_H
        self.grid_bottom = self.grid_top + n_rows * self.row
        texts = [(title, _TITLE_TEXT, _MARGIN), (_subtitle(report), _SMALL_TEXT, _MARGIN)]
        if not report.faces:
            texts.append((NO_FACE_TEXT, _LABEL_TEXT, self.grid_left + 4))
        # a text's width in layout units: measured at the drawn size, so rounding cannot make it stick out
        needed = max(left + _text_width(text, _font(int(round(size * scale)))) / scale for text, size, left in texts)
        self.width = int(np.ceil(max(self.grid_left + n_columns * self.column + _MARGIN, 320, needed + _MARGIN)))
        self.height = self.grid_bottom + (_NOTE_H if self.hidden else 0) + _LEGEND_H + _MARGIN
        self.title = title

    def px(self, value: float) -> int:
        return int(round(value * self.scale))

    def font(self, size: int):
        return _font(self.px(size))

    def cell(self, ref: int, column: int) -> tuple[int, int, int, int]:
        x0 = self.grid_left + column * self.column
        y0 = self.grid_top + ref * self.row
        return self.px(x0), self.px(y0), self.px(x0 + self.column), self.px(y0 + self.row)


def heatmap_cell_box(report, ref: int, face: int, *, scale: float = PIXEL_SCALE):
    """Pixel box of the (reference, face) cell in `render_heatmap(report)`; None when that face is
    not among the columns shown (more than MAX_COLUMNS faces)."""
    layout = _HeatmapLayout(report, "", scale)
    if face not in layout.columns:
        return None
    return layout.cell(ref, layout.columns.index(face))


def heatmap_display_scale(image: Image.Image, box: tuple[int, int] = DISPLAY_BOX) -> float:
    """How much the page shrinks (or grows) a picture shown to fit `box` (CSS object-fit: contain)."""
    return min(box[0] / image.width, box[1] / image.height)


def render_heatmap(report, title: str | None = None, *, scale: float = PIXEL_SCALE) -> Image.Image:
    """References as rows, output faces as columns, similarities x100 in the cells (the unit of the
    table), the assignment outlined. Planned for the page's DISPLAY_BOX so that all text shows at
    MIN_TEXT px or more; `scale` image pixels per layout unit. With many faces only the assigned
    ones and the strongest rivals get a column, and a line says how many more there are.

    The smallest font used, in image pixels, is kept in `image.info["min_font_px"]`.
    """
    layout = _HeatmapLayout(report, title or "Identity similarity", scale)
    canvas = Image.new("RGB", (layout.px(layout.width), layout.px(layout.height)), BACKGROUND)
    draw = ImageDraw.Draw(canvas)
    _draw_heatmap_title(draw, report, layout)
    _draw_face_headers(canvas, draw, report, layout)
    _draw_reference_rows(canvas, draw, report, layout)
    _draw_cells(draw, report, layout)
    y = layout.grid_bottom + 4
    if layout.hidden:
        note = f"+{layout.hidden} more face{'s' if layout.hidden > 1 else ''} (full matrix in the JSON)"
        draw.text((layout.px(layout.grid_left), layout.px(y)), note, font=layout.font(_SMALL_TEXT), fill=MUTED)
        y += _NOTE_H
    _draw_legend(canvas, draw, report.thresholds, layout, y + 2)
    canvas.info["min_font_px"] = layout.px(MIN_TEXT)
    return canvas


def _draw_heatmap_title(draw, report, layout) -> None:
    draw.text((layout.px(_MARGIN), layout.px(_MARGIN)), layout.title, font=layout.font(_TITLE_TEXT), fill=INK)
    subtitle = _subtitle(report)
    draw.text((layout.px(_MARGIN), layout.px(_MARGIN + _TITLE_H)), subtitle, font=layout.font(_SMALL_TEXT),
              fill=MUTED)


def _subtitle(report) -> str:
    return f"{report.backend} faces · cosine similarity x100"


def _draw_face_headers(canvas, draw, report, layout) -> None:
    top = layout.header_top
    if not report.faces:
        draw.text((layout.px(layout.grid_left + 4), layout.px(top + layout.row / 2)),
                  NO_FACE_TEXT, font=layout.font(_LABEL_TEXT), fill=MUTED)
        return
    owners = report.face_identities
    side = min(layout.row, layout.column) - 4
    label_font = layout.font(_SMALL_TEXT)
    for k, j in enumerate(layout.columns):
        x0 = layout.grid_left + k * layout.column
        left = x0 + (layout.column - side) / 2
        canvas.paste(_thumbnail(report.faces[j].crop, layout.px(side)), (layout.px(left), layout.px(top)))
        colour = reference_colour(owners[j]) if owners[j] is not None else UNASSIGNED_COLOUR
        draw.rectangle((layout.px(left), layout.px(top + side - 3), layout.px(left + side) - 1,
                        layout.px(top + side)), fill=colour)
        label = labels.face_label(j)
        _centred_text(draw, (layout.px(x0), layout.px(top + side + 1), layout.px(x0 + layout.column),
                             layout.px(top + side + _FACE_LABEL_H)), label, label_font, INK)


def _draw_reference_rows(canvas, draw, report, layout) -> None:
    if not report.references:
        draw.text((layout.px(_MARGIN), layout.px(layout.grid_top + layout.row / 3)), "no references",
                  font=layout.font(_LABEL_TEXT), fill=MUTED)
        return
    side = layout.row - 4
    label_font, status_font = layout.font(_LABEL_TEXT), layout.font(_SMALL_TEXT)
    for i, reference in enumerate(report.references):
        y0 = layout.grid_top + i * layout.row
        box = (layout.px(_MARGIN), layout.px(y0 + 2), layout.px(_MARGIN + side), layout.px(y0 + 2 + side))
        if reference.face is not None:
            canvas.paste(_thumbnail(reference.face.crop, box[2] - box[0]), box[:2])
        else:
            draw.rectangle(box, fill="#EEEEEE", outline="#CCCCCC")
        x = _MARGIN + side + 6
        middle = y0 + layout.row / 2
        draw.rectangle((layout.px(x), layout.px(middle - 13), layout.px(x + 8), layout.px(middle - 5)),
                       fill=reference_colour(i))
        room = layout.px(layout.label_width - 16)
        draw.text((layout.px(x + 12), layout.px(middle - 16)), _shortened(report.labels[i], label_font, room),
                  font=label_font, fill=INK)
        draw.text((layout.px(x + 12), layout.px(middle)), _shortened(report.statuses[i], status_font, room),
                  font=status_font, fill=MUTED)


def _draw_cells(draw, report, layout) -> None:
    value_font, na_font = layout.font(_VALUE_TEXT), layout.font(_SMALL_TEXT)
    for i, row in enumerate(report.similarity):
        for k, j in enumerate(layout.columns):
            value = row[j]
            box = layout.cell(i, k)
            if np.isnan(value):
                draw.rectangle(box, fill="#EEEEEE", outline=BACKGROUND)
                _centred_text(draw, box, "n/a", na_font, MUTED)
                continue
            fill = similarity_colour(value, report.thresholds)
            draw.rectangle(box, fill=fill, outline=BACKGROUND)
            _centred_text(draw, box, labels.format_score(value), value_font, _ink_for(fill))
    for i, j in enumerate(report.assignment):
        if j is not None and j in layout.columns:
            x0, y0, x1, y1 = layout.cell(i, layout.columns.index(j))
            draw.rectangle((x0, y0, x1 - 1, y1 - 1), outline=OUTLINE_OUTER, width=4)
            draw.rectangle((x0 + 4, y0 + 4, x1 - 5, y1 - 5), outline=OUTLINE_INNER, width=2)


def _centred_text(draw, box, text: str, font, fill) -> None:
    x0, y0, x1, y1 = box
    left, top, right, bottom = _text_box(text, font.size)
    draw.text(((x0 + x1 - (right - left)) / 2 - left, (y0 + y1 - (bottom - top)) / 2 - top), text,
              font=font, fill=fill)


def _thumbnail(crop: Image.Image, side: int) -> Image.Image:
    return crop.convert("RGB").resize((max(1, side), max(1, side)), Image.Resampling.BILINEAR)


def _draw_legend(canvas, draw, thresholds, layout, y: float) -> None:
    """A colour bar with the backend's weak / match thresholds marked, values x100 like the cells."""
    x = _MARGIN
    bar_units = min(layout.width - 2 * _MARGIN - 150, 300)
    bar_px = max(2, layout.px(bar_units))
    # pixel k of the bar shows the colour of the similarity at display position k / (bar_px - 1)
    colours = scale_colours(np.linspace(0.0, 1.0, bar_px))
    bar = Image.fromarray(np.repeat(colours[None], layout.px(9), axis=0), "RGB")
    canvas.paste(bar, (layout.px(x), layout.px(y)))
    small = layout.font(_SMALL_TEXT)
    for value, name in ((thresholds.weak, "weak"), (thresholds.match, "match")):
        tick = layout.px(x) + display_position(value, thresholds) * (bar_px - 1)
        draw.line((tick, layout.px(y - 2), tick, layout.px(y + 12)), fill=INK, width=max(1, layout.px(1)))
        label = f"{name} {labels.format_score(value)}"
        # "weak" ends at its tick and "match" starts at its own: close thresholds never overprint.
        left = tick - _text_width(label, small) - layout.px(3) if name == "weak" else tick + layout.px(3)
        draw.text((left, layout.px(y + 12)), label, font=small, fill=INK)
    draw.text((layout.px(x + bar_units + 12), layout.px(y - 2)), "outlined: assigned", font=small, fill=MUTED)


# ---------------------------------------------------------------- overlay

def render_overlay(image: Image.Image, report, *, width: int | None = None) -> Image.Image:
    """The output image (resized to `width` if given) with each face boxed in the colour of the
    reference it shows and labelled; faces that show no reference get a grey dashed box."""
    canvas = image.convert("RGB")
    if width is not None and width != canvas.width:
        # reducing_gap: a fast box pre-shrink, then LANCZOS; the same look at half the cost
        canvas = canvas.resize((width, max(1, round(canvas.height * width / canvas.width))),
                               Image.Resampling.LANCZOS, reducing_gap=2.0)
    else:
        canvas = canvas.copy()
    # Boxes are in the pixels of the analysed image, which may have been a larger or smaller copy.
    scale = canvas.width / report.image_size[0]
    draw = ImageDraw.Draw(canvas)
    short = min(canvas.size)
    line = max(2, round(short / 180))
    owners = report.face_identities
    tags = []
    for j, face in enumerate(report.faces):
        box = tuple(round(v * scale) for v in face.bbox)
        owner = owners[j]
        # The face number first: "Face 4" in the table and the JSON is found on the picture. Shorter
        # forms are for crowds, where a full tag would cover the neighbours' faces and tags.
        if owner is None:
            _dashed_rectangle(draw, box, UNASSIGNED_COLOUR, line)
            tags.append((box, [f"{labels.face_label(j)}: no match", f"{j + 1}"], UNASSIGNED_COLOUR))
            continue
        colour = reference_colour(owner)
        draw.rectangle(box, outline=colour, width=line)
        similarity = labels.format_score(report.similarity[owner][j])
        label = report.labels[owner]
        tags.append((box, [f"{labels.face_label(j)}: {label} · {similarity}", f"{j + 1}: {label}", f"{j + 1}"],
                     colour))
    placed: list[tuple[int, int, int, int]] = []
    for box, texts, colour in tags:  # after every box, so no box line crosses a tag
        size = min(48, max(12, round(short / 24)), max(12, round((box[2] - box[0]) / 7)))
        placed.append(_tag(draw, box, texts, colour, _font(size), canvas.size, placed))
    return canvas


#: a tag may be this much wider than its face before a shorter form is tried
TAG_WIDTH_SHARE = 1.6


def _tag(draw, box, texts: list[str], colour: str, font, size, placed) -> tuple[int, int, int, int]:
    """A filled label above the face box, or below / inside it when a neighbour's label already
    sits there, in the longest form that is not much wider than the face and overlaps no label
    placed before; returns where it went."""
    choice = None
    for n, text in enumerate(texts):
        last = n == len(texts) - 1
        for rect in _tag_spots(box, text, font, size):
            fits = (rect[2] - rect[0]) <= TAG_WIDTH_SHARE * max(box[2] - box[0], 1) or last
            if fits and not any(_overlap(rect, other) for other in placed):
                choice = (text, rect)
                break
        if choice:
            break
    if choice is None:
        choice = (texts[-1], _tag_spots(box, texts[-1], font, size)[0])
    text, rect = choice
    left, top, _, _ = _text_box(text, font.size)
    fill = _hex_to_rgb(colour)
    draw.rectangle(rect, fill=fill)
    draw.text((rect[0] + 5 - left, rect[1] + 4 - top), text, font=font, fill=_ink_for(fill))
    return rect


def _tag_spots(box, text: str, font, size) -> list[tuple[int, int, int, int]]:
    left, top, right, bottom = _text_box(text, font.size)
    w, h = right - left + 10, bottom - top + 8
    x0 = min(max(0, box[0]), max(0, size[0] - w))
    spots = [y for y in (box[1] - h, box[3], box[1], box[3] - h) if 0 <= y <= size[1] - h]
    spots = spots or [max(0, min(box[1], size[1] - h))]
    return [(x0, y, x0 + w, y + h) for y in spots]


def _overlap(a, b) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


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

#: as wide as the page's heatmap box, so a sheet's heatmap is drawn at one pixel per layout unit
PANEL_WIDTH = DISPLAY_BOX[0]
REFERENCE_THUMB = 128


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


def _shortened(text: str, font, width: int) -> str:
    while len(text) > 1 and _text_width(text, font) > width:
        text = text[:-4] + "..."
    return text


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


# -- reference previews -----------------------------------------------------------------------------
#: previews show the face with this much of its size as margin on each side
PREVIEW_MARGIN = 0.45
PREVIEW_SIDE = 256
PREVIEW_OUTLINE = (46, 204, 113)


def reference_preview(image: Image.Image, reference, crop_box: tuple[int, int, int, int] | None = None) -> Image.Image:
    """The face a reference contributes, cropped with some context and outlined; the whole photo
    (small) when no face was found, so the user sees which picture the warning is about. With
    crop_box (left, top, right, bottom: the face crop the customizer will receive): that crop."""
    if crop_box is not None:
        crop = image.crop(crop_box)
        return crop.resize(_preview_size(crop))
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
    crop = crop.resize(_preview_size(crop))
    outline = [(x0 - box[0]) * scale, (y0 - box[1]) * scale, (x1 - box[0]) * scale, (y1 - box[1]) * scale]
    ImageDraw.Draw(crop).rectangle(outline, outline=PREVIEW_OUTLINE, width=max(2, PREVIEW_SIDE // 80))
    return crop


def _preview_size(picture: Image.Image) -> tuple[int, int]:
    """The size that scales `picture` to PREVIEW_SIDE on its long side."""
    scale = PREVIEW_SIDE / max(picture.size)
    return max(1, round(picture.width * scale)), max(1, round(picture.height * scale))
