"""OmniGen2Pipeline against the independent sampling loop in tests/omnigen2_reference.py, on tiny
random fp32 weights, plus the sizing rules and determinism."""

import pytest
import torch
from PIL import Image

from tests.library.customizers.omnigen2 import omnigen2_reference as reference
from umo_pipeline.customizers.omnigen2.pipeline import OmniGen2Pipeline, fit_size
from umo_pipeline.customizers.omnigen2.scheduler import (
    OmniGen2DPMSolverScheduler,
    OmniGen2EulerScheduler,
    shifted_times,
)
from umo_pipeline.customizers.omnigen2.tiny import build_tiny_omnigen2, save_tiny_omnigen2

SMALL = dict(max_pixels=64 * 64, max_input_image_side_length=64)


@pytest.fixture(scope="module")
def pipe():
    return build_tiny_omnigen2(seed=0)


@pytest.fixture(scope="module")
def faces(photos):
    return [Image.open(photos[name]) for name in ("obama1", "biden", "hopper")]


CASES = {
    # name: (references, text guidance, image guidance, cfg range)
    "text only, text guidance": (0, 5.0, 2.0, (0.0, 1.0)),
    "one reference, three passes": (1, 5.0, 2.0, (0.0, 1.0)),
    "two references, cfg range cut": (2, 5.0, 2.0, (0.0, 0.5)),
    "three references, text guidance only": (3, 4.0, 1.0, (0.25, 1.0)),
    "two references, dpmsolver++": (2, 5.0, 2.0, (0.0, 1.0)),
}


@pytest.mark.parametrize("case", CASES)
def test_pipeline_matches_the_independent_sampling_loop(pipe, faces, case):
    n_refs, text_g, image_g, cfg_range = CASES[case]
    refs = faces[:n_refs]
    solver = "dpmsolver++" if "dpmsolver" in case else "euler"
    kwargs = dict(width=96, height=64, text_guidance_scale=text_g, image_guidance_scale=image_g, cfg_range=cfg_range)
    euler = pipe.scheduler
    if solver == "dpmsolver++":
        pipe.scheduler = OmniGen2DPMSolverScheduler()
    try:
        ours = pipe(
            "the person in the first image and the person in the second image", ref_images=refs,
            negative_prompt="blurry", num_inference_steps=4, generator=torch.Generator().manual_seed(7),
            output_type="latent", **kwargs, **SMALL,
        ).images
    finally:
        pipe.scheduler = euler
    expected = reference.sample(
        pipe, "the person in the first image and the person in the second image", "blurry", refs,
        96, 64, 4, text_g, image_g, cfg_range, seed=7, max_pixels=SMALL["max_pixels"],
        max_side=SMALL["max_input_image_side_length"], solver=solver,
    )
    assert ours.shape == expected.shape
    torch.testing.assert_close(ours, expected, atol=1e-5, rtol=0)


def test_same_seed_same_image_and_new_seed_new_image(pipe, faces):
    def image(seed):
        return pipe("a person", ref_images=faces[:1], width=64, height=64, num_inference_steps=2,
                    generator=torch.Generator().manual_seed(seed), output_type="np", **SMALL).images

    a, b, c = image(1), image(1), image(2)
    assert (a == b).all() and abs(a - c).max() > 1e-3


def test_output_size_follows_the_request_or_the_single_reference(pipe, faces):
    two = pipe("x", ref_images=faces[:2], width=80, height=48, num_inference_steps=1, **SMALL).images[0]
    assert two.size == (80, 48)
    one = pipe("x", ref_images=faces[:1], width=80, height=48, num_inference_steps=1, **SMALL).images[0]
    w, h = faces[0].size
    assert one.size == fit_size(w, h, 64 * 64, 64)
    kept = pipe("x", ref_images=faces[:1], width=80, height=48, num_inference_steps=1, align_res=False,
                **SMALL).images[0]
    assert kept.size == (80, 48)


def test_reference_sizing_rules():
    assert fit_size(4000, 3000, 1024 * 1024) == (1168, 880)  # pixel budget
    assert fit_size(4000, 1000, 1024 * 1024, 1024) == (1024, 256)  # long side
    assert fit_size(500, 333, 1024 * 1024, 2048) == (496, 320)  # never enlarged, floored to 16


def test_schedule_is_shifted_towards_noise_for_large_images():
    t = shifted_times(50, 128 * 128)  # 1024x1024: m = 3.2
    assert t[0] == 0 and t[-1] < 1 and len(t) == 50
    assert t[25] == pytest.approx(0.5 / (3.2 - 3.2 * 0.5 + 0.5), rel=1e-6)
    assert (shifted_times(4, 40 * 40) == [0, 0.25, 0.5, 0.75]).all()  # m = 1: no shift


def test_one_step_lands_on_the_image_estimate_with_either_solver():
    x, v = torch.randn(1, 16, 4, 4), torch.randn(1, 16, 4, 4)
    for scheduler in (OmniGen2DPMSolverScheduler(), OmniGen2EulerScheduler()):
        scheduler.set_timesteps(1, latent_pixels=64)
        torch.testing.assert_close(scheduler.step(v, scheduler.timesteps[0], x)[0], x + v)


def test_more_than_five_references_is_refused(pipe, faces):
    with pytest.raises(ValueError, match="at most 5"):
        pipe("x", ref_images=faces * 2, num_inference_steps=1, **SMALL)


def test_from_pretrained_takes_torch_dtype_as_diffusers_does(tmp_path):
    """diffusers 0.42 still takes `torch_dtype` for `dtype`, with a FutureWarning, and refuses both."""
    folder = save_tiny_omnigen2(tmp_path / "OmniGen2")
    with pytest.warns(FutureWarning, match="torch_dtype"):
        loaded = OmniGen2Pipeline.from_pretrained(folder, torch_dtype=torch.bfloat16)
    assert loaded.transformer.dtype == loaded.vae.dtype == loaded.mllm.dtype == torch.bfloat16
    with pytest.raises(ValueError, match="both `dtype` and `torch_dtype`"):
        OmniGen2Pipeline.from_pretrained(folder, dtype=torch.float32, torch_dtype=torch.bfloat16)
