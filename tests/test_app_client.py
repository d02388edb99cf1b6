"""The app as a user's script sees it: `python app.py --model tiny` in a subprocess, driven with
gradio_client through the named endpoints /generate and /analyze."""

import json
import time
from pathlib import Path

import pytest
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError

from tests.app_server import running_app

ROOT = Path(__file__).resolve().parent.parent
ANALYSIS_FIELDS = ("backend", "faces", "similarity", "assignment", "id_sim", "id_conf", "statuses", "summary")


@pytest.fixture(scope="module")
def server():
    with running_app("--model", "tiny", "--face-backend", "dlib", log_name="app_client_server.log") as url:
        yield url


@pytest.fixture(scope="module")
def client(server):
    return Client(server, verbose=False)


def _generate(client, prompt, refs=(), **settings):
    slots = {f"reference_{i + 1}": handle_file(str(path)) for i, path in enumerate(refs)}
    options = dict(width=256, height=256, steps=2, randomize_seed=False, seed=5)
    options.update(settings)
    return client.predict(prompt, **slots, **options, api_name="/generate")


def _check_report(report, n_refs):
    for field in ANALYSIS_FIELDS:
        assert field in report
    assert len(report["id_sim"]) == n_refs and report["backend"] == "dlib"


@pytest.mark.parametrize("n_refs", [0, 2, 4])
def test_generate_with_0_2_4_references(client, photos, n_refs):
    refs = [photos[n] for n in ("obama1", "hopper", "newton", "gauss")[:n_refs]]
    seed, summary, image, heatmap, overlay, table, downloads, report, slider, _, _, gallery = _generate(
        client, "friends at a picnic", refs
    )
    assert seed == 5 and Path(image).exists() and Path(overlay).exists()
    assert (heatmap is not None) == (n_refs > 0)
    assert len(table["data"]) == n_refs and slider is None
    _check_report(report, n_refs)
    assert report["seed"] == 5 and report["model"].startswith("tiny")
    assert [Path(p).name for p in downloads] == ["umo_seed5.png", "comparison_seed5.png", "report_seed5.json"]


def test_compare_mode_uses_one_seed_for_both(client, photos):
    outputs = _generate(client, "two people", [photos["obama1"], photos["hopper"]], compare=True, seed=9)
    seed, summary, image, *_, downloads, report, slider, base_heatmap, base_table, gallery = outputs
    assert seed == 9 and "UMO minus base (same seed)" in summary
    assert len(slider) == 2 and all(Path(p).exists() for p in slider)
    assert Path(base_heatmap).exists() and len(base_table["data"]) == 2
    assert set(report["comparison"]) == {"base", "delta"} and report["settings"]["seed"] == 9
    assert json.loads(Path(downloads[-1]).read_text())["seed"] == 9


def test_analyze_endpoint_on_real_faces(client, photos):
    summary, image, heatmap, overlay, table, downloads, report = client.predict(
        handle_file(str(photos["obama1"])), None, handle_file(str(photos["biden"])), None, None,
        handle_file(str(photos["obama2"])), api_name="/analyze",
    )
    _check_report(report, 2)
    assert report["labels"] == ["Reference 1", "Reference 3"]
    assert report["statuses"][0] == "matched" and report["statuses"][1] != "matched"
    assert Path(heatmap).exists() and len(downloads) == 2  # sheet and report: the analysed image is the upload itself


def test_bad_inputs_come_back_as_messages_and_the_server_keeps_answering(client, photos, tmp_path):
    from PIL import Image

    text_file = tmp_path / "notes.txt"
    text_file.write_text("not a picture")
    bomb = tmp_path / "bomb.png"  # 400 megapixels of nothing: a few kB on disk
    Image.new("1", (20000, 20000)).save(bomb)
    cases = [
        (lambda: _generate(client, "   ", [photos["obama1"]]), "prompt is empty"),
        (lambda: _generate(client, "two people", [photos["obama1"]], width=100), "minimum value 256|Width must be between"),
        (lambda: _generate(client, "two people", [photos["obama1"], text_file]), "Reference 2"),
        (lambda: _generate(client, "five people", [photos["obama1"]] * 5), "at most 4 references"),
        (lambda: _generate(client, "two people", [photos["obama1"], bomb]), "Reference 2: the image has too many pixels"),
        (lambda: client.predict(None, None, None, None, None, handle_file(str(photos["obama2"])),
                                api_name="/analyze"), "at least one reference"),
    ]
    for call, words in cases:
        with pytest.raises(AppError, match=words):
            call()
    assert _generate(client, "still here", [photos["obama1"]])[0] == 5


def test_a_client_leaving_mid_generation_does_not_block_the_next(client, server, photos):
    job = Client(server, verbose=False).submit(
        "a long one", handle_file(str(photos["obama1"])), width=512, height=512, steps=40,
        randomize_seed=False, seed=1, compare=True, api_name="/generate",
    )
    time.sleep(1.0)
    job.cancel()
    assert _generate(client, "next request", [photos["hopper"]])[0] == 5
    # the abandoned generation stopped early instead of running its 80 steps to the end
    log = (ROOT / "tests" / "output" / "app_client_server.log").read_text()
    assert "its client disconnected" in log


@pytest.mark.parametrize("make", ["sixteen_bit", "exif_rotated", "transparent_with_hidden_colours", "animated"])
def test_unusual_uploads_reach_the_library_as_files(client, photos, tmp_path, make):
    # the slot hands the uploaded file itself to umo_pipeline.images: Gradio's own conversion would
    # turn the 16-bit grayscale photo white (no face), so the face must be found where it is
    from PIL import Image

    from tests import test_uploads

    hopper = Image.open(photos["hopper"]).convert("RGB")
    upload = tmp_path / f"{make}.{'gif' if make == 'animated' else 'jpg' if make == 'exif_rotated' else 'png'}"
    upload.write_bytes(getattr(test_uploads, make)(hopper))
    summary, image, heatmap, overlay, table, downloads, report = client.predict(
        handle_file(str(upload)), None, None, None, None, handle_file(str(photos["hopper"])), api_name="/analyze")
    reference = report["references"][0]
    assert reference["faces_in_reference"] == 1 and reference["status"] == "matched", summary
    assert reference["id_sim"] > 0.9


def test_candidates_and_face_crops_through_the_api(client, photos):
    outputs = _generate(client, "two people", [photos["obama1"], photos["hopper"]], seed=41, candidates=2,
                        face_crop_1=True, face_crop_2=False)
    seed, summary, image, *_, downloads, report, slider, base_heatmap, base_table, gallery = outputs
    # the tiny model paints noise: no face to score, so the candidates keep their seed order
    assert seed == 41 and [c["seed"] for c in report["candidates"]] == [41, 42]
    assert all(c["report"]["labels"] == ["Reference 1", "Reference 2"] for c in report["candidates"])
    # the gallery arrives as the page's update: visible, with each candidate's image and caption
    assert gallery["visible"] is True and [item["caption"] for item in gallery["value"]] == [
        "#1 · no score · seed 41", "#2 · no score · seed 42"]
    assert all(Path(item["image"]).exists() for item in gallery["value"]) and "Best of 2 candidates" in summary
    assert sorted(Path(p).name for p in downloads)[:2] == ["comparison_seed41.png", "report_seed41.json"]
    with pytest.raises(AppError, match="maximum value 4|Candidates must be between 1 and 4"):
        _generate(client, "two people", [photos["obama1"]], candidates=7)
