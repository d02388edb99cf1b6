"""The preview of the face a reference contributes: cropped with some context and outlined, or the
crop the customizer will receive, or the whole photo (small) when no face was found."""

from __future__ import annotations

from PIL import Image, ImageDraw

#: previews show the face with this much of its size as margin on each side
PREVIEW_MARGIN = 0.45
PREVIEW_SIDE = 256
PREVIEW_OUTLINE = (46, 204, 113)


def render_reference_preview(image: Image.Image, reference, crop_box: tuple[int, int, int, int] | None = None) -> Image.Image:
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
