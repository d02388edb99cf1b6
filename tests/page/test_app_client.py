"""The app as a user's script sees it: `python app.py --model tiny` in a subprocess, driven with
gradio_client through the named endpoints /generate, /analyze, /compare_methods and /repair."""

import json
import re
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path

import httpx
import pytest
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError

from tests.app_server import running_app, wait_until
from umo_app.slots import SLOTS

ROOT = Path(__file__).resolve().parents[2]
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
    seed, summary, image, heatmap, overlay, table, downloads, report, slider, _, _, gallery, placed, _ = _generate(
        client, "friends at a picnic", refs
    )
    assert seed == 5 and Path(image).exists() and Path(overlay).exists()
    assert (heatmap is not None) == (n_refs > 0)
    assert len(table["data"]) == n_refs and slider is None and placed is None
    _check_report(report, n_refs)
    assert report["seed"] == 5 and report["model"].startswith("tiny")
    assert [Path(p).name for p in downloads] == ["umo_seed5.png", "comparison_seed5.png", "report_seed5.json"]


def test_compare_mode_uses_one_seed_for_both(client, photos):
    outputs = _generate(client, "two people", [photos["obama1"], photos["hopper"]], compare=True, seed=9)
    seed, summary, image, *_, downloads, report, slider, base_heatmap, base_table, gallery, _, _ = outputs
    assert seed == 9 and "UMO minus base (same seed)" in summary
    assert len(slider) == 2 and all(Path(p).exists() for p in slider)
    assert Path(base_heatmap).exists() and len(base_table["data"]) == 2
    assert set(report["comparison"]) == {"base", "delta"} and report["settings"]["seed"] == 9
    assert json.loads(Path(downloads[-1]).read_text())["seed"] == 9


def test_analyze_endpoint_on_real_faces(client, photos):
    summary, heatmap, overlay, table, downloads, report = client.predict(
        handle_file(str(photos["obama1"])), None, handle_file(str(photos["biden"])),
        image=handle_file(str(photos["obama2"])), api_name="/analyze",
    )
    _check_report(report, 2)
    assert report["labels"] == ["Reference 1", "Reference 3"]
    assert report["statuses"][0] == "matched" and report["statuses"][1] != "matched"
    # the analysed picture is not sent back (the caller has it): the labelled faces show it
    from PIL import Image

    with Image.open(overlay) as labelled, Image.open(photos["obama2"]) as analysed:
        assert labelled.size == analysed.size
    assert Path(heatmap).exists()
    assert [Path(p).name for p in downloads] == ["comparison_analysis.png", "report_analysis.json"]


def test_compare_methods_endpoint_ranks_real_faces(client, photos, tmp_path):
    from tests.library.test_analysis import compose, face_tile

    # Obama's other photo beside Hopper's face keeps both references; Biden in her place keeps one
    faithful, swapped = tmp_path / "faithful_method.png", tmp_path / "swapped.png"
    for path, (left, right) in ((faithful, ("obama2", "hopper")), (swapped, ("obama2", "biden"))):
        compose([face_tile(photos, left), face_tile(photos, right)]).save(path)
    not_a_picture = tmp_path / "notes.png"
    not_a_picture.write_text("not a picture")
    summary, table, gallery, sheet, downloads, report = client.predict(
        reference_1=handle_file(str(photos["obama1"])), reference_2=handle_file(str(photos["hopper"])),
        image_1=handle_file(str(swapped)), image_2=handle_file(str(faithful)), image_3=handle_file(str(not_a_picture)),
        name_1="Swapped", api_name="/compare_methods")
    assert table["headers"][:4] == ["#", "Method", "Score", "Matched"]
    # the second name left empty: the file's name without its extension
    assert [row[:2] for row in table["data"]] == [["1", "faithful_method"], ["2", "Swapped"], ["-", "notes"]]
    assert table["data"][0][3] == "2/2" and "not an image file" in table["data"][2][4]
    assert [(m["rank"], m["method"]) for m in report["methods"]] == [(1, "faithful_method"), (2, "Swapped"),
                                                                     (None, "notes")]
    assert report["methods"][0]["report"]["statuses"] == ["matched", "matched"]
    assert Path(sheet).exists() and len(gallery) == 4
    assert [Path(p).name for p in downloads] == ["methods_comparison.png", "methods_report.json", "methods_scores.csv"]
    assert "faithful_method" in summary
    with pytest.raises(AppError, match="Add at least 2 images to compare"):
        client.predict(reference_1=handle_file(str(photos["obama1"])), image_1=handle_file(str(faithful)),
                       api_name="/compare_methods")


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
        (lambda: _generate(client, "five people", [photos["obama1"]] * 5, condition_on=[1, 2, 3, 4, 5]),
         "The model sees at most 4 people, and 5 were chosen"),
        (lambda: _generate(client, "two people", [photos["obama1"], bomb]), "Reference 2: the image has too many pixels"),
        (lambda: client.predict(image=handle_file(str(photos["obama2"])),
                                api_name="/analyze"), "at least one reference"),
    ]
    for call, words in cases:
        with pytest.raises(AppError, match=words):
            call()
    assert _generate(client, "still here", [photos["obama1"]])[0] == 5


# -- many visitors ------------------------------------------------------------------------------
LOG = ROOT / "tests" / "output" / "app_client_server.log"
# the server's own line, with its time: "2026-12-04 05:10:00,123 WARNING umo...: Stopping a generation at step 7/100"
STOPPED = re.compile(r"^(\S+ \S+) \S+ \S+: Stopping a generation at step (\d+)/(\d+)", re.MULTILINE)
LONG = dict(width=1024, height=1024, steps=100, randomize_seed=False, seed=1)
#: how soon after a departure the generation must stop: the server looks every 0.2 s and stops at the
#: next step; generous for a loaded machine, and far below the minute the whole job takes on one
STOP_WITHIN_S = 10
# a client in its own process, killed mid-generation the way a user's script or machine dies; it
# prints every step its progress updates show, so the test leaves once the generation is under way
CLIENT_PROCESS = """
import sys
import time
from gradio_client import Client
job = Client(sys.argv[1], verbose=False).submit("a long one", **{long}, api_name="/generate")
seen = None
while True:
    progress = job.status().progress_data
    step = progress[-1].index if progress else None
    if step is not None and step != seen:
        seen = step
        print(step, flush=True)
    time.sleep(0.02)
"""


def _stops_logged():
    return [(datetime.strptime(at, "%Y-%m-%d %H:%M:%S,%f").timestamp(), int(done), int(total))
            for at, done, total in STOPPED.findall(LOG.read_text())]


def _timed(call):
    start = time.monotonic()
    call()
    return time.monotonic() - start


def _wait_for_new_stop(before, timeout=120):
    wait_until(lambda: len(_stops_logged()) > before, timeout=timeout)
    return _stops_logged()[-1]


def _step_shown(job):
    progress = job.status().progress_data
    return progress[-1].index if progress else None


def _assert_stopped_soon_after(departed, stop, total_steps):
    stopped_at, done, total = stop
    # the job is told by its own server log: it stopped before its end, within seconds of the departure
    assert total == total_steps and done < total, stop
    assert stopped_at - departed < STOP_WITHIN_S, (stopped_at - departed, stop)


def test_a_killed_client_process_stops_its_generation_and_the_next_runs_in_its_own_time(client, server):
    own_time = _timed(lambda: _generate(client, "next request", width=512, height=512, steps=4))
    before = len(_stops_logged())
    child = subprocess.Popen([sys.executable, "-c", CLIENT_PROCESS.format(long=LONG), server],
                             stdout=subprocess.PIPE, text=True, cwd=ROOT)
    while int(child.stdout.readline()) < 1:  # its first denoising step is done: the GPU is busy with it
        pass
    departed = time.time()
    child.kill()
    child.wait()
    _generate(client, "next request", width=512, height=512, steps=4)
    finished = time.time()
    stop = _wait_for_new_stop(before)
    _assert_stopped_soon_after(departed, stop, 100)
    # the GPU was free for the next request once the abandoned job stopped (the server's own log time):
    # from there it took its own time, not the rest of the abandoned job; measured from the stop, not
    # from the departure, so that a loaded machine's slower notice of the departure does not count
    assert finished - stop[0] < 2 * own_time + 3, (finished - stop[0], own_time)


def test_a_cancelled_job_stops_its_generation(client, server, photos):
    before = len(_stops_logged())
    job = Client(server, verbose=False).submit("a long one", handle_file(str(photos["obama1"])), **LONG,
                                               compare=True, api_name="/generate")
    wait_until(lambda: (_step_shown(job) or 0) >= 1, timeout=120)
    cancelled = time.time()
    job.cancel()
    assert _generate(client, "next request", [photos["hopper"]])[0] == 5
    _assert_stopped_soon_after(cancelled, _wait_for_new_stop(before), 200)


def test_twenty_concurrent_analyses_all_succeed_while_a_generation_runs(server, photos):
    # one generation running and three waiting for the GPU: minutes of work in their line
    generations = [Client(server, verbose=False).submit("a long one", **LONG, api_name="/generate")
                   for _ in range(4)]
    wait_until(lambda: _running(generations[0]), timeout=60)
    clients = [Client(server, verbose=False) for _ in range(20)]

    def analyse(each):
        return each.predict(handle_file(str(photos["obama1"])), image=handle_file(str(photos["obama2"])),
                            api_name="/analyze")

    with ThreadPoolExecutor(20) as pool:
        results = list(pool.map(analyse, clients))
    # every analysis came back, and none waited for the generations to end
    assert not generations[-1].done()
    assert all(report["statuses"][0] == "matched" for *_, report in results)
    for generation in reversed(generations):
        generation.cancel()


def test_parameter_rules_at_the_api(client, server):
    cases = [
        (dict(steps=2.5), "Steps must be a whole number"),
        (dict(seed=1.5), "Seed must be a whole number"),
        (dict(width=256.7), "Width must be a whole number"),
        (dict(guidance=30), "greater than maximum value 10"),
        (dict(prompt="x" * 1_000_000), "1,000,000 characters long"),
    ]
    for settings, words in cases:
        options = dict(prompt="two people", width=256, height=256, steps=2, randomize_seed=False, seed=5)
        with pytest.raises(AppError, match=words):
            client.predict(**{**options, **settings}, api_name="/generate")
    # gradio_client cannot send NaN; a plain HTTP client can (Python's JSON reads it)
    for position, label in [(1 + SLOTS, "Width"), (3 + SLOTS, "Steps"), (4 + SLOTS, "Guidance"), (5 + SLOTS, "Seed")]:
        data = ["two people", *[None] * SLOTS, 256, 256, 2, 3.5, 5, False, False, 2.0, 0.0, 1.0, 1,
                *[False] * SLOTS, [], None]
        data[position] = "NOT-A-NUMBER"
        body = json.dumps({"data": data}).replace('"NOT-A-NUMBER"', "NaN")
        event = httpx.post(f"{server}/gradio_api/call/generate", content=body,
                           headers={"content-type": "application/json"}).json()["event_id"]
        answer = httpx.get(f"{server}/gradio_api/call/generate/{event}", timeout=60).text
        assert f"{label} must be a finite number (got nan)" in answer


def test_logs_carry_only_an_excerpt_of_long_prompts(client):
    long_prompt = "a crowded market at dawn " * 79  # 1,975 characters: accepted
    _generate(client, long_prompt)
    with pytest.raises(AppError):
        _generate(client, "y" * 1_000_000)
    log = LOG.read_text()
    generating = [line for line in log.splitlines() if "Generating" in line and "crowded market" in line]
    assert generating and all(len(line) < 250 for line in generating)
    assert long_prompt.strip() not in log and "y" * 200 not in log


def _running(job):
    return job.status().code.value in ("PROCESSING", "PROGRESS")


@pytest.mark.parametrize("make", ["sixteen_bit", "exif_rotated", "transparent_with_hidden_colours", "animated"])
def test_unusual_uploads_reach_the_library_as_files(client, photos, tmp_path, make):
    # the slot hands the uploaded file itself to umo_pipeline.images: Gradio's own conversion would
    # turn the 16-bit grayscale photo white (no face), so the face must be found where it is
    from PIL import Image

    from tests.page import test_uploads

    hopper = Image.open(photos["hopper"]).convert("RGB")
    upload = tmp_path / f"{make}.{'gif' if make == 'animated' else 'jpg' if make == 'exif_rotated' else 'png'}"
    upload.write_bytes(getattr(test_uploads, make)(hopper))
    summary, heatmap, overlay, table, downloads, report = client.predict(
        handle_file(str(upload)), image=handle_file(str(photos["hopper"])), api_name="/analyze")
    reference = report["references"][0]
    assert reference["faces_in_reference"] == 1 and reference["status"] == "matched", summary
    assert reference["id_sim"] > 0.9


def test_candidates_and_face_crops_through_the_api(client, photos):
    outputs = _generate(client, "two people", [photos["obama1"], photos["hopper"]], seed=41, candidates=2,
                        face_crop_1=True, face_crop_2=False)
    seed, summary, image, *_, downloads, report, slider, base_heatmap, base_table, gallery, _, _ = outputs
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


def test_repair_through_the_api(client, photos, tmp_path):
    from PIL import Image

    from tests.page.test_app_handlers import _composed
    from umo_pipeline.workflow import read_png_metadata

    wrong = _composed(photos, "obama1", "gauss")  # Gauss where Hopper (Reference 2) should be
    summary, image, slider, heatmap, table, downloads, report = client.predict(
        handle_file(str(wrong)), handle_file(str(photos["obama1"])), handle_file(str(photos["hopper"])),
        references=[2], strength=0.5, candidates=2, prompt="a close-up portrait", seed=7, api_name="/repair")
    assert [Path(p).name for p in downloads] == ["repaired.png", "report_repaired.json"]
    with Image.open(image) as repaired, Image.open(wrong) as given, Image.open(slider[0]) as before:
        assert repaired.size == given.size == before.size
    assert Path(slider[1]).name == "repaired.png" and Path(heatmap).exists()
    assert table["headers"] == ["Reference", "Face", "Before", "After", "Change", "ID-Conf", "Status"]
    assert re.fullmatch(r"\d+\.\d -> \d+\.\d", table["data"][1][5]), table  # ID-Conf before -> after
    assert [row[0] for row in table["data"]] == ["Reference 1", "Reference 2"] and table["data"][1][2] != "n/a"
    settings = report["settings"]
    assert (settings["strength"], settings["candidates"], settings["seeds"], settings["prompt"]) == (
        0.5, 2, [7, 8], "a close-up portrait")
    # the tiny model repaints noise: whether it is kept is the reward's call, and the summary says which
    (repair,) = report["repairs"]
    assert repair["reference"] == "Reference 2" and len(repair["candidates"]) == 2
    assert ("**Kept:**" if repair["kept"] else "**Not kept:**") in summary and repair["message"] in summary.replace(
        "&#x27;", "'")
    assert json.loads(read_png_metadata(image)["repair"])["seeds"] == [7, 8]
    assert report["before"]["statuses"] == ["matched", "not found"]
    assert report["rule"] in summary.replace("&#x27;", "'") and "**Matching score:**" in summary
    assert {"similarity_before", "similarity_after", "id_conf_before", "id_conf_after", "matching_score_before",
            "matching_score_after"} <= set(repair)


def test_repair_refusals_through_the_api(client, photos, tmp_path):
    from PIL import Image

    blank = tmp_path / "blank.png"
    Image.new("RGB", (400, 300), "white").save(blank)
    cases = [
        (dict(image=handle_file(str(blank)), reference_1=handle_file(str(photos["obama1"]))),
         "No face was found in the image to repair"),
        (dict(image=handle_file(str(photos["obama2"])), reference_1=handle_file(str(photos["obama1"])),
              references=[3]), "Reference 3 is empty: add its photo"),
        (dict(image=handle_file(str(photos["obama2"])), reference_1=handle_file(str(photos["obama1"])),
              strength=0), "Strength must be between|minimum value"),
    ]
    for inputs, words in cases:
        with pytest.raises(AppError, match=words):
            client.predict(**inputs, api_name="/repair")


# -- a group past the model's limit -------------------------------------------------------------------
EIGHT = ("obama1", "hopper", "newton", "gauss", "astronaut", "biden", "obama2", "obama3")


def test_a_group_of_eight_through_the_api(client, photos):
    # the tiny model paints noise, so its scene holds no face: the group ends in the plain "too few
    # faces" message with the image and its analysis kept, and nobody placed
    job = client.submit("eight colleagues on a staircase", **{f"reference_{n}": handle_file(str(photos[name]))
                                                              for n, name in enumerate(EIGHT, start=1)},
                        width=256, height=256, steps=30, randomize_seed=False, seed=3, candidates=2,
                        api_name="/generate")
    said = set()
    while not job.done():
        said |= {unit.desc for unit in job.status().progress_data or []}
        time.sleep(0.02)
    seed, summary, image, *_, report, slider, _, _, gallery, placed, placement_table = job.result()
    assert Path(image).exists() and placed is None and placement_table["data"] in ([], [[]])
    assert report["labels"] == [f"Reference {n}" for n in range(1, 9)] and len(report["id_sim"]) == 8
    placement = report["placement"]
    assert placement["conditioned"] == [f"Reference {n}" for n in range(1, 5)]
    assert placement["too_few_faces"].startswith("0 face(s) were found for 8 people")
    assert "**Too few faces:**" in summary
    assert "Reference 5, Reference 6, Reference 7 and Reference 8 were left for placing" in summary
    # one count for the whole job, said in its words while the scene was composed
    assert "Composing (candidates 1-2 of 2)" in said, said


def test_who_the_model_sees_through_the_api(client, photos):
    refs = {f"reference_{n}": handle_file(str(photos[name])) for n, name in enumerate(EIGHT[:6], start=1)}
    outputs = client.predict("six colleagues", **refs, width=256, height=256, steps=2, randomize_seed=False,
                             seed=3, condition_on=[2, 4, 5, 6], place="off", api_name="/generate")
    report = outputs[7]
    assert report["conditioned"] == ["Reference 2", "Reference 4", "Reference 5", "Reference 6"]
    assert "placement" not in report
    assert "Reference 1, Reference 3: not shown to the model and not placed" in " ".join(report["notes"])
    with pytest.raises(AppError, match="Reference 8 is empty: add its photo, or leave it out of the references "
                                       "to show the model"):
        client.predict("six colleagues", **refs, width=256, height=256, steps=2, condition_on=[8],
                       api_name="/generate")
