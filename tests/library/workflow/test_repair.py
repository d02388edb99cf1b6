"""Face repair (`workflow.repair` and its three phases) on real faces, and its judge.

The generator is `ComposingCustomizer`, whose masked re-generation paints the given reference's face
into the mask (or, for chosen seeds, an impostor's face or nothing), so which repair should win is
known in advance and the identity analysis (dlib backend, real weights) must find it. The tiny UNO
model runs one repair end to end (its repaints are noise: only shapes, flow and pixel invariants).
The judge (`judge`) is checked on known similarity matrices too.
"""

import json
import pickle
import re

import numpy as np
import pytest
from PIL import Image

from tests.composing_customizer import ComposingCustomizer
from tests.library.test_analysis import face_tile
from umo_pipeline import params, workflow
from umo_pipeline.customizers.base import GenerationRequest
from umo_pipeline.errors import InputError
from umo_pipeline.images import load_image
from umo_pipeline.faces.insightface_backend import ARCFACE_THRESHOLDS
from umo_pipeline.matching import match_identities
from umo_pipeline.workflow.geometry import RepaintCanvas, locate_face
from umo_pipeline.judge import MIN_GAIN, judge, rule
from umo_pipeline.workflow.face_repair import CROP_CONTEXT, DEFAULT_FACE_PROMPT, MIN_FACE_SIDE, OTHERS_MARGIN


@pytest.fixture(scope="module")
def references(photos):
    """Reference 1: Obama, Reference 2: Hopper."""
    return [load_image(photos["obama1"]), load_image(photos["hopper"])]


def scene(photos, people, *, size=(1200, 600), tile=240, spots=None) -> Image.Image:
    """People's faces (face_tile: the face fills about half of each tile) on a grey canvas, at
    `spots` (top-left corners; default: evenly spread on one row, with room around each face)."""
    canvas = Image.new("RGB", size, (128, 128, 128))
    if spots is None:
        gap = (size[0] - tile * len(people)) // (len(people) + 1)
        spots = [(gap + k * (tile + gap), (size[1] - tile) // 2) for k in range(len(people))]
    for name, spot in zip(people, spots):
        canvas.paste(face_tile(photos, name).resize((tile, tile), Image.Resampling.LANCZOS), spot)
    return canvas


@pytest.fixture(scope="module")
def wrong_second_face(photos):
    """Obama (another photo) on the left, Biden where Hopper (Reference 2) should be."""
    return scene(photos, ["obama2", "biden"])


def _outside_mask_unchanged(result) -> None:
    mask = np.asarray(result.paste_mask())
    before, after = np.asarray(result.original), np.asarray(result.image)
    assert result.image.size == result.original.size
    assert np.array_equal(before[mask == 0], after[mask == 0])
    return mask


def test_repair_fixes_the_wrong_face_with_its_own_reference(dlib_backend, references, wrong_second_face, tmp_path):
    double = ComposingCustomizer()
    steps = []
    result = workflow.repair(double, dlib_backend, wrong_second_face, references, folder=tmp_path, seed=3,
                             progress=lambda done, total, message: steps.append((done, total, message)))

    assert result.before.report.statuses == ["matched", "not found"]
    # the default choice: Reference 2 only, its assigned face, conditioned on its reference alone
    assert [repair.reference for repair in result.repairs] == [1]
    assert len(double.inpaints) == 1 and double.inpaints[0][2] == [references[1]]
    request = double.inpaints[0][1]
    assert request.prompt == DEFAULT_FACE_PROMPT
    assert request.inpaint.strength == params.STRENGTH.default
    assert request.width == request.height and request.width % 16 == 0 and request.width >= 512

    changes = {change["reference"]: change for change in result.changes()}
    assert changes["Reference 2"]["delta"] > 0.05 and changes["Reference 2"]["status_after"] == "matched"
    assert changes["Reference 1"]["delta"] >= -OTHERS_MARGIN
    assert result.after.report.statuses == ["matched", "matched"]
    assert result.repairs[0].kept and result.repairs[0].kept_seed == 3

    mask = _outside_mask_unchanged(result)
    assert 0 < (mask > 0).mean() < 0.2  # a face's ellipse, not the crop's square
    # the crop's square edge never shows: the mask is 0 all along the crop's border
    repair = result.repairs[0]
    left, top, right, bottom = repair.crop_box
    border = np.asarray(repair.mask)
    assert border[0].max() == border[-1].max() == border[:, 0].max() == border[:, -1].max() == 0
    face = result.before.report.faces[repair.face].bbox
    assert right - left == bottom - top >= CROP_CONTEXT * max(face[2] - face[0], face[3] - face[1]) - 2

    # progress counts the steps actually run (strength's share), with the face and candidate
    assert steps[-1][0] == steps[-1][1] == request.denoising_steps < request.steps
    assert steps[0][2].startswith("face 1 of 1, candidate 1 of 1")

    # the files: the PNG carries the repair settings, the JSON before/after per reference
    image_path, report_path = result.files
    meta = workflow.read_png_metadata(image_path)
    assert json.loads(meta["repair"])["strength"] == params.STRENGTH.default and meta["kept"] == "Reference 2: seed 3"
    assert np.array_equal(np.asarray(Image.open(image_path).convert("RGB")), np.asarray(result.image))
    report = json.loads(report_path.read_text())
    assert report["references"][1]["status_before"] == "not found"
    assert report["references"][1]["status_after"] == "matched"
    assert report["repairs"][0]["kept"] is True and report["after"]["statuses"] == ["matched", "matched"]
    lines = dict(workflow.describe_repair(result))
    assert lines["Reference 2"].startswith("Face 2: similarity ") and "not found -> matched" in lines["Reference 2"]
    assert lines["Rule"] == rule() and report["rule"] == rule()
    # the double's own note: real faces pasted, not a model's repaints and not "noise"
    assert any("a test double that pastes the reference photos; its repaints show real faces" in note
               for note in result.notes) and not any("noise" in note for note in result.notes)
    assert "rises by at least 0.5" in rule() and "by more than 2.0" in rule() and "matching score" in rule()
    score_before, score_after = result.matching_scores
    assert score_after > score_before and lines["Matching score"].startswith(
        f"{100 * score_before:.1f} -> {100 * score_after:.1f} (+")
    assert report["matching_score_before"] == round(score_before, 4)
    assert report["repairs"][0]["similarity_after"] > report["repairs"][0]["similarity_before"] + MIN_GAIN


def test_candidates_are_ranked_by_the_judge(dlib_backend, references, wrong_second_face, photos):
    # seed 10 paints nothing, 11 an impostor (the astronaut), 12 Hopper himself: 12 must win
    double = ComposingCustomizer(impostor=load_image(photos["astronaut"]), impostor_seeds=[11], untouched_seeds=[10])
    steps = []
    result = workflow.repair(double, dlib_backend, wrong_second_face, references, candidates=3, seed=10,
                             progress=lambda done, total, message: steps.append(message))
    outcome = result.repairs[0]
    assert [candidate.seed for candidate in outcome.candidates][0] == 12 and outcome.kept_seed == 12
    verdicts = [candidate.verdict for candidate in outcome.candidates]
    assert [v.rank_key() for v in verdicts] == sorted(v.rank_key() for v in verdicts)
    assert verdicts[0].kept and verdicts[0].score_after > max(v.score_after for v in verdicts[1:])
    untouched = next(c.verdict for c in outcome.candidates if c.seed == 10)
    assert not untouched.kept and untouched.harm() is None  # harmless, but no gain
    assert "best of 3 candidates" in outcome.message
    assert any(message.startswith("face 1 of 1, candidate") and "of 3" in message for message in steps)
    _outside_mask_unchanged(result)


def test_no_better_candidate_keeps_the_original_and_says_so(dlib_backend, references, wrong_second_face, photos):
    double = ComposingCustomizer(untouched_seeds=[0, 1])
    result = workflow.repair(double, dlib_backend, wrong_second_face, references, candidates=2, choose=[1])
    outcome = result.repairs[0]
    assert not outcome.kept and re.fullmatch(r"Face 2 kept as it was: in the best of 2 candidates \(seed [01]\), "
                                             r"Reference 2's similarity on the face changed by [+-]0\.[0-4], less than "
                                             r"the 0\.5 a repair must add\.", outcome.message)
    assert np.array_equal(np.asarray(result.image), np.asarray(wrong_second_face))
    assert result.after.report.statuses == result.before.report.statuses
    assert dict(workflow.describe_repair(result))["Not kept"] == outcome.message


def test_a_candidate_that_costs_another_reference_is_refused(dlib_backend, references, photos):
    # the rule itself, on real analyses: Reference 2's face gains, but Reference 1's face is gone
    from umo_pipeline.analysis import analyze_identity

    before = analyze_identity(references, scene(photos, ["obama2", "biden"]), dlib_backend)
    after = analyze_identity(references, scene(photos, ["biden", "hopper"]), dlib_backend)
    verdict = judge(before, after, 1, 1, 1)
    assert verdict.gain > MIN_GAIN and verdict.others_drop > OTHERS_MARGIN and verdict.worst_other == 0
    assert not verdict.kept and verdict.problem().startswith("Reference 1's similarity on its own face fell by")
    same = judge(before, before, 1, 1, 1)
    assert same.gain == 0.0 and same.others_drop == 0.0 and same.harm() is None and not same.kept


# -- the judge on known matrices: similarities x100, rows = references A and B, columns = faces -------
def _matched(rows):
    return match_identities(np.array(rows, dtype=float) / 100, ARCFACE_THRESHOLDS)


#: B's identity has leaked onto A's face: B's best face (55) is Face 1, A's; B's own face reads 25
CONFUSED = [[60, 20], [55, 25]]


def test_the_judge_keeps_both_repairs_of_the_confused_scene():
    before = _matched(CONFUSED)
    assert before.assignment == [0, 1] and before.best_face == [0, 0] and before.statuses[1] == "confused"

    # A's face repaired: A rises, and B's leak is gone (B's ID-Sim falls by 25, the old rule's refusal)
    fixed_a = judge(before, _matched([[70, 20], [30, 25]]), reference=0, face_before=0, face_after=0)
    assert fixed_a.kept and fixed_a.gain == pytest.approx(0.10)
    assert fixed_a.others_drop == pytest.approx(0.0) and fixed_a.score_after > fixed_a.score_before
    assert fixed_a.score_before == pytest.approx((60 + 25 - 20 - 55) / 400)
    assert fixed_a.score_after == pytest.approx((70 + 25 - 20 - 30) / 400)
    assert fixed_a.id_conf_before == pytest.approx(1 - 20 / 60) and fixed_a.id_conf_after == pytest.approx(1 - 20 / 70)

    # B's own face repaired: 25 -> 50 is the gain (B's ID-Sim, still the 55 of the leak, would count 0)
    fixed_b = judge(before, _matched([[60, 20], [55, 50]]), reference=1, face_before=1, face_after=1)
    assert fixed_b.kept and fixed_b.gain == pytest.approx(0.25) and fixed_b.others_drop == pytest.approx(0.0)
    assert fixed_b.score_after == pytest.approx((60 + 50 - 20 - 55) / 400)
    assert fixed_b.score_after > fixed_b.score_before


@pytest.mark.parametrize("after, reference, face_after, words", [
    # B's own face falls by 3 points, more than the margin of 2
    ([[70, 20], [55, 22]], 0, 0, r"Reference 2's similarity on its own face fell by 3\.0, more than 2\.0"),
    # A gains 1 point, but B's leak onto A's face grows by 5: the image as a whole got worse
    ([[61, 20], [60, 25]], 0, 0, r"the matching score fell from 2\.5 to 1\.5"),
    # the repaint made Face 1 look like B: the assignment hands it to B
    ([[62, 20], [90, 25]], 0, 0, "the assignment gave the repainted face to Reference 2, not Reference 1"),
    # a repaint that lost the face
    ([[20], [25]], 0, None, "no face was found where the repainted face was"),
    # harmless, but 0.4 points is within the noise of a crop's round trip
    ([[60.4, 20], [55, 25]], 0, 0, r"Reference 1's similarity on the face changed by \+0\.4, less than the 0\.5"),
])
def test_the_judge_refuses_in_words(after, reference, face_after, words):
    verdict = judge(_matched(CONFUSED), _matched(after), reference, 0, face_after)
    assert not verdict.kept and re.search(words, verdict.problem())


def test_a_drop_within_the_margin_is_allowed_and_verdicts_rank_by_the_judge():
    before = _matched(CONFUSED)
    within = judge(before, _matched([[70, 20], [55, 24]]), 0, 0, 0)  # B's own face -1: within 2
    better = judge(before, _matched([[75, 20], [40, 25]]), 0, 0, 0)
    too_little = judge(before, _matched([[60.2, 20], [55, 25]]), 0, 0, 0)
    harmful = judge(before, _matched([[90, 20], [55, 20]]), 0, 0, 0)
    assert within.kept and within.others_drop == pytest.approx(0.01)
    ranked = sorted([harmful, too_little, within, better], key=lambda verdict: verdict.rank_key())
    assert ranked == [better, within, too_little, harmful]
    assert too_little.harm() is None and harmful.harm() is not None


def test_the_confused_scene_is_repaired_end_to_end(dlib_backend, references, photos, tmp_path):
    """B's identity sits on A's face: Face 1 is Obama blended with Hopper, and resembles Hopper
    more than Hopper's own face (Biden) does. Both repairs must be kept, and the leak must go."""
    blend = Image.blend(face_tile(photos, "obama2"), face_tile(photos, "hopper"), 0.46)
    image = scene(photos, ["obama2", "biden"])
    image.paste(blend.resize((240, 240), Image.Resampling.LANCZOS), (240, 180))  # scene()'s first spot
    result = workflow.repair(ComposingCustomizer(), dlib_backend, image, references, folder=tmp_path)

    before = result.before.report
    assert before.assignment == [0, 1] and before.match.best_face == [0, 0]  # B's best face is A's: the leak
    assert before.similarity[1][0] > before.similarity[1][1] + 0.05
    assert [repair.reference for repair in result.repairs] == [0, 1] and all(r.kept for r in result.repairs)
    # the old reading: B's ID-Sim fell by far more than the margin when A's face was repaired
    first = result.repairs[0].candidates[0]
    assert before.id_sim[1] - first.report.id_sim[1] > OTHERS_MARGIN and first.verdict.kept

    after = result.after.report
    assert after.statuses == ["matched", "matched"] and after.assignment == [0, 1]
    assert after.match.best_face == [0, 1]  # each reference's best face is its own: the confusion is gone
    assert after.similarity[1][0] < after.similarity[1][1] - 0.05
    assert after.matching_score > before.matching_score
    assert result.after.heatmap is not None
    report = json.loads(result.files[1].read_text())
    assert [change["face_after"] for change in report["references"]] == ["Face 1", "Face 2"]
    for change in report["references"]:
        assert change["similarity_after"] > change["similarity_before"]
        assert change["id_conf_before"] is not None and change["id_conf_after"] is not None
    assert report["matching_score_after"] > report["matching_score_before"]


def close_pair(photos, people, *, tile=216, apart=144) -> Image.Image:
    """Two faces of ~115 px whose centres are `apart` px apart (each tile cut to that width)."""
    canvas = Image.new("RGB", (800, 500), (128, 128, 128))
    for k, name in enumerate(people):
        face = face_tile(photos, name).resize((tile, tile), Image.Resampling.LANCZOS)
        left = (tile - apart) // 2
        canvas.paste(face.crop((left, 0, left + apart, tile)), (200 + k * apart, 140))
    return canvas


def test_two_close_faces_compose_and_no_repair_undoes_another(dlib_backend, references, photos):
    image = close_pair(photos, ["biden", "astronaut"])
    both = workflow.repair(ComposingCustomizer(), dlib_backend, image, references)
    first = workflow.repair(ComposingCustomizer(), dlib_backend, image, references, choose=[0])
    second = workflow.repair(ComposingCustomizer(), dlib_backend, image, references, choose=[1])
    assert all(r.kept for r in both.repairs + first.repairs + second.repairs)
    assert both.after.report.statuses == ["matched", "matched"]

    def in_image(outcome):
        mask = np.zeros(image.size[::-1], dtype=np.float64)
        left, top, right, bottom = outcome.crop_box
        mask[top:bottom, left:right] = np.asarray(outcome.mask) / 255
        return mask

    m1, m2 = in_image(both.repairs[0]), in_image(both.repairs[1])
    original = np.asarray(image).astype(np.float64)
    alone_1, alone_2 = (np.asarray(r.image).astype(np.float64) for r in (first, second))
    together = np.asarray(both.image).astype(np.float64)
    # the scene really overlaps: the second mask reaches into the first repaint where it is at least half
    overlap = (m1 >= 0.5) & (m2 > 0) & (np.abs(alone_2 - original).max(axis=2) > 0)
    assert overlap.sum() > 200

    # the first kept repaint is intact, byte for byte, outside the second face's mask and wherever it
    # painted fully; and everywhere its whole change is there: the second goes beneath it
    assert np.array_equal(together[m2 == 0], alone_1[m2 == 0])
    assert np.array_equal(together[m1 == 1], alone_1[m1 == 1])
    expected = alone_1 + (1 - m1)[..., None] * (alone_2 - original)
    assert np.abs(together - expected).max() <= 1.0


def test_the_canvas_layers_a_later_repaint_beneath_a_kept_one():
    picture = Image.new("RGB", (8, 1), (100, 100, 100))
    canvas = RepaintCanvas(picture)
    ramp = Image.fromarray(np.array([[0, 64, 128, 255, 255, 128, 64, 0]], dtype=np.uint8), mode="L")
    red = Image.new("RGB", (8, 1), (200, 0, 0))
    first = canvas.with_repaint((0, 0, 8, 1), ramp, red)
    assert np.array_equal(np.asarray(canvas.image), np.asarray(picture))  # not kept yet: unchanged
    canvas.keep((0, 0, 8, 1), ramp, first)
    second = np.asarray(canvas.with_repaint((0, 0, 8, 1), Image.new("L", (8, 1), 255),
                                            Image.new("RGB", (8, 1), (0, 0, 200)))).astype(int)
    shown = np.asarray(ramp)[0] / 255
    expected = shown[:, None] * [200, 0, 0] + (1 - shown[:, None]) * [0, 0, 200]
    assert np.abs(second[0] - expected).max() <= 1
    assert np.array_equal(second[0, 3:5], np.asarray(first)[0, 3:5])  # fully painted: byte for byte


def test_a_face_is_found_again_by_its_place():
    class Face:
        def __init__(self, *bbox):
            self.bbox = bbox

    faces = [Face(300, 0, 400, 100), Face(0, 0, 100, 100)]
    assert locate_face(faces, (5, 4, 104, 110)) == 1
    assert locate_face(faces, (150, 0, 250, 100)) is None and locate_face([], (0, 0, 1, 1)) is None


def test_every_chosen_face_is_repaired_in_turn(dlib_backend, references, photos):
    # both faces wrong (Biden, the astronaut): both references chosen by default, each repaired
    image = scene(photos, ["biden", "astronaut"])
    result = workflow.repair(ComposingCustomizer(), dlib_backend, image, references)
    assert [repair.reference for repair in result.repairs] == [0, 1]
    assert all(repair.kept for repair in result.repairs)
    assert result.after.report.statuses == ["matched", "matched"]
    _outside_mask_unchanged(result)


def test_a_crop_near_the_border_is_moved_inside_the_image(dlib_backend, references, photos):
    image = scene(photos, ["obama2", "biden"], size=(900, 500), spots=[(500, 120), (0, 0)])
    job = workflow.prepare_repair(ComposingCustomizer(), dlib_backend, image, references)
    plan = job.faces[0]
    left, top, right, bottom = plan.crop_box
    assert (left, top) == (0, 0) and right - left == bottom - top and right <= 900 and bottom <= 500
    x0, y0, x1, y1 = plan.face_box
    assert left <= x0 and top <= y0 and x1 <= right and y1 <= bottom  # moved, not cut
    assert plan.moved and any("moved inside the image" in note for note in job.notes)
    result = workflow.finish_repair(job, workflow.generate_repairs(job))
    assert result.repairs[0].kept
    _outside_mask_unchanged(result)


def test_a_prepared_repair_crosses_a_process_boundary_without_its_models(dlib_backend, references, wrong_second_face):
    double = ComposingCustomizer()
    job = workflow.prepare_repair(double, dlib_backend, wrong_second_face, references, candidates=2)
    copy = pickle.loads(pickle.dumps(job))
    assert copy.customizer is double and copy.backend is dlib_backend
    assert copy.total_steps == 2 * job.faces[0].request.denoising_steps
    assert workflow.repair_gpu_seconds(job) >= 20


@pytest.mark.parametrize("kwargs, words", [
    (dict(candidates=5), "Candidates must be between 1 and 4"),
    (dict(candidates=0), "Candidates must be between 1 and 4"),
    (dict(strength=0), "Strength must be between 0.05 and 1"),
    (dict(strength="strong"), "Strength must be a number"),
    (dict(choose=[2]), r"There is no reference at index 2: choose from 0 \(Reference 1\) to 1 \(Reference 2\)"),
    (dict(choose=[-1]), r"There is no reference at index -1: choose from 0 \(Reference 1\)"),
    (dict(choose=[np.int64(-1)]), r"There is no reference at index -1"),
    (dict(choose=[]), "Choose at least one reference"),
    (dict(choose=[0, 0]), "Reference 1 was chosen twice"),
    (dict(choose=["2"]), "Choose references by their number"),
    (dict(candidates=4, gpu_seconds_limit=20), r"This repair would need about \d+ s on the GPU, more than the 20 s"),
])
def test_bad_settings_are_refused_in_plain_words(dlib_backend, references, wrong_second_face, kwargs, words):
    double = ComposingCustomizer()
    with pytest.raises(InputError, match=words):
        workflow.prepare_repair(double, dlib_backend, wrong_second_face, references, **kwargs)
    assert double.inpaints == []


def test_bad_images_are_refused_in_plain_words(dlib_backend, references, photos, wrong_second_face):
    double = ComposingCustomizer()
    with pytest.raises(InputError, match="No face was found in the image to repair"):
        workflow.prepare_repair(double, dlib_backend, Image.new("RGB", (640, 480), (90, 140, 200)), references)
    with pytest.raises(InputError, match=r"too large \(9000 x 6000"):
        workflow.prepare_repair(double, dlib_backend, Image.new("1", (9000, 6000)), references)
    faceless = Image.new("RGB", (400, 400), (200, 180, 160))
    with pytest.raises(InputError, match="Reference 2 cannot be repaired: no face was found in its photo"):
        workflow.prepare_repair(double, dlib_backend, wrong_second_face, [references[0], faceless], choose=[1])
    # by default a faceless reference is left out, and the result says so
    job = workflow.prepare_repair(double, dlib_backend, scene(photos, ["biden", "hopper"]), [references[0], faceless])
    assert [plan.reference for plan in job.faces] == [0]
    assert any("Reference 2 was not repaired: no face was found" in note for note in job.notes)
    # one face for two references: the unassigned one has no face to repair
    one_face = scene(photos, ["biden"], size=(800, 500))
    with pytest.raises(InputError, match="no face in the image was assigned to it"):
        workflow.prepare_repair(double, dlib_backend, one_face, references, choose=[0, 1])
    # every reference matched: nothing to repair unless chosen
    with pytest.raises(InputError, match="Nothing to repair: every reference is matched already"):
        workflow.prepare_repair(double, dlib_backend, scene(photos, ["obama2", "hopper"]), references)
    assert double.inpaints == []


def test_a_face_too_small_to_repair_says_its_size(dlib_backend, references, photos):
    image = scene(photos, ["hopper"], size=(400, 400), tile=64, spots=[(100, 100)])  # a face of ~37 px
    with pytest.raises(InputError, match=rf"Face \d \(Reference 2's face\) is \d+ x \d+ pixels, too small to "
                                         rf"repair: a repair needs a face of at least {MIN_FACE_SIDE} pixels"):
        workflow.prepare_repair(ComposingCustomizer(), dlib_backend, image, references, choose=[1])


def test_the_tiny_model_repairs_end_to_end(dlib_backend, references, wrong_second_face):
    from umo_pipeline import load_customizer

    tiny = load_customizer("tiny")
    messages = []
    result = workflow.repair(tiny, dlib_backend, wrong_second_face, references, candidates=2, strength=0.5,
                             settings=GenerationRequest(prompt="", steps=4),
                             progress=lambda done, total, message: messages.append((done, total)))
    assert result.image.size == wrong_second_face.size and len(result.repairs) == 1
    assert len(result.repairs[0].candidates) == 2
    assert messages[-1] == (2, 2)  # both candidates in one batch: 2 of the 4 steps at strength 0.5
    _outside_mask_unchanged(result)
    assert any("tiny test model" in note for note in result.notes)


def test_a_large_face_near_the_edge_gets_both_notes(dlib_backend, references, photos):
    image = scene(photos, ["hopper"], size=(600, 400), tile=320, spots=[(280, 40)])  # a ~160 px face, right edge
    job = workflow.prepare_repair(ComposingCustomizer(), dlib_backend, image, references, choose=[1])
    plan = job.faces[0]
    assert plan.moved and plan.crop_box[2] == 600 and plan.crop_box[2] - plan.crop_box[0] == 400
    assert any("near the image's edge: its crop was moved inside the image" in note for note in job.notes)
    assert any("is large for the image: its crop is the image's short side (400 px)" in note for note in job.notes)


def test_a_transparent_image_keeps_its_alpha_in_the_repaired_file(dlib_backend, references, wrong_second_face,
                                                                  tmp_path):
    alpha = np.full(wrong_second_face.size[::-1], 255, dtype=np.uint8)
    alpha[:, :60] = 0          # a transparent band on the left
    alpha[:40, :] = 128        # and a half-transparent one on top
    rgba = wrong_second_face.copy()
    rgba.putalpha(Image.fromarray(alpha, mode="L"))
    source = tmp_path / "transparent.png"
    rgba.save(source)

    result = workflow.repair(ComposingCustomizer(), dlib_backend, source, references, folder=tmp_path / "out")
    assert result.repairs[0].kept
    assert any("has transparency" in note and "keeps its alpha channel" in note for note in result.notes)
    with Image.open(result.files[0]) as written:
        assert written.mode == "RGBA"
        assert np.array_equal(np.asarray(written.getchannel("A")), alpha)
        assert np.array_equal(np.asarray(written.convert("RGB")), np.asarray(result.image))
    # an opaque image is written as RGB, with no note
    opaque = workflow.repair(ComposingCustomizer(), dlib_backend, wrong_second_face, references,
                             folder=tmp_path / "rgb")
    with Image.open(opaque.files[0]) as written:
        assert written.mode == "RGB"
    assert not any("transparency" in note for note in opaque.notes)
