"""The page in a real browser (Debian's chromium driven by Playwright): upload references, see the
faces that will be used, generate, read the results, analyse an image; screenshots for a person to
look at go to tests/output/. The generator is the composing test double, so the pictures show real
faces and a meaningful heatmap."""

import time

import pytest

from tests.browser import chromium
from tests.app_server import free_port, wait_for
from tests.composing_customizer import ComposingCustomizer, PacedCustomizer
from umo_app.launch import page_options
from umo_app.layout import build_demo
from umo_app.queue_limits import setup_queue

pytestmark = pytest.mark.browser

TIMEOUT_MS = 60_000


@pytest.fixture(scope="module")
def page_url():
    from umo_pipeline.faces import get_face_backend

    # seeds 100 and 102 mix the identities: the candidates test knows which seed must win
    demo = setup_queue(build_demo(ComposingCustomizer(mixing_seeds={100, 102}), get_face_backend("dlib"),
                                  device="cpu"))
    port = free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True, **page_options())
    yield f"http://127.0.0.1:{port}"
    demo.close()


@pytest.fixture(scope="module")
def browser():
    with chromium({"width": 1280, "height": 800}) as context:
        yield context


def _upload(page, slot_id, path):
    page.set_input_files(f"#{slot_id} input[type=file]", str(path))


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
    page.screenshot(path=str(output_dir / "browser_3_analyze_1280.png"), full_page=True)
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
    page = browser.new_page()
    page.goto(page_url)
    page.wait_for_selector("#umo-generate-btn", timeout=TIMEOUT_MS)
    page.fill("#umo-prompt textarea", "Two people having coffee at a cafe terrace")
    _upload(page, "umo-gen-ref-1", photos["obama1"])
    _upload(page, "umo-gen-ref-2", photos["hopper"])
    _wait_for_face_preview(page, "umo-gen", 2)
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
def paced():
    """A page whose generator takes 0.1 s per step (60 steps by default): long enough to leave."""
    from umo_pipeline.faces import get_face_backend

    customizer = PacedCustomizer(step_seconds=0.1)
    demo = setup_queue(build_demo(customizer, get_face_backend("dlib"), device="cpu"))
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
    wait_for(lambda: len(customizer.steps_run) > runs and customizer.steps_run[-1] >= 3)
    return page


def _stops_early(customizer):
    # the run stops within a few steps: its count settles well below the 60 it would reach
    count = customizer.steps_run[-1]
    time.sleep(1.0)
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
    wait_for(lambda: customizer.steps_run[-1] < 60 and _settled(customizer))
    _stops_early(customizer)


def _settled(customizer):
    count = customizer.steps_run[-1]
    time.sleep(0.5)
    return customizer.steps_run[-1] == count
