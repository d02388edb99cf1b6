"""Face backends on real photos: dlib with its shipped weights, insightface's real FaceAnalysis code
path on a local pack made of the SCRFD detector and a recognition ONNX built here."""

from __future__ import annotations

import itertools
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.assets import scrfd_model
from umo_pipeline.errors import FaceModelUnavailable, InputError
from umo_pipeline.faces import get_face_backend
from umo_pipeline.faces.insightface_backend import insightface_root
from umo_pipeline.faces.packs import pack_folder_in


def pack_folder(root, pack):
    """Where the pack's .onnx files are looked for under `root` (the backend's two steps)."""
    return pack_folder_in(insightface_root(root), pack)
from umo_pipeline.images import load_image

# pytest resets warning filters per test; the backend silences this third-party deprecation once.
pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning:insightface.utils.face_align")

PORTRAITS = ["astronaut", "hopper", "obama1", "obama2", "obama3", "biden", "newton", "gauss"]
SOLVAY_FACES = 29
# HOG and SCRFD both find all 29 today; faces in this photo are 70-105 px wide, right at the HOG
# window size (80 px), so a different resize filter or library build may gain or lose a couple.
SOLVAY_TOLERANCE = 2


def load(path: Path) -> Image.Image:
    return Image.open(path).convert("RGB")


def inside(face, image: Image.Image) -> bool:
    x0, y0, x1, y1 = face.bbox
    return 0 <= x0 < x1 <= image.width and 0 <= y0 < y1 <= image.height


def landmarks_near_box(face, slack: float = 0.25) -> bool:
    x0, y0, x1, y1 = face.bbox
    pad_x, pad_y = (x1 - x0) * slack, (y1 - y0) * slack
    xs, ys = face.landmarks[:, 0], face.landmarks[:, 1]
    return bool(np.all((xs >= x0 - pad_x) & (xs <= x1 + pad_x) & (ys >= y0 - pad_y) & (ys <= y1 + pad_y)))


def assert_well_formed(face, image: Image.Image, dim: int) -> None:
    assert inside(face, image), face.bbox
    assert face.landmarks.shape == (5, 2)
    assert landmarks_near_box(face), (face.bbox, face.landmarks)
    assert face.embedding.dtype == np.float32 and face.embedding.shape == (dim,)
    assert abs(float(np.linalg.norm(face.embedding)) - 1.0) < 1e-5
    assert face.crop.mode == "RGB" and face.crop.size == (160, 160)
    assert isinstance(face.det_score, float) and face.det_score > 0


# ---------------------------------------------------------------- dlib


@pytest.fixture(scope="module")
def portrait_faces(dlib_backend, photos):
    return {name: dlib_backend.detect(load(photos[name])) for name in PORTRAITS}


def test_dlib_backend_is_built_once_and_named(dlib_backend):
    assert get_face_backend("dlib") is dlib_backend
    assert dlib_backend.name == "dlib"
    assert 0 < dlib_backend.thresholds.weak < dlib_backend.thresholds.match < 1


def test_dlib_finds_one_well_formed_face_per_portrait(portrait_faces, photos):
    for name, faces in portrait_faces.items():
        assert len(faces) == 1, (name, [f.bbox for f in faces])
        assert_well_formed(faces[0], load(photos[name]), dim=128)


def test_dlib_same_person_scores_above_every_different_pair(dlib_backend, portrait_faces):
    embeddings = {name: faces[0].embedding for name, faces in portrait_faces.items()}
    same, different = [], []
    for a, b in itertools.combinations(PORTRAITS, 2):
        similarity = float(embeddings[a] @ embeddings[b])
        (same if a.startswith("obama") and b.startswith("obama") else different).append(similarity)
    assert len(same) == 3 and len(different) == 25
    assert min(same) > max(different), (same, max(different))
    # The calibrated bar separates these photos too: every Obama pair matches, no stranger does.
    assert min(same) >= dlib_backend.thresholds.match
    assert max(different) < dlib_backend.thresholds.weak


def test_dlib_network_in_onnxruntime_gives_dlibs_own_descriptors(photos):
    import dlib
    import face_recognition_models as weights

    from umo_pipeline.faces.dlib_resnet import CHIP_PADDING, CHIP_SIZE, DlibResNet

    detector = dlib.get_frontal_face_detector()
    landmarks = dlib.shape_predictor(weights.pose_predictor_five_point_model_location())
    dlib_network = dlib.face_recognition_model_v1(weights.face_recognition_model_location())
    chips = []
    for name in ["obama1", "hopper", "newton"]:
        pixels = np.asarray(load(photos[name]))
        shape = landmarks(pixels, detector(pixels, 0)[0])
        chips.append(dlib.get_face_chip(pixels, shape, size=CHIP_SIZE, padding=CHIP_PADDING))
    expected = np.array([dlib_network.compute_face_descriptor(chip) for chip in chips])
    ours = DlibResNet(weights.face_recognition_model_location())(chips)
    assert ours.shape == (3, 128)
    np.testing.assert_allclose(ours, expected, atol=1e-5)


def test_dlib_network_reader_refuses_another_or_truncated_file(tmp_path):
    import face_recognition_models as weights

    from umo_pipeline.faces.dlib_resnet import read_weights

    with pytest.raises(FaceModelUnavailable, match="not dlib's face recognition network"):
        read_weights(weights.pose_predictor_five_point_model_location())
    truncated = tmp_path / "truncated.dat"
    truncated.write_bytes(Path(weights.face_recognition_model_location()).read_bytes()[:1_000_000])
    with pytest.raises(FaceModelUnavailable, match="dlib's face recognition network"):
        read_weights(truncated)


def test_dlib_astronaut_box_and_eyes_are_where_her_face_is(portrait_faces):
    face = portrait_faces["astronaut"][0]
    x0, y0, x1, y1 = face.bbox
    # Eileen Collins' face in skimage's 512x512 astronaut photo: centred near (222, 130), ~90 px wide.
    assert 190 < (x0 + x1) / 2 < 255 and 95 < (y0 + y1) / 2 < 165
    assert 60 < x1 - x0 < 140
    eyes, nose = face.landmarks[:4], face.landmarks[4]
    assert np.all(eyes[:, 1] < nose[1]), "eye corners lie above the base of the nose"


def test_dlib_large_photo_is_scanned_small_but_reported_in_full_pixels(dlib_backend, photos):
    full = load(photos["obama3"])  # 1434x2333: scanned at 1024 px long side
    half = full.resize((full.width // 2, full.height // 2), Image.BILINEAR)
    big, small = dlib_backend.detect(full)[0], dlib_backend.detect(half)[0]
    np.testing.assert_allclose(np.array(big.bbox), 2 * np.array(small.bbox), atol=0.03 * full.width)
    np.testing.assert_allclose(big.landmarks, 2 * small.landmarks, atol=0.02 * full.width)


def test_dlib_counts_the_solvay_faces_largest_first(dlib_backend, photos):
    image = Image.open(photos["solvay"])  # greyscale: converted, not refused
    assert image.mode == "L"
    faces = dlib_backend.detect(image)
    assert abs(len(faces) - SOLVAY_FACES) <= SOLVAY_TOLERANCE, len(faces)
    areas = [face.area for face in faces]
    assert areas == sorted(areas, reverse=True)
    assert all(inside(face, image) for face in faces)


def test_no_face_gives_an_empty_list(dlib_backend, photos):
    gradient = Image.fromarray(np.tile(np.linspace(0, 255, 640, dtype=np.uint8), (480, 1))).convert("RGB")
    shuttle = load(photos["astronaut"]).crop((300, 0, 512, 220))  # background: the space shuttle
    assert dlib_backend.detect(gradient) == []
    assert dlib_backend.detect(shuttle) == []
    assert dlib_backend.detect(Image.new("RGB", (1, 1))) == []


def test_not_an_image_is_a_clear_error(dlib_backend):
    with pytest.raises(InputError, match="PIL image"):
        dlib_backend.detect(np.zeros((64, 64, 3), np.uint8))


def test_unknown_backend_name_is_a_clear_error():
    with pytest.raises(InputError, match="unknown face backend 'arcface'"):
        get_face_backend("arcface")


def test_importing_faces_loads_no_face_library():
    code = (
        "import sys, umo_pipeline.faces; "
        "print([m for m in ('dlib', 'insightface', 'onnx', 'onnxruntime', 'torch') if m in sys.modules])"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


# ---------------------------------------------------------------- insightface


def write_recognition_onnx(path: Path) -> None:
    """Test double for an ArcFace model: the same contract ([N,3,112,112] -> [N,512]) with fixed
    random weights, so insightface routes it to its recognition code; no identity quality."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    weights = [
        numpy_helper.from_array(rng.normal(0, 0.1, (8, 3, 8, 8)).astype(np.float32), "patch_filters"),
        numpy_helper.from_array(rng.normal(0, 0.03, (8 * 14 * 14, 512)).astype(np.float32), "projection"),
    ]
    nodes = [
        helper.make_node("Conv", ["data", "patch_filters"], ["patches"], strides=[8, 8]),
        helper.make_node("Flatten", ["patches"], ["flat"]),
        helper.make_node("MatMul", ["flat", "projection"], ["embedding"]),
    ]
    graph = helper.make_graph(
        nodes, "random_recognition",
        [helper.make_tensor_value_info("data", TensorProto.FLOAT, ["N", 3, 112, 112])],
        [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["N", 512])],
        weights,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    onnx.checker.check_model(model)
    onnx.save(model, path)


def make_pack(folder: Path, *, detector: bool = True, recognition: bool = True) -> None:
    folder.mkdir(parents=True)
    if detector:
        shutil.copyfile(scrfd_model(), folder / "det_scrfd.onnx")
    if recognition:
        write_recognition_onnx(folder / "w_random.onnx")


@pytest.fixture(scope="module")
def pack_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("insightface")
    make_pack(root / "models" / "buffalo_l")
    return root


@pytest.fixture(scope="module")
def insightface_backend(pack_root):
    return get_face_backend("insightface", insightface_root=pack_root)


def test_insightface_runs_offline_on_a_local_pack(insightface_backend, pack_root, photos):
    assert insightface_backend.name == "insightface:buffalo_l"
    assert get_face_backend("insightface", insightface_root=str(pack_root)) is insightface_backend
    assert 0 < insightface_backend.thresholds.weak < insightface_backend.thresholds.match < 1
    for name in ["astronaut", "hopper", "obama2"]:
        image = load(photos[name])
        faces = insightface_backend.detect(image)
        assert len(faces) == 1, name
        assert_well_formed(faces[0], image, dim=512)


def test_insightface_and_dlib_agree_on_where_the_face_is(insightface_backend, portrait_faces, photos):
    for name in ["astronaut", "newton", "obama1"]:
        scrfd = insightface_backend.detect(load(photos[name]))[0].bbox
        hog = portrait_faces[name][0].bbox
        # SCRFD's box takes in forehead and chin, HOG's is tighter: the centres still agree.
        assert abs((scrfd[0] + scrfd[2]) - (hog[0] + hog[2])) / 2 < 0.25 * (hog[2] - hog[0]), name
        assert abs((scrfd[1] + scrfd[3]) - (hog[1] + hog[3])) / 2 < 0.35 * (hog[3] - hog[1]), name


def test_insightface_counts_the_solvay_faces(insightface_backend, photos):
    image = load(photos["solvay"])
    faces = insightface_backend.detect(image)
    assert abs(len(faces) - SOLVAY_FACES) <= SOLVAY_TOLERANCE, len(faces)
    assert [f.area for f in faces] == sorted((f.area for f in faces), reverse=True)


def test_insightface_no_face_gives_an_empty_list(insightface_backend):
    gradient = Image.fromarray(np.tile(np.linspace(0, 255, 640, dtype=np.uint8), (480, 1))).convert("RGB")
    assert insightface_backend.detect(gradient) == []


def test_absent_pack_fails_fast_and_says_where_to_put_it(tmp_path):
    start = time.perf_counter()
    with pytest.raises(FaceModelUnavailable) as caught:
        get_face_backend("insightface", insightface_root=tmp_path, insightface_pack="antelopev2")
    assert time.perf_counter() - start < 0.5
    message = str(caught.value)
    assert str(tmp_path / "models" / "antelopev2") in message
    assert "antelopev2.zip" in message and "dlib" in message
    assert not (tmp_path / "models").exists(), "nothing may be downloaded or created"


def test_pack_without_detector_or_recognition_is_refused(tmp_path):
    make_pack(tmp_path / "models" / "buffalo_l", detector=False)
    with pytest.raises(FaceModelUnavailable, match="no face detector"):
        get_face_backend("insightface", insightface_root=tmp_path)
    make_pack(tmp_path / "models" / "other", recognition=False)
    with pytest.raises(FaceModelUnavailable, match="no face recognition model"):
        get_face_backend("insightface", insightface_root=tmp_path, insightface_pack="other")


def test_unreadable_model_file_is_refused(tmp_path):
    folder = tmp_path / "models" / "buffalo_l"
    folder.mkdir(parents=True)
    (folder / "det_10g.onnx").write_bytes(b"interrupted download")
    with pytest.raises(FaceModelUnavailable, match="cannot be loaded"):
        get_face_backend("insightface", insightface_root=tmp_path)


def test_auto_prefers_insightface_only_when_its_pack_is_there(pack_root, tmp_path, insightface_backend):
    assert get_face_backend("auto", insightface_root=tmp_path).name == "dlib"
    assert get_face_backend("auto", insightface_root=pack_root) is insightface_backend


def test_pack_location_from_environment_and_zip_layout(tmp_path, monkeypatch):
    monkeypatch.setenv("UMO_INSIGHTFACE_ROOT", str(tmp_path))
    assert pack_folder(None, "buffalo_l") == tmp_path.resolve() / "models" / "buffalo_l"
    # antelopev2.zip unpacks into antelopev2/antelopev2/: accepted as it is.
    nested = tmp_path / "models" / "antelopev2" / "antelopev2"
    nested.mkdir(parents=True)
    (nested / "scrfd_10g_bnkps.onnx").write_bytes(b"")
    assert pack_folder(None, "antelopev2") == nested.resolve()
    with pytest.raises(InputError, match="plain name"):
        pack_folder(None, "../elsewhere")


def test_dlib_backend_is_safe_to_call_from_several_threads(dlib_backend, photos):
    # Without the backend's lock, concurrent dlib calls return hundreds of boxes or crash.
    from concurrent.futures import ThreadPoolExecutor

    names = ["obama1", "hopper", "biden", "astronaut"] * 2
    images = {name: load_image(photos[name]) for name in set(names)}
    expected = {name: [f.bbox for f in dlib_backend.detect(images[name])] for name in images}
    with ThreadPoolExecutor(4) as pool:
        boxes = list(pool.map(lambda n: [f.bbox for f in dlib_backend.detect(images[n])], names))
    assert boxes == [expected[name] for name in names]
