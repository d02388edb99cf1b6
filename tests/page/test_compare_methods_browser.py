"""The Compare methods tab in a real browser (Debian's chromium driven by Playwright) at 1280 px and
390 px: references and four methods' pictures uploaded, each named after its file, one renamed, the
ranked table in view, a failed picture as a row, a refusal as one line; screenshots to tests/output/."""

import pytest

from tests.app_server import free_port
from tests.browser import chromium
from tests.library.test_analysis import compose, face_tile, output_with
from tests.page.test_app_browser import TIMEOUT_MS, _table_fits, _upload, _wait_for_face_preview
from tests.page.test_compare_methods import upload_files
from umo_app.launch import page_options
from umo_app.layout import build_demo
from umo_app.outputs import COMPARE_TABLE_HEADERS
from umo_app.queue_limits import setup_queue

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def page_url(dlib_backend):
    # no generating model: the tab needs none, and the page says why Generate is unavailable
    demo = setup_queue(build_demo("no model loaded for this test", dlib_backend, device="cpu"))
    port = free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True, **page_options())
    yield f"http://127.0.0.1:{port}"
    demo.close()


@pytest.fixture(scope="module")
def uploads(photos, tmp_path_factory):
    """Four methods' pictures of Obama and Hopper (one keeps both, one swaps in Biden, one mirrors
    the people's places, one shows Obama twice) and a text file named like a picture."""
    folder = tmp_path_factory.mktemp("methods")
    pictures = {"umo_uno": output_with(photos, ["obama1", "hopper"], [0, 1]),
                "uno": compose([face_tile(photos, "obama2"), face_tile(photos, "biden")]),
                "omnigen2": output_with(photos, ["obama1", "hopper"], [1, 0]),
                "xverse": compose([face_tile(photos, "obama2"), face_tile(photos, "obama3")])}
    return upload_files(folder, pictures)


def _compare_tab(context, url, width):
    page = context.new_page()
    page.set_viewport_size({"width": width, "height": 900 if width > 600 else 844})
    page.goto(url)
    page.wait_for_selector("#umo-generate-btn", timeout=TIMEOUT_MS)
    tab = page.get_by_role("tab", name="Compare methods")
    if tab.count():
        tab.click()
    else:  # a phone: the tabs that do not fit wait under Gradio's "More tabs" menu
        page.get_by_role("button", name="More tabs").click()
        page.locator(".overflow-dropdown button", has_text="Compare methods").click()
    page.wait_for_selector("#umo-compare-btn", timeout=TIMEOUT_MS)
    return page


def _name(page, slot):
    return page.input_value(f"#umo-cmp-image-{slot}-name input, #umo-cmp-image-{slot}-name textarea")


@pytest.mark.parametrize("width", [1280, 390])
def test_compare_tab_ranks_methods_at_1280_and_390(page_url, photos, uploads, output_dir, width):
    with chromium({"width": width, "height": 900}) as context:
        page = _compare_tab(context, page_url, width)
        _upload(page, "umo-cmp-ref-1", photos["obama1"])
        _upload(page, "umo-cmp-ref-2", photos["hopper"])
        assert "One face found" in _wait_for_face_preview(page, "umo-cmp", 2)

        # one picture alone: refused in words under the button
        _upload(page, "umo-cmp-image-1", uploads["uno"])
        page.wait_for_function("document.querySelector('#umo-cmp-image-1-name input, #umo-cmp-image-1-name textarea')"
                               ".value === 'uno'", timeout=TIMEOUT_MS)
        page.click("#umo-compare-btn")
        page.wait_for_selector("#umo-cmp-status .umo-refusal", timeout=TIMEOUT_MS)
        assert "Add at least 2 images to compare" in page.inner_text("#umo-cmp-status")

        for slot, stem in enumerate(("umo_uno", "omnigen2", "xverse", "notes"), start=2):
            _upload(page, f"umo-cmp-image-{slot}", uploads[stem])
            page.wait_for_function(f"document.querySelector('#umo-cmp-image-{slot}-name input, "
                                   f"#umo-cmp-image-{slot}-name textarea').value === '{stem}'", timeout=TIMEOUT_MS)
        # a name is the visitor's to change
        page.fill("#umo-cmp-image-2-name input, #umo-cmp-image-2-name textarea", "UMO-UNO")
        page.click("#umo-compare-btn")
        page.wait_for_selector("#umo-cmp-sheet img", timeout=TIMEOUT_MS)
        assert page.inner_text("#umo-cmp-status").strip() == ""  # the earlier refusal is gone
        table = page.inner_text("#umo-cmp-table")
        # both people kept (in their places, then swapped), Biden in Hopper's place, Obama twice, and
        # the file that is not a picture last
        order = ["UMO-UNO", "omnigen2", "uno", "xverse", "notes"]
        assert [table.index(name) for name in order] == sorted(table.index(name) for name in order), table
        assert "not an image file" in table and table.count("2/2") == 2 and "1/2" in table, table
        _table_fits(page, "umo-cmp-table", COMPARE_TABLE_HEADERS)
        assert page.locator("#umo-cmp-gallery img").count() >= 8  # four pictures and four heatmaps
        downloads = "".join(page.inner_text("#umo-cmp-downloads").split())  # Gradio breaks names at the dot
        assert all(name in downloads for name in ("methods_comparison.png", "methods_report.json",
                                                  "methods_scores.csv")), downloads
        assert page.evaluate("document.documentElement.scrollWidth") <= width
        page.screenshot(path=str(output_dir / f"browser_compare_methods_{width}.png"), full_page=True)
        page.close()
