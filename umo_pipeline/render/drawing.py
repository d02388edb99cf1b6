"""What every picture of the report shares: its colours (Okabe-Ito, colour-blind safe), the font
and text measuring, and small drawing helpers (wrapped, shortened and centred text, thumbnails)."""

from __future__ import annotations

from functools import lru_cache

from PIL import Image, ImageFont

#: One colour per reference (Okabe-Ito), reused in every picture and the UI: all eight, so each person
#: of a group of params.MAX_PEOPLE has their own; vermillion and black come last, for the seventh and
#: eighth (vermillion sits close to orange, and a black tag is the least colourful)
REFERENCE_COLOURS = ["#E69F00", "#56B4E9", "#009E73", "#F0E442", "#0072B2", "#CC79A7", "#D55E00", "#000000"]
UNASSIGNED_COLOUR = "#9A9A9A"
BACKGROUND = "#FFFFFF"
INK = "#1A1A1A"
MUTED = "#666666"


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


def _shortened(text: str, font, width: int) -> str:
    while len(text) > 1 and _text_width(text, font) > width:
        text = text[:-4] + "..."
    return text


def _centred_text(draw, box, text: str, font, fill) -> None:
    x0, y0, x1, y1 = box
    left, top, right, bottom = _text_box(text, font.size)
    draw.text(((x0 + x1 - (right - left)) / 2 - left, (y0 + y1 - (bottom - top)) / 2 - top), text,
              font=font, fill=fill)


def _ink_for(fill) -> str:
    r, g, b = fill[:3]
    return INK if 0.299 * r + 0.587 * g + 0.114 * b > 140 else "#FFFFFF"


def _hex_to_rgb(colour: str) -> tuple[int, int, int]:
    return tuple(int(colour[i:i + 2], 16) for i in (1, 3, 5))


def _thumbnail(crop: Image.Image, side: int) -> Image.Image:
    return crop.convert("RGB").resize((max(1, side), max(1, side)), Image.Resampling.BILINEAR)
