"""`evaluate`: prompt-set readers on fixtures in each benchmark's layout, umo-eval's rules against
the released scripts' formulas, and a whole run on real faces (the composing test double pastes
the references into its output, so ID-Sim and the UMO - base gain are known to be large)."""

import csv
import json

import numpy as np
import pytest
from PIL import Image

from tests.composing_customizer import ComposingCustomizer
from tests.evaluation.fixtures import XVERSE_LINES, jsonl_set, omnicontext_rows, omnicontext_set, xversebench_set
from umo_pipeline.errors import InputError
from umo_pipeline.evaluate import metrics
from umo_pipeline.evaluate.items import work_items
from umo_pipeline.evaluate.readers import read_prompt_set

# ---------------------------------------------------------------- readers


def test_jsonl_reader_parses_cases_with_paths_relative_to_the_file(tmp_path, photos):
    path = jsonl_set(tmp_path, photos)
    cases = read_prompt_set(path)
    assert [c.id for c in cases] == ["two-friends", "astronaut", "three"]
    assert cases[0].references == (tmp_path / "refs" / "obama1.jpg", tmp_path / "refs" / "hopper.jpg")
    assert [c.n_identities for c in cases] == [2, 1, 3]
    assert [c.category for c in cases] == ["two people", "portrait", "group"]
    assert cases[2].where == f"{path}:5"  # the comment and blank lines count
    items = work_items(cases, [0, 7], ["base", "umo"])
    assert len(items) == 12 and items[0].id == "two-friends__s0__base" and items[3].seed == 7


@pytest.mark.parametrize("line, expected", [
    ('{"prompt": "x", "references": ["refs/missing.jpg"]}', "reference image refs/missing.jpg not found"),
    ('{"prompt": "x", "references": ["refs/obama1.jpg"', "not valid JSON"),
    ('{"references": ["refs/obama1.jpg"]}', '"prompt" must be a non-empty text'),
    ('{"prompt": "x", "references": ["refs/obama1.jpg"], "identities": 3}', '"identities" must be a whole number from 1 to 1'),
    ('{"prompt": "x", "refs": ["refs/obama1.jpg"]}', "unknown field(s) refs"),
])
def test_jsonl_reader_names_the_file_and_line_of_a_bad_case(tmp_path, photos, line, expected):
    path = jsonl_set(tmp_path, photos)
    path.write_text(path.read_text() + line + "\n")
    with pytest.raises(InputError) as error:
        read_prompt_set(path)
    assert str(error.value).startswith(f"{path}:6: ") and expected in str(error.value)


def test_jsonl_reader_refuses_a_repeated_id(tmp_path, photos):
    path = jsonl_set(tmp_path, photos)
    path.write_text(path.read_text() + '{"id": "astronaut", "prompt": "x", "references": ["refs/hopper.jpg"]}\n')
    with pytest.raises(InputError, match=r":6: id 'astronaut' already used on line 3"):
        read_prompt_set(path)


def test_missing_prompt_set_is_named(tmp_path):
    with pytest.raises(InputError, match=f"{tmp_path / 'nope.jsonl'}: no such file or folder"):
        read_prompt_set(tmp_path / "nope.jsonl")


def test_xversebench_reader_scores_only_human_references(tmp_path, photos):
    path = xversebench_set(tmp_path, photos)
    cases = read_prompt_set(path)
    # Case 2 (motorcycle + ball) has no person, so no identity to score: left out.
    assert [c.id for c in cases] == ["XVerseBench_multi-000", "XVerseBench_multi-001", "XVerseBench_multi-003"]
    first = cases[0]
    assert first.prompt == "A man is riding a motorcycle."
    assert first.names == ("human_00_man.jpg", "object_00_motorcycle.jpg")
    assert first.identities == (0,) and first.n_identities == 1 and first.category == "human+object"
    assert first.references[1] == tmp_path / "assets/XVerseBench/object/00_motorcycle.jpg"
    assert [c.n_identities for c in cases] == [1, 2, 3]
    assert [c.where for c in cases] == [f"{path}:{XVERSE_LINES[i]}" for i in (0, 1, 3)]


def test_xversebench_reader_names_the_line_of_a_missing_image_or_broken_json(tmp_path, photos):
    path = xversebench_set(tmp_path, photos)
    (tmp_path / "assets/XVerseBench/human/01_woman.jpg").unlink()
    with pytest.raises(InputError, match=rf"{path}:{XVERSE_LINES[1]}: reference image assets/XVerseBench/human/01_woman.jpg not found"):
        read_prompt_set(path)
    text = path.read_text().splitlines()
    text[80] = text[80].rstrip(",")  # drop a comma inside case 3
    path.write_text("\n".join(text))
    with pytest.raises(InputError, match=rf"{path}:8\d: not valid JSON"):
        read_prompt_set(path)


def test_omnicontext_reader_reads_the_parquet_layout(tmp_path, photos):
    folder = omnicontext_set(tmp_path, photos)
    cases = read_prompt_set(folder)
    assert [c.id for c in cases] == ["single_character-sc_0001", "multi_character-mc_0001", "scene_character-scn_0001"]
    assert [c.category for c in cases] == ["single_character", "multi_character", "scene_character"]
    assert [c.n_identities for c in cases] == [1, 2, 1]
    assert all(isinstance(r, bytes) for c in cases for r in c.references)
    assert Image.open(__import__("io").BytesIO(cases[1].references[1])).size[0] > 0
    assert cases[1].where.endswith("train-00000-of-00001.parquet, row 2")


def test_omnicontext_reader_names_a_bad_file_and_row(tmp_path, photos):
    rows = omnicontext_rows(photos)
    rows[1]["instruction"] = " "
    folder = omnicontext_set(tmp_path, photos, rows)
    with pytest.raises(InputError, match=r"train-00000-of-00001.parquet, row 2: instruction is empty"):
        read_prompt_set(folder)
    (folder / "data" / "train-00000-of-00001.parquet").write_bytes(b"not parquet")
    with pytest.raises(InputError, match=r"train-00000-of-00001.parquet: not a readable parquet file"):
        read_prompt_set(folder)


# ---------------------------------------------------------------- umo-eval rules


def _xverse_script(cosines_by_face: list[float]) -> tuple[float, float | None]:
    """XVerse's idip_face_score.py:114-117 and UMO's id_conf_xversebench.py:116-120, on the
    scores FaceID returns (cosine x 100)."""
    scores = [c * 100 for c in cosines_by_face]
    sim = max(scores) if len(scores) > 0 else 0
    conf = None
    if len(scores) > 1:
        top2 = sorted(scores, reverse=True)[:2]
        conf = (min(1, (top2[0] - top2[1]) / top2[0]) if top2[0] > 0 else 0) * 100
    return sim, conf


def _omnicontext_script(cosines_by_face: list[float]) -> tuple[float, float | None]:
    """UMO's id_omnicontext.py:106-115 on FaceID's scores (cosine x 100)."""
    scores = sorted([c * 100 for c in cosines_by_face], reverse=True)
    if not scores:
        return 0, None
    conf = None
    if len(scores) > 1:
        conf = (min(1, (scores[0] - scores[1]) / scores[0]) if scores[0] > 0 else 0) * 10.
    return scores[0] / 10., conf


@pytest.mark.parametrize("layout, script", [("xversebench", _xverse_script), ("omnicontext", _omnicontext_script),
                                               ("jsonl", _xverse_script)])
def test_umo_eval_equals_the_scripts_formulas(layout, script):
    rng = np.random.default_rng(3)
    matrices = [np.array([[0.5, 0.2, -0.1], [-0.3, -0.4, -0.2]]), np.array([[0.7]]), np.array([[0.9, 0.9]]),
                np.zeros((2, 0))] + [rng.uniform(-0.5, 1.0, size=(rng.integers(1, 4), rng.integers(1, 5))) for _ in range(20)]
    for S in matrices:
        sims, confs = metrics.umo_eval_scores(S, layout)
        for row, sim, conf in zip(S, sims, confs):
            expected_sim, expected_conf = script(list(row))
            assert sim == pytest.approx(expected_sim)
            assert (conf is None and expected_conf is None) or conf == pytest.approx(expected_conf)


def test_umo_eval_differs_from_the_app_where_the_scripts_do():
    S = np.array([[0.5, 0.2, -0.1], [-0.3, -0.4, -0.2]])
    sims, confs = metrics.umo_eval_scores(S, "xversebench")
    assert sims == pytest.approx([50.0, -20.0])  # raw cosine, not floored at 0
    assert confs == pytest.approx([60.0, 0.0])   # s1 <= 0 gives 0, not undefined
    from umo_pipeline import matching
    assert matching.id_sim(S)[1] == 0.0 and matching.id_conf(S)[1] is None
    # A reference without a face: XVerse's FaceID compares it as 0 with every face; OmniContext drops it.
    faceless = np.array([[np.nan, np.nan], [0.8, 0.3]])
    assert metrics.umo_eval_scores(faceless, "xversebench") == ([0.0, 80.0], [0.0, pytest.approx(62.5)])
    assert metrics.umo_eval_scores(faceless, "omnicontext") == ([None, 8.0], [None, pytest.approx(6.25)])
    # No face in the output: ID-Sim 0, no ID-Conf; a faceless reference is still dropped on OmniContext.
    assert metrics.umo_eval_scores(np.zeros((2, 0)), "omnicontext", [True, False]) == ([0.0, None], [None, None])


def test_umo_eval_reference_face_rules():
    from umo_pipeline.faces.base import Face

    def face(box, score):
        return Face(bbox=box, landmarks=np.zeros((5, 2)), det_score=score, embedding=np.ones(4, np.float32),
                    crop=Image.new("RGB", (4, 4)))

    big_unsure, small_sure = face((0, 0, 100, 100), 0.6), face((0, 0, 40, 40), 0.99)
    assert metrics.reference_face([big_unsure, small_sure], "xversebench") is small_sure  # facer's first = most confident
    assert metrics.reference_face([small_sure, big_unsure], "omnicontext") is big_unsure  # largest box
    assert metrics.reference_face([], "omnicontext") is None


# ---------------------------------------------------------------- a whole run on real faces


def _run(cases, out, dlib, metrics_mode="app", seeds=(0, 1)):
    from umo_pipeline.customizers.base import GenerationRequest
    from umo_pipeline.evaluate.runner import evaluate

    customizer = ComposingCustomizer()
    request = GenerationRequest(prompt="", width=512, height=256, steps=1)
    status = evaluate(cases, customizer, dlib, request, seeds=list(seeds), variants=["base", "umo"], out=out,
                      metrics=metrics_mode)
    return status, customizer


def test_run_on_real_faces_writes_records_summary_plots_and_report(tmp_path, photos, dlib_backend, capsys):
    cases = read_prompt_set(jsonl_set(tmp_path / "set", photos))[:2]
    out = tmp_path / "out"
    status, customizer = _run(cases, out, dlib_backend)
    assert status == 0 and len(customizer.calls) == 8
    assert f"report: {(out / 'report.html').resolve()}" in capsys.readouterr().out

    records = [json.loads(line) for line in (out / "records.jsonl").read_text().splitlines()]
    assert [r["item"] for r in records][:4] == ["two-friends__s0__base", "two-friends__s0__umo",
                                              "two-friends__s1__base", "two-friends__s1__umo"]
    by_id = {r["item"]: r for r in records}
    umo, base = by_id["two-friends__s0__umo"], by_id["two-friends__s0__base"]
    # The UMO tile holds both people; the base tile repeats the first person twice.
    assert umo["faces"] == 2 and min(umo["id_sim"]) > 90
    assert base["id_sim"][0] > 90 and base["id_sim"][1] < umo["id_sim"][1]
    png = Image.open(out / umo["image"])
    assert png.text["prompt"] == "Two friends having coffee at a cafe terrace" and png.text["seed"] == "0"
    assert json.loads(png.text["settings"])["backend"] == "dlib" and png.text["variant"] == "umo"

    rows = list(csv.DictReader((out / "summary.csv").open()))
    overall = {r["variant"]: r for r in rows if r["scope"] == "all"}
    pooled = np.mean([v for r in records if r["variant"] == "umo" for v in r["id_sim"]])
    assert float(overall["umo"]["id_sim"]) == pytest.approx(pooled, abs=1e-3)
    assert float(overall["umo-base"]["id_sim"]) == pytest.approx(
        float(overall["umo"]["id_sim"]) - float(overall["base"]["id_sim"]), abs=1e-3)
    assert float(overall["umo-base"]["id_sim"]) > 5
    assert {r["group"] for r in rows if r["scope"] == "identities"} == {"1", "2"}
    markdown = (out / "summary.md").read_text()
    assert "| Method | Items | ID-Sim | ID-Conf |" in markdown and "| UMO - base | 4 |" in markdown
    assert "## By number of identities" in markdown and "| two people | 2 |" in markdown
    for plot in ("id_sim_base_vs_umo.png", "deltas_by_identities.png"):
        assert Image.open(out / "plots" / plot).size[0] > 300
    page = (out / "report.html").read_text()
    assert "http://" not in page and "https://" not in page  # nothing to fetch: works offline
    assert page.count("<tr><td class=\"\" data-value=") == 4  # one row per prompt and seed
    assert "items/two-friends__s0__umo.faces.png" in page and "references/two-friends-1.jpg" in page


def test_umo_eval_metrics_on_an_xversebench_run(tmp_path, photos, dlib_backend):
    cases = read_prompt_set(xversebench_set(tmp_path / "set", photos))[:2]
    out = tmp_path / "out"
    _run(cases, out, dlib_backend, metrics_mode="umo-eval", seeds=(0,))
    records = {r["item"]: r for r in map(json.loads, (out / "records.jsonl").read_text().splitlines())}
    first = records["XVerseBench_multi-000__s0__umo"]
    # Only the person is scored; the motorcycle is generated but is no identity.
    assert first["identities"] == ["human_00_man.jpg"] and len(first["id_sim"]) == 1
    # Raw cosine x 100 of the face found: with dlib's compressed scale above 90 for the same photo.
    assert first["id_sim"][0] > 90 and first["id_conf"] == [None]
    pair = records["XVerseBench_multi-001__s0__umo"]
    assert len(pair["id_sim"]) == 2 and all(c is not None and c > 0 for c in pair["id_conf"])
    assert json.loads((out / "run.json").read_text())["metrics"] == "umo-eval"


def test_rerun_with_other_settings_is_refused(tmp_path, photos, dlib_backend):
    cases = read_prompt_set(jsonl_set(tmp_path / "set", photos))[1:2]
    out = tmp_path / "out"
    _run(cases, out, dlib_backend, seeds=(0,))
    with pytest.raises(InputError, match="holds results made with other settings \\(metrics\\)"):
        _run(cases, out, dlib_backend, metrics_mode="umo-eval", seeds=(0,))
