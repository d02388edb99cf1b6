"""Groups past the model's reference limit (workflow.placement): compose with the references the model
takes, assign every reference to the faces, repair the ones not matched, on real faces.

The generator is `ComposingCustomizer`: it paints each reference it receives in its own tile, then
the `crowd` (two physicists cropped from the 1927 Solvay photo) as the strangers a model draws for
people it had no photo of; its repair paints the conditioning reference's face into the mask. Which
faces are right, which must be placed and what the placed image must look like are therefore known
in advance, and the analysis (dlib, real weights) must find them.
"""

import re
from dataclasses import replace

import numpy as np
import pytest
from PIL import Image

from tests.composing_customizer import ComposingCustomizer
from umo_pipeline import params, workflow
from umo_pipeline.customizers.base import GenerationRequest
from umo_pipeline.errors import GenerationCancelled, InputError
from umo_pipeline.images import load_image
from umo_pipeline.matching import MATCHED

PEOPLE = ["astronaut", "hopper", "obama1", "biden", "newton", "gauss"]
#: faces of the Solvay photo that dlib finds alone in their crop (tests/library/... checked at writing)
STRANGERS = (3, 5)


def solvay_face(photos, dlib_backend, index: int) -> Image.Image:
    """A 300 px crop around one face of the Solvay photo, with a face's width of margin."""
    photo = load_image(photos["solvay"])
    x0, y0, x1, y1 = dlib_backend.detect(photo)[index].bbox
    side = x1 - x0
    return photo.crop((int(x0 - side), int(y0 - side), int(x1 + side), int(y1 + side))).resize(
        (300, 300), Image.Resampling.LANCZOS)


@pytest.fixture(scope="module")
def group(photos):
    return [load_image(photos[name]) for name in PEOPLE]


@pytest.fixture(scope="module")
def crowd(photos, dlib_backend):
    return [solvay_face(photos, dlib_backend, index) for index in STRANGERS]


REQUEST = GenerationRequest(prompt="six friends at a picnic", width=768, height=1152, steps=4, seed=11)


def compose(double, backend, group, **options):
    job = workflow.prepare(double, backend, REQUEST, group, **options)
    return job, workflow.finish(job, workflow.generate_images(job))


def test_a_group_of_six_is_composed_with_four_and_the_other_two_are_placed(dlib_backend, group, crowd, tmp_path):
    double = ComposingCustomizer(crowd=crowd)
    messages = []
    job, composed = compose(double, dlib_backend, group)
    assert job.conditioned == [0, 1, 2, 3] and job.place
    assert double.received == group[:4]  # the model saw the first four only

    before = composed.panels[0].report
    assert len(before.faces) == 6
    assert before.statuses[:4] == [MATCHED] * 4 and MATCHED not in before.statuses[4:]

    result = workflow.place_people(job, composed, progress=lambda *step: messages.append(step))
    after = result.panels[0].report
    assert after.statuses == [MATCHED] * 6
    assert after.labels == [f"Reference {n}" for n in range(1, 7)]
    # each placement was one repair conditioned on that person's photo alone
    assert [references for _, _, references in double.inpaints] == [[group[4]], [group[5]]]
    placement = result.placement
    assert placement.placed == ["Reference 5", "Reference 6"] and placement.composed is composed.panels[0]

    # the faces that were matched already are byte-identical: nothing of theirs was repainted
    old, new = np.asarray(placement.composed.image), np.asarray(result.panels[0].image)
    for ref in range(4):
        x0, y0, x1, y1 = (int(round(v)) for v in before.faces[before.assignment[ref]].bbox)
        assert np.array_equal(old[y0:y1, x0:x1], new[y0:y1, x0:x1]), ref
    assert not np.array_equal(old, new)

    # progress is one count over the whole job: composing, then each person
    totals = {total for _, total, _ in messages}
    assert len(totals) == 1 or messages[-1][0] == messages[-1][1]
    assert messages[-1][0] == messages[-1][1]
    assert [done for done, _, _ in messages] == sorted(done for done, _, _ in messages)
    said = [message for _, _, message in messages]
    assert "Placing person 5 of 6" in said and "Placing person 6 of 6" in said
    assert said.index("Placing person 5 of 6") < said.index("Placing person 6 of 6")

    # the report and the words list every person, and what was placed
    data = result.to_dict()
    assert data["placement"]["placed"] == ["Reference 5", "Reference 6"]
    assert data["placement"]["conditioned"] == [f"Reference {n}" for n in range(1, 5)]
    assert len(data["references"]) == 6
    lines = dict(workflow.describe(result))
    assert "Reference 5 and Reference 6 were left for placing" in lines["People"]
    saved = workflow.save_outputs(result, tmp_path)
    assert saved.all[0].name.startswith("placed_") and workflow.read_png_metadata(saved.placed)["placed"]


def test_generate_and_analyze_places_people_in_one_call(dlib_backend, group, crowd):
    double = ComposingCustomizer(crowd=crowd)
    result = workflow.generate_and_analyze(double, dlib_backend, REQUEST, group, condition_on=[0, 2, 4, 5])
    assert double.calls[0] == ("umo", 4)  # the scene, from the four chosen
    assert [references for _, _, references in double.inpaints] == [[group[1]], [group[3]]]
    assert result.placement.placed == ["Reference 2", "Reference 4"]
    assert result.panels[0].report.statuses == [MATCHED] * 6


def test_too_few_faces_says_so_and_keeps_the_image(dlib_backend, group):
    double = ComposingCustomizer()  # no strangers: four faces for six people
    job, composed = compose(double, dlib_backend, group)
    result = workflow.place_people(job, composed)
    placement = result.placement
    assert placement.too_few_faces.startswith("4 face(s) were found for 6 people, so nobody was placed")
    assert "Say the number of people in the prompt" in placement.too_few_faces
    assert result.panels[0] is composed.panels[0] and not double.inpaints
    report = result.panels[0].report
    faces = [face for face in report.assignment if face is not None]
    assert len(faces) == len(set(faces)) == 4  # never two people on one face
    assert dict(workflow.describe(result))["Too few faces"] == placement.too_few_faces


def test_candidates_holding_a_face_per_person_rank_first(dlib_backend, group, crowd):
    # seed 11 paints the four references only, seed 12 the whole group of six
    double = ComposingCustomizer(crowd=crowd, crowdless_seeds={11})
    job, composed = compose(double, dlib_backend, group, candidates=2)
    by_seed = {candidate.seed: candidate.report for candidate in composed.candidates}
    assert len(by_seed[11].faces) == 4 and len(by_seed[12].faces) == 6
    # the four-face scene scores higher: only the face count puts the other first
    assert by_seed[11].matching_score > by_seed[12].matching_score
    assert composed.candidates[0].seed == 12


def test_stop_during_placing_keeps_what_was_done(dlib_backend, group, crowd):
    double = ComposingCustomizer(crowd=crowd)
    job, composed = compose(double, dlib_backend, group)

    def stop_at_the_second_person(done, total, message):
        if message == "Placing person 6 of 6":
            raise GenerationCancelled("The generation was stopped: Stop was pressed or the page was closed.")

    result = workflow.place_people(job, composed, progress=stop_at_the_second_person)
    placement = result.placement
    assert placement.placed == ["Reference 5"] and "1 of 2 people were placed" in placement.stopped
    assert result.panels[0].report.statuses[4] == MATCHED and result.panels[0].report.statuses[5] != MATCHED
    assert dict(workflow.describe(result))["Stopped"] == placement.stopped


def test_the_job_yields_after_each_person(dlib_backend, group, crowd):
    double = ComposingCustomizer(crowd=crowd)
    job, composed = compose(double, dlib_backend, group)
    steps = list(workflow.placements(job, composed))
    assert [len(step.placement.outcomes) for step in steps] == [0, 1, 2]
    assert steps[0].panels[0].image is composed.panels[0].image
    assert "2 of 2 people still to place" in dict(workflow.describe(steps[0]))["Placing"]


@pytest.mark.parametrize("options, message", [
    (dict(references=9), "At most 8 people can be given (got 9)"),
    (dict(condition_on=[0, 1, 2, 3, 4]), "The model sees at most 4 people, and 5 were chosen"),
    (dict(condition_on=[1, 1]), "Reference 2 was chosen twice"),
    (dict(condition_on=[6]), "There is no reference at index 6"),
])
def test_group_refusals(dlib_backend, group, options, message):
    references = (group + group)[:options.pop("references", len(group))]
    with pytest.raises(InputError, match=re.escape(message)):
        workflow.prepare(ComposingCustomizer(), dlib_backend, REQUEST, references, **options)


def test_placing_off_only_scores_the_unseen(dlib_backend, group, crowd):
    job = workflow.prepare(ComposingCustomizer(crowd=crowd), dlib_backend, REQUEST, group, place=False)
    assert not job.place
    assert any("Reference 5, Reference 6: not shown to the model and not placed" in note for note in job.notes)
    assert params.MAX_PEOPLE == 8


def test_a_person_whose_repair_cannot_run_is_skipped_in_words_and_the_placing_goes_on(dlib_backend, group, crowd):
    # each person's repair is checked before its GPU call as any repair is: here against a GPU budget
    # the composition fitted but a repair of this double (10 s + 2 s a step) does not
    double = ComposingCustomizer(crowd=crowd)
    job, composed = compose(double, dlib_backend, group)
    job.gpu_seconds_limit = 15
    result = workflow.place_people(job, composed)
    placement = result.placement
    assert placement.placed == [] and not double.inpaints
    assert [reason.split(": ")[0] for reason in placement.skipped] == ["Reference 5", "Reference 6"]
    assert "This repair would need about 16 s on the GPU, more than the 15 s" in placement.skipped[0]
    assert ("Not placed", placement.skipped[1]) in workflow.describe(result)
    assert result.panels[0].image is composed.panels[0].image


def test_each_of_eight_people_has_a_colour_of_their_own(dlib_backend, group, crowd, output_dir):
    from umo_pipeline.analysis import analyze_identity
    from umo_pipeline.render import render_overlay, reference_colour

    assert len({reference_colour(person) for person in range(params.MAX_PEOPLE)}) == params.MAX_PEOPLE
    # eight people (the six and the two physicists), each painted in a tile of their own (at this size
    # dlib misses the astronaut's face: seven are found, each assigned to its own reference)
    eight = group + crowd
    picture = ComposingCustomizer().sample(replace(REQUEST, width=768, height=1536), eight, variant="umo",
                                           step_callback=None)
    report = analyze_identity(eight, picture, dlib_backend)
    assert report.statuses[1:] == [MATCHED] * 7
    overlay = render_overlay(picture, report)
    overlay.save(output_dir / "overlay_eight_people.png")
    edges = []
    for face in report.faces:
        x0, y0, x1, y1 = (round(v) for v in face.bbox)
        colours = [overlay.getpixel((x0, y)) for y in range(y0 + 4, y1 - 4)]
        edges.append("#{:02X}{:02X}{:02X}".format(*max(set(colours), key=colours.count)))
    assert edges == [reference_colour(report.face_identities[j]) for j in range(len(report.faces))]
    # the seventh and eighth people have colours the first six do not
    assert {reference_colour(6), reference_colour(7)} <= set(edges)
    assert len(set(edges)) == len(edges) == 7
