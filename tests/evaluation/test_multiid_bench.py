"""MultiID-Bench in `evaluate`: its reader on the dataset's parquet layout and on the folder its
hf2bench.py writes (both subset spellings), the copy-paste score against a direct computation of
WithAnyone's formula on hand-made embeddings, the ground-truth match on real photos (obama1-3 are
one person), and whole runs whose summary, plots and report gain GT-Sim and CP."""

import csv
import io
import json
import math

import numpy as np
import pytest
from PIL import Image, ImageOps

from tests.composing_customizer import ComposingCustomizer
from tests.evaluation.fixtures import (
    MULTIID_PROMPTS, multiid_folder_set, multiid_parquet_set, multiid_rows, scene, small_copy,
)
from umo_pipeline.errors import InputError
from umo_pipeline.evaluate import metrics
from umo_pipeline.evaluate.readers import guess_format, read_prompt_set
from umo_pipeline.ground_truth import compare_with_ground_truth, copy_paste_score, match_ground_truth

# ---------------------------------------------------------------- readers


def test_parquet_reader_reads_every_column_and_both_subset_spellings(tmp_path, photos):
    folder = multiid_parquet_set(tmp_path, photos)
    assert guess_format(folder) == "multiid-bench"
    assert guess_format(folder / "data" / "train-00000-of-00001.parquet") == "multiid-bench"
    cases = read_prompt_set(folder)
    # Row 2 spells its subset v202 (hf2bench before a358455). Cases are named by row number, as
    # hf2bench names its files; the dataset's ID is kept beside.
    assert [c.id for c in cases] == ["p1-0001", "p2-0002", "p3-0003"]
    assert [c.extra["ID"] for c in cases] == ["mid-7", "mid-14", None]
    assert [c.category for c in cases] == ["p1", "p2", "p3"]
    assert [c.n_identities for c in cases] == [1, 2, 3]
    assert [c.prompt for c in cases] == list(MULTIID_PROMPTS)
    assert [c.benchmark for c in cases] == ["multiid-bench"] * 3
    assert cases[1].names == ("0002_1", "0002_2") and cases[1].identities == (0, 1)
    assert cases[1].extra["subset"] == "v202" and cases[1].extra["bboxes"] == [[20, 30, 170, 220], [212, 30, 362, 220]]
    assert cases[2].where.endswith("train-00000-of-00001.parquet, row 3")
    # The images are the embedded bytes: references as given, the GT a photo of the same people.
    assert cases[0].references[0] == multiid_rows(photos)[0]["input_images"][0]["bytes"]
    assert Image.open(io.BytesIO(cases[2].ground_truth)).size == (3 * 192, 256)


@pytest.mark.parametrize("change, expected", [
    (lambda row: row.update(subset="p4"),
     "unknown subset 'p4'; MultiID-Bench has p1, p2, p3, v200_single, v202, v200_m"),
    (lambda row: row.update(GT={"bytes": None, "path": "x.jpg"}), "the GT image has no embedded bytes"),
    (lambda row: row.update(input_images=[]), "no input images"),
    (lambda row: row.update(bboxes="[[1, 2"), "bboxes is not valid JSON"),
    (lambda row: row.update(num_persons=0), "num_persons must be a whole number from 1 up"),
])
def test_parquet_reader_names_the_row_at_fault(tmp_path, photos, change, expected):
    rows = multiid_rows(photos)
    change(rows[1])
    folder = multiid_parquet_set(tmp_path, photos, rows)
    with pytest.raises(InputError) as error:
        read_prompt_set(folder, "multiid-bench")
    assert "train-00000-of-00001.parquet, row 2: " in str(error.value) and expected in str(error.value)


def test_parquet_reader_refuses_a_file_without_the_columns(tmp_path, photos):
    from tests.evaluation.fixtures import omnicontext_set

    folder = omnicontext_set(tmp_path, photos)
    assert guess_format(folder) == "omnicontext"  # no GT column: not MultiID-Bench
    with pytest.raises(InputError, match=r"missing column\(s\) GT, prompt, subset, num_persons; MultiID-Bench's files"):
        read_prompt_set(folder, "multiid-bench")


@pytest.mark.parametrize("spelling", ["new", "old"])
def test_folder_reader_reads_what_hf2bench_writes(tmp_path, photos, spelling):
    folder = multiid_folder_set(tmp_path / "bench", photos, spelling)
    parquet = read_prompt_set(multiid_parquet_set(tmp_path / "parquet", photos))
    assert guess_format(folder) == "multiid-bench"
    cases = read_prompt_set(folder)
    # The same ids, categories and people as the parquet layout of the same rows.
    assert [c.id for c in cases] == [c.id for c in parquet] == ["p1-0001", "p2-0002", "p3-0003"]
    assert [c.category for c in cases] == ["p1", "p2", "p3"] and [c.n_identities for c in cases] == [1, 2, 3]
    assert [c.prompt for c in cases] == list(MULTIID_PROMPTS)
    p1, p2, p3 = ("p1", "p2", "p3") if spelling == "new" else ("v200_single", "v202", "v200_m")
    assert cases[0].references == (folder / p1 / "untar" / "0001_1.jpg",)
    assert cases[1].ground_truth == folder / p2 / "untar" / "0002.jpg"
    assert cases[2].references[2] == folder / p3 / "refs" / "person_3" / "0003_3.jpg"
    assert cases[2].ground_truth == folder / p3 / "num_3" / "0003.jpg"
    assert cases[2].names == ("0003_1.jpg", "0003_2.jpg", "0003_3.jpg")
    assert cases[1].where == f"{folder / f'{p2}.json'}:2"
    # One index file on its own is a prompt set too.
    assert [c.id for c in read_prompt_set(folder / f"{p3}.json")] == ["p3-0003"]


def test_folder_reader_names_the_index_line_of_a_missing_image_or_field(tmp_path, photos):
    folder = multiid_folder_set(tmp_path, photos)
    (folder / "p3" / "refs" / "person_2" / "0003_2.jpg").unlink()
    with pytest.raises(InputError, match=rf"{folder / 'p3.json'}:2: image refs/person_2/0003_2.jpg not found"):
        read_prompt_set(folder)
    entries = json.loads((folder / "p2.json").read_text())
    del entries[0]["ori_img_path"]
    (folder / "p2.json").write_text(json.dumps(entries, indent=2))
    with pytest.raises(InputError, match=rf"{folder / 'p2.json'}:2: \"ori_img_path\" must name the ground-truth image"):
        read_prompt_set(folder)


# ---------------------------------------------------------------- the copy-paste score


def _theta(a, b):
    """WithAnyone's arcface_metric.py:34-46: the cosine of the unit vectors, clipped, then arccos."""
    a, b = [float(x) for x in np.ravel(a)], [float(y) for y in np.ravel(b)]
    cosine = sum(x * y for x, y in zip(a, b)) / math.sqrt(sum(x * x for x in a) * sum(y * y for y in b))
    return math.acos(min(1.0, max(-1.0, cosine)))


def _direct_copy_paste(g, t, r):
    if _theta(t, r) < 1e-6:
        return 0.0
    return (_theta(g, t) - _theta(g, r)) / _theta(t, r)


def test_copy_paste_equals_the_formula_on_hand_made_embeddings():
    rng = np.random.default_rng(7)
    for _ in range(200):
        g, t, r = rng.normal(size=(3, 8)) * rng.uniform(0.1, 5.0, size=(3, 1))
        score = copy_paste_score(g, t, r)
        assert score == pytest.approx(_direct_copy_paste(g, t, r), abs=1e-9)
        assert -1.0 - 1e-9 <= score <= 1.0 + 1e-9
    t, r = np.array([1.0, 0.0, 0.0]), np.array([0.6, 0.8, 0.0])
    assert copy_paste_score(r, t, r) == pytest.approx(1.0)     # the reference copied
    assert copy_paste_score(t, t, r) == pytest.approx(-1.0)    # the person as in the scene
    halfway = np.array([math.cos(math.atan2(0.8, 0.6) / 2), math.sin(math.atan2(0.8, 0.6) / 2), 0.0])
    assert copy_paste_score(halfway, t, r) == pytest.approx(0.0, abs=1e-9)


def test_copy_paste_is_zero_when_reference_and_ground_truth_coincide():
    t = np.array([0.3, -0.2, 0.9])
    g = np.array([1.0, 0.0, 0.0])
    assert copy_paste_score(g, t, t) == 0.0
    assert copy_paste_score(g, t, 2.5 * t) == 0.0                 # same direction: theta 0
    nearly = t + np.array([0.0, 1e-9, 0.0])                        # an angle far below 1e-6 rad
    assert _theta(t, nearly) < 1e-6 and copy_paste_score(g, t, nearly) == 0.0


def test_ground_truth_match_is_hungarian_on_both_sides():
    a, b, c = np.eye(3)
    ref_a, ref_b = a + 0.3 * c, b + 0.2 * c                     # two people's reference photos
    out = [b + 0.1 * a, a + 0.05 * b]                            # output faces in another order
    truth = [a - 0.2 * c, b]                                      # the people in the scene
    match = match_ground_truth([ref_a, ref_b], out, truth)
    assert match.output_face == [1, 0] and match.ground_truth_face == [0, 1]
    cos = lambda x, y: float(x @ y / np.linalg.norm(x) / np.linalg.norm(y))  # noqa: E731
    assert match.gt_similarity == pytest.approx([cos(out[1], truth[0]), cos(out[0], truth[1])])
    assert match.copy_paste == pytest.approx([_direct_copy_paste(out[1], truth[0], ref_a),
                                              _direct_copy_paste(out[0], truth[1], ref_b)])
    assert match.copy_paste_undefined is None
    assert match.sample_gt_similarity == pytest.approx(np.mean(match.gt_similarity))


def test_copy_paste_is_undefined_when_the_face_counts_differ():
    a, b, c = np.eye(3)
    # An extra face in the output: GT-Sim still per reference, CP undefined (arcface_metric.py:269-275).
    match = match_ground_truth([a], [a + 0.1 * b, c], [a + 0.2 * c])
    assert match.copy_paste == [None] and match.mean_copy_paste is None
    assert match.copy_paste_undefined == "face counts differ: 2 in the output, 1 in the ground truth, 1 references"
    assert match.gt_similarity[0] == pytest.approx(float((a + 0.1 * b) @ (a + 0.2 * c)
                                                         / np.linalg.norm(a + 0.1 * b) / np.linalg.norm(a + 0.2 * c)))
    # MultiID-Bench's Sim(GT) averages every matched (output, GT) pair: here only one.
    assert match.sample_gt_similarity == pytest.approx(match.gt_similarity[0])
    # A reference without a face, or no face in the output or the ground truth.
    faceless = match_ground_truth([a, None], [a, b], [a, b])
    assert faceless.copy_paste_undefined == "no face found in 1 of the 2 references"
    empty = match_ground_truth([a], [], [a])
    assert empty.gt_similarity == [None] and empty.copy_paste_undefined == "no face in the output"
    assert empty.sample_gt_similarity is None


def test_trimmed_mean_drops_outliers_beyond_one_and_a_half_iqr():
    values = [0.40, 0.42, 0.45, 0.47, 0.50, 0.52, -0.90]
    q1, q3 = np.percentile(values, [25, 75])
    kept = [v for v in values if q1 - 1.5 * (q3 - q1) <= v <= q3 + 1.5 * (q3 - q1)]
    assert kept == values[:-1]
    assert metrics.trimmed_mean(values) == pytest.approx(np.mean(kept))
    assert metrics.trimmed_mean([0.3]) == 0.3 and metrics.trimmed_mean([None]) is None


# ---------------------------------------------------------------- real photos


def _photo(photos, name, side=256):
    with Image.open(photos[name]) as image:
        image = image.convert("RGB")
        image.thumbnail((side, side))
        return image


def test_ground_truth_of_the_same_person_on_real_photos(photos, dlib_backend):
    reference, truth = _photo(photos, "obama1"), _photo(photos, "obama2")
    embed = lambda image: dlib_backend.detect(image)[0].embedding  # noqa: E731
    r, t = embed(reference), embed(truth)

    # The output: a third photo of the same man.
    other = compare_with_ground_truth([reference], _photo(photos, "obama3"), truth, dlib_backend)
    g = embed(_photo(photos, "obama3"))
    assert other.gt_similarity[0] == pytest.approx(float(g @ t), abs=1e-5)
    assert other.copy_paste[0] == pytest.approx(_direct_copy_paste(g, t, r), abs=1e-6)
    stranger = compare_with_ground_truth([reference], _photo(photos, "biden"), truth, dlib_backend)
    assert other.gt_similarity[0] > stranger.gt_similarity[0] + 0.05

    # The reference itself (mirrored, so not the same pixels) as the output: copied, CP > 0.
    copied = compare_with_ground_truth([reference], ImageOps.mirror(reference), truth, dlib_backend)
    assert copied.copy_paste[0] > 0.5 and copied.copy_paste[0] > other.copy_paste[0]
    # The ground truth itself as the output (mirrored): the person as in the scene, CP < 0; the
    # unmirrored ground truth is -1 exactly.
    scene_copy = compare_with_ground_truth([reference], ImageOps.mirror(truth), truth, dlib_backend)
    assert scene_copy.copy_paste[0] < -0.3 and scene_copy.gt_similarity[0] > other.gt_similarity[0]
    assert compare_with_ground_truth([reference], truth, truth, dlib_backend).copy_paste[0] == pytest.approx(-1.0)
    assert copied.to_dict()["faces"] == {"output": 1, "ground_truth": 1, "references_with_a_face": 1}


def test_two_people_and_a_missing_one_on_real_photos(tmp_path, photos, dlib_backend):
    references = [small_copy(photos["obama1"], tmp_path / "a.jpg"), small_copy(photos["hopper"], tmp_path / "b.jpg")]
    truth = scene(photos, ("obama3", "hopper"))
    # The output pastes the two reference photos as they are, in the other order.
    both = compare_with_ground_truth(references, scene(photos, ("hopper", "obama1"), mirror=False), truth, dlib_backend,
                                     labels=["Obama", "Hopper"])
    # Hungarian on both sides: each reference's output face is matched to the same person in the GT.
    assert both.match.output_face == [1, 0] and both.match.ground_truth_face == [0, 1]
    assert all(cp > 0.3 for cp in both.copy_paste)  # copies of the reference photos
    one = compare_with_ground_truth(references, scene(photos, ("obama2",)), truth, dlib_backend)
    assert one.copy_paste == [None, None] and one.copy_paste_undefined.startswith("face counts differ: 1 in the output")
    assert one.gt_similarity[0] is not None and one.gt_similarity[1] is None


# ---------------------------------------------------------------- whole runs


def _run(cases, out, dlib, rules, seeds=(0,), **customizer):
    from umo_pipeline.customizers.base import GenerationRequest
    from umo_pipeline.evaluate.runner import evaluate

    request = GenerationRequest(prompt="", width=512, height=256, steps=1)
    return evaluate(cases, ComposingCustomizer(**customizer), dlib, request, seeds=list(seeds),
                    variants=["base", "umo"], out=out, metrics=rules)


def _records(out):
    return {r["item"]: r for r in map(json.loads, (out / "records.jsonl").read_text().splitlines())}


def test_app_run_records_gt_similarity_and_copy_paste(tmp_path, photos, dlib_backend):
    cases = read_prompt_set(multiid_parquet_set(tmp_path / "set", photos))[:2]
    out = tmp_path / "out"
    assert _run(cases, out, dlib_backend, "app") == 0
    records = _records(out)
    umo = records["p2-0002__s0__umo"]
    # The test double pastes each reference photo (mirrored): GT-Sim of the same people, and a copy.
    assert umo["ground_truth"] == {"faces": 2} and len(umo["gt_sim"]) == 2
    assert all(s > 90 for s in umo["gt_sim"]) and umo["copy_paste"][0] > 30 and umo["copy_paste"][1] is not None
    raw = umo["ground_truth_match"]
    assert umo["gt_sim"] == pytest.approx([100 * v for v in raw["gt_similarity"]], abs=0.01)
    assert umo["mean_copy_paste"] == pytest.approx(np.mean(umo["copy_paste"]), abs=1e-3)
    # The base variant paints the first person twice: the second reference's face is not Hopper.
    base = records["p2-0002__s0__base"]
    assert base["gt_sim"][1] < umo["gt_sim"][1]

    rows = list(csv.DictReader((out / "summary.csv").open()))
    overall = {r["variant"]: r for r in rows if r["scope"] == "all"}
    pooled = np.mean([v for r in records.values() if r["variant"] == "umo" for v in r["gt_sim"]])
    assert float(overall["umo"]["gt_sim"]) == pytest.approx(pooled, abs=1e-3)
    assert int(overall["umo"]["copy_paste_scores"]) == 3
    assert {r["group"] for r in rows if r["scope"] == "category"} == {"p1", "p2"}
    markdown = (out / "summary.md").read_text()
    assert "| Method | Items | ID-Sim | ID-Conf | GT-Sim | CP |" in markdown
    assert "CP: copy-paste score, +100 when the output face is the reference photo's" in markdown
    assert Image.open(out / "plots" / "gt_sim_vs_copy_paste.png").size[0] > 300
    page = (out / "report.html").read_text()
    for title in ("Ground truth", "composing-test-double UMO GT-Sim", "composing-test-double base CP",
                  "Δ GT-Sim", "Δ CP"):
        assert f">{title}</th>" in page
    assert "<th>GT-Sim</th><th>CP</th>" in page  # the summary table
    assert "references/p2-0002-gt.jpg" in page and (out / "references" / "p2-0002-gt.jpg").is_file()


def test_multiid_bench_rules_trim_per_image_means_and_leave_out_failed_images(tmp_path, photos, dlib_backend):
    cases = read_prompt_set(multiid_folder_set(tmp_path / "set", photos, "old"))[:2]
    out = tmp_path / "out"
    # Seed 1 paints no face at all: a failed sample in MultiID-Bench's eval.py, in no mean.
    assert _run(cases, out, dlib_backend, "multiid-bench", seeds=(0, 1), faceless_seeds=(1,)) == 0
    records = _records(out)
    failed = records["p2-0002__s1__umo"]
    assert failed["excluded"] == "no face in the output" and failed["mean_gt_sim"] is None
    umo = records["p2-0002__s0__umo"]
    report = umo["report"]
    # Sim(Ref): the raw cosine with the Hungarian-assigned face, x100.
    assert umo["id_sim"] == pytest.approx(
        [100 * report["similarity"][i][report["assignment"][i]] for i in range(2)], abs=0.02)
    assert umo["mean_gt_sim"] == pytest.approx(100 * umo["ground_truth_match"]["sample_gt_similarity"], abs=0.01)
    base = records["p2-0002__s0__base"]
    assert base["mean_copy_paste"] == pytest.approx(np.mean(base["copy_paste"]), abs=1e-3)

    rows = list(csv.DictReader((out / "summary.csv").open()))
    overall = {r["variant"]: r for r in rows if r["scope"] == "all"}
    for metric in ("id_sim", "gt_sim", "copy_paste"):
        means = [r[f"mean_{metric}"] for r in records.values() if r["variant"] == "umo" and not r["excluded"]]
        assert int(overall["umo"][f"{metric}_scores"]) == len(means) == 2
        # the column carries MultiID-Bench's eval.py key beside ours: "id_sim (sim_ref)", ...
        column = {"id_sim": "id_sim (sim_ref)", "gt_sim": "gt_sim (sim_ori)", "copy_paste": "copy_paste (copy_geo)"}[metric]
        assert float(overall["umo"][column]) == pytest.approx(metrics.trimmed_mean(means), abs=1e-3)
    assert overall["umo"]["group"].startswith("all subsets pooled (not comparable with MultiID-Bench's tables")
    markdown = (out / "summary.md").read_text()
    assert "Figures follow MultiID-Bench's eval.py" in markdown and "(4 such items)" in markdown
    assert "divide by 100" in markdown
    assert json.loads((out / "run.json").read_text())["metrics"] == "multiid-bench"


def test_cli_accepts_the_multiid_bench_format_and_rules(tmp_path, photos, capsys):
    from umo_pipeline.cli import main

    folder = multiid_parquet_set(tmp_path / "set", photos, multiid_rows(photos)[:1])
    out = tmp_path / "out"
    status = main(["evaluate", str(folder), "--format", "multiid-bench", "--metrics", "multiid-bench",
                   "--model", "tiny", "--width", "256", "--height", "256", "--steps", "1", "--variants", "umo",
                   "--backend", "dlib", "--out", str(out)])
    assert status == 0, capsys.readouterr().err
    record = json.loads((out / "records.jsonl").read_text())
    assert record["case"] == "p1-0001" and record["benchmark"] == "multiid-bench" and record["ground_truth"]
    # The tiny random model draws no face: the item is MultiID-Bench's failed sample.
    assert record["excluded"] == "no face in the output"
    assert "(1 such item)" in (out / "summary.md").read_text()
