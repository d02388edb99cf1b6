"""PNG encoding for the one PNG writer (files.save_png), twice as fast as Pillow's at the same zlib level.

Pillow chooses a filter for every row by trying all five (libpng's heuristic), which is half of the
time a PNG of ours takes. Here every row gets the Up filter (each byte minus the one above it),
computed by numpy in one step; on the pictures this project writes (photos, heatmaps, sheets) it
compresses within a few percent of Pillow's choice (a 2964 x 1024 methods sheet: 1.28 MB against
1.23 MB) in half the time (38 ms against 82 ms at zlib level 1), and zlib releases the GIL while it
works. The format is PNG 1.2 (ISO/IEC 15948): signature, IHDR, text chunks, one IDAT, IEND.
Modes other than 8-bit L, LA, RGB and RGBA, and pictures that carry a colour profile or a
transparent colour (which Pillow would write too), return None, and the caller lets Pillow write them.
"""

from __future__ import annotations

import struct
import zlib

import numpy as np
from PIL import Image

SIGNATURE = b"\x89PNG\r\n\x1a\n"
#: Pillow mode -> (PNG colour type, samples per pixel), all 8 bits per sample
COLOUR_TYPES = {"L": (0, 1), "LA": (4, 2), "RGB": (2, 3), "RGBA": (6, 4)}
#: PNG filter type 2: each byte minus the byte above it (the first row: minus zeros, so unchanged)
UP_FILTER = 2


def encode_png(image: Image.Image, text: dict[str, str] | None = None, level: int = 1) -> bytes | None:
    """`image` as PNG bytes with `text` in tEXt chunks (iTXt, UTF-8, for a value Latin-1 cannot
    hold), compressed at zlib `level`; None for a mode this encoder does not write."""
    if image.mode not in COLOUR_TYPES or "icc_profile" in image.info or "transparency" in image.info:
        return None
    colour_type, samples = COLOUR_TYPES[image.mode]
    width, height = image.size
    rows = np.asarray(image, dtype=np.uint8).reshape(height, width * samples)
    filtered = np.empty((height, width * samples + 1), dtype=np.uint8)
    filtered[:, 0] = UP_FILTER
    filtered[0, 1:] = rows[0]
    np.subtract(rows[1:], rows[:-1], out=filtered[1:, 1:])  # uint8: modulo 256, as PNG's filters are
    chunks = [_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, colour_type, 0, 0, 0))]
    chunks += [_text_chunk(key, value) for key, value in (text or {}).items()]
    chunks += [_chunk(b"IDAT", zlib.compress(filtered.tobytes(), level)), _chunk(b"IEND", b"")]
    return SIGNATURE + b"".join(chunks)


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _text_chunk(key: str, value: str) -> bytes:
    name = key.encode("latin-1")
    if not 1 <= len(name) <= 79 or b"\0" in name:
        raise ValueError(f"A PNG text key must be 1-79 Latin-1 characters without NUL, not {key!r}.")
    try:
        return _chunk(b"tEXt", name + b"\0" + value.encode("latin-1"))
    except UnicodeEncodeError:
        # iTXt: key, NUL, not compressed (0), method 0, no language tag, no translated key, UTF-8 text
        return _chunk(b"iTXt", name + b"\0\0\0" + b"\0" + b"\0" + value.encode("utf-8"))
