"""Face-only references, cropped tight to the face box (and tighter), are still found by both
backends that run here: dlib, and insightface's code with the SCRFD detector from the scrfd sdist."""

import numpy as np
import pytest
from PIL import Image

from tests.library.faces.test_faces import make_pack
from umo_pipeline.analysis import analyze_reference, clear_reference_cache
from umo_pipeline.faces import get_face_backend

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning:insightface.utils.face_align")
PORTRAITS = ["astronaut", "hopper", "obama1", "obama2", "obama3", "biden", "newton", "gauss"]


@pytest.fixture(scope="module", params=["dlib", "insightface"])
def backend(request, tmp_path_factory):
    if request.param == "dlib":
        return get_face_backend("dlib")
    root = tmp_path_factory.mktemp("insightface")
    make_pack(root / "models" / "buffalo_l")
    return get_face_backend("insightface", insightface_root=root)


def tight_crop(image: Image.Image, box, share: float) -> Image.Image:
    x0, y0, x1, y1 = box
    cx, cy, half_w, half_h = (x0 + x1) / 2, (y0 + y1) / 2, share * (x1 - x0) / 2, share * (y1 - y0) / 2
    return image.crop((round(cx - half_w), round(cy - half_h), round(cx + half_w), round(cy + half_h)))


@pytest.mark.parametrize("share", [1.0, 0.8])
def test_reference_cropped_to_its_face_box_is_still_found(backend, photos, share):
    clear_reference_cache()
    missed_without_border = 0
    for name in PORTRAITS:
        photo = Image.open(photos[name]).convert("RGB")
        full = backend.detect(photo)[0]
        crop = tight_crop(photo, full.bbox, share)
        missed_without_border += not backend.detect(crop)
        reference = analyze_reference(crop, backend)
        assert reference.face is not None and reference.n_faces == 1, (backend.name, name, share)
        # the box is mapped back into the crop's own pixels, and covers most of it
        x0, y0, x1, y1 = reference.face.bbox
        assert 0 <= x0 < x1 <= crop.width and 0 <= y0 < y1 <= crop.height
        assert (x1 - x0) * (y1 - y0) > 0.4 * crop.width * crop.height, (name, reference.face.bbox, crop.size)
        landmarks = reference.face.landmarks
        assert np.all((landmarks >= -0.1 * crop.width) & (landmarks <= 1.1 * max(crop.size))), name
    if backend.name.startswith("insightface"):
        # SCRFD needs context around a face: without the border it misses every such crop.
        assert missed_without_border == len(PORTRAITS)


def test_same_person_from_a_tight_crop_still_matches_in_dlib(photos):
    backend = get_face_backend("dlib")
    clear_reference_cache()
    photo = Image.open(photos["obama3"]).convert("RGB")
    crop = tight_crop(photo, backend.detect(photo)[0].bbox, 0.8)
    assert backend.detect(crop) == []  # this one is missed without the border
    cropped = analyze_reference(crop, backend).face.embedding
    other_photo = backend.detect(Image.open(photos["obama1"]).convert("RGB"))[0].embedding
    assert float(cropped @ other_photo) >= backend.thresholds.match
