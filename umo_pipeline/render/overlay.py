"""The output image with each face boxed in the colour of the reference it shows and tagged with its
number, the reference's name and the similarity; tags are placed so that neighbours never cover
each other, in shorter forms for crowds."""

from __future__ import annotations

from PIL import Image, ImageDraw

from umo_pipeline import labels
from umo_pipeline.render.drawing import (
    UNASSIGNED_COLOUR,
    _font,
    _hex_to_rgb,
    _ink_for,
    _text_box,
    reference_colour,
)


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
