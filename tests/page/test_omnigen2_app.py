"""UMO-OmniGen2 in the app, as a user's script sees it: `python app.py --model tiny-omnigen2` in a
subprocess, driven with gradio_client (five reference slots, OmniGen2's own settings, comparison)."""

from pathlib import Path

import pytest
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError

from tests.app_server import running_app

ROOT = Path(__file__).resolve().parents[2]
FIVE = ("obama1", "biden", "hopper", "newton", "gauss")


@pytest.fixture(scope="module")
def client():
    with running_app("--model", "tiny-omnigen2", "--face-backend", "dlib", log_name="app_omnigen2_server.log") as url:
        yield Client(url, verbose=False)


def generate(client, refs, **settings):
    slots = {f"reference_{i + 1}": handle_file(str(path)) for i, path in enumerate(refs)}
    options = dict(width=256, height=256, steps=2, guidance=5.0, randomize_seed=False, seed=4)
    options.update(settings)
    return client.predict("the man in the first image with the woman in the third image", **slots, **options,
                          api_name="/generate")


def test_five_references_with_omnigen2_settings_and_comparison(client, photos):
    refs = [photos[name] for name in FIVE]
    outputs = generate(client, refs, compare=True, image_guidance=2.5, cfg_range_start=0.0, cfg_range_end=0.6)
    seed, summary, image, heatmap, overlay, table, downloads, report, slider, base_heatmap, base_table, *_ = outputs
    assert seed == 4 and Path(image).exists() and Path(heatmap).exists() and Path(base_heatmap).exists()
    assert len(table["data"]) == 5 and len(base_table["data"]) == 5 and len(slider) == 2
    assert report["model"].startswith("tiny random-weight OmniGen2")
    assert report["settings"]["extra"] == {"image_guidance": 2.5, "cfg_range_start": 0.0, "cfg_range_end": 0.6}
    assert len(report["id_sim"]) == 5 and set(report["comparison"]) == {"base", "delta"}


def test_a_bad_cfg_range_comes_back_as_a_message(client, photos):
    with pytest.raises(AppError, match="cfg range"):
        generate(client, [photos["obama1"]], cfg_range_start=0.9, cfg_range_end=0.1)


def test_a_group_of_seven_sees_five_and_leaves_two_for_placing(client, photos):
    # OmniGen2 takes five references; the tiny model's noise holds no face, so the two others cannot
    # be placed and the result says why, with the image kept
    refs = [photos[name] for name in ("obama1", "hopper", "newton", "gauss", "astronaut", "biden", "obama2")]
    report = generate(client, refs)[7]
    assert report["conditioned"] == [f"Reference {n}" for n in range(1, 6)] and len(report["labels"]) == 7
    assert report["placement"]["not_seen_by_the_model"] == ["Reference 6", "Reference 7"]
    assert report["placement"]["too_few_faces"].startswith("0 face(s) were found for 7 people")
