"""Candidates: N seeds, each analysed, ranked by the matching score UMO was trained with.

The ranking runs on `ComposingCustomizer` with seed-dependent behaviour (some seeds mix the identities
like the base model, some paint no face), so which candidate must come first is known in advance and
the real dlib analysis has to find it. Batching is checked on the tiny random-weight pipelines: a batch
of seeds must give the images separate runs give (floats within 1e-5).
"""

import json
from types import SimpleNamespace

import numpy as np
import pytest

from tests.composing_customizer import ComposingCustomizer
from umo_pipeline import params, workflow
from umo_pipeline.customizers.base import GenerationRequest
from umo_pipeline.errors import InputError
from umo_pipeline.images import load_image


def _refs(photos, *names):
    return [load_image(photos[name]) for name in names]


REQUEST = GenerationRequest(prompt="two people", width=768, height=384, steps=2, seed=10)


def test_the_candidate_that_keeps_every_identity_ranks_first(dlib_backend, photos, tmp_path):
    # seed 10 and 12 mix the identities (reference 1 painted twice), 13 paints no face: only 11 keeps both
    customizer = ComposingCustomizer(mixing_seeds={10, 12}, faceless_seeds={13})
    steps = []
    result = workflow.generate_and_analyze(customizer, dlib_backend, REQUEST, _refs(photos, "obama1", "hopper"),
                                           candidates=4, progress=lambda done, total, _: steps.append((done, total)))
    assert customizer.seeds == [("umo", s) for s in (10, 11, 12, 13)]
    assert steps[-1] == (8, 8)  # no batching in this double: four runs of two steps
    # 10 and 12 paint the same picture: a tie, kept in seed order; no face at all comes last
    assert [(c.rank, c.seed) for c in result.candidates] == [(1, 11), (2, 10), (3, 12), (4, 13)]
    best = result.candidates[0]
    assert best.report.statuses == ["matched", "matched"]
    assert result.candidates[1].report.matching_score == result.candidates[2].report.matching_score
    assert best.report.matching_score > result.candidates[1].report.matching_score
    assert result.candidates[3].report.matching_score is None and result.candidates[3].report.faces == []
    # what every UI shows first is the best candidate, and its seed reproduces it alone
    assert result.panels is best.panels and result.request.seed == 11

    data = result.to_dict()
    assert data["seed"] == 11 and data["statuses"] == ["matched", "matched"]
    assert [c["seed"] for c in data["candidates"]] == [11, 10, 12, 13]
    assert [c["rank"] for c in data["candidates"]] == [1, 2, 3, 4]
    assert data["candidates"][0]["report"]["similarity"] == data["similarity"]
    assert data["candidates"][0]["matching_score"] > data["candidates"][1]["matching_score"]
    lines = dict(workflow.describe(result))
    assert lines["Best of 4 candidates"].startswith("ranked by UMO's matching score")
    assert "#1 seed 11: score" in lines["Best of 4 candidates"] and "#4 seed 13: no score" in lines["Best of 4 candidates"]

    saved = workflow.save_outputs(result, tmp_path)
    assert [p.name for p in saved.images] == [f"umo_seed11_rank{r}_seed{s}.png"
                                              for r, s in ((1, 11), (2, 10), (3, 12), (4, 13))]
    meta = workflow.read_png_metadata(saved.images[1])
    assert meta["seed"] == "10" and json.loads(meta["settings"])["seed"] == 10 and meta["candidate"] == "2 of 4"
    assert json.loads(saved.report.read_text())["candidates"][3]["seed"] == 13


def test_compare_mode_gives_base_and_umo_the_same_seeds_and_pairs_them(dlib_backend, photos):
    customizer = ComposingCustomizer(mixing_seeds={20})
    request = GenerationRequest(prompt="two people", width=768, height=384, steps=1, seed=20)
    result = workflow.generate_and_analyze(customizer, dlib_backend, request, _refs(photos, "obama1", "hopper"),
                                           compare=True, candidates=2)
    assert sorted(customizer.seeds) == [("base", 20), ("base", 21), ("umo", 20), ("umo", 21)]
    assert [c.seed for c in result.candidates] == [21, 20]
    for candidate in result.candidates:
        assert [p.variant for p in candidate.panels] == ["umo", "base"]
    # the deltas are the best candidate's: UMO kept both, the base model of the same seed did not
    assert result.deltas["id_sim"] > 0.02 and result.request.seed == 21
    assert result.to_dict()["candidates"][1]["comparison"]["base"]["statuses"][1] != "matched"
    # four columns on the sheet: each candidate's UMO and base side by side, best first
    from umo_pipeline.render import PANEL_WIDTH

    assert result.sheet.width >= 4 * PANEL_WIDTH


def test_one_candidate_is_todays_single_image(dlib_backend, photos):
    customizer = ComposingCustomizer()
    request = GenerationRequest(prompt="two people", width=768, height=384, steps=1, seed=7)
    result = workflow.generate_and_analyze(customizer, dlib_backend, request, _refs(photos, "obama1", "hopper"))
    assert len(result.candidates) == 1 and result.candidates[0].seed == 7 and customizer.seeds == [("umo", 7)]
    assert "candidates" not in result.to_dict() and "Best of" not in dict(workflow.describe(result))


def _report(score, similarity):
    return SimpleNamespace(matching_score=score, mean_id_sim=similarity)


def test_ties_are_broken_by_mean_id_sim_then_by_seed_order():
    reports = [_report(0.2, 0.5), _report(0.3, 0.4), _report(0.3, 0.6), _report(None, None), _report(0.2, 0.5)]
    assert workflow.rank_candidates(reports) == [2, 1, 0, 4, 3]
    # without references nothing can be scored: the seeds keep their order
    assert workflow.rank_candidates([_report(None, None)] * 3) == [0, 1, 2]


def test_candidate_seeds_are_consecutive_and_wrap():
    assert workflow.candidate_seeds(5, 3) == [5, 6, 7]
    assert workflow.candidate_seeds(params.MAX_SEED, 2) == [params.MAX_SEED, 0]


@pytest.mark.parametrize("value, words", [(0, "between 1 and 4"), (5, "between 1 and 4"),
                                          (2.5, "whole number"), ("many", "must be a number")])
def test_bad_candidate_counts_are_refused_before_any_generation(dlib_backend, value, words):
    customizer = ComposingCustomizer()
    with pytest.raises(InputError, match=f"Candidates {words}|Candidates must be a {words}|Candidates .*{words}"):
        workflow.prepare(customizer, dlib_backend, REQUEST, [], candidates=value)
    assert customizer.calls == []


def test_gpu_reservation_counts_candidates_and_keeps_the_single_image_default():
    customizer = ComposingCustomizer()
    request = GenerationRequest(prompt="x", steps=25)
    single = workflow.gpu_seconds(customizer, request, 2, compare=False)
    assert single == workflow.gpu_seconds(customizer, request, 2, False, 1)
    assert single < workflow.gpu_seconds(customizer, request, 2, False, 2) < workflow.gpu_seconds(
        customizer, request, 2, False, 4)


def test_a_job_estimated_over_the_gpu_time_limit_is_refused_before_any_generation(dlib_backend, photos):
    # the composing double estimates like the base Customizer: 10 s + 2 s per step and image
    customizer = ComposingCustomizer()
    request = GenerationRequest(prompt="two people", width=768, height=384, steps=50, seed=10)
    refs = [load_image(photos["obama1"])]
    assert workflow.estimated_gpu_seconds(customizer, request, 1, False, 4) == 410
    with pytest.raises(InputError, match=r"about 410 s on the GPU, more than the 300 s one request may use here\. "
                                         r"Fewer candidates or steps, a smaller size will fit\."):
        workflow.prepare(customizer, dlib_backend, request, refs, candidates=4,
                         gpu_seconds_limit=workflow.GPU_SECONDS_CAP)
    with pytest.raises(InputError, match="or Compare off will fit"):
        workflow.prepare(customizer, dlib_backend, request, refs, compare=True, candidates=2, gpu_seconds_limit=300)
    assert customizer.calls == []
    # within the limit (110 s), or with no limit (off ZeroGPU), the same settings are prepared
    assert workflow.prepare(customizer, dlib_backend, request, refs, gpu_seconds_limit=300).candidates == 1
    assert workflow.prepare(customizer, dlib_backend, request, refs, candidates=4).candidates == 4
    # what is reserved never exceeds the limit the check holds to
    assert workflow.gpu_seconds(customizer, request, 1, False, 3) == 300 == workflow.GPU_SECONDS_CAP


# -- batches: the same images as separate runs ---------------------------------------------------
SEEDS = [3, 4, 5]


@pytest.fixture(scope="module")
def tiny_uno():
    from umo_pipeline.customizers import load_customizer

    return load_customizer("tiny")


@pytest.fixture(scope="module")
def tiny_omnigen2():
    from umo_pipeline.customizers import load_customizer

    return load_customizer("tiny-omnigen2")


def _pipeline_outputs(customizer, references, **call):
    """(batched, separate) float images from the customizer's own pipeline, one generator per seed."""
    batched = customizer.pipe(ref_images=references, num_images_per_prompt=len(SEEDS),
                              generator=[customizer.generator(s) for s in SEEDS], output_type="np", **call).images
    separate = [customizer.pipe(ref_images=references, generator=customizer.generator(s), output_type="np",
                                **call).images[0] for s in SEEDS]
    return np.asarray(batched), np.stack(separate)


def test_uno_batch_equals_separate_runs(tiny_uno, photos):
    references = _refs(photos, "obama1", "hopper")
    batched, separate = _pipeline_outputs(tiny_uno, references, prompt="two people", height=128, width=128,
                                          num_inference_steps=2)
    assert batched.shape == (3, 128, 128, 3)
    np.testing.assert_allclose(batched, separate, rtol=0, atol=1e-5)
    assert np.abs(separate[0] - separate[1]).max() > 0.05  # different seeds, different images


def test_omnigen2_batch_equals_separate_runs(tiny_omnigen2, photos):
    references = _refs(photos, "obama1")
    batched, separate = _pipeline_outputs(tiny_omnigen2, references, prompt="the man in the first image",
                                          height=128, width=128, num_inference_steps=2, max_pixels=128 * 128,
                                          align_res=False)
    assert batched.shape == (3, 128, 128, 3)
    np.testing.assert_allclose(batched, separate, rtol=0, atol=1e-5)
    assert np.abs(separate[0] - separate[1]).max() > 0.05


@pytest.mark.parametrize("name", ["tiny_uno", "tiny_omnigen2"])
def test_customizer_batches_candidates_in_one_pipeline_call(name, request, photos):
    customizer = request.getfixturevalue(name)
    settings = GenerationRequest(prompt="a portrait", width=256, height=256, steps=2, seed=0,
                                 extra=dict(customizer.defaults.extra))
    references = _refs(photos, "obama1")
    progress = []
    batch = customizer.generate_batch(settings, references, SEEDS[:2], progress=lambda d, t: progress.append((d, t)))
    assert progress == [(1, 2), (2, 2)]  # one call: the steps are shared by the images
    assert len(batch) == 2
    for seed, image in zip(SEEDS, batch):
        alone = np.asarray(customizer.generate(GenerationRequest(**{**settings.__dict__, "seed": seed}), references))
        # the same floats (tested above) rounded to 8 bits: at most one level apart
        assert np.abs(np.asarray(image, dtype=int) - alone).max() <= 1


class BatchOutOfMemory(ComposingCustomizer):
    """Test double that claims batch support but runs out of GPU memory on every batch."""

    max_batch = 4

    def sample_batch(self, request, references, seeds, *, variant, step_callback):
        raise RuntimeError("CUDA out of memory. Tried to allocate 8.00 GiB")


def test_a_batch_that_runs_out_of_memory_is_retried_one_seed_at_a_time(photos):
    customizer = BatchOutOfMemory()
    request = GenerationRequest(prompt="two people", width=512, height=256, steps=2, seed=0)
    progress = []
    images = customizer.generate_batch(request, _refs(photos, "obama1", "hopper"), [1, 2, 3],
                                       progress=lambda d, t: progress.append((d, t)))
    assert customizer.seeds == [("umo", 1), ("umo", 2), ("umo", 3)] and len(images) == 3
    assert progress[-1] == (6, 6)


def test_cli_generate_candidates(photos, tmp_path, capsys):
    from umo_pipeline import cli
    from umo_pipeline.customizers import _LOADERS, register_customizer

    register_customizer("composing-mixing-4", lambda **options: ComposingCustomizer(mixing_seeds={4}))
    try:
        status = cli.main([
            "generate", "--model", "composing-mixing-4", "--backend", "dlib", "--prompt", "two people",
            "--ref", str(photos["obama1"]), "--ref", str(photos["hopper"]), "--seed", "4", "--candidates", "2",
            "--width", "768", "--height", "384", "--steps", "1", "--out", str(tmp_path),
        ])
    finally:
        _LOADERS.pop("composing-mixing-4")
    out = capsys.readouterr().out
    assert status == 0 and '"two people" seed 5, 768x384' in out and "Best of 2 candidates" in out
    report = json.loads((tmp_path / "report_seed5.json").read_text())
    assert [c["seed"] for c in report["candidates"]] == [5, 4]
    assert sorted(p.name for p in tmp_path.glob("umo_*.png")) == ["umo_seed5_rank1_seed5.png",
                                                                  "umo_seed5_rank2_seed4.png"]
    assert cli.main(["generate", "--model", "tiny", "--prompt", "x", "--candidates", "9"]) == cli.EXIT_BAD_INPUT
    assert "Candidates must be between 1 and 4" in capsys.readouterr().err


def test_gallery_click_shows_that_candidates_heatmap_and_table(dlib_backend, photos, tmp_path):
    import gradio as gr

    from umo_app.handlers import DemoHandlers

    customizer = ComposingCustomizer(mixing_seeds={30, 32})
    handlers = DemoHandlers(customizer, dlib_backend, downloads_root=tmp_path)
    *_, outputs = handlers.generate("two people", reference_1=str(photos["obama1"]),
                                    reference_2=str(photos["hopper"]), width=768, height=384, steps=1, seed=30,
                                    randomize_seed=False, candidates=3, compare=True, progress=lambda *a, **k: None)
    seed, summary, image, heatmap, overlay, table, downloads, report, *_, gallery, _, _, views = outputs
    assert seed == 31 and "Best of 3 candidates" in summary
    assert gallery["visible"] is True
    assert [caption.split(" · ")[::2] for _, caption in gallery["value"]] == [
        ["#1", "seed 31"], ["#2", "seed 30"], ["#3", "seed 32"]]
    assert gallery["value"][0][0] == image and [row[-1] for row in table] == ["matched", "matched"]
    assert [c["seed"] for c in report["candidates"]] == [31, 30, 32]
    assert len(downloads) == 3 * 2 + 2  # every candidate's UMO and base PNG, the sheet, the report

    shown = handlers.show_candidate(views, gr.SelectData(None, {"index": 1, "value": None}))
    shown_image, shown_heatmap, shown_overlay, shown_table, slider, base_heatmap, base_table, placed, _ = shown
    assert shown_image is views[1]["image"] and shown_heatmap is views[1]["heatmap"]
    assert shown_heatmap is not heatmap and [row[-1] for row in shown_table][1] != "matched"
    assert slider[1] is shown_image and base_heatmap is not None and placed is None
    with pytest.raises(gr.Error, match="Generate first"):
        handlers.show_candidate([], gr.SelectData(None, {"index": 0, "value": None}))
