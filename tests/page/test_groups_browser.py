"""A group past the model's limit on the page, in a real browser (Debian's chromium driven by
Playwright): "Add a person" up to eight slots, who the model sees, one progress count over the whole
job, the composed scene then each person placed, Stop keeping what was done, and the too-few-faces
message. The generators are the composing test double with strangers (its faces are real, so who
must be placed is known in advance), paced so the page can be watched mid-job, and the tiny UNO
model, whose scenes hold no face."""

import re

import pytest

from tests.app_server import wait_until
from tests.browser import chromium
from tests.composing_customizer import PacedCustomizer
from tests.library.workflow.test_placement import PEOPLE, STRANGERS, solvay_face
from tests.page.test_app_browser import (
    ERROR_BADGES, REPAIR_HEADERS, SHOWN_TRACKERS, TIMEOUT_MS, _open, _rows, _serve, _table_fits,
    _wait_for_face_preview,
)
from umo_app.layout import build_demo
from umo_app.queue_limits import setup_queue
from umo_pipeline.customizers.base import GenerationRequest

pytestmark = pytest.mark.browser


class GroupCustomizer(PacedCustomizer):
    """The paced composing double at a group's size: six people's tiles keep every face whole."""

    name = "group-test-double"
    defaults = GenerationRequest(prompt="", width=768, height=1152, steps=10, guidance=4.0)


@pytest.fixture(scope="module")
def browser():
    with chromium({"width": 1280, "height": 900}) as context:
        yield context


@pytest.fixture(scope="module")
def group_page(photos, dlib_backend):
    crowd = [solvay_face(photos, dlib_backend, index) for index in STRANGERS]
    customizer = GroupCustomizer(step_seconds=0.15, crowd=crowd)
    demo = setup_queue(build_demo(customizer, dlib_backend, device="cpu"))
    yield _serve(demo), customizer
    demo.close()


@pytest.fixture(scope="module")
def tiny_page(dlib_backend):
    from umo_pipeline.customizers import load_customizer

    demo = setup_queue(build_demo(load_customizer("tiny"), dlib_backend, device="cpu"))
    yield _serve(demo)
    demo.close()


def _add_people(page, count, shown=4):
    """Click "Add a person" `count` times, each time until the next card shows (a click answers with
    the cards now shown)."""
    for number in range(shown + 1, shown + count + 1):
        page.click("#umo-gen-add-person")
        page.wait_for_selector(f"#umo-gen-ref-{number}", state="visible", timeout=TIMEOUT_MS)


def _six_people(page, photos, prompt="Six friends at a picnic"):
    page.fill("#umo-prompt textarea", prompt)
    assert not page.is_visible("#umo-gen-ref-5") and not page.is_visible("#umo-gen-condition-on")
    _add_people(page, 2)
    assert not page.is_visible("#umo-gen-ref-7") and page.is_visible("#umo-gen-condition-on")
    for number, name in enumerate(PEOPLE, start=1):
        page.set_input_files(f"#umo-gen-ref-{number} input[type=file]", str(photos[name]))
    _wait_for_face_preview(page, "umo-gen", 6)


def test_a_group_of_six_on_the_page(browser, group_page, photos, output_dir):
    url, customizer = group_page
    page = _open(browser, url)
    line = page.inner_text("#umo-gen-group-line")
    assert "Past 4 people, the scene is composed with the 4 the model sees" in line
    assert page.is_checked("#umo-place input[value=auto]")
    _six_people(page, photos)
    runs = len(customizer.steps_run)
    page.click("#umo-generate-btn")

    # one display and one count over the whole job: composing, then each person
    wait_until(lambda: len(customizer.steps_run) >= runs + 2 and customizer.steps_run[-1] >= 2, timeout=120)
    page.wait_for_function(f"({SHOWN_TRACKERS})().some(t => /Placing person 5 of 6/.test(t.text))",
                           timeout=TIMEOUT_MS)
    shown = page.evaluate(SHOWN_TRACKERS)
    assert [tracker["id"] for tracker in shown] == ["umo-gen-image"], shown
    (done, total), = re.findall(r"(\d+)/(\d+)", shown[0]["text"])
    steps = customizer.defaults.steps
    assert int(total) == steps + 2 * (steps - int(steps - steps * 0.6)) and int(done) > steps, shown
    # the composed scene is on the page already, still to be placed
    assert "2 of 2 people still to place" in page.inner_text("#umo-gen-summary")

    page.wait_for_selector("#umo-gen-placed-slider img", timeout=TIMEOUT_MS)
    page.wait_for_selector("#umo-generate-btn", state="visible", timeout=TIMEOUT_MS)
    summary = page.inner_text("#umo-gen-summary")
    assert "6 of 6 identities kept" in summary and "Placed: Face" in summary
    assert "Reference 5 and Reference 6 were left for placing" in summary
    rows = _rows(page, "umo-gen-placement-table", REPAIR_HEADERS)
    assert [row[0] for row in rows] == [f"Reference {n}" for n in range(1, 7)]
    assert [row[-1] for row in rows] == ["matched"] * 4 + ["not found -> matched"] * 2, rows
    assert page.inner_text("#umo-gen-table").count("matched") == 6
    files = page.inner_text("#umo-gen-downloads").replace("\n.", ".")
    assert "placed_seed" in files and page.locator(ERROR_BADGES).count() == 0
    _table_fits(page, "umo-gen-placement-table", REPAIR_HEADERS)
    page.locator("#umo-gen-placed-slider").scroll_into_view_if_needed()
    page.screenshot(path=str(output_dir / "browser_15_group_of_six_1280.png"), full_page=True)

    page.set_viewport_size({"width": 390, "height": 844})
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    page.locator("#umo-gen-placed-slider").scroll_into_view_if_needed()
    page.screenshot(path=str(output_dir / "browser_16_group_of_six_390.png"), full_page=True)
    page.close()


def test_stop_while_placing_keeps_what_was_done(browser, group_page, photos):
    url, customizer = group_page
    page = _open(browser, url)
    _six_people(page, photos)
    runs = len(customizer.steps_run)
    page.click("#umo-generate-btn")
    # the second person's repair is under way: the scene and the first person are done
    wait_until(lambda: len(customizer.steps_run) >= runs + 3 and customizer.steps_run[-1] >= 1, timeout=120)
    page.wait_for_function("document.querySelector('#umo-gen-summary').innerText.includes('1 of 2 people still')",
                           timeout=TIMEOUT_MS)
    page.click("#umo-stop-btn")
    page.wait_for_selector("#umo-generate-btn", state="visible", timeout=TIMEOUT_MS)
    stopped_at = customizer.steps_run[-1]
    wait_until(lambda: customizer.steps_run[-1] == stopped_at or len(customizer.steps_run) > runs + 3)
    assert customizer.steps_run[runs + 2] < 6, customizer.steps_run  # the repair ended before its 6 steps
    # what was done stays: the first person placed, the second still to place
    summary = page.inner_text("#umo-gen-summary")
    assert "Placed: Face" in summary and "1 of 2 people still to place" in summary
    assert page.inner_text("#umo-gen-table").count("matched") == 5
    assert page.inner_text("#umo-gen-status").strip() == ""
    page.close()


def test_the_tiny_model_composes_eight_and_says_too_few_faces(browser, tiny_page, photos, output_dir):
    page = _open(browser, tiny_page)
    page.fill("#umo-prompt textarea", "Eight colleagues on a staircase")
    _add_people(page, 4)
    assert not page.is_visible("#umo-gen-add-person")  # every slot is shown
    names = ["obama1", "hopper", "newton", "gauss", "astronaut", "biden", "obama2", "obama3"]
    for number, name in enumerate(names, start=1):
        page.set_input_files(f"#umo-gen-ref-{number} input[type=file]", str(photos[name]))
    _wait_for_face_preview(page, "umo-gen", 8)

    # more people ticked than the model sees: refused in words, by the button
    for number in range(1, 6):
        page.check(f"#umo-gen-condition-on label:has-text('Reference {number}') input")
    page.click("#umo-generate-btn")
    page.wait_for_selector("#umo-gen-status .umo-refusal:has-text('The model sees at most 4 people')",
                           timeout=TIMEOUT_MS)
    page.uncheck("#umo-gen-condition-on label:has-text('Reference 1') input")

    page.click("text=Settings")
    page.fill("#umo-candidates input[type=number]", "2")
    page.press("#umo-candidates input[type=number]", "Enter")
    page.click("#umo-generate-btn")
    page.wait_for_function(f"({SHOWN_TRACKERS})().some(t => /Composing \\(candidates 1-2 of 2\\)/.test(t.text))",
                           timeout=TIMEOUT_MS)
    page.wait_for_function("document.querySelector('#umo-gen-summary').innerText.includes('Too few faces')",
                           timeout=TIMEOUT_MS)
    summary = page.inner_text("#umo-gen-summary")
    assert "0 face(s) were found for 8 people" in summary and "Say the number of people in the prompt" in summary
    assert "The model saw Reference 2, Reference 3, Reference 4 and Reference 5" in summary
    assert page.locator("#umo-gen-image img").count() == 1 and not page.is_visible("#umo-gen-placed-slider")
    assert page.inner_text("#umo-gen-status").strip() == ""
    page.screenshot(path=str(output_dir / "browser_17_too_few_faces_1280.png"), full_page=True)
    page.close()


def test_a_hidden_slot_that_receives_a_photo_is_shown(browser, group_page):
    # the six-person example fills slots 5 and 6, which the page had hidden (the model sees 4)
    url, _ = group_page
    page = _open(browser, url)
    assert not page.is_visible("#umo-gen-ref-5")
    page.get_by_text("Six colleagues posing for a team photo").click()
    page.wait_for_selector("#umo-gen-ref-6", state="visible", timeout=TIMEOUT_MS)
    assert not page.is_visible("#umo-gen-ref-7") and page.is_visible("#umo-gen-condition-on")
    _wait_for_face_preview(page, "umo-gen", 6)
    page.close()
