"""Turning user-supplied images (paths, bytes, uploads, PIL images) into upright 8-bit RGB.

Every problem becomes an InputError whose message names the file and says what is wrong with it.
"""

from __future__ import annotations

import io
import os
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from umo_pipeline.errors import InputError

#: Far above any camera photo (a 45 MP sensor is ~8200 x 5500); refuses decompression bombs early.
DEFAULT_MAX_PIXELS = 50_000_000

_TRANSPARENT_MODES = {"RGBA", "LA", "PA", "RGBa", "La"}
_HIGH_BIT_DEPTH_PREFIXES = ("I", "F")  # I, I;16, I;16B, I;16L, I;16N, F


def load_image(source, *, name: str | None = None, max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    """An upright RGB copy of `source` (a path, bytes, a binary file object or a PIL image).

    EXIF orientation is applied; transparency is composited on white; CMYK, grayscale, 16-bit
    and palette images are converted; animations contribute their first frame.
    """
    return _load(source, name, max_pixels, keep_alpha=False)[0]


def load_image_with_alpha(source, *, name: str | None = None,
                          max_pixels: int = DEFAULT_MAX_PIXELS) -> tuple[Image.Image, Image.Image | None]:
    """`load_image`'s RGB picture, and the source's alpha channel (upright, "L") when it has
    transparency (None when it has none, or every pixel is opaque): for work that changes the
    picture and should hand the transparency back (a face repair)."""
    return _load(source, name, max_pixels, keep_alpha=True)


def _load(source, name, max_pixels: int, keep_alpha: bool) -> tuple[Image.Image, Image.Image | None]:
    label = name or _describe(source)
    if isinstance(source, Image.Image):
        _check_size(source.size, label, max_pixels)
        return _converted(_upright(source, label), label, keep_alpha)
    with _open(source, label) as image:
        _check_size(image.size, label, max_pixels)
        try:
            image.seek(0)
            image.load()
        except (OSError, SyntaxError, ValueError, EOFError) as error:
            raise InputError(f"{label}: the image is truncated or damaged ({error})") from None
        return _converted(_upright(image, label), label, keep_alpha)


def _converted(image: Image.Image, label: str, keep_alpha: bool) -> tuple[Image.Image, Image.Image | None]:
    alpha = None
    if keep_alpha and (image.mode in _TRANSPARENT_MODES or (image.mode == "P" and "transparency" in image.info)):
        alpha = image.convert("RGBA").getchannel("A")
        if alpha.getextrema()[0] == 255:
            alpha = None  # an alpha channel that hides nothing
    return _to_rgb(image, label), alpha


def _describe(source) -> str:
    if isinstance(source, (str, os.PathLike)):
        return Path(source).name or str(source)
    file_name = getattr(source, "name", None)
    return Path(file_name).name if isinstance(file_name, str) and file_name else "image"


def _open(source, label: str) -> Image.Image:
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.exists():
            raise InputError(f"{label}: file not found")
        if not path.is_file():
            raise InputError(f"{label}: not a file")
        fp = path
    elif isinstance(source, (bytes, bytearray, memoryview)):
        fp = io.BytesIO(bytes(source))
    elif hasattr(source, "read"):
        fp = source
    else:
        raise InputError(f"{label}: expected an image file, got {type(source).__name__}")
    try:
        with warnings.catch_warnings():
            # Pillow only warns between its limit and twice its limit; we decide on size ourselves.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            return Image.open(fp)
    except Image.DecompressionBombError:
        raise InputError(f"{label}: the image has too many pixels to be a photo") from None
    except UnidentifiedImageError:
        raise InputError(f"{label}: not an image file, or a format that cannot be read") from None
    except OSError as error:
        raise InputError(f"{label}: cannot be read ({error.strerror or error})") from None


def _check_size(size: tuple[int, int], label: str, max_pixels: int) -> None:
    width, height = size
    if width < 1 or height < 1:
        raise InputError(f"{label}: the image is empty ({width} x {height} pixels)")
    if width * height > max_pixels:
        raise InputError(
            f"{label}: the image is too large ({width} x {height} = {width * height / 1e6:.0f} "
            f"megapixels; the limit is {max_pixels / 1e6:.0f})"
        )


def _upright(image: Image.Image, label: str) -> Image.Image:
    try:
        return ImageOps.exif_transpose(image)
    except Exception as error:  # noqa: BLE001 - Pillow raises assorted errors on broken EXIF
        raise InputError(f"{label}: its orientation (EXIF) data is damaged ({error})") from None


def _to_rgb(image: Image.Image, label: str) -> Image.Image:
    if image.mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    if image.mode.startswith(_HIGH_BIT_DEPTH_PREFIXES):
        image = _to_8_bit_gray(image)
    if image.mode in _TRANSPARENT_MODES:
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, rgba)
    try:
        return image.convert("RGB")
    except (ValueError, OSError) as error:
        raise InputError(f"{label}: unsupported colour mode {image.mode} ({error})") from None


def _to_8_bit_gray(image: Image.Image) -> Image.Image:
    # Pillow's convert("L") clips 16-bit values at 255 (a white picture); rescale instead.
    values = np.asarray(image, dtype=np.float64)
    if image.mode == "F":
        top = 1.0 if values.max(initial=0) <= 1.0 else 65535.0
    else:
        top = 255.0 if values.max(initial=0) <= 255 else 65535.0
    scaled = np.clip(values / top * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return Image.fromarray(scaled, mode="L")
