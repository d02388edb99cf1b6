"""Face repair (`workflow.repair` and its three phases) on real faces.

The generator is `ComposingCustomizer`, whose masked re-generation paints the given reference's face
into the mask (or, for chosen seeds, an impostor's face or nothing), so which repair should win is
known in advance and the identity analysis (dlib backend, real weights) must find it. The tiny UNO
model runs one repair end to end (its repaints are noise: only shapes, flow and pixel invariants).
"""

import json
import pickle

import numpy as np
import pytest
from PIL import Image

from tests.composing_customizer import ComposingCustomizer
from tests.library.test_analysis import face_tile
from umo_pipeline import params, workflow
from umo_pipeline.customizers.base import GenerationRequest
from umo_pipeline.errors import InputError
from umo_pipeline.images import load_image
from umo_pipeline.workflow.repair import (
    CROP_CONTEXT, DEFAULT_FACE_PROMPT, MIN_FACE_SIDE, OTHERS_MARGIN, judge_repair,
)


@pytest.fixture(scope="module")
def backend():
    from umo_pipeline.faces import get_face_backend

    return get_face_backend("dlib")


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


def test_repair_fixes_the_wrong_face_with_its_own_reference(backend, references, wrong_second_face, tmp_path):
    double = ComposingCustomizer()
    steps = []
    result = workflow.repair(double, backend, wrong_second_face, references, folder=tmp_path, seed=3,
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
    assert lines["Reference 2"].startswith("ID-Sim ") and "not found -> matched" in lines["Reference 2"]


def test_candidates_are_ranked_by_the_reference_id_sim(backend, references, wrong_second_face, photos):
    # seed 10 paints nothing, 11 an impostor (the astronaut), 12 Hopper himself: 12 must win
    double = ComposingCustomizer(impostor=load_image(photos["astronaut"]), impostor_seeds=[11], untouched_seeds=[10])
    steps = []
    result = workflow.repair(double, backend, wrong_second_face, references, candidates=3, seed=10,
                             progress=lambda done, total, message: steps.append(message))
    outcome = result.repairs[0]
    assert [candidate.seed for candidate in outcome.candidates][0] == 12 and outcome.kept_seed == 12
    scores = [candidate.id_sim for candidate in outcome.candidates]
    assert scores == sorted(scores, reverse=True)
    assert "best of 3 candidates" in outcome.message
    assert any(message.startswith("face 1 of 1, candidate") and "of 3" in message for message in steps)
    _outside_mask_unchanged(result)


def test_no_better_candidate_keeps_the_original_and_says_so(backend, references, wrong_second_face, photos):
    double = ComposingCustomizer(untouched_seeds=[0, 1])
    result = workflow.repair(double, backend, wrong_second_face, references, candidates=2, choose=[1])
    outcome = result.repairs[0]
    assert not outcome.kept and "kept as it was" in outcome.message
    assert np.array_equal(np.asarray(result.image), np.asarray(wrong_second_face))
    assert result.after.report.statuses == result.before.report.statuses
    assert dict(workflow.describe_repair(result))["Not kept"] == outcome.message


def test_a_candidate_that_costs_another_reference_is_refused(backend, references, photos):
    # the rule itself, on real analyses: Reference 2 gains, but Reference 1's face is gone
    from umo_pipeline.analysis import analyze_identity

    before = analyze_identity(references, scene(photos, ["obama2", "biden"]), backend)
    after = analyze_identity(references, scene(photos, ["biden", "hopper"]), backend)
    id_sim, drop, allowed = judge_repair(before, after, 1)
    assert id_sim > before.id_sim[1] and drop > OTHERS_MARGIN and not allowed
    same = judge_repair(before, before, 1)
    assert same == (before.id_sim[1], 0.0, True)


def test_every_chosen_face_is_repaired_in_turn(backend, references, photos):
    # both faces wrong (Biden, the astronaut): both references chosen by default, each repaired
    image = scene(photos, ["biden", "astronaut"])
    result = workflow.repair(ComposingCustomizer(), backend, image, references)
    assert [repair.reference for repair in result.repairs] == [0, 1]
    assert all(repair.kept for repair in result.repairs)
    assert result.after.report.statuses == ["matched", "matched"]
    _outside_mask_unchanged(result)


def test_a_crop_near_the_border_is_moved_inside_the_image(backend, references, photos):
    image = scene(photos, ["obama2", "biden"], size=(900, 500), spots=[(500, 120), (0, 0)])
    job = workflow.prepare_repair(ComposingCustomizer(), backend, image, references)
    plan = job.faces[0]
    left, top, right, bottom = plan.crop_box
    assert (left, top) == (0, 0) and right - left == bottom - top and right <= 900 and bottom <= 500
    x0, y0, x1, y1 = plan.face_box
    assert left <= x0 and top <= y0 and x1 <= right and y1 <= bottom  # moved, not cut
    assert plan.moved and any("moved inside the image" in note for note in job.notes)
    result = workflow.finish_repair(job, workflow.generate_repairs(job))
    assert result.repairs[0].kept
    _outside_mask_unchanged(result)


def test_a_prepared_repair_crosses_a_process_boundary_without_its_models(backend, references, wrong_second_face):
    double = ComposingCustomizer()
    job = workflow.prepare_repair(double, backend, wrong_second_face, references, candidates=2)
    copy = pickle.loads(pickle.dumps(job))
    assert copy.customizer is double and copy.backend is backend
    assert copy.total_steps == 2 * job.faces[0].request.denoising_steps
    assert workflow.repair_gpu_seconds(job) >= 20


@pytest.mark.parametrize("kwargs, words", [
    (dict(candidates=5), "Candidates must be between 1 and 4"),
    (dict(candidates=0), "Candidates must be between 1 and 4"),
    (dict(strength=0), "Strength must be between 0.05 and 1"),
    (dict(strength="strong"), "Strength must be a number"),
    (dict(choose=[2]), "There is no Reference 3"),
    (dict(choose=[]), "Choose at least one reference"),
    (dict(choose=[0, 0]), "Reference 1 was chosen twice"),
    (dict(choose=["2"]), "Choose references by their number"),
    (dict(candidates=4, gpu_seconds_limit=20), r"This repair would need about \d+ s on the GPU, more than the 20 s"),
])
def test_bad_settings_are_refused_in_plain_words(backend, references, wrong_second_face, kwargs, words):
    double = ComposingCustomizer()
    with pytest.raises(InputError, match=words):
        workflow.prepare_repair(double, backend, wrong_second_face, references, **kwargs)
    assert double.inpaints == []


def test_bad_images_are_refused_in_plain_words(backend, references, photos, wrong_second_face):
    double = ComposingCustomizer()
    with pytest.raises(InputError, match="No face was found in the image to repair"):
        workflow.prepare_repair(double, backend, Image.new("RGB", (640, 480), (90, 140, 200)), references)
    with pytest.raises(InputError, match=r"too large \(9000 x 6000"):
        workflow.prepare_repair(double, backend, Image.new("1", (9000, 6000)), references)
    faceless = Image.new("RGB", (400, 400), (200, 180, 160))
    with pytest.raises(InputError, match="Reference 2 cannot be repaired: no face was found in its photo"):
        workflow.prepare_repair(double, backend, wrong_second_face, [references[0], faceless], choose=[1])
    # by default a faceless reference is left out, and the result says so
    job = workflow.prepare_repair(double, backend, scene(photos, ["biden", "hopper"]), [references[0], faceless])
    assert [plan.reference for plan in job.faces] == [0]
    assert any("Reference 2 was not repaired: no face was found" in note for note in job.notes)
    # one face for two references: the unassigned one has no face to repair
    one_face = scene(photos, ["biden"], size=(800, 500))
    with pytest.raises(InputError, match="no face in the image was assigned to it"):
        workflow.prepare_repair(double, backend, one_face, references, choose=[0, 1])
    # every reference matched: nothing to repair unless chosen
    with pytest.raises(InputError, match="Nothing to repair: every reference is matched already"):
        workflow.prepare_repair(double, backend, scene(photos, ["obama2", "hopper"]), references)
    assert double.inpaints == []


def test_a_face_too_small_to_repair_says_its_size(backend, references, photos):
    image = scene(photos, ["hopper"], size=(400, 400), tile=64, spots=[(100, 100)])  # a face of ~37 px
    with pytest.raises(InputError, match=rf"Face \d \(Reference 2's face\) is \d+ x \d+ pixels, too small to "
                                         rf"repair: a repair needs a face of at least {MIN_FACE_SIDE} pixels"):
        workflow.prepare_repair(ComposingCustomizer(), backend, image, references, choose=[1])


def test_the_tiny_model_repairs_end_to_end(backend, references, wrong_second_face):
    from umo_pipeline import load_customizer

    tiny = load_customizer("tiny")
    messages = []
    result = workflow.repair(tiny, backend, wrong_second_face, references, candidates=2, strength=0.5,
                             settings=GenerationRequest(prompt="", steps=4),
                             progress=lambda done, total, message: messages.append((done, total)))
    assert result.image.size == wrong_second_face.size and len(result.repairs) == 1
    assert len(result.repairs[0].candidates) == 2
    assert messages[-1] == (2, 2)  # both candidates in one batch: 2 of the 4 steps at strength 0.5
    _outside_mask_unchanged(result)
    assert any("tiny test model" in note for note in result.notes)
