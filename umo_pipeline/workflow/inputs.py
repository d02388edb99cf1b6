"""The images a request starts from: references and images to analyse loaded upright, the face crop
a reference gives the customizer (its geometry), and the preview of what a reference contributes."""

from __future__ import annotations

from PIL import Image

from umo_pipeline import render
from umo_pipeline.analysis import analyze_reference
from umo_pipeline.images import load_image


def load_reference_image(source, name: str) -> Image.Image:
    """An upright RGB reference photo; InputError naming the slot when it cannot be used."""
    return load_image(source, name=name)


def load_output_image(source) -> Image.Image:
    return load_image(source, name="Image to analyse")


def load_reference(source, name: str, backend):
    """(upright RGB image, ReferenceFace): the face this reference will contribute, for previews."""
    image = load_reference_image(source, name)
    return image, analyze_reference(image, backend, name=name)


def face_crop_box(bbox, image_size: tuple[int, int], margin: float) -> tuple[int, int, int, int]:
    """The square (left, top, right, bottom) around a face box, `margin` x its long side added on each
    side; moved inside the image where it would stick out, and no larger than the image's short side."""
    x0, y0, x1, y1 = bbox
    width, height = image_size
    side = min(max(x1 - x0, y1 - y0) * (1 + 2 * margin), width, height)
    left = min(max((x0 + x1) / 2 - side / 2, 0), width - side)
    top = min(max((y0 + y1) / 2 - side / 2, 0), height - side)
    side = max(1, int(side))
    left, top = int(round(left)), int(round(top))
    return left, top, min(width, left + side), min(height, top + side)


def reference_input(image: Image.Image, reference, face_crop: bool, margin: float,
                    name: str = "This reference") -> tuple[Image.Image, str | None]:
    """(what the customizer receives for this reference, a warning or None): the face crop when asked
    for and a face was found, else the whole image (with a warning when a crop was asked for)."""
    if not face_crop:
        return image, None
    if reference.face is None:
        return image, f"{name}: no face found, so the whole image was used instead of a face crop."
    return image.crop(face_crop_box(reference.face.bbox, image.size, margin)), None


def reference_preview(image: Image.Image, reference, face_crop_margin: float | None = None) -> Image.Image:
    """The face a reference contributes (see render.render_reference_preview); with face_crop_margin (the
    slot's "Use face crop"): the face crop the customizer will receive."""
    crop_box = None
    if face_crop_margin is not None and reference.face is not None:
        crop_box = face_crop_box(reference.face.bbox, image.size, face_crop_margin)
    return render.render_reference_preview(image, reference, crop_box)
