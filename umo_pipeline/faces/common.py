"""Small helpers shared by the face backends: colour mode, preview crops, embedding norm, order."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from PIL import Image, ImageOps

from umo_pipeline.errors import FaceModelUnavailable, InputError

CROP_SIZE = 160
# Room around the detector's box so the preview shows the whole head, not just eyes to mouth.
CROP_MARGIN = 0.35


def as_rgb(image: Image.Image) -> Image.Image:
    """The image in RGB; grey and alpha images are converted rather than refused."""
    if not isinstance(image, Image.Image):
        raise InputError(f"expected a PIL image, got {type(image).__name__}")
    if image.width < 1 or image.height < 1:
        raise InputError("the image is empty (0 pixels)")
    return image if image.mode == "RGB" else image.convert("RGB")


def clip_box(box, width: int, height: int) -> tuple[float, float, float, float]:
    x0, y0, x1, y1 = (float(v) for v in box)
    return (
        min(max(x0, 0.0), width), min(max(y0, 0.0), height),
        min(max(x1, 0.0), width), min(max(y1, 0.0), height),
    )


def face_crop(image: Image.Image, box, size: int = CROP_SIZE, margin: float = CROP_MARGIN) -> Image.Image:
    """A square preview centred on the face; parts outside the image come out black."""
    x0, y0, x1, y1 = box
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    half = max(x1 - x0, y1 - y0, 1.0) * (0.5 + margin)
    square = tuple(round(v) for v in (cx - half, cy - half, cx + half, cy + half))
    return image.crop(square).resize((size, size), Image.BILINEAR)


def unit_vector(values) -> np.ndarray:
    vector = np.asarray(values, dtype=np.float32).reshape(-1)
    norm = float(np.linalg.norm(vector))
    if not np.isfinite(norm) or norm == 0.0:
        # A zero or NaN embedding would make every similarity meaningless downstream.
        raise FaceModelUnavailable(
            "the face recognition model returned an empty embedding; its weight files look broken"
        )
    return vector / norm


def largest_first(faces: list) -> list:
    return sorted(faces, key=lambda face: face.area, reverse=True)


#: faces whose vertical centres are closer than this share of a face height belong to one row
ROW_TOLERANCE = 0.5


def reading_order(faces: list) -> list:
    """Faces left to right, then top to bottom, the way a person numbers them in a picture.

    Heads in one row of a photo are never at exactly the same height, so faces are first grouped
    into rows: sorted by the height of their centre, a face starts a new row when its centre is
    more than half a face height below the previous one. Each row is then read left to right.
    """
    def centre(face):
        x0, y0, x1, y1 = face.bbox
        return (x0 + x1) / 2, (y0 + y1) / 2, max(y1 - y0, 1e-6)

    rows: list[list] = []
    previous = None
    for face in sorted(faces, key=lambda f: centre(f)[1]):
        _, cy, height = centre(face)
        if previous is not None and cy - previous[0] <= ROW_TOLERANCE * max(height, previous[1]):
            rows[-1].append(face)
        else:
            rows.append([face])
        previous = (cy, height)
    return [face for row in rows for face in sorted(row, key=lambda f: centre(f)[0])]


#: borders tried, in order, around a reference photo in which no face was found (share of its long side)
BORDER_SHARES = (0.25, 0.5)


def detect_with_border(backend, image: Image.Image) -> list:
    """backend.detect(image), retried on the image framed by a plain border when it finds nothing.

    UMO's authors advise face-only references, and detectors trained on whole photos (SCRFD above
    all) miss a face cropped tight to the chin and hairline: they need some context around it. The
    border is the picture's mean colour (a mirrored border would add half-faces); boxes and
    landmarks are mapped back to the original pixels.
    """
    image = as_rgb(image)
    faces = backend.detect(image)
    if faces:
        return faces
    mean = tuple(int(v) for v in np.asarray(image).reshape(-1, 3).mean(axis=0))
    for share in BORDER_SHARES:
        pad = max(1, round(share * max(image.size)))
        faces = backend.detect(ImageOps.expand(image, border=pad, fill=mean))
        if faces:
            return [
                replace(face, bbox=clip_box(np.subtract(face.bbox, pad), image.width, image.height),
                        landmarks=face.landmarks - np.float32(pad))
                for face in faces
            ]
    return []
