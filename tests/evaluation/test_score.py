"""`score` on real photos: method A's images keep both people of each case (the right faces composed
side by side), method B's replace the second person with Biden. A ranks above B under every rule
set, with B - A negative where B lost the person; a missing image is printed and counted; every
folder layout is read; bad input is one line and status 2."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest

from tests.evaluation.fixtures import small_copy
from tests.library.test_analysis import OUTPUT_PHOTO, compose, face_tile, output_with
from umo_pipeline.evaluate.methods import read_method
from umo_pipeline.evaluate.readers import read_prompt_set
from umo_pipeline.evaluate.score import score
from umo_pipeline.evaluate.summary import csv_column

#: case id -> its two references (photos); none of them is Biden, who stands in for a lost person
CASES = {"pair-1": ("obama1", "hopper"), "pair-2": ("hopper", "astronaut"), "pair-3": ("astronaut", "obama1")}


def write_set(folder: Path, photos) -> Path:
    lines = []
    for case, names in CASES.items():
        for name in names:
            small_copy(photos[name], folder / "refs" / f"{name}.jpg", side=320)
        lines.append(json.dumps({"id": case, "prompt": f"Two people ({case})", "references":
                                 [f"refs/{n}.jpg" for n in names], "category": "pairs"}))
    path = folder / "prompts.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


def kept_both(photos, case: str):
    """Both people, each from another photo (or mirrored): what a method that keeps identities makes."""
    return output_with(photos, list(CASES[case]), [0, 1])


def lost_second(photos, case: str):
    """The first person as in kept_both, Biden where the second should be."""
    first = CASES[case][0]
    return compose([face_tile(photos, OUTPUT_PHOTO[first], mirror=True), face_tile(photos, "biden")])


@pytest.fixture(scope="module")
def bench(tmp_path_factory, photos):
    """The prompt set and the two methods' folders: A flat with a seed suffix, B flat without."""
    root = tmp_path_factory.mktemp("score")
    prompts = write_set(root / "set", photos)
    (root / "A").mkdir()
    (root / "B").mkdir()
    for case in CASES:
        kept_both(photos, case).save(root / "A" / f"{case}__s0.png")
        lost_second(photos, case).save(root / "B" / f"{case}.jpg", quality=95)
    return root, prompts


def run_score(prompts, methods, out, backend, rules="app", **options):
    return score(read_prompt_set(prompts), [read_method(name, folder) for name, folder in methods], backend,
                 seeds=[0], out=out, metrics=rules, **options)


def records_of(out: Path) -> dict:
    return {(r["case"], r["variant"]): r for r in map(json.loads, (out / "records.jsonl").read_text().splitlines())}


@pytest.mark.parametrize("rules", ["app", "umo-eval", "multiid-bench"])
def test_the_method_that_keeps_both_people_ranks_first_under_every_rule_set(bench, tmp_path, dlib_backend, rules):
    root, prompts = bench
    out = tmp_path / "out"
    assert run_score(prompts, [("A", root / "A"), ("B", root / "B")], out, dlib_backend, rules) == 0
    records = records_of(out)
    for case in CASES:
        a, b = records[(case, "A")], records[(case, "B")]
        assert a["faces"] == b["faces"] == 2
        # The first person is the same picture in both: the same score. The second is lost in B.
        assert b["id_sim"][0] == pytest.approx(a["id_sim"][0], abs=1.0), case
        assert b["id_sim"][1] < a["id_sim"][1] - 5, case
        assert b["mean_id_sim"] - a["mean_id_sim"] < 0
    rows = list(csv.DictReader((out / "summary.csv").open()))
    column = csv_column("id_sim", rules)
    overall = {r["variant"]: r for r in rows if r["scope"] == "all"}
    assert set(overall) == {"A", "B", "B - A"}
    assert float(overall["A"][column]) > float(overall["B"][column])
    assert float(overall["B - A"][column]) == pytest.approx(
        float(overall["B"][column]) - float(overall["A"][column]), abs=1e-3)
    assert overall["A"]["items"] == overall["B"]["items"] == "3" and overall["B"]["missing"] == "0"
    assert {(r["scope"], r["group"]) for r in rows} == {(
        "all", overall["A"]["group"]), ("category", "pairs"), ("identities", "2")}
    markdown = (out / "summary.md").read_text()
    assert "# Method comparison summary" in markdown and "| B - A |" in markdown and "baseline A" in markdown
    page = (out / "report.html").read_text()
    # Each case's row holds both methods' images side by side, linked from their own folders.
    for case in CASES:
        assert f'href="../../{root.name}/A/{case}__s0.png"' in page  # links are relative to --out
        assert f"{case}__s0__A.faces.png" in page and f"{case}__s0__B.faces.png" in page
    assert ">Δ ID-Sim (B - A)</th>" in page or ">Δ ID-Sim [Sim(Ref)] (B - A)</th>" in page
    assert (out / "plots" / "id_sim_vs_baseline.png").is_file()
    if rules == "multiid-bench":
        assert "all subsets pooled (not comparable with MultiID-Bench" in overall["A"]["group"]
        assert "Sim(Ref) (`sim_ref` in its eval.py)" in page and "`copy_geo`" in markdown


def test_image_links_in_the_report_open_the_methods_files(bench, tmp_path, dlib_backend):
    root, prompts = bench
    out = tmp_path / "out"
    run_score(prompts, [("A", root / "A"), ("B", root / "B")], out, dlib_backend, baseline="B")
    record = records_of(out)[("pair-1", "A")]
    assert (out / record["image"]).resolve() == (root / "A" / "pair-1__s0.png").resolve()
    rows = {r["variant"]: r for r in csv.DictReader((out / "summary.csv").open()) if r["scope"] == "all"}
    assert set(rows) == {"A", "B", "A - B"} and float(rows["A - B"]["id_sim"]) > 0


def test_a_missing_image_is_printed_and_counted(bench, tmp_path, dlib_backend, capsys):
    root, prompts = bench
    partial = tmp_path / "B"
    shutil.copytree(root / "B", partial)
    (partial / "pair-2.jpg").unlink()
    out = tmp_path / "out"
    assert run_score(prompts, [("A", root / "A"), ("B", partial)], out, dlib_backend) == 0
    printed = capsys.readouterr().out
    assert f"missing: B: case pair-2 seed 0: no pair-2__s0.<ext> or pair-2.<ext>" in printed
    assert "B: 2 of 3 images found" in printed and "A: 3 of 3 images found" in printed
    overall = {r["variant"]: r for r in csv.DictReader((out / "summary.csv").open()) if r["scope"] == "all"}
    assert (overall["B"]["items"], overall["B"]["missing"]) == ("2", "1")
    assert (overall["A"]["items"], overall["A"]["missing"]) == ("3", "0")
    assert records_of(out)[("pair-2", "B")]["missing"].startswith("no pair-2__s0")
    assert "1 missing (no image found)" in (out / "summary.md").read_text()
    assert ">missing<" in (out / "report.html").read_text()


def test_every_layout_is_read(bench, tmp_path, dlib_backend, photos):
    from tests.composing_customizer import ComposingCustomizer
    from umo_pipeline.customizers.base import GenerationRequest
    from umo_pipeline.evaluate.runner import evaluate

    root, prompts = bench
    cases = read_prompt_set(prompts)
    # this project's evaluate run: "umo" paints both references, "base" the first one twice
    run = tmp_path / "run"
    evaluate(cases, ComposingCustomizer(), dlib_backend, GenerationRequest(prompt="", width=512, height=256, steps=1),
             seeds=[0, 1], variants=["base", "umo"], out=run)
    # MultiID-Bench eval.py's layout: <id>/out.jpg beside ori.jpg and the references
    eval_root = tmp_path / "eval"
    for case in CASES:
        (eval_root / case).mkdir(parents=True)
        kept_both(photos, case).save(eval_root / case / "out.jpg", quality=95)
        (eval_root / case / "meta.json").write_text(json.dumps({"prompt": case}))

    seeded = read_method("A", root / "A")
    assert seeded.layout == "flat" and seeded.image_for(cases[0], 0, 0).name == "pair-1__s0.png"
    assert seeded.image_for(cases[0], 1, 0) is None  # no pair-1__s1 image
    plain = read_method("B", root / "B")
    assert plain.layout == "flat" and plain.image_for(cases[0], 0, 0).name == "pair-1.jpg"
    assert plain.image_for(cases[0], 1, 0) is None  # an unseeded image stands for the first seed only
    evaled = read_method("E", eval_root)
    assert evaled.layout == "eval" and evaled.image_for(cases[1], 0, 0) == eval_root.resolve() / "pair-2" / "out.jpg"
    umo, base = read_method("U", run), read_method("V", run, "base")
    assert (umo.layout, umo.variant, base.variant) == ("run", "umo", "base")
    assert umo.image_for(cases[2], 1, 0) == run.resolve() / "items" / "pair-3__s1__umo.png"

    out = tmp_path / "out"
    assert score(cases, [seeded, plain, evaled, umo, base], dlib_backend, seeds=[0], out=out) == 0
    records = records_of(out)
    assert {variant for _, variant in records} == {"A", "B", "E", "U", "V"}
    assert not any(r["missing"] for r in records.values())
    # The run's umo images keep both people, its base images paint the first person twice.
    for case in CASES:
        assert records[(case, "U")]["id_sim"][1] > records[(case, "V")]["id_sim"][1] + 5
        assert records[(case, "E")]["id_sim"] == pytest.approx(records[(case, "A")]["id_sim"], abs=3)
    settings = json.loads((out / "run.json").read_text())
    assert settings == {"command": "score", "backend": "dlib", "metrics": "app"}


def test_eval_layout_finds_multiid_bench_cases_by_item_name(tmp_path, photos):
    from tests.evaluation.fixtures import multiid_parquet_set

    cases = read_prompt_set(multiid_parquet_set(tmp_path / "set", photos))
    for where in ("p1-0001", "0002", "p3/0003"):
        (tmp_path / "eval" / where).mkdir(parents=True)
        kept_both(photos, "pair-1").save(tmp_path / "eval" / where / "out.jpg")
    method = read_method("W", tmp_path / "eval")
    assert [method.image_for(case, 0, 0).parent.name for case in cases] == ["p1-0001", "0002", "0003"]
    assert method.unmatched(cases) == []


def test_rerun_scores_nothing_again_and_a_replaced_image_is_rescored(bench, tmp_path, dlib_backend, photos, capsys):
    root, prompts = bench
    folder = tmp_path / "B"
    shutil.copytree(root / "B", folder)
    out = tmp_path / "out"
    run_score(prompts, [("A", root / "A"), ("B", folder)], out, dlib_backend)
    capsys.readouterr()
    kept_both(photos, "pair-1").save(folder / "pair-1.jpg", quality=95)  # B fixed one image
    run_score(prompts, [("A", root / "A"), ("B", folder)], out, dlib_backend)
    assert "process 0: 1 scored, 5 already complete" in capsys.readouterr().err
    fixed = records_of(out)[("pair-1", "B")]
    assert fixed["id_sim"][1] == pytest.approx(records_of(out)[("pair-1", "A")]["id_sim"][1], abs=3)


@pytest.mark.parametrize("arguments, message", [
    (["--method", "A=NOWHERE"], "--method A=NOWHERE: no such folder"),
    (["--method", "A={A}", "--method", "A={B}"], "--method A is given twice"),
    (["--method", "A={A}", "--method", "B={A}"], "--method B and --method A read the same images"),
    (["--method", "A={A}", "--baseline", "C"], "--baseline C: not one of the methods (A)"),
    (["--method", "A={empty}"], "no images in a layout score reads"),
    (["--method", "A={A}:umo"], "a variant is chosen only in an evaluate run folder"),
    (["--method", "two words={A}"], "a method name is letters, digits and . _ + -"),
])
def test_bad_input_is_one_line_and_status_2(bench, tmp_path, capsys, arguments, message):
    from umo_pipeline.cli import main

    root, prompts = bench
    (tmp_path / "empty").mkdir()
    values = {"A": root / "A", "B": root / "B", "empty": tmp_path / "empty"}
    argv = ["score", str(prompts), "--backend", "dlib", "--out", str(tmp_path / "out")]
    argv += [a.format(**values) if a != "A=NOWHERE" else str(a) for a in arguments]
    assert main(argv) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("error: ") and message in error and "\n" not in error
