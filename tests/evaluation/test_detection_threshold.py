"""MultiID-Bench's detector threshold (det_thresh 0.45, their metrics/arcface_metric.py:58-59 at
996d152) reaches insightface's detector under --metrics multiid-bench, in evaluate and score alike;
the app keeps its 0.5. Run on insightface's real FaceAnalysis code with a local pack of the SCRFD
detector and a recognition ONNX built in code (tests/library/faces/test_faces.py): buffalo_l's own
det_10g weights are not available offline, so how many more faces 0.45 finds with their detector is
not measured here."""

import json

import pytest
from PIL import Image, ImageFilter

from tests.evaluation.test_score import CASES, kept_both, write_set
from tests.library.faces.test_faces import make_pack
from umo_pipeline.evaluate import metrics
from umo_pipeline.faces.insightface_backend import DETECTION_MIN_SCORE
from umo_pipeline.faces.packs import ROOT_ENV

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning:insightface.utils.face_align")


@pytest.fixture(scope="module")
def pack_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("insightface")
    make_pack(root / "models" / "buffalo_l")
    return root


def test_the_rule_set_sets_the_detectors_threshold(pack_root, dlib_backend):
    theirs = metrics.scoring_backend("multiid-bench", "insightface", insightface_root=pack_root)
    ours = metrics.scoring_backend("app", "insightface", insightface_root=pack_root)
    # insightface's FaceAnalysis.prepare hands det_thresh to the detection model, which filters by it
    assert theirs._analysis.det_model.det_thresh == 0.45 == metrics.DETECTION_THRESHOLDS["multiid-bench"]
    assert ours._analysis.det_model.det_thresh == DETECTION_MIN_SCORE == 0.5
    assert metrics.scoring_backend("umo-eval", "insightface", insightface_root=pack_root) is ours
    # records and the reference cache tell the two apart by name
    assert (theirs.name, ours.name) == ("insightface:buffalo_l det_thresh 0.45", "insightface:buffalo_l")
    # dlib's HOG detector has no score threshold: the same backend under every rule set
    assert metrics.scoring_backend("multiid-bench", "dlib") is dlib_backend


def test_a_faint_face_is_found_only_at_their_threshold(pack_root, photos):
    # Blurred this much, SCRFD scores Hopper's face between 0.45 and 0.5 (0.46 measured).
    faint = Image.open(photos["hopper"]).convert("RGB").filter(ImageFilter.GaussianBlur(16))
    theirs = metrics.scoring_backend("multiid-bench", "insightface", insightface_root=pack_root).detect(faint)
    ours = metrics.scoring_backend("app", "insightface", insightface_root=pack_root).detect(faint)
    assert len(theirs) == 1 and 0.45 <= theirs[0].det_score < 0.5
    assert ours == []


def test_score_and_evaluate_commands_pass_it_on(pack_root, tmp_path, photos, monkeypatch, capsys):
    from umo_pipeline.cli import main

    monkeypatch.setenv(ROOT_ENV, str(pack_root))
    prompts = write_set(tmp_path / "set", photos)
    (tmp_path / "A").mkdir()
    for case in CASES:
        kept_both(photos, case).save(tmp_path / "A" / f"{case}.png")
    common = ["--metrics", "multiid-bench", "--backend", "insightface"]
    assert main(["score", str(prompts), "--method", f"A={tmp_path / 'A'}", *common,
                 "--out", str(tmp_path / "scored")]) == 0, capsys.readouterr().err
    assert main(["evaluate", str(prompts), "--model", "tiny", "--width", "256", "--height", "256", "--steps", "1",
                 "--variants", "umo", "--limit", "1", *common, "--out", str(tmp_path / "evaluated")]) == 0
    for out in ("scored", "evaluated"):
        run = json.loads((tmp_path / out / "run.json").read_text())
        assert run["backend"] == "insightface:buffalo_l det_thresh 0.45"
        for line in (tmp_path / out / "records.jsonl").read_text().splitlines():
            assert json.loads(line)["backend"] == "insightface:buffalo_l det_thresh 0.45"
