"""UNO's reference images: the long side each is resized to, UNO's resize-and-crop, the tokens they
add to every attention block, and the check for one too narrow to keep a token. Light (PIL only), so
the customizer and the AoTI bounds read these rules without loading diffusers."""

from __future__ import annotations

from collections.abc import Sequence

from PIL import Image

#: the transformer sees 2x2 patches of 8x-downscaled latents: one token per 16x16 pixels
PIXELS_PER_TOKEN = 16
#: UNO resizes the long side of a lone reference to 512 pixels, of each of several to 320
SINGLE_REFERENCE_LONG_SIDE = 512
MULTI_REFERENCE_LONG_SIDE = 320


def reference_long_side(n_references: int, long_side: int | None = None) -> int:
    """The long side references are resized to: `long_side` when given, else UNO's rule."""
    if long_side is not None:
        return long_side
    return SINGLE_REFERENCE_LONG_SIDE if n_references <= 1 else MULTI_REFERENCE_LONG_SIDE


def reference_tokens(n_references: int, long_side: int | None = None) -> int:
    """Tokens the references add at most (square references; others have fewer after the crop)."""
    return n_references * (reference_long_side(n_references, long_side) // PIXELS_PER_TOKEN) ** 2


def preprocess_reference(image: Image.Image, long_side: int) -> Image.Image:
    """UNO's reference preprocessing: long side to `long_side` (LANCZOS, aspect kept, short side
    truncated), then a centre crop so both sides are multiples of 16.

    Non-RGB images are converted to RGB first (UNO converts after resizing, which would resize
    palette images with nearest-neighbour); for RGB input the result is UNO's, pixel for pixel.
    """
    if image.mode != "RGB":
        image = image.convert("RGB")
    width, height = image.size
    if width >= height:
        new_width, new_height = long_side, int(long_side / width * height)
    else:
        new_width, new_height = int(long_side / height * width), long_side
    image = image.resize((new_width, new_height), resample=Image.LANCZOS)
    crop_width = new_width // PIXELS_PER_TOKEN * PIXELS_PER_TOKEN
    crop_height = new_height // PIXELS_PER_TOKEN * PIXELS_PER_TOKEN
    left, top = (new_width - crop_width) // 2, (new_height - crop_height) // 2
    return image.crop((left, top, left + crop_width, top + crop_height))


def check_reference_sizes(references: Sequence[Image.Image], long_side: int | None = None) -> None:
    """ValueError for a reference whose short side would fall below one token after UNO's resize."""
    long_side = reference_long_side(len(references), long_side)
    for number, reference in enumerate(references, start=1):
        short = int(long_side / max(reference.size) * min(reference.size))  # as preprocess_reference
        if short < PIXELS_PER_TOKEN:
            raise ValueError(
                f"Reference image {number} ({reference.width}x{reference.height}) is too narrow: resized to a "
                f"long side of {long_side} pixels, its short side falls below {PIXELS_PER_TOKEN} pixels."
            )
