"""The similarity heatmap: references as rows, output faces as columns, values x100 in the cells on
a viridis scale (colour-blind safe) whose bands follow the backend's thresholds, the assignment
outlined. Laid out for the page's DISPLAY_BOX so its text never shows below MIN_TEXT px."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

from umo_pipeline import labels
from umo_pipeline.render.drawing import (
    BACKGROUND,
    INK,
    MUTED,
    UNASSIGNED_COLOUR,
    _centred_text,
    _font,
    _ink_for,
    _shortened,
    _text_width,
    _thumbnail,
    reference_colour,
)

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
