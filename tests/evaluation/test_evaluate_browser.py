"""The evaluation report in a real browser (Debian's chromium driven by Playwright), opened from
disk with no server: its pictures load from relative links, and clicking a header sorts the rows."""

import json

import pytest

from tests.browser import chromium
from tests.evaluation.fixtures import jsonl_set
from tests.evaluation.test_evaluate import _run
from umo_pipeline.evaluate.readers import read_prompt_set

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def browser():
    with chromium({"width": 1400, "height": 900}) as context:
        yield context


def test_report_opens_offline_and_sorts_by_delta(browser, tmp_path, photos, output_dir):
    from umo_pipeline.faces import get_face_backend

    cases = read_prompt_set(jsonl_set(tmp_path / "set", photos))
    out = tmp_path / "out"
    _run(cases, out, get_face_backend("dlib"), seeds=(0,))
    records = [json.loads(line) for line in (out / "records.jsonl").read_text().splitlines()]
    deltas = {}
    for r in records:
        deltas.setdefault(r["case"], {})[r["variant"]] = r["mean_id_sim"]
    expected = sorted(((v["umo"] - v["base"]), case) for case, v in deltas.items())

    page = browser.new_page()
    page.goto((out / "report.html").as_uri())
    page.wait_for_selector("#cases tbody tr")
    assert page.title() == "UMO evaluation report"
    images = page.eval_on_selector_all("img", "imgs => imgs.map(i => [i.getAttribute('src'), i.complete && i.naturalWidth > 0])")
    assert len(images) >= 2 + 3 * 2 + 6 and all(ok for _, ok in images), images

    def column(title):
        index = page.eval_on_selector_all("#cases thead th", f"ths => ths.findIndex(t => t.textContent === {title!r})")
        return page.eval_on_selector_all(
            "#cases tbody tr", f"rows => rows.map(r => r.cells[{index}].getAttribute('data-value'))")

    page.click("#cases th:text-is('Δ ID-Sim')")
    shown = [float(v) for v in column("Δ ID-Sim")]
    assert shown == sorted(shown, reverse=True)
    assert shown == pytest.approx([d for d, _ in reversed(expected)], abs=1e-4)
    assert page.get_attribute("#cases th:text-is('Δ ID-Sim')", "aria-sort") == "descending"
    first_prompt = page.inner_text("#cases tbody tr:first-child .muted")
    assert first_prompt.startswith(expected[-1][1])
    page.screenshot(path=str(output_dir / "evaluate_report_sorted.png"), full_page=True)

    page.click("#cases th:text-is('Δ ID-Sim')")
    assert [float(v) for v in column("Δ ID-Sim")] == sorted(shown)
    page.click("#cases th:text-is('Seed')")
    page.click("#cases th:text-is('Prompt')")
    prompts = column("Prompt")
    assert prompts == sorted(prompts, reverse=True)
    page.close()


def test_report_sorts_by_ground_truth_columns(browser, tmp_path, photos, output_dir):
    from tests.evaluation.fixtures import multiid_parquet_set
    from tests.evaluation.test_multiid_bench import _run as run_multiid
    from umo_pipeline.faces import get_face_backend

    cases = read_prompt_set(multiid_parquet_set(tmp_path / "set", photos))[:2]
    out = tmp_path / "out"
    run_multiid(cases, out, get_face_backend("dlib"), "multiid-bench", seeds=(0, 1))
    records = [json.loads(line) for line in (out / "records.jsonl").read_text().splitlines()]
    umo_cp = sorted(r["mean_copy_paste"] for r in records if r["variant"] == "umo")

    page = browser.new_page()
    page.goto((out / "report.html").as_uri())
    page.wait_for_selector("#cases tbody tr")
    # The ground-truth thumbnails load like the references.
    sources = page.eval_on_selector_all("img[alt='ground truth']", "imgs => imgs.map(i => i.complete && i.naturalWidth > 0)")
    assert len(sources) == 4 and all(sources)
    title = "composing-test-double UMO CP"
    index = page.eval_on_selector_all("#cases thead th", f"ths => ths.findIndex(t => t.textContent === {title!r})")
    assert index > 0
    page.click(f"#cases th:text-is('{title}')")
    shown = page.eval_on_selector_all("#cases tbody tr", f"rows => rows.map(r => parseFloat(r.cells[{index}].getAttribute('data-value')))")
    assert shown == pytest.approx(list(reversed(umo_cp)), abs=1e-4)
    page.click(f"#cases th:text-is('{title}')")
    assert page.get_attribute(f"#cases th:text-is('{title}')", "aria-sort") == "ascending"
    page.screenshot(path=str(output_dir / "evaluate_report_ground_truth.png"), full_page=True)
    page.close()
