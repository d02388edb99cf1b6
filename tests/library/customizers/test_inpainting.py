"""Masked re-generation (image, mask_image, strength) in UNOPipeline and OmniGen2Pipeline, on the tiny
random-weight models: diffusers' invariants (strength 1 with a full mask is the plain generation, a
zero mask returns the image, the kept part of a half mask is the image's), the steps a strength runs,
every step's blend against a direct computation, and the errors for inputs that cannot be used."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from umo_pipeline.customizers.base import GenerationRequest, Inpainting
from umo_pipeline.customizers.diffusers_internals import unpack_latents
from umo_pipeline.customizers.omnigen2.tiny import build_tiny_omnigen2
from umo_pipeline.customizers.pipeline_inputs import denoising_start
from umo_pipeline.customizers.uno.pipeline import UNOPipeline
from umo_pipeline.customizers.uno.tiny import build_tiny_components
from umo_pipeline.workflow.files import generation_settings

WIDTH, HEIGHT = 96, 64
PROMPT = "a portrait photo"


class UNO:
    """UNOPipeline behind the calls these tests make; latents come back unpacked, (B, 16, H/8, W/8)."""

    name = "uno"

    def __init__(self):
        self.pipe = UNOPipeline(**build_tiny_components(seed=0))
        self.pipe.set_progress_bar_config(disable=True)
        self.embeds = self.pipe.encode_prompt(PROMPT, "cpu")[:2]

    def __call__(self, seed=3, steps=3, output_type="latent", **kwargs):
        kwargs.setdefault("width", WIDTH)
        kwargs.setdefault("height", HEIGHT)
        images = self.pipe(prompt_embeds=self.embeds[0], pooled_prompt_embeds=self.embeds[1],
                           num_inference_steps=steps, generator=torch.Generator().manual_seed(seed),
                           output_type=output_type, **kwargs).images
        return self.unpack(images, kwargs["height"], kwargs["width"]) if output_type == "latent" else images

    def unpack(self, latents, height=HEIGHT, width=WIDTH):
        return unpack_latents(latents, height, width, self.pipe.vae_scale_factor)

    def image_latents(self, image):
        return self.unpack(self.pipe.image_latents(image), image.height, image.width)

    def step_inputs(self):
        """(transformer, a hook that records (input latents, prediction) of each step) for a direct check."""
        records = []

        def hook(module, args, kwargs, output):
            tokens = kwargs["hidden_states"]
            records.append((self.unpack(tokens), self.unpack(output[0]), float(kwargs["timestep"][0])))

        return self.pipe.transformer, hook, records


class OmniGen2:
    """OmniGen2Pipeline behind the same calls (its latents are unpacked already)."""

    name = "omnigen2"

    def __init__(self):
        self.pipe = build_tiny_omnigen2(seed=0)

    def __call__(self, seed=3, steps=3, output_type="latent", **kwargs):
        kwargs.setdefault("width", WIDTH)
        kwargs.setdefault("height", HEIGHT)
        kwargs.setdefault("text_guidance_scale", 1.0)  # one transformer pass per step
        return self.pipe(PROMPT, num_inference_steps=steps, generator=torch.Generator().manual_seed(seed),
                         output_type=output_type, max_pixels=128 * 128, **kwargs).images

    def image_latents(self, image):
        return self.pipe.image_latents(image)

    def step_inputs(self):
        records = []

        def hook(module, args, kwargs, output):
            records.append((args[0].clone(), output[0], float(args[1][0])))

        return self.pipe.transformer, hook, records


@pytest.fixture(scope="module", params=[UNO, OmniGen2], ids=["uno", "omnigen2"])
def model(request):
    return request.param()


@pytest.fixture(scope="module")
def picture(photos):
    return Image.open(photos["hopper"]).convert("RGB").resize((WIDTH, HEIGHT), Image.LANCZOS)


def mask_of(values: np.ndarray) -> Image.Image:
    return Image.fromarray(values.astype(np.uint8), mode="L")


FULL = mask_of(np.full((HEIGHT, WIDTH), 255))
EMPTY = mask_of(np.zeros((HEIGHT, WIDTH)))


def left_half(width=WIDTH, height=HEIGHT) -> Image.Image:
    values = np.zeros((height, width))
    values[:, : width // 2] = 255
    return mask_of(values)


# --- the invariants ---


@pytest.mark.parametrize("output_type", ["latent", "np"])
def test_strength_one_with_a_full_mask_is_the_plain_generation(model, picture, output_type):
    plain = model(output_type=output_type)
    repainted = model(output_type=output_type, image=picture, mask_image=FULL, strength=1.0)
    plain, repainted = (torch.as_tensor(np.asarray(x)) for x in (plain, repainted))
    torch.testing.assert_close(repainted, plain, atol=1e-5, rtol=0)
    assert plain.abs().max() > 0.1  # a real generation, not an empty tensor


@pytest.mark.parametrize("strength", [1.0, 0.5])
def test_a_zero_mask_returns_the_image(model, picture, strength):
    kept = model(image=picture, mask_image=EMPTY, strength=strength)
    assert torch.equal(kept, model.image_latents(picture).expand_as(kept))


def test_a_half_mask_keeps_the_other_half_and_repaints_its_own(model, picture):
    image_latents = model.image_latents(picture)
    repainted = model(image=picture, mask_image=left_half(), strength=0.5)
    columns = WIDTH // 8
    assert torch.equal(repainted[..., columns // 2:], image_latents[..., columns // 2:])
    assert (repainted[..., : columns // 2] - image_latents[..., : columns // 2]).abs().mean() > 0.05


def test_the_image_sets_the_output_size(model, picture):
    """OmniGen2 would take a lone reference's size (align_res); an image to repaint decides instead."""
    extra = {"ref_images": [picture.resize((64, 128))]} if model.name == "omnigen2" else {}
    image = model(output_type="pil", image=picture, mask_image=left_half(), strength=0.6, **extra)[0]
    assert image.size == (WIDTH, HEIGHT)


@pytest.mark.parametrize("steps, strength, runs", [(4, 1.0, 4), (4, 0.5, 2), (5, 0.6, 3), (10, 0.05, 1)])
def test_a_strength_runs_its_share_of_the_last_steps(model, picture, steps, strength, runs):
    seen = []

    def count(pipe, step, timestep, tensors):
        seen.append((step, float(timestep)))
        return {}

    model(steps=steps, image=picture, mask_image=left_half(), strength=strength, callback_on_step_end=count)
    assert [step for step, _ in seen] == list(range(runs))
    assert steps - denoising_start(steps, strength) == runs
    request = GenerationRequest(prompt="x", width=WIDTH, height=HEIGHT, steps=steps,
                                inpaint=Inpainting(picture, left_half(), strength))
    assert request.denoising_steps == runs
    # the last `runs` timesteps of the whole schedule: a shorter repaint is a later start, not a coarser one
    full = []
    model(steps=steps, callback_on_step_end=lambda pipe, step, t, tensors: full.append(float(t)) or {})
    assert [t for _, t in seen] == full[steps - runs:]


def test_every_step_blends_as_computed_directly(model, picture):
    """Each step, by hand: an Euler step of the recorded prediction inside the mask, the image noised to
    the next level outside it, the area-averaged soft mask between, the image itself after the last."""
    seed, steps, strength = 5, 4, 0.75
    ramp = np.tile(np.linspace(0, 255, WIDTH), (HEIGHT, 1)).round()  # soft everywhere: 0 at the left, 255 right
    mask = torch.from_numpy(ramp.reshape(HEIGHT // 8, 8, WIDTH // 8, 8).mean(axis=(1, 3)) / 255.0).float()
    # the seeded noise, drawn as both pipelines draw it (diffusers' randn_tensor on the CPU is torch.randn)
    noise = torch.randn((1, 16, HEIGHT // 8, WIDTH // 8), generator=torch.Generator().manual_seed(seed))
    image_latents = model.image_latents(picture)
    transformer, hook, records = model.step_inputs()
    after = []
    handle = transformer.register_forward_hook(hook, with_kwargs=True)
    try:
        model(seed=seed, steps=steps, image=picture, mask_image=mask_of(ramp), strength=strength,
              callback_on_step_end=lambda pipe, step, t, tensors: after.append(tensors["latents"]) or {})
    finally:
        handle.remove()
    after = [model.unpack(x) if model.name == "uno" else x for x in after]
    runs = steps - denoising_start(steps, strength)
    assert len(records) == len(after) == runs == 3

    def noised(level):  # level: the share of noise (UNO's sigma, OmniGen2's 1 - t)
        return level * noise + (1 - level) * image_latents

    # UNO's transformer is given sigma, OmniGen2's the time t = 1 - sigma; both end at no noise
    noise_levels = [value if model.name == "uno" else 1 - value for _, _, value in records] + [0.0]
    torch.testing.assert_close(records[0][0], noised(noise_levels[0]), atol=1e-6, rtol=0)
    for step, (latents, prediction, _) in enumerate(records):
        level, next_level = noise_levels[step], noise_levels[step + 1]
        # UNO's velocity points from image to noise (sigma falls); OmniGen2's from noise to image (t rises)
        moved = latents + (next_level - level) * prediction if model.name == "uno" else \
            latents + (level - next_level) * prediction
        kept = image_latents if step == runs - 1 else noised(next_level)
        torch.testing.assert_close(after[step], (1 - mask) * kept + mask * moved, atol=1e-5, rtol=0)
        if step + 1 < runs:
            torch.testing.assert_close(records[step + 1][0], after[step], atol=0, rtol=0)
    assert 0 < float(mask.min()) and float(mask.max()) < 1  # every latent pixel is a real blend


def test_omnigen2_dpm_solver_starts_later_in_its_schedule_too(picture):
    """DPM-Solver++ keeps a history of image estimates: a late start must begin it afresh."""
    from umo_pipeline.customizers.omnigen2.scheduler import OmniGen2DPMSolverScheduler

    model = OmniGen2()
    model.pipe.scheduler = OmniGen2DPMSolverScheduler()
    plain = model(steps=4)
    torch.testing.assert_close(model(steps=4, image=picture, mask_image=FULL), plain, atol=1e-5, rtol=0)
    half = model(steps=4, image=picture, mask_image=left_half(), strength=0.5)
    assert torch.equal(half[..., WIDTH // 16:], model.image_latents(picture)[..., WIDTH // 16:])
    assert torch.isfinite(half).all() and not torch.equal(half, model(steps=4, image=picture,
                                                                       mask_image=left_half(), strength=1.0))


# --- bad input: ValueError in plain words (the customizers turn it into an InputError) ---


def test_inputs_that_cannot_be_used_are_refused(model, picture):
    small = picture.resize((64, 64))
    cases = [
        (dict(image=small, mask_image=FULL), "image to repaint is 64x64 pixels but 96x64 is generated"),
        (dict(image=picture, mask_image=left_half(64, 64)), "mask_image is 64x64 pixels but 96x64"),
        (dict(image=picture, mask_image=FULL, strength=0.0), "strength must be a number above 0 and at most 1"),
        (dict(image=picture, mask_image=FULL, strength=1.5), "not 1.5"),
        (dict(image=picture), "mask_image must be a PIL image, not NoneType"),
        (dict(image=np.asarray(picture), mask_image=FULL), "image to repaint must be a PIL image, not ndarray"),
        (dict(image=picture, mask_image=FULL, strength=np.True_), "strength must be a number"),
        # a strength with nothing to repaint would be ignored: refused, as a setting that does nothing
        (dict(strength=0.6), r"strength=0.6 was given without an image to repaint"),
        (dict(strength=1.0), r"strength=1.0 was given without an image to repaint"),
        # so small that steps x strength rounds away: no step would run (torch.cat of nothing before)
        (dict(image=picture, mask_image=FULL, strength=1e-17),
         r"strength=1e-17 leaves 0 of the 1 steps to run .*at least 1/1"),
    ]
    for kwargs, message in cases:
        with pytest.raises(ValueError, match=message):
            model(steps=1, **kwargs)


def test_a_tiny_strength_that_leaves_no_step_says_so_for_any_step_count(model, picture):
    with pytest.raises(ValueError, match=r"strength=1e-17 leaves 0 of the 28 steps to run .*1/28"):
        model(steps=28, image=picture, mask_image=FULL, strength=1e-17)


@pytest.mark.parametrize("number", [np.float32(0.5), np.float64(0.5), np.int64(1)], ids=repr)
def test_a_numpy_strength_is_taken_as_its_value(model, picture, number):
    steps = []
    model(steps=4, image=picture, mask_image=left_half(), strength=number,
          callback_on_step_end=lambda pipe, step, t, tensors: steps.append(step) or {})
    assert len(steps) == 4 - denoising_start(4, float(number))
    torch.testing.assert_close(model(steps=4, image=picture, mask_image=left_half(), strength=number),
                               model(steps=4, image=picture, mask_image=left_half(), strength=float(number)),
                               atol=0, rtol=0)


def test_uno_refuses_an_image_off_its_16_pixel_grid(photos):
    model = UNO()
    odd = Image.open(photos["hopper"]).convert("RGB").resize((100, 64))
    with pytest.raises(ValueError, match="image to repaint is 100x64 pixels but 96x64 is generated"):
        model(steps=1, width=100, height=64, image=odd, mask_image=mask_of(np.zeros((64, 100))))


def test_omnigen2_refuses_an_image_over_its_pixel_budget(photos):
    model = OmniGen2()
    big = Image.open(photos["hopper"]).convert("RGB").resize((256, 128))
    with pytest.raises(ValueError, match=r"\(256x128\) must have sides that are multiples of 16 and at most 16,384"):
        model(steps=1, width=256, height=128, image=big, mask_image=mask_of(np.zeros((128, 256))))


def test_the_png_settings_carry_the_strength_not_the_pictures(picture):
    request = GenerationRequest(prompt="x", width=WIDTH, height=HEIGHT,
                                inpaint=Inpainting(picture, left_half(), 0.6))
    settings = generation_settings(request)
    assert settings["inpaint_strength"] == 0.6 and "inpaint" not in settings
    json.dumps(settings)  # what the PNG text chunk and the JSON report hold
    assert "inpaint_strength" not in generation_settings(GenerationRequest(prompt="x"))
