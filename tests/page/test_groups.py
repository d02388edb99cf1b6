"""A group past the model's limit through the app's /generate handler: the composed scene streams
first, then the image after each person placed, each person one GPU call whose ZeroGPU duration comes
from the formula a generation's does. The generator is the composing test double with strangers
(tests/library/workflow/test_placement.py), so who must be placed is known in advance; faces are
real and analysed by dlib."""

import html
from pathlib import Path

import gradio as gr
import pytest

from tests.composing_customizer import ComposingCustomizer
from tests.library.workflow.test_placement import PEOPLE, STRANGERS, solvay_face
from tests.page.test_app_handlers import NoProgress, final
from umo_app import zerogpu
from umo_app.handlers import DemoHandlers, on_the_page
from umo_app.outputs import CandidateShown, GenerateOutputs, laid_out, placement_shown
from umo_pipeline import workflow
from umo_pipeline.workflow.budget import reserved_seconds

#: six people at a size where the double's tiles keep every face whole
GROUP = dict(width=768, height=1152, steps=4, randomize_seed=False, seed=11)


@pytest.fixture(scope="module")
def crowd(photos, dlib_backend):
    return [solvay_face(photos, dlib_backend, index) for index in STRANGERS]


@pytest.fixture
def group_handlers(dlib_backend, crowd, tmp_path):
    return DemoHandlers(ComposingCustomizer(crowd=crowd), dlib_backend, downloads_root=tmp_path / "downloads")


def six(photos) -> dict:
    return {f"reference_{n + 1}": str(photos[name]) for n, name in enumerate(PEOPLE)}


class Progress(NoProgress):
    """NoProgress that keeps each update's message too."""

    def __call__(self, value, desc=None):
        self.updates.append((value, desc))


def test_a_group_streams_the_composed_scene_then_each_person(group_handlers, photos):
    progress = Progress()
    stream = list(group_handlers.generate("six friends at a picnic", **six(photos), **GROUP, progress=progress))
    assert len(stream) == 3  # composed, after person 5, after person 6
    composed, _, placed = stream
    assert composed.placed_slider is None and "2 of 2 people still to place" in composed.summary
    assert [row[-1] for row in placed.table] == ["matched"] * 6
    # the slider is the composed scene against the placed one; the table every person's change
    before, after = placed.placed_slider
    assert Path(before).name == "umo_seed11.png" and Path(after).name == "placed_seed11.png"
    assert [row[0] for row in placed.placement_table] == [f"Reference {n}" for n in range(1, 7)]
    assert [row[-1] for row in placed.placement_table[4:]] == ["not found -> matched"] * 2
    assert placed.report["placement"]["placed"] == ["Reference 5", "Reference 6"]
    assert "Placed: Face" in placed.summary.replace("**", "")
    assert "Reference 5 and Reference 6 were left for placing" in placed.summary
    assert [Path(p).name for p in placed.downloads][0] == "placed_seed11.png"
    # one count from 0 to the end, composing then placing
    counts = [value for value, _ in progress.updates]
    assert counts[0][0] == 0 and counts[-1][0] == counts[-1][1] and len({total for _, total in counts}) == 1
    said = [desc for _, desc in progress.updates]
    assert said.index("Composing") < said.index("Placing person 5 of 6") < said.index("Placing person 6 of 6")


def test_the_page_shows_the_placing_only_when_someone_was_placed(group_handlers, photos):
    page = on_the_page(group_handlers.generate, GenerateOutputs, lambda shown: laid_out(placement_shown(shown)))
    *_, last = page("six friends", **six(photos), **GROUP, progress=NoProgress())
    shown = GenerateOutputs(*last[:-1])
    assert shown.placed_slider["visible"] is True and shown.placement_table["visible"] is True
    # within the model's limit and nothing to repair: no placing shown
    *_, last = page("two friends", reference_1=str(photos["obama1"]), reference_2=str(photos["hopper"]),
                    width=768, height=384, steps=2, progress=NoProgress())
    shown = GenerateOutputs(*last[:-1])
    assert shown.placed_slider["visible"] is False and shown.placed_slider["value"] is None
    assert "People" not in shown.summary


def test_on_zerogpu_each_person_is_its_own_gpu_call_within_the_budget(group_handlers, photos, monkeypatch):
    # spies around the real entry points (they run through): which GPU calls a group makes, and the
    # duration ZeroGPU would reserve for each (spaces.GPU's `duration` callables)
    calls = []

    def spy(entry, duration):
        def call(job, *args):
            calls.append((entry.__name__, job, duration(job)))
            return entry(job, *args)
        return call

    monkeypatch.setenv("SPACES_ZERO_GPU", "true")
    monkeypatch.setattr(zerogpu, "generate_on_gpu", spy(zerogpu.generate_on_gpu, workflow.job_gpu_seconds))
    monkeypatch.setattr(zerogpu, "repair_on_gpu", spy(zerogpu.repair_on_gpu, workflow.repair_gpu_seconds))
    final(group_handlers.generate("six friends", **six(photos), **GROUP, candidates=2, progress=NoProgress()))

    assert [name for name, _, _ in calls] == ["generate_on_gpu", "repair_on_gpu", "repair_on_gpu"]
    compose, *people = calls
    assert len(compose[1].model_references) == 4 and compose[1].candidates == 2
    assert [len(job.faces) for _, job, _ in people] == [1, 1]  # one face per call
    for _, job, seconds in calls:
        assert seconds <= workflow.GPU_SECONDS_CAP
    # the same formula as a generation: reserved_seconds of the customizer's estimate
    assert compose[2] == reserved_seconds(workflow.estimated_gpu_seconds(
        compose[1].customizer, compose[1].request, 4, False, 2))
    assert [seconds for _, _, seconds in people] == [reserved_seconds(job.estimated_gpu_seconds())
                                                     for _, job, _ in people]


@pytest.mark.parametrize("choice, message", [
    ([1, 2, 3, 4, 5], "The model sees at most 4 people, and 5 were chosen"),
    ([7], "Reference 7 is empty: add its photo, or leave it out of the references to show the model"),
])
def test_who_the_model_sees_is_checked_in_words(group_handlers, photos, choice, message):
    with pytest.raises(gr.Error, match=message):
        final(group_handlers.generate("six friends", **six(photos), **GROUP, condition_on=choice,
                                      progress=NoProgress()))


def test_the_people_ticked_are_those_the_model_sees(group_handlers, photos):
    placed = final(group_handlers.generate("six friends", **six(photos), **GROUP, condition_on=[1, 3, 5, 6],
                                           progress=NoProgress()))
    assert group_handlers.customizer.calls[0] == ("umo", 4)
    assert placed.report["placement"]["conditioned"] == ["Reference 1", "Reference 3", "Reference 5", "Reference 6"]
    assert placed.report["placement"]["placed"] == ["Reference 2", "Reference 4"]


def test_placing_can_be_turned_off_and_on(group_handlers, photos):
    off = final(group_handlers.generate("six friends", **six(photos), **GROUP, place="off", progress=NoProgress()))
    assert off.placed_slider is None and "not shown to the model and not placed" in off.summary
    assert [row[-1] for row in off.table][4:] != ["matched", "matched"]
    # within the limit, asked for: a person whose face is wrong is placed too (here nobody is)
    on = final(group_handlers.generate("two friends", reference_1=str(photos["obama1"]),
                                       reference_2=str(photos["hopper"]), width=768, height=384, steps=2,
                                       randomize_seed=False, place="on", progress=NoProgress()))
    said = html.unescape(on.summary.replace("**", ""))
    assert "Placed: nobody: every person's face was matched already." in said


def test_a_click_on_a_candidate_shows_it_as_it_is_and_the_best_one_placed(group_handlers, photos):
    placed = final(group_handlers.generate("six friends", **six(photos), **GROUP, candidates=2, progress=NoProgress()))
    views = placed.candidate_views
    other = group_handlers.show_candidate_on_the_page(views, gr.SelectData(None, {"index": 1, "value": None}))
    shown = CandidateShown(*other[:len(CandidateShown._fields)])
    assert shown.placed_slider["visible"] is False and shown.placement_table["visible"] is False
    assert [row[-1] for row in shown.table][4:] != ["matched", "matched"]  # composed: two still to place
    best = group_handlers.show_candidate_on_the_page(views, gr.SelectData(None, {"index": 0, "value": None}))
    shown = CandidateShown(*best[:len(CandidateShown._fields)])
    assert shown.image["value"] == placed.image and shown.placed_slider["value"] == placed.placed_slider
    assert shown.placement_table["visible"] is True and [row[-1] for row in shown.table] == ["matched"] * 6
