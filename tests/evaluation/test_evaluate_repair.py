"""`evaluate --variants umo,umo+repair` on real faces: the repaired variant is the UMO image of the
same case and seed after `workflow.repair` with its defaults. The composing test double paints the
references into its output, and for `mixing_seeds` paints the first reference into every tile (a wrong
face where the second person should be); its masked re-generation paints the given reference's face,
so the repair must raise the second reference's ID-Sim on those seeds and change nothing elsewhere.

A case of six people for a model that takes four: its images are generated from the first four and
scored against all six; the double paints two strangers (cut from the Solvay photo) where the other
two stand, so the repaired variant (generation's "then repair faces that are not matched") must
place them."""

import csv
import json

import numpy as np
import pytest
from PIL import Image

from tests.composing_customizer import ComposingCustomizer
from tests.evaluation.fixtures import jsonl_set, small_copy
from umo_pipeline.customizers.base import GenerationRequest
from umo_pipeline.errors import InputError
from umo_pipeline.evaluate.readers import read_prompt_set
from umo_pipeline.evaluate.runner import evaluate
from umo_pipeline.images import load_image

#: seed 1's UMO image shows the first person twice: Reference 2's face is wrong
WRONG_FACE_SEED = 1
REQUEST = GenerationRequest(prompt="", width=512, height=256, steps=1)


@pytest.fixture
def two_friends(tmp_path, photos):
    return read_prompt_set(jsonl_set(tmp_path / "set", photos))[:1]


def _run(cases, out, dlib, variants, seeds=(0, WRONG_FACE_SEED)):
    customizer = ComposingCustomizer(mixing_seeds=[WRONG_FACE_SEED])
    status = evaluate(cases, customizer, dlib, REQUEST, seeds=list(seeds), variants=list(variants), out=out)
    assert status == 0
    return customizer


def _records(out) -> dict[str, dict]:
    return {r["item"]: r for r in map(json.loads, (out / "records.jsonl").read_text().splitlines())}


def test_repaired_variant_raises_the_wrong_face_and_keeps_the_right_ones(two_friends, tmp_path, dlib_backend, capsys):
    out = tmp_path / "out"
    customizer = _run(two_friends, out, dlib_backend, ["umo", "umo+repair"])
    # every UMO image generated once: the repair items took theirs from the umo items' files
    assert [call for call in customizer.calls if call != ("umo", 1)] == [("umo", 2)] * 2
    # only seed 1 had references that were not matched; each face repainted from its own reference alone
    assert {seed for seed, _, _ in customizer.inpaints} == {WRONG_FACE_SEED}
    second = load_image(two_friends[0].references[1])
    assert any(len(conditioning) == 1 and np.array_equal(np.asarray(conditioning[0]), np.asarray(second))
               for _, _, conditioning in customizer.inpaints)
    records = _records(out)
    assert list(records) == ["two-friends__s0__umo", "two-friends__s0__umo+repair", "two-friends__s1__umo",
                             "two-friends__s1__umo+repair"]

    wrong, repaired = records["two-friends__s1__umo"], records["two-friends__s1__umo+repair"]
    assert wrong["report"]["statuses"][1] != "matched"
    assert repaired["report"]["statuses"] == ["matched", "matched"]
    assert repaired["id_sim"][1] > wrong["id_sim"][1] + 5  # x100
    assert repaired["id_sim"][0] >= wrong["id_sim"][0] - 2  # the other reference keeps its face
    repair = repaired["repair"]
    assert repair["from_image"] == wrong["image"] and repair["skipped"] is None
    assert repair["kept"] == [f"{wrong['references'][1]}: seed {WRONG_FACE_SEED}"]
    assert repair["references"][1]["delta"] > 0.05 and repair["references"][1]["status_after"] == "matched"
    assert repair["matching_score"][1] > repair["matching_score"][0]  # the judge's whole-image number
    # the repaired PNG: the UMO image outside the repaint, the repair settings in its metadata
    png = Image.open(out / repaired["image"])
    assert png.text["variant"] == "umo+repair" and json.loads(png.text["repair"])["strength"] == 0.6
    before, after = np.asarray(Image.open(out / wrong["image"])), np.asarray(png.convert("RGB"))
    assert 0 < (before != after).any(axis=2).mean() < 0.3

    right, unchanged = records["two-friends__s0__umo"], records["two-friends__s0__umo+repair"]
    assert right["report"]["statuses"] == ["matched", "matched"]
    assert unchanged["repair"]["skipped"].startswith("Nothing to repair: every reference is matched already")
    assert unchanged["id_sim"] == right["id_sim"]
    pixels = [np.asarray(Image.open(out / record["image"])) for record in (unchanged, right)]
    assert np.array_equal(*pixels)

    # summary: its own row, and the difference from UMO (the pooled means' difference)
    rows = list(csv.DictReader((out / "summary.csv").open()))
    overall = {r["variant"]: r for r in rows if r["scope"] == "all"}
    assert set(overall) == {"umo", "umo+repair", "repair-umo"}
    gain = float(overall["repair-umo"]["id_sim"])
    assert gain == pytest.approx(float(overall["umo+repair"]["id_sim"]) - float(overall["umo"]["id_sim"]), abs=1e-3)
    assert gain > 1
    markdown = (out / "summary.md").read_text()
    model = customizer.name
    assert f"| {model} UMO + repair | 2 |" in markdown and "| UMO + repair - UMO | 2 | +" in markdown
    assert "Δ ID-Sim (repair)" in markdown
    assert "UMO + repair: a repair was kept in 1 of 2 images; in 0 the judge kept no repaint" in markdown
    assert "A repair is kept only if the repainted face stays its reference's in the assignment" in markdown
    assert "and 1 had nothing to repair" in markdown
    page = (out / "report.html").read_text()
    assert "Δ ID-Sim (repair)" in page and "items/two-friends__s1__umo+repair.faces.png" in page
    assert "Repair kept: " in page and "Repair skipped: Nothing to repair" in page
    assert capsys.readouterr().out.count("report: ") == 1


def test_adding_the_repair_to_a_finished_run_only_repairs_and_a_rerun_does_nothing(two_friends, tmp_path, dlib_backend,
                                                                                     capsys):
    out = tmp_path / "out"
    first = _run(two_friends, out, dlib_backend, ["umo"])
    assert len(first.calls) == 2 and first.inpaints == []
    umo_files = {p.name: p.stat().st_mtime_ns for p in (out / "items").glob("*__umo.*")}

    added = _run(two_friends, out, dlib_backend, ["umo", "umo+repair"])
    assert {seed for seed, _, _ in added.inpaints} == {WRONG_FACE_SEED}
    assert len(added.calls) == len(added.inpaints)  # the repaints; no UMO image generated again
    assert {p.name: p.stat().st_mtime_ns for p in (out / "items").glob("*__umo.*")} == umo_files
    assert "2 generated, 2 already complete" in capsys.readouterr().err
    records = _records(out)

    again = _run(two_friends, out, dlib_backend, ["umo", "umo+repair"])
    assert again.calls == [] and again.inpaints == []
    assert "0 generated, 4 already complete" in capsys.readouterr().err
    strip = lambda rs: {k: {f: v for f, v in r.items() if f != "timing"} for k, r in rs.items()}  # noqa: E731
    assert strip(_records(out)) == strip(records)


def test_without_the_umo_variant_the_repair_makes_its_own_umo_image(two_friends, tmp_path, dlib_backend):
    out = tmp_path / "out"
    customizer = _run(two_friends, out, dlib_backend, ["umo+repair"], seeds=(WRONG_FACE_SEED,))
    assert customizer.calls[0] == ("umo", 2)  # the UMO image, then the repaints
    assert len(customizer.calls) == 1 + len(customizer.inpaints) and customizer.inpaints
    record = _records(out)[f"two-friends__s{WRONG_FACE_SEED}__umo+repair"]
    assert record["repair"]["from"] == "umo" and record["repair"]["from_image"] is None
    assert record["report"]["statuses"] == ["matched", "matched"] and record["repair"]["kept"]
    assert sorted(p.name for p in (out / "items").iterdir()) == [
        f"two-friends__s{WRONG_FACE_SEED}__umo+repair{suffix}" for suffix in (".faces.png", ".json", ".png")]


def test_an_unknown_variant_is_refused_with_the_ones_there_are(two_friends, tmp_path, dlib_backend):
    with pytest.raises(InputError, match=r"cannot produce the variant\(s\) umo\+fix; it has umo, base, umo\+repair"):
        _run(two_friends, tmp_path / "out", dlib_backend, ["umo", "umo+fix"])


#: six people for the double's four references (UNO's limit)
GROUP = ["astronaut", "hopper", "obama1", "biden", "newton", "gauss"]


@pytest.fixture
def six_friends(tmp_path, photos):
    folder = tmp_path / "group"
    references = [small_copy(photos[name], folder / "refs" / f"{name}{photos[name].suffix}", side=384).name
                  for name in GROUP]
    line = {"id": "six-friends", "prompt": "Six friends at a picnic", "references": [f"refs/{r}" for r in references]}
    (folder / "prompts.jsonl").write_text(json.dumps(line) + "\n")
    return read_prompt_set(folder / "prompts.jsonl")


def test_a_case_past_the_models_limit_is_made_from_the_first_four_and_the_repair_places_the_others(
        six_friends, tmp_path, photos, dlib_backend):
    from tests.library.workflow.test_placement import STRANGERS, solvay_face

    out = tmp_path / "out"
    customizer = ComposingCustomizer(crowd=[solvay_face(photos, dlib_backend, index) for index in STRANGERS])
    request = GenerationRequest(prompt="", width=768, height=1152, steps=1)
    assert evaluate(six_friends, customizer, dlib_backend, request, seeds=[0], variants=["base", "umo", "umo+repair"],
                    out=out) == 0
    assert [call for call in customizer.calls if call[1] != 1] == [("base", 4), ("umo", 4)]
    names = list(six_friends[0].names)
    # each person the model did not see was repainted from their own photo alone
    group = [load_image(reference) for reference in six_friends[0].references]
    repainted = [conditioning for _, _, conditioning in customizer.inpaints]
    assert [len(conditioning) for conditioning in repainted] == [1, 1]
    for (conditioning,), person in zip(repainted, group[4:]):
        assert np.array_equal(np.asarray(conditioning), np.asarray(person))

    records = _records(out)
    base, umo, repaired = (records[f"six-friends__s0__{variant}"] for variant in ("base", "umo", "umo+repair"))
    for record in (base, umo, repaired):
        assert record["conditioned"] == names[:4] and record["references"] == names
        assert len(record["id_sim"]) == 6  # scored against all six
    matched = lambda record: record["report"]["statuses"].count("matched")  # noqa: E731
    assert umo["report"]["statuses"][:4] == ["matched"] * 4 and matched(umo) == 4
    assert matched(repaired) == 6 > matched(umo)
    assert repaired["repair"]["kept"] == [f"{names[4]}: seed 0", f"{names[5]}: seed 0"]
    assert repaired["id_sim"][4] > umo["id_sim"][4] and repaired["id_sim"][5] > umo["id_sim"][5]
