"""insightface backend: SCRFD/RetinaFace detection + ArcFace embeddings from an insightface pack.

The pack (buffalo_l by default, or antelopev2) is found by packs.py: a local folder, the Hugging
Face cache, or a download from the hub when explicitly allowed. insightface's packs are licensed
for non-commercial research only.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
from PIL import Image

from umo_pipeline.errors import FaceModelUnavailable
from umo_pipeline.faces.base import Face, FaceBackend, Thresholds
from umo_pipeline.faces.common import as_rgb, clip_box, face_crop, largest_first, unit_vector
from umo_pipeline.faces.packs import (
    DEFAULT_PACK,
    LICENCE,
    PACK_ZIP_URL,
    ROOT_ENV,
    ResolvedPack,
    onnx_files,
    resolve_pack,
)

# Published ArcFace practice, not measured here (no real ArcFace weights offline): see
# docs/calibration.md for the sources.
ARCFACE_THRESHOLDS = Thresholds(match=0.40, weak=0.28, confusion_ratio=0.70)

PACK_URL = PACK_ZIP_URL
DETECTION_SIZE = (640, 640)
#: the app's detector score threshold; a benchmark's rule set may ask for its own (MultiID-Bench: 0.45)
DETECTION_MIN_SCORE = 0.5
# Only detection and recognition: the landmark / gender-age models in a pack are not needed.
MODULES = ["detection", "recognition"]


def insightface_root(root: str | os.PathLike | None = None) -> Path:
    """The folder holding models/<pack>/: the argument, else $UMO_INSIGHTFACE_ROOT, else ~/.insightface."""
    chosen = root or os.environ.get(ROOT_ENV) or "~/.insightface"
    return Path(chosen).expanduser().resolve()


def _pack_unusable(folder: Path, pack: str, detail: str) -> FaceModelUnavailable:
    return FaceModelUnavailable(
        f"the insightface model pack {pack!r} is not usable: {detail}. Put its .onnx files "
        f"(a detector and a recognition model) in {folder} : download {PACK_URL.format(pack=pack)} "
        f"on a machine with internet and unzip it there, or point {ROOT_ENV} (or "
        f"insightface_root) at the folder that contains models/{pack}, or use the dlib backend."
    )


def _onnx_providers() -> tuple[list[str], int]:
    import onnxruntime

    if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        return ["CUDAExecutionProvider", "CPUExecutionProvider"], 0
    return ["CPUExecutionProvider"], -1


class InsightFaceBackend(FaceBackend):
    """insightface's FaceAnalysis restricted to detection + recognition, on a local pack only."""

    thresholds = ARCFACE_THRESHOLDS

    def __init__(self, root: str | os.PathLike | None = None, pack: str = DEFAULT_PACK, *,
                 resolved: ResolvedPack | None = None, download: bool | None = None, repo: str | None = None,
                 detection_threshold: float | None = None):
        resolved = resolved or resolve_pack(pack, root, download=download, repo=repo)
        folder = resolved.folder
        if not onnx_files(folder):
            raise _pack_unusable(folder, pack, f"no .onnx files in {folder}")
        self.detection_threshold = DETECTION_MIN_SCORE if detection_threshold is None else float(detection_threshold)
        # Another threshold finds other faces: the name says so, so records, run settings and the
        # reference cache (keyed by name) never mix the two.
        self.name = f"insightface:{resolved.name}" + (
            "" if self.detection_threshold == DETECTION_MIN_SCORE else f" det_thresh {self.detection_threshold:g}")
        self.pack_folder = folder
        #: where the pack came from ("hub cache", "~/.insightface", ...) and which hub repo, if any
        self.source = resolved
        self.licence = LICENCE
        self.scale_note = (
            f"ArcFace embeddings (insightface {resolved.name}), the kind of face model the papers score "
            "with: numbers are on the same kind of scale as the paper's, though not identical (UMO's "
            f"evaluation used an IR-SE50 ArcFace). {LICENCE[0].upper()}{LICENCE[1:]}."
        )
        self._analysis = self._load(folder, resolved.name, self.detection_threshold)

    @staticmethod
    def _load(folder: Path, pack: str, detection_threshold: float = DETECTION_MIN_SCORE):
        try:
            from insightface.app import FaceAnalysis
        except ImportError as error:
            raise FaceModelUnavailable(
                f"the insightface backend needs the insightface and onnxruntime packages ({error}); "
                "pip install insightface onnxruntime, or use the dlib backend"
            ) from error
        # insightface 2.1 calls a scikit-image method deprecated in 0.26 on every face: noise the
        # user cannot act on, silenced for that one module only.
        warnings.filterwarnings("ignore", category=FutureWarning, module="insightface.utils.face_align")
        providers, device = _onnx_providers()
        try:
            # An existing folder passed as the name is used as is: insightface never downloads then.
            analysis = FaceAnalysis(name=str(folder), allowed_modules=MODULES, providers=providers)
        except AssertionError as error:
            raise _pack_unusable(folder, pack, "no face detector among its .onnx files") from error
        except Exception as error:  # onnx / onnxruntime raise their own types for unreadable files
            raise _pack_unusable(folder, pack, f"a model file cannot be loaded ({error})") from error
        if "recognition" not in analysis.models:
            raise _pack_unusable(folder, pack, "no face recognition model among its .onnx files")
        analysis.prepare(ctx_id=device, det_thresh=detection_threshold, det_size=DETECTION_SIZE)
        return analysis

    def _detect(self, image: Image.Image) -> list[Face]:
        image = as_rgb(image)
        bgr = np.ascontiguousarray(np.asarray(image)[:, :, ::-1])
        faces = [self._to_face(image, found) for found in self._analysis.get(bgr)]
        return largest_first(faces)

    @staticmethod
    def _to_face(image: Image.Image, found) -> Face:
        box = tuple(float(v) for v in found.bbox[:4])
        return Face(
            bbox=clip_box(box, image.width, image.height),
            landmarks=np.asarray(found.kps, dtype=np.float32).reshape(-1, 2),
            det_score=float(found.det_score),
            embedding=unit_vector(found.embedding),
            crop=face_crop(image, box),
        )
