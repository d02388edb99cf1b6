"""The page in a real browser (Debian's chromium driven by Playwright): upload references, see the
faces that will be used, generate, read the results, analyse an image; screenshots for a person to
look at go to tests/output/. The generator is the composing test double, so the pictures show real
faces and a meaningful heatmap."""

import shutil
import tempfile
import time

import pytest

import app
import serving
from tests.app_server import free_port
from tests.composing_customizer import ComposingCustomizer, PacedCustomizer

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage",
]
TIMEOUT_MS = 60_000


@pytest.fixture(scope="module")
def page_url():
    from umo_pipeline.faces import get_face_backend

    demo = app.build_demo(ComposingCustomizer(), get_face_backend("dlib"), device="cpu")
    serving.setup_queue(demo, app.QUEUE_LIMITS)
    port = free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, ssr_mode=False,
                theme=app.theme(), css=app.CSS, max_file_size=app.MAX_UPLOAD, show_error=True, quiet=True)
    yield f"http://127.0.0.1:{port}"
    demo.close()


@pytest.fixture(scope="module")
def browser():
    if not shutil.which(CHROMIUM):
        pytest.fail("chromium is missing: scripts/test.sh installs it (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    profile = tempfile.mkdtemp(prefix="umo-chromium-")
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            profile, executable_path=CHROMIUM, args=CHROMIUM_FLAGS, headless=True,
            viewport={"width": 1280, "height": 800},
        )
        yield context
        context.close()
    shutil.rmtree(profile, ignore_errors=True)


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
    # nothing may stick out sideways on a phone
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    page.screenshot(path=str(output_dir / "browser_4_mobile_390.png"), full_page=True)
    page.close()


# -- leaving and stopping ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def paced():
    """A page whose generator takes 0.1 s per step (60 steps by default): long enough to leave."""
    from umo_pipeline.faces import get_face_backend

    customizer = PacedCustomizer(step_seconds=0.1)
    demo = app.build_demo(customizer, get_face_backend("dlib"), device="cpu")
    serving.setup_queue(demo, app.QUEUE_LIMITS)
    port = free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, ssr_mode=False,
                theme=app.theme(), css=app.CSS, show_error=True, quiet=True)
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
    _wait(lambda: len(customizer.steps_run) > runs and customizer.steps_run[-1] >= 3)
    return page


def _wait(condition, timeout=30.0):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


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
    _wait(lambda: customizer.steps_run[-1] < 60 and _settled(customizer))
    _stops_early(customizer)


def _settled(customizer):
    count = customizer.steps_run[-1]
    time.sleep(0.5)
    return customizer.steps_run[-1] == count
