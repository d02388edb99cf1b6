"""Where a face repair works on the picture: the crop around a face, the side it is regenerated at,
the soft mask over the face, finding the face again after a repaint, and the canvas that composes
several repaints so that none undoes another.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from umo_pipeline.workflow.inputs import face_crop_box

#: the crop's side is this many times the face box's long side. FaceDetailer's default (crop_factor
#: 3.0), kept for our own reasons: the face then fills a third of the crop, so the model sees the
#: hair, neck and light around it and draws a face that fits them, and the feathered mask (at most
#: 0.81 face sides from the centre) fades out well inside the crop, so no square edge can show; a
#: larger crop gives the face fewer of the working size's pixels (at 512 px it keeps ~170).
CROP_CONTEXT = 3.0
#: the working size's side is the crop's, brought into this range (on the model's size grid): small
#: faces are drawn again at 512 px (the size detailers work at, and where a face gets enough tokens),
#: and a crop never costs more than the default 768 x 768 generation does
WORKING_SIDE_RANGE = (512, 768)
#: the mask's ellipse has axes MASK_SCALE x the face box (detector boxes stop at the brows and chin,
#: a face's forehead and jaw reach beyond them); it fades from full to nothing over +-MASK_FEATHER of
#: its radius, so the repaint blends into the original instead of ending at an edge
MASK_SCALE = 1.3
MASK_FEATHER = 0.25
#: a face after a repaint is the one before if their boxes overlap this much (intersection over
#: union): a repainted face moves by a few pixels and may change its size by a fifth (IoU ~0.7),
#: while the next face in a group photo does not overlap it at all
SAME_FACE_IOU = 0.3


def crop_box(box, image_size) -> tuple[tuple[int, int, int, int], bool]:
    """The square CROP_CONTEXT x the face's long side around it, moved inside the image; whether it moved."""
    crop = face_crop_box(box, image_size, (CROP_CONTEXT - 1) / 2)
    side = crop[2] - crop[0]
    centred_left = (box[0] + box[2]) / 2 - side / 2
    centred_top = (box[1] + box[3]) / 2 - side / 2
    return crop, abs(crop[0] - centred_left) > 1 or abs(crop[1] - centred_top) > 1


def working_side(customizer, crop_side: int) -> int:
    """The side the crop is regenerated at: its own, brought into WORKING_SIDE_RANGE and the model's
    limits, on the model's size grid."""
    step = customizer.size_step
    low = max(WORKING_SIDE_RANGE[0], customizer.min_side)
    high = max(low, min(WORKING_SIDE_RANGE[1], customizer.max_side))
    side = min(max(crop_side, low), high)
    side = int(round(side / step)) * step
    return min(max(side, -(-low // step) * step), high // step * step)


def face_mask(crop, box, image_size, *, scale: float = 1.0) -> Image.Image:
    """The soft elliptical mask over the face, at the crop's size x `scale` ("L": 255 inside, fading to
    exactly 0 over MASK_FEATHER). Where the fade would reach a crop edge inside the image (a crop
    the image's size cut down), the ellipse shrinks so the mask still ends at 0 before that edge."""
    left, top, right, bottom = crop
    cx, cy = (box[0] + box[2]) / 2 - left, (box[1] + box[3]) / 2 - top
    axes = np.array([(box[2] - box[0]) / 2, (box[3] - box[1]) / 2]) * MASK_SCALE
    reach = 1 + MASK_FEATHER
    room = []
    if left > 0:
        room.append(cx / axes[0])
    if right < image_size[0]:
        room.append((right - left - cx) / axes[0])
    if top > 0:
        room.append(cy / axes[1])
    if bottom < image_size[1]:
        room.append((bottom - top - cy) / axes[1])
    axes = axes * min([1.0] + [space / reach for space in room])
    size = (round((right - left) * scale), round((bottom - top) * scale))
    xs = (np.arange(size[0]) + 0.5) / scale - cx
    ys = (np.arange(size[1]) + 0.5) / scale - cy
    distance = np.sqrt((xs[None, :] / axes[0]) ** 2 + (ys[:, None] / axes[1]) ** 2)
    weight = np.clip((reach - distance) / (2 * MASK_FEATHER), 0.0, 1.0)
    weight = weight * weight * (3 - 2 * weight)  # smoothstep: no kink where the fade starts or ends
    return Image.fromarray(np.round(weight * 255).astype(np.uint8), mode="L")


def box_iou(a, b) -> float:
    """Intersection over union of two (left, top, right, bottom) boxes."""
    width = min(a[2], b[2]) - max(a[0], b[0])
    height = min(a[3], b[3]) - max(a[1], b[1])
    if width <= 0 or height <= 0:
        return 0.0
    inter = width * height
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


def locate_face(faces, box) -> int | None:
    """The index of the face in `faces` (a later analysis of the same picture) that is the face at
    `box`: the one overlapping it most, if by SAME_FACE_IOU at least; None when none does. Face
    numbers are reading order, which a repaint that moves a face by a pixel may change."""
    overlaps = [box_iou(face.bbox, box) for face in faces]
    if not overlaps or max(overlaps) < SAME_FACE_IOU:
        return None
    return int(np.argmax(overlaps))


class RepaintCanvas:
    """The picture as kept repaints leave it, and how much of each pixel they have painted.

    Every repaint was generated from the picture as given, so it replaces the *original* pixels under
    its mask, and a later one goes beneath the earlier ones: where a kept repaint covers a pixel fully,
    a later one leaves it byte for byte; where it fades out, the later repaint takes only the share
    still showing the original. With coverage P and mask m in 0..1:

        new = current + (1 - P) * m * (repaint - original),     P <- P + (1 - P) * m

    The first repaint is the plain blend m * repaint + (1 - m) * original, and where m is 0 the
    picture stays byte for byte.
    """

    def __init__(self, image: Image.Image) -> None:
        self.original = np.asarray(image.convert("RGB"))
        self.image = image.convert("RGB")
        self.coverage = np.zeros(self.original.shape[:2], dtype=np.float32)

    def with_repaint(self, crop_box, mask: Image.Image, repaint: Image.Image) -> Image.Image:
        """The current picture with `repaint` (the crop's regeneration, any size) scaled into
        `crop_box` beneath what earlier kept repaints painted; the canvas itself is unchanged."""
        left, top, right, bottom = crop_box
        weight = self._weight(crop_box, mask)
        scaled = np.asarray(repaint.convert("RGB").resize((right - left, bottom - top), Image.Resampling.LANCZOS),
                            dtype=np.float32)
        current = np.asarray(self.image.crop(crop_box), dtype=np.float32)
        original = self.original[top:bottom, left:right].astype(np.float32)
        blended = current + weight[..., None] * (scaled - original)
        pasted = self.image.copy()
        pasted.paste(Image.fromarray(np.clip(np.rint(blended), 0, 255).astype(np.uint8)), (left, top))
        return pasted

    def keep(self, crop_box, mask: Image.Image, pasted: Image.Image) -> None:
        """`pasted` (from with_repaint with this box and mask) becomes the picture; its mask is painted."""
        left, top, right, bottom = crop_box
        self.coverage[top:bottom, left:right] += self._weight(crop_box, mask)
        self.image = pasted

    def _weight(self, crop_box, mask: Image.Image) -> np.ndarray:
        """(1 - P) * m over the crop: the share of each pixel this repaint takes."""
        left, top, right, bottom = crop_box
        m = np.asarray(mask, dtype=np.float32) / 255.0
        return (1.0 - self.coverage[top:bottom, left:right]) * m
