"""The page in a real browser (Debian's chromium driven by Playwright): upload references, see the
faces that will be used, generate, read the results, analyse an image; screenshots for a person to
look at go to tests/output/. The generator is the composing test double, so the pictures show real
faces and a meaningful heatmap."""

import re
import time

import pytest

from tests.browser import chromium
from tests.app_server import free_port, wait_until
from tests.composing_customizer import ComposingCustomizer, PacedCustomizer
from umo_app.launch import page_options
from umo_app.layout import build_demo
from umo_app.queue_limits import setup_queue

pytestmark = pytest.mark.browser

TIMEOUT_MS = 60_000
HEADERS = ["Reference", "Face", "ID-Sim", "Runner-up", "ID-Conf", "Hungarian", "Status"]


@pytest.fixture(scope="module")
def page_url(dlib_backend):
    # seeds 100 and 102 mix the identities: the candidates test knows which seed must win
    demo = setup_queue(build_demo(ComposingCustomizer(mixing_seeds={100, 102}), dlib_backend,
                                  device="cpu"))
    port = free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True, **page_options())
    yield f"http://127.0.0.1:{port}"
    demo.close()


@pytest.fixture(scope="module")
def browser():
    with chromium({"width": 1280, "height": 800}) as context:
        yield context


def _open(browser, url, tab=None):
    """A new page at `url`, loaded; on the tab named `tab` if given."""
    page = browser.new_page()
    page.goto(url)
    page.wait_for_selector("#umo-generate-btn", timeout=TIMEOUT_MS)
    if tab is not None:
        page.get_by_role("tab", name=tab).click()
    return page


def _two_references_and_a_prompt(page, photos, prompt="Two people having coffee at a cafe terrace"):
    page.fill("#umo-prompt textarea", prompt)
    _upload(page, "umo-gen-ref-1", photos["obama1"])
    _upload(page, "umo-gen-ref-2", photos["hopper"])
    _wait_for_face_preview(page, "umo-gen", 2)


def _upload(page, slot_id, path):
    page.set_input_files(f"#{slot_id} input[type=file]", str(path))


#: Gradio marks an output whose event failed with "Error" in its status tracker
ERROR_BADGES = "[data-testid='status-tracker'] .error"
TOASTS = "[data-testid='toast-body']"
#: the status trackers that show something now (progress, a timer, an error)
SHOWN_TRACKERS = """() => [...document.querySelectorAll("[data-testid='status-tracker']")]
    .filter(tracker => !tracker.classList.contains('hide') && tracker.offsetParent !== null
                       && tracker.innerText.trim() !== '')
    .map(tracker => ({id: tracker.closest('[id]').id, text: tracker.innerText}))"""


def _pictures(page, prefix):
    """What the result panel shows: each picture's file and the table's text."""
    shown = {name: page.get_attribute(f"#{prefix}-{name} img", "src")
             for name in ("heatmap", "overlay") if page.locator(f"#{prefix}-{name} img").count()}
    return shown | {"table": page.inner_text(f"#{prefix}-table")}


def _table_fits(page, table_id, headers, settle_s: float = 15.0):
    """The table's columns all show inside it: nothing to scroll sideways, each of `headers` within
    its box; the headers shown. Measured until it holds or `settle_s` passes: after a resize (a
    phone's width) the page lays the table out again in its own time, slower on a loaded machine."""
    wanted = [h.replace(" ", "") for h in headers]
    deadline = time.monotonic() + settle_s
    while True:
        measured = page.evaluate("""id => {
            const block = document.getElementById(id), wrap = block.querySelector('.table-wrap');
            const box = block.getBoundingClientRect();
            const shown = [...block.querySelectorAll('th')].filter(th => th.offsetParent !== null);
            return {scroll: wrap.scrollWidth, client: wrap.clientWidth,
                    headers: shown.map(th => [th.innerText.replace(/\s+/g, ''),
                                              th.getBoundingClientRect().left >= box.left - 1
                                              && th.getBoundingClientRect().right <= box.right + 1])}}""", table_id)
        fits = measured["scroll"] <= measured["client"]
        if fits and [name for name, inside in measured["headers"] if inside] == wanted:
            return measured
        if time.monotonic() > deadline:
            break
        page.wait_for_timeout(100)  # the next layout pass; the deadline counts from the call
    assert fits, measured
    assert [name for name, inside in measured["headers"] if inside] == wanted, measured


def _wait_for_face_preview(page, prefix, number):
    page.wait_for_selector(f"#{prefix}-ref-{number}-face img", timeout=TIMEOUT_MS)
    page.wait_for_function(
        f"document.querySelector('#{prefix}-ref-{number}-note').innerText.includes('face')",
        timeout=TIMEOUT_MS,
    )
    return page.inner_text(f"#{prefix}-ref-{number}-note")


def test_generate_then_analyze_in_a_browser(browser, page_url, photos, output_dir):
    page = browser.new_page()
    page.goto(page_url)
    page.wait_for_selector("#umo-generate-btn", timeout=TIMEOUT_MS)
    header = page.inner_text("#umo-header")
    assert "composing-test-double" in header.lower() or "Composing test double" in header
    assert "dlib" in header and "cpu" in header
    assert "Tiny test model" in page.inner_text("#umo-banner")
    # the face backend: one line for the visitor, the details folded away for whoever runs the page
    backend = page.locator("#umo-banner .umo-banner.info")
    assert backend.locator(".umo-banner-line").inner_text().startswith("Identity scores by dlib, not ArcFace")
    assert not backend.locator("details").evaluate("details => details.open")
    line_height = backend.locator(".umo-banner-line").evaluate("p => parseFloat(getComputedStyle(p).lineHeight)")
    assert backend.locator(".umo-banner-line").bounding_box()["height"] <= 1.5 * line_height
    assert "ArcFace (insightface) was not used" not in page.inner_text("#umo-banner")  # no fallback here

    page.fill("#umo-prompt textarea", "Two people having coffee at a cafe terrace")
    _upload(page, "umo-gen-ref-1", photos["obama1"])
    _upload(page, "umo-gen-ref-2", photos["hopper"])
    assert "One face found" in _wait_for_face_preview(page, "umo-gen", 1)
    assert "One face found" in _wait_for_face_preview(page, "umo-gen", 2)
    page.screenshot(path=str(output_dir / "browser_1_references_1280.png"), full_page=True)

    page.check("#umo-compare input[type=checkbox]")
    page.click("#umo-generate-btn")
    page.wait_for_selector("#umo-gen-heatmap img", timeout=TIMEOUT_MS)
    page.wait_for_selector("#umo-gen-image img", timeout=TIMEOUT_MS)
    page.wait_for_selector("#umo-base-heatmap img", timeout=TIMEOUT_MS)
    table = page.inner_text("#umo-gen-table")
    assert table.count("matched") == 2 and "Reference 2" in table
    assert "UMO minus base" in page.inner_text("#umo-gen-summary")
    for table_id in ("umo-gen-table", "umo-base-table"):
        _table_fits(page, table_id, HEADERS)
    page.screenshot(path=str(output_dir / "browser_2_generated_1280.png"), full_page=True)

    page.get_by_role("tab", name="Analyze an image").click()
    _upload(page, "umo-ana-ref-1", photos["obama1"])
    _upload(page, "umo-ana-ref-2", photos["biden"])
    _wait_for_face_preview(page, "umo-ana", 2)
    _upload(page, "umo-analyze-image", photos["obama2"])
    page.click("#umo-analyze-btn")
    page.wait_for_selector("#umo-ana-heatmap img", timeout=TIMEOUT_MS)
    page.wait_for_selector("#umo-ana-overlay img", timeout=TIMEOUT_MS)  # beside the heatmap
    assert "matched" in page.inner_text("#umo-ana-table")
    _table_fits(page, "umo-ana-table", HEADERS)
    page.screenshot(path=str(output_dir / "browser_3_analyze_1280.png"), full_page=True)
    page.close()


def test_a_refusal_after_a_result_leaves_it_and_says_why_by_the_button(browser, page_url, photos, output_dir):
    page = _open(browser, page_url)
    _two_references_and_a_prompt(page, photos)
    page.click("#umo-generate-btn")
    page.wait_for_selector("#umo-gen-heatmap img", timeout=TIMEOUT_MS)
    before = {**_pictures(page, "umo-gen"), "image": page.get_attribute("#umo-gen-image img", "src"),
              "summary": page.inner_text("#umo-gen-summary")}
    assert before["table"].count("matched") == 2

    # a refused prompt, then a refused reference: each says why under the button, the result stays
    not_a_picture = output_dir / "notes_named_like_a_picture.png"
    not_a_picture.write_text("not a picture")
    refusals = [("", None, "The prompt is empty"), ("Two people", not_a_picture, "Reference 2: not an image file")]
    for prompt, reference, words in refusals:
        page.fill("#umo-prompt textarea", prompt)
        if reference is not None:
            _upload(page, "umo-gen-ref-2", reference)
            page.wait_for_function("document.querySelector('#umo-gen-ref-2-note').innerText.includes('not an image')",
                                   timeout=TIMEOUT_MS)
        page.click("#umo-generate-btn")
        page.wait_for_selector(f"#umo-gen-status .umo-refusal:has-text('{words}')", timeout=TIMEOUT_MS)
        page.wait_for_selector("#umo-generate-btn", state="visible", timeout=TIMEOUT_MS)
        after = {**_pictures(page, "umo-gen"), "image": page.get_attribute("#umo-gen-image img", "src"),
                 "summary": page.inner_text("#umo-gen-summary")}
        assert after == before
        assert page.locator(ERROR_BADGES).count() == 0 and page.locator(TOASTS).count() == 0
        assert page.locator(".umo-refusal").count() == 1
    # the line sits right under the button the visitor pressed
    button, line = page.locator("#umo-generate-btn").bounding_box(), page.locator("#umo-gen-status").bounding_box()
    assert 0 <= line["y"] - (button["y"] + button["height"]) < 40
    page.locator("#umo-generate-btn").scroll_into_view_if_needed()
    page.screenshot(path=str(output_dir / "browser_7_refusal_after_a_result_1280.png"), full_page=True)

    # the Analyze tab the same way: its refusal by its own button; a new try clears the line
    page.get_by_role("tab", name="Analyze an image").click()
    _upload(page, "umo-analyze-image", photos["obama2"])
    page.click("#umo-analyze-btn")
    page.wait_for_selector("#umo-ana-status .umo-refusal:has-text('at least one reference')", timeout=TIMEOUT_MS)
    assert page.locator(ERROR_BADGES).count() == 0 and page.locator(TOASTS).count() == 0
    _upload(page, "umo-ana-ref-1", photos["obama1"])
    _wait_for_face_preview(page, "umo-ana", 1)
    page.click("#umo-analyze-btn")
    page.wait_for_selector("#umo-ana-heatmap img", timeout=TIMEOUT_MS)
    page.wait_for_function("document.querySelector('#umo-ana-status').innerText.trim() === ''", timeout=TIMEOUT_MS)
    page.close()


def test_analyze_with_four_references_shows_every_column_at_1280_and_a_phone_layout(browser, page_url, photos,
                                                                                     output_dir):
    page = _open(browser, page_url, "Analyze an image")
    for slot, name in enumerate(["obama1", "biden", "hopper", "newton"], start=1):
        _upload(page, f"umo-ana-ref-{slot}", photos[name])
        _wait_for_face_preview(page, "umo-ana", slot)
    _upload(page, "umo-analyze-image", photos["obama2"])
    page.click("#umo-analyze-btn")
    page.wait_for_selector("#umo-ana-heatmap img", timeout=TIMEOUT_MS)
    page.wait_for_function("document.querySelector('#umo-ana-table').innerText.includes('Reference 4')",
                           timeout=TIMEOUT_MS)
    _table_fits(page, "umo-ana-table", HEADERS)
    page.screenshot(path=str(output_dir / "browser_8_analyze_4_references_1280.png"), full_page=True)

    page.set_viewport_size({"width": 390, "height": 844})
    # a phone: the four columns that say the most, every one readable, nothing to scroll sideways
    _table_fits(page, "umo-ana-table", ["Reference", "ID-Sim", "ID-Conf", "Status"])
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    page.locator("#umo-ana-table").scroll_into_view_if_needed()
    page.screenshot(path=str(output_dir / "browser_9_analyze_4_references_390.png"))
    page.close()


def test_a_crowd_is_shown_at_the_page_width_with_readable_tags_and_numbers(browser, page_url, photos, output_dir):
    from umo_pipeline.render import PIXEL_SCALE

    page = _open(browser, page_url, "Analyze an image")
    _upload(page, "umo-ana-ref-1", photos["obama1"])
    _upload(page, "umo-ana-ref-2", photos["hopper"])
    _wait_for_face_preview(page, "umo-ana", 2)
    _upload(page, "umo-analyze-image", photos["solvay"])  # 29 faces
    page.click("#umo-analyze-btn")
    page.wait_for_selector("#umo-ana-heatmap img", timeout=TIMEOUT_MS)
    page.wait_for_selector("#umo-ana-overlay img", timeout=TIMEOUT_MS)
    sizes = page.evaluate("""() => Object.fromEntries(['overlay', 'heatmap'].map(name => {
        const img = document.querySelector(`#umo-ana-${name} img`);
        return [name, {shown: img.getBoundingClientRect().width, natural: img.naturalWidth}]}))""")
    # the labelled faces at about their own size (their tags are drawn at 12 px and more), the
    # heatmap at least at the size its text was planned for (render.PIXEL_SCALE pixels per CSS px)
    assert sizes["overlay"]["shown"] >= 0.9 * sizes["overlay"]["natural"], sizes
    assert sizes["heatmap"]["shown"] >= sizes["heatmap"]["natural"] / PIXEL_SCALE - 1, sizes
    assert page.locator("#umo-ana-overlay").bounding_box()["width"] > 1000
    page.locator("#umo-ana-overlay").scroll_into_view_if_needed()
    page.screenshot(path=str(output_dir / "browser_10_solvay_1280.png"), full_page=True)
    page.close()


def test_narrow_screen(browser, page_url, photos, output_dir):
    page = browser.new_page()
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(page_url)
    page.wait_for_selector("#umo-generate-btn", timeout=TIMEOUT_MS)
    _upload(page, "umo-gen-ref-1", photos["solvay"])
    note = _wait_for_face_preview(page, "umo-gen", 1)
    assert "faces found; the largest one" in note
    # a 16-bit grayscale photo arrives as the file itself (Gradio's conversion would make it white)
    from PIL import Image

    from tests.page.test_uploads import sixteen_bit

    gray = output_dir / "hopper_16bit_gray.png"
    gray.write_bytes(sixteen_bit(Image.open(photos["hopper"]).convert("RGB")))
    _upload(page, "umo-gen-ref-2", gray)
    assert "One face found" in _wait_for_face_preview(page, "umo-gen", 2)
    # nothing may stick out sideways on a phone
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    page.screenshot(path=str(output_dir / "browser_4_mobile_390.png"), full_page=True)
    page.close()


def test_candidates_gallery_and_face_crop_at_1280_and_390(browser, page_url, photos, output_dir):
    page = _open(browser, page_url)
    _two_references_and_a_prompt(page, photos)
    page.check("#umo-gen-ref-1-crop input[type=checkbox]")
    page.wait_for_function("document.querySelector('#umo-gen-ref-1-note').innerText.includes('receive this crop')",
                           timeout=TIMEOUT_MS)
    page.get_by_role("button", name="Settings ▼").click()
    page.get_by_label("Randomize seed").uncheck()
    page.get_by_label("Seed", exact=True).fill("100")
    page.fill("#umo-candidates input[type=number]", "3")
    page.press("#umo-candidates input[type=number]", "Enter")
    page.click("#umo-generate-btn")

    gallery = "#umo-candidates-gallery"
    page.wait_for_function(f"document.querySelectorAll('{gallery} img').length === 3", timeout=TIMEOUT_MS)
    captions = page.inner_text(gallery)
    # seed 101 keeps both identities; 100 and 102 tie and keep their order
    assert captions.index("seed 101") < captions.index("seed 100") < captions.index("seed 102")
    assert captions.index("#1 · score") < captions.index("#2 · score") < captions.index("#3 · score")
    assert page.inner_text("#umo-gen-table").count("matched") == 2
    assert "Best of 3 candidates" in page.inner_text("#umo-gen-summary")
    page.locator(gallery).scroll_into_view_if_needed()
    page.screenshot(path=str(output_dir / "browser_5_candidates_1280.png"), full_page=True)

    # clicking the second candidate shows its table: reference 2 was lost there
    page.locator(f"{gallery} img").nth(1).click()
    page.wait_for_function("document.querySelector('#umo-gen-table').innerText.split('matched').length - 1 < 2",
                           timeout=TIMEOUT_MS)

    page.set_viewport_size({"width": 390, "height": 844})
    page.locator(gallery).scroll_into_view_if_needed()
    assert page.locator(f"{gallery} img").nth(2).is_visible()
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    page.screenshot(path=str(output_dir / "browser_6_candidates_390.png"), full_page=True)
    page.close()


# -- leaving and stopping ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def paced(dlib_backend):
    """A page whose generator takes 0.1 s per step (60 steps by default): long enough to leave."""
    customizer = PacedCustomizer(step_seconds=0.1)
    demo = setup_queue(build_demo(customizer, dlib_backend, device="cpu"))
    port = free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True, **page_options())
    yield f"http://127.0.0.1:{port}", customizer
    demo.close()


def _start_generation(browser, url, customizer, prompt="Two people at a cafe"):
    page = browser.new_page()
    page.goto(url)
    page.wait_for_selector("#umo-generate-btn", timeout=TIMEOUT_MS)
    page.fill("#umo-prompt textarea", prompt)
    runs = len(customizer.steps_run)
    page.click("#umo-generate-btn")
    page.wait_for_selector("#umo-stop-btn", state="visible", timeout=TIMEOUT_MS)
    assert not page.is_visible("#umo-generate-btn")
    wait_until(lambda: len(customizer.steps_run) > runs and customizer.steps_run[-1] >= 3)
    return page


def test_progress_is_one_display_with_one_count(browser, paced, photos, output_dir):
    url, customizer = paced
    page = _open(browser, url)
    _two_references_and_a_prompt(page, photos, "Two people at a cafe")
    page.check("#umo-compare input[type=checkbox]")
    page.fill("#umo-candidates input[type=number]", "2")
    page.press("#umo-candidates input[type=number]", "Enter")
    runs = len(customizer.steps_run)
    page.click("#umo-generate-btn")
    # mid-run: the second image of the job is under way
    wait_until(lambda: len(customizer.steps_run) >= runs + 2 and customizer.steps_run[-1] >= 3)
    page.wait_for_function(f"({SHOWN_TRACKERS})().some(t => /steps/.test(t.text))", timeout=TIMEOUT_MS)
    shown = page.evaluate(SHOWN_TRACKERS)
    page.locator("#umo-gen-image").scroll_into_view_if_needed()
    page.screenshot(path=str(output_dir / "browser_11_progress_mid_run_1280.png"))
    page.click("#umo-stop-btn")
    page.wait_for_selector("#umo-generate-btn", state="visible", timeout=TIMEOUT_MS)
    page.close()
    assert [tracker["id"] for tracker in shown] == ["umo-gen-image"], shown
    text = shown[0]["text"]
    # one count: the whole job's steps (60 steps x 2 candidates x 2 models), and its percentage
    counts = re.findall(r"(\d+)/(\d+)", text)
    assert len(counts) == 1, text
    done, total = map(int, counts[0])
    assert total == 4 * customizer.defaults.steps and done >= customizer.defaults.steps, text
    percent = float(re.search(r"([\d.]+)%", text).group(1))
    assert abs(percent - 100 * done / total) <= 0.051, text  # the same count, to one decimal
    assert "With UMO (2 candidates)" in text or "Base model (no UMO) (2 candidates)" in text


def _stops_early(customizer):
    # the run stops within a few steps of the page showing it stopped: its count settles well below the
    # 60 it would reach
    count = customizer.steps_run[-1]
    wait_until(lambda: _settled(customizer))
    assert customizer.steps_run[-1] - count <= 3 and customizer.steps_run[-1] < 40, customizer.steps_run


def test_stop_button_stops_the_generation_and_the_page_is_ready_again(browser, paced, output_dir):
    url, customizer = paced
    page = _start_generation(browser, url, customizer)
    page.screenshot(path=str(output_dir / "browser_5_generating_stop_1280.png"))
    page.click("#umo-stop-btn")
    page.wait_for_selector("#umo-generate-btn", state="visible", timeout=TIMEOUT_MS)
    assert not page.is_visible("#umo-stop-btn")
    _stops_early(customizer)
    # ready: no progress bar left, and an error also brings Generate back
    assert page.locator("#umo-gen-image .progress-text").count() == 0
    page.fill("#umo-prompt textarea", "")
    page.click("#umo-generate-btn")
    page.wait_for_selector("text=The prompt is empty", timeout=TIMEOUT_MS)
    page.wait_for_selector("#umo-generate-btn", state="visible", timeout=TIMEOUT_MS)
    assert not page.is_visible("#umo-stop-btn")
    page.close()


def test_closing_the_page_stops_its_generation(browser, paced):
    url, customizer = paced
    page = _start_generation(browser, url, customizer)
    page.close()
    wait_until(lambda: customizer.steps_run[-1] < 60 and _settled(customizer))
    _stops_early(customizer)


def _settled(customizer):
    # no step for 0.5 s, five steps' time: a window in which a generation still running would move on
    count = customizer.steps_run[-1]
    time.sleep(0.5)
    return customizer.steps_run[-1] == count


# -- face repair ----------------------------------------------------------------------------------
class WrongFaceCustomizer(ComposingCustomizer):
    """The composing double whose generations paint the `wrong` photo where Reference 2 belongs (a face
    to repair); its repairs paint the reference they are given, as its parent's do."""

    def __init__(self, wrong):
        super().__init__()
        self.wrong = wrong

    def sample(self, request, references, *, variant, step_callback):
        if request.inpaint is None and len(references) > 1:
            references = [references[0], self.wrong, *references[2:]]
        return super().sample(request, references, variant=variant, step_callback=step_callback)


def _serve(demo):
    port = free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True, **page_options())
    return f"http://127.0.0.1:{port}"


@pytest.fixture(scope="module")
def repair_page(photos, dlib_backend):
    from umo_pipeline.images import load_image

    customizer = WrongFaceCustomizer(load_image(photos["gauss"]))
    demo = setup_queue(build_demo(customizer, dlib_backend, device="cpu"))
    yield _serve(demo), customizer
    demo.close()


def _checked(page, group_id):
    """The labels of the ticked boxes in a checkbox group."""
    return page.evaluate("""id => [...document.querySelectorAll(`#${id} label`)]
        .filter(label => label.querySelector('input').checked).map(label => label.innerText.trim())""", group_id)


REPAIR_HEADERS = ["Reference", "Face", "Before", "After", "Change", "ID-Conf", "Status"]


def _rows(page, table_id, headers):
    """A table's body rows as its cells' texts (Gradio writes each body cell on a line of its own,
    after the header's)."""
    lines = [line.strip() for line in page.inner_text(f"#{table_id}").splitlines()]
    cells = [line for line in lines[lines.index(headers[-1]) + 1:] if line]
    return [cells[k:k + len(headers)] for k in range(0, len(cells), len(headers))]


def test_repair_after_a_generation_at_1280_and_390(browser, repair_page, photos, output_dir):
    url, customizer = repair_page
    page = _open(browser, url)
    assert not page.is_visible("#umo-gen-repair")  # nothing to repair before a result
    _two_references_and_a_prompt(page, photos)
    page.click("#umo-generate-btn")
    page.wait_for_selector("#umo-gen-heatmap img", timeout=TIMEOUT_MS)
    assert page.inner_text("#umo-gen-table").count("not found") == 1  # Gauss stands where Hopper should

    # the panel appears under the result with the wrong reference ticked
    page.wait_for_selector("#umo-gen-repair", state="visible", timeout=TIMEOUT_MS)
    assert _checked(page, "umo-gen-repair-references") == ["Reference 2 (not found)"]
    assert "Reference 1 (matched)" in page.inner_text("#umo-gen-repair-references")
    assert not page.is_visible("#umo-gen-repair-slider")  # no repair yet
    page.fill("#umo-gen-repair-candidates input[type=number]", "2")
    page.press("#umo-gen-repair-candidates input[type=number]", "Enter")
    page.click("#umo-gen-repair-btn")

    page.wait_for_selector("#umo-gen-repair-slider img", timeout=TIMEOUT_MS)
    page.wait_for_function("document.querySelector('#umo-gen-repair-table').innerText.includes('not found -> matched')",
                           timeout=TIMEOUT_MS)
    page.wait_for_selector("#umo-gen-repair-btn", state="visible", timeout=TIMEOUT_MS)
    assert not page.is_visible("#umo-gen-repair-stop-btn")
    # two candidates, each conditioned on Hopper alone
    assert [seed for seed, _, _ in customizer.inpaints[-2:]] == [0, 1]
    rows = _rows(page, "umo-gen-repair-table", REPAIR_HEADERS)
    assert [row[0] for row in rows] == ["Reference 1", "Reference 2"] and rows[0][-1] == "matched"
    assert rows[1][-1] == "not found -> matched" and re.fullmatch(r"\+\d+\.\d", rows[1][4]), rows  # x100, signed
    assert float(rows[1][3]) - float(rows[1][2]) == pytest.approx(float(rows[1][4]), abs=0.11)
    summary = page.inner_text("#umo-gen-repair-summary")
    assert "Kept: Face 2 repaired with Reference 2" in summary and "not found -> matched" in summary
    rule = page.inner_text("#umo-gen-repair-rule")  # the rule, with its numbers, above the button and in the summary
    assert "rises by at least 0.5" in rule and "more than 2.0" in rule and "matching score" in rule
    assert "Rule: A repair is kept only if" in summary
    assert page.locator("#umo-gen-repair-heatmap img").count() == 1
    files = page.inner_text("#umo-gen-repair-downloads").replace("\n.", ".")  # Gradio breaks a name before its suffix
    assert "\nrepaired.png\n" in files and "\nreport_repaired.json\n" in files
    assert page.locator(ERROR_BADGES).count() == 0 and page.locator(TOASTS).count() == 0
    assert page.inner_text("#umo-gen-repair-status").strip() == ""
    _table_fits(page, "umo-gen-repair-table", REPAIR_HEADERS)
    page.locator("#umo-gen-repair").scroll_into_view_if_needed()
    page.screenshot(path=str(output_dir / "browser_12_repair_1280.png"), full_page=True)

    page.set_viewport_size({"width": 390, "height": 844})
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    _table_fits(page, "umo-gen-repair-table", ["Reference", "After", "Change", "Status"])
    page.locator("#umo-gen-repair-slider").scroll_into_view_if_needed()
    page.screenshot(path=str(output_dir / "browser_13_repair_390.png"), full_page=True)

    # a refusal says why under the Repair button and leaves the repair shown
    page.set_viewport_size({"width": 1280, "height": 800})
    page.fill("#umo-gen-repair-prompt textarea", "a face " * 300)
    page.click("#umo-gen-repair-btn")
    page.wait_for_selector("#umo-gen-repair-status .umo-refusal:has-text('2,099 characters long')",
                           timeout=TIMEOUT_MS)
    page.wait_for_selector("#umo-gen-repair-btn", state="visible", timeout=TIMEOUT_MS)
    assert page.is_visible("#umo-gen-repair-slider") and page.locator(TOASTS).count() == 0
    # a new result puts the old repair away and offers its own references
    page.click("#umo-generate-btn")
    page.wait_for_function("document.querySelector('#umo-gen-repair-status').innerText.trim() === ''",
                           timeout=TIMEOUT_MS)
    page.wait_for_selector("#umo-gen-repair-slider", state="hidden", timeout=TIMEOUT_MS)
    assert _checked(page, "umo-gen-repair-references") == ["Reference 2 (not found)"]
    page.close()


@pytest.fixture(scope="module")
def full_page(dlib_backend):
    """A page whose generation line holds nothing: every generation is turned away as the queue is full."""
    from umo_app.queue_limits import ANALYSIS_GROUP, GPU_GROUP, QueueLimits

    customizer = ComposingCustomizer()
    limits = QueueLimits({GPU_GROUP: 0, ANALYSIS_GROUP: 64}, {GPU_GROUP: ("generation", "generations")})
    demo = setup_queue(build_demo(customizer, dlib_backend, device="cpu"), limits)
    yield _serve(demo), customizer
    demo.close()


def test_a_full_line_is_said_under_the_button_without_a_pop_up(browser, full_page, output_dir):
    url, customizer = full_page
    page = _open(browser, url)
    page.fill("#umo-prompt textarea", "Two people at a cafe")
    joined = []
    page.on("request", lambda request: joined.append(request.url) if "/queue/join" in request.url else None)
    page.click("#umo-generate-btn")
    page.wait_for_selector("#umo-gen-status .umo-refusal:has-text('Too busy right now')", timeout=TIMEOUT_MS)
    assert "0 generations are waiting, the most this server queues" in page.inner_text("#umo-gen-status")
    page.wait_for_selector("#umo-generate-btn", state="visible", timeout=TIMEOUT_MS)
    assert not page.is_visible("#umo-stop-btn")
    page.locator("#umo-generate-btn").scroll_into_view_if_needed()
    page.screenshot(path=str(output_dir / "browser_14_queue_full_1280.png"))
    # the Analyze tab has its own line, with room: its request joins it and is answered
    page.get_by_role("tab", name="Analyze an image").click()
    page.click("#umo-analyze-btn")
    page.wait_for_selector("#umo-ana-status .umo-refusal:has-text('Add the image to analyse')", timeout=TIMEOUT_MS)
    # by then the generation had long been turned away without joining its line: the analysis's is
    # the only request that joined one; no pop-up, no error badge, nothing generated
    assert len(joined) == 1, joined
    assert page.locator(ERROR_BADGES).count() == 0 and page.locator(TOASTS).count() == 0
    assert customizer.calls == [] and page.locator(".umo-refusal:visible").count() == 1
    page.close()


def test_a_repair_shows_one_progress_count_and_stop_stops_it(browser, paced, photos):
    url, customizer = paced
    page = _open(browser, url)
    _two_references_and_a_prompt(page, photos, "Two people at a cafe")
    page.click("#umo-generate-btn")
    page.wait_for_selector("#umo-gen-repair", state="visible", timeout=TIMEOUT_MS)
    assert _checked(page, "umo-gen-repair-references") == []  # both matched: nothing ticked
    page.check("#umo-gen-repair-references label:has-text('Reference 1') input")
    runs = len(customizer.steps_run)
    page.click("#umo-gen-repair-btn")
    page.wait_for_selector("#umo-gen-repair-stop-btn", state="visible", timeout=TIMEOUT_MS)
    assert not page.is_visible("#umo-gen-repair-btn")
    wait_until(lambda: len(customizer.steps_run) > runs and customizer.steps_run[-1] >= 3)
    page.wait_for_function(f"({SHOWN_TRACKERS})().some(t => /face 1 of 1/.test(t.text))", timeout=TIMEOUT_MS)
    shown = page.evaluate(SHOWN_TRACKERS)
    page.click("#umo-gen-repair-stop-btn")
    page.wait_for_selector("#umo-gen-repair-btn", state="visible", timeout=TIMEOUT_MS)
    _stops_early(customizer)
    # one display, over the references being repaired, with one count: the strength's share of the steps
    assert [tracker["id"] for tracker in shown] == ["umo-gen-repair-references"], shown
    text = shown[0]["text"]
    (done, total), = re.findall(r"(\d+)/(\d+)", text)  # one count: the job's steps (the strength's share)
    assert int(total) == round(customizer.defaults.steps * 0.6) and "face 1 of 1, candidate 1 of 1" in text, text
    assert not page.is_visible("#umo-gen-repair-slider")  # stopped: no result
    page.close()
