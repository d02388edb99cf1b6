"""UNOPipeline on tiny random fp32 FLUX components: exactness against a plain reference loop,
UnoPE ids, UNO's schedule, reference preprocessing, seeds, batches, callbacks and input errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from PIL import Image

from tests.library.customizers.uno import uno_reference
from umo_pipeline.customizers.uno.pipeline import (
    UNOPipeline,
    output_size,
    preprocess_reference,
    reference_long_side,
    unope_position_ids,
    uno_mu,
)
from umo_pipeline.customizers.uno.tiny import build_tiny_components

PROMPT = "a photo of two people at the beach"


@pytest.fixture(scope="module")
def components():
    return build_tiny_components(seed=0)


@pytest.fixture(scope="module")
def pipe(components):
    pipeline = UNOPipeline(**components)
    pipeline.set_progress_bar_config(disable=True)
    return pipeline


@pytest.fixture(scope="module")
def embeds(pipe):
    prompt_embeds, pooled, _ = pipe.encode_prompt(PROMPT, "cpu")
    return prompt_embeds, pooled


@pytest.fixture(scope="module")
def images(photos):
    return {name: Image.open(path) for name, path in photos.items()}


def generate(pipe, embeds, seed=0, **kwargs):
    kwargs.setdefault("height", 64)
    kwargs.setdefault("width", 64)
    kwargs.setdefault("num_inference_steps", 2)
    kwargs.setdefault("output_type", "latent")
    prompt_embeds, pooled = embeds
    return pipe(prompt_embeds=prompt_embeds, pooled_prompt_embeds=pooled,
                generator=torch.Generator().manual_seed(seed), **kwargs).images


# --- exactness against the independent reference loop ---

CASES = {
    "no reference, 64x96": ([], 64, 96),
    "one portrait reference, 96x64": (["hopper"], 96, 64),
    "two references (tall, wide), 80x112": (["biden", "newton"], 80, 112),
    "three references (square, portrait, greyscale group), 64x64": (["astronaut", "gauss", "solvay"], 64, 64),
}


@pytest.mark.parametrize("case", CASES)
def test_matches_reference_loop(pipe, components, embeds, images, case):
    names, height, width = CASES[case]
    references = [images[name] for name in names]
    expected_latents, expected_image = uno_reference.sample(
        components, seed=7, references=references, height=height, width=width, steps=3, guidance=3.5,
        prompt_embeds=embeds[0], pooled=embeds[1],
    )
    final = {}

    def keep_latents(pipeline, step, timestep, tensors):
        final["latents"] = tensors["latents"]
        return {}

    image = generate(pipe, embeds, seed=7, ref_images=references, height=height, width=width, num_inference_steps=3,
                     guidance_scale=3.5, output_type="np", callback_on_step_end=keep_latents)[0]
    latents = final["latents"]

    assert latents.shape == (1, (height // 16) * (width // 16), 64)
    torch.testing.assert_close(latents, expected_latents, atol=1e-5, rtol=0)
    assert image.shape == (height, width, 3)
    np.testing.assert_allclose(image, expected_image, atol=1e-5, rtol=0)


def test_prompt_encoding_matches_reference(pipe, components, images):
    """A text prompt goes through T5 (512 padded tokens) and CLIP's pooled output, as UNO's does."""
    expected, _ = uno_reference.sample(components, seed=3, references=[images["obama1"]], height=64, width=64,
                                       steps=2, guidance=4.0, prompt=PROMPT)
    latents = pipe(PROMPT, ref_images=[images["obama1"]], height=64, width=64, num_inference_steps=2,
                   generator=torch.Generator().manual_seed(3), output_type="latent").images
    torch.testing.assert_close(latents, expected, atol=1e-5, rtol=0)


# --- the pieces of UNO's recipe, checked against hand-computed values ---

def test_unope_ids_hand_computed():
    ids = unope_position_ids((2, 3), [(1, 2), (2, 1)])
    expected = [
        # target 2x3 grid
        [0, 0, 0], [0, 0, 1], [0, 0, 2], [0, 1, 0], [0, 1, 1], [0, 1, 2],
        # reference 0 (1x2) starts after the target: rows +2, cols +3
        [0, 2, 3], [0, 2, 4],
        # reference 1 (2x1) starts after the target and reference 0: rows +3, cols +5
        [0, 3, 5], [0, 4, 5],
    ]
    assert ids.tolist() == expected


def test_pipeline_gives_transformer_unope_ids_and_all_reference_tokens(pipe, embeds, images):
    """Target 64x80 (4x5 tokens); astronaut 512x512 -> 320x320 (20x20), newton 768x432 -> 320x176 (11x20)."""
    seen = []

    def record(module, args, kwargs):
        seen.append((kwargs["hidden_states"].shape, kwargs["img_ids"].clone(), kwargs["txt_ids"].clone()))

    handle = pipe.transformer.register_forward_pre_hook(record, with_kwargs=True)
    try:
        generate(pipe, embeds, ref_images=[images["astronaut"], images["newton"]], height=64, width=80)
    finally:
        handle.remove()

    assert len(seen) == 2
    hidden_shape, img_ids, txt_ids = seen[0]
    assert hidden_shape == (1, 20 + 400 + 220, 64)
    assert img_ids.shape == (640, 3)
    assert torch.all(txt_ids == 0) and txt_ids.shape == (512, 3)
    assert torch.all(img_ids[:, 0] == 0)
    assert img_ids[19].tolist() == [0, 3, 4]                # last target token
    assert img_ids[20].tolist() == [0, 4, 5]                # first astronaut token: (4, 5) shift
    assert img_ids[20 + 399].tolist() == [0, 4 + 19, 5 + 19]
    assert img_ids[420].tolist() == [0, 4 + 20, 5 + 20]     # newton starts after astronaut's 20x20 grid
    assert img_ids[-1].tolist() == [0, 24 + 10, 25 + 19]


@pytest.mark.parametrize("size, tokens_over_64, mu", [(512, 16, 0.459375), (768, 36, 0.46276041666666666),
                                                      (1024, 64, 0.4675)])
def test_sigmas_follow_uno_schedule(pipe, size, tokens_over_64, mu):
    assert (size // 8) * (size // 8) // 256 == tokens_over_64
    assert uno_mu(size, size) == pytest.approx(0.5 + (tokens_over_64 - 256) * 0.65 / 3840, abs=1e-12)
    assert uno_mu(size, size) == pytest.approx(mu, abs=1e-12)
    steps = 25
    timesteps = pipe.prepare_timesteps(steps, size, size, "cpu")
    t = np.linspace(1, 0, steps + 1)
    with np.errstate(divide="ignore"):
        expected = np.exp(mu) / (np.exp(mu) + (1 / t - 1))
    np.testing.assert_allclose(pipe.scheduler.sigmas.numpy(), expected, atol=1e-6)
    np.testing.assert_allclose(timesteps.numpy(), expected[:-1] * 1000, atol=1e-3)


def test_uno_mu_differs_from_flux_pipeline():
    """FluxPipeline's mu at 768x768 uses the 2304 target tokens (~0.8467); UNO's is ~0.463."""
    from diffusers.pipelines.flux.pipeline_flux import calculate_shift

    assert calculate_shift(2304) == pytest.approx(0.8467, abs=1e-4)
    assert uno_mu(768, 768) == pytest.approx(0.4628, abs=1e-4)


@pytest.mark.parametrize("name, one, several", [
    ("astronaut", (512, 512), (320, 320)),   # 512x512
    ("hopper", (432, 512), (272, 320)),      # 512x600: 436.9 -> 436 -> crop 432; 273.07 -> 273 -> 272
    ("newton", (512, 288), (320, 176)),      # 768x432: 288 exactly; 180 -> crop 176
    ("biden", (224, 512), (128, 320)),       # 970x2204: 225.3 -> 224; 140.8 -> 128
    ("solvay", (512, 368), (320, 224)),      # 3000x2171 greyscale: 370.5 -> 368; 231.6 -> 224
])
def test_reference_preprocessing_sizes(images, name, one, several):
    assert reference_long_side(1) == 512
    assert reference_long_side(2) == reference_long_side(4) == 320
    single = preprocess_reference(images[name], reference_long_side(1))
    multi = preprocess_reference(images[name], reference_long_side(3))
    assert (single.size, single.mode) == (one, "RGB")
    assert multi.size == several


def test_reference_preprocessing_is_a_centre_crop_of_a_lanczos_resize(images):
    hopper = images["hopper"]
    resized = hopper.resize((436, 512), Image.LANCZOS)
    assert np.array_equal(np.asarray(preprocess_reference(hopper, 512)), np.asarray(resized)[:, 2:434])


# --- seeds, batches, callbacks, outputs ---

def test_seeds_reproduce_and_differ(pipe, embeds, images):
    refs = [images["obama1"]]
    first = generate(pipe, embeds, seed=11, ref_images=refs)
    again = generate(pipe, embeds, seed=11, ref_images=refs)
    other = generate(pipe, embeds, seed=12, ref_images=refs)
    assert torch.equal(first, again)
    assert (first - other).abs().max() > 0.1


def test_images_per_prompt_each_follow_their_generator(pipe, embeds, images):
    refs = [images["obama1"], images["biden"]]
    prompt_embeds, pooled = embeds
    batch = pipe(prompt_embeds=prompt_embeds, pooled_prompt_embeds=pooled, ref_images=refs, height=64, width=64,
                 num_inference_steps=2, num_images_per_prompt=2, output_type="latent",
                 generator=[torch.Generator().manual_seed(5), torch.Generator().manual_seed(6)]).images
    assert batch.shape == (2, 16, 64)
    for index, seed in enumerate((5, 6)):
        single = generate(pipe, embeds, seed=seed, ref_images=refs)
        torch.testing.assert_close(batch[index:index + 1], single, atol=1e-5, rtol=0)

    pictures = pipe(PROMPT, ref_images=refs, height=64, width=96, num_inference_steps=2, num_images_per_prompt=3,
                    generator=torch.Generator().manual_seed(0)).images
    assert [p.size for p in pictures] == [(96, 64)] * 3
    assert not np.array_equal(np.asarray(pictures[0]), np.asarray(pictures[1]))


def test_callback_fires_every_step_and_can_replace_latents(pipe, embeds):
    calls = []

    def on_step(pipeline, step, timestep, tensors):
        calls.append((step, float(timestep), sorted(tensors)))
        if step == 3:
            return {"latents": torch.zeros_like(tensors["latents"])}
        return {}

    latents = generate(pipe, embeds, num_inference_steps=4, callback_on_step_end=on_step,
                       callback_on_step_end_tensor_inputs=["latents", "prompt_embeds"])
    assert [c[0] for c in calls] == [0, 1, 2, 3]
    assert [c[1] for c in calls] == pytest.approx(pipe.scheduler.timesteps.tolist())
    assert all(c[2] == ["latents", "prompt_embeds"] for c in calls)
    assert torch.count_nonzero(latents) == 0


def test_interrupt_from_callback_stops_denoising(pipe, embeds):
    steps_run = []

    def stop_after_first(pipeline, step, timestep, tensors):
        steps_run.append(step)
        pipeline._interrupt = True
        return {}

    generate(pipe, embeds, num_inference_steps=5, callback_on_step_end=stop_after_first)
    assert steps_run == [0]


def test_output_types_and_sizes_floored_to_16(pipe, embeds):
    (picture,) = generate(pipe, embeds, height=100, width=70, output_type="pil")
    assert picture.size == (64, 96) and picture.mode == "RGB"
    array = generate(pipe, embeds, height=100, width=70, output_type="np")
    assert array.shape == (1, 96, 64, 3) and 0 <= array.min() and array.max() <= 1
    tensor = generate(pipe, embeds, height=100, width=70, output_type="pt")
    assert tensor.shape == (1, 3, 96, 64)
    np.testing.assert_allclose(tensor.permute(0, 2, 3, 1).numpy(), array, atol=1e-6)
    latents = generate(pipe, embeds, height=100.0, width=70)  # a UI number field's whole float is fine
    assert latents.shape == (1, 6 * 4, 64)
    assert output_size(100, 70) == (96, 64) and output_size(2048, 64) == (2048, 64)


def test_runs_without_text_components_when_embeddings_are_given(components, pipe, embeds, images):
    bare = UNOPipeline(**{**components, "text_encoder": None, "tokenizer": None,
                          "text_encoder_2": None, "tokenizer_2": None})
    bare.set_progress_bar_config(disable=True)
    refs = [images["gauss"]]
    torch.testing.assert_close(generate(bare, embeds, ref_images=refs), generate(pipe, embeds, ref_images=refs),
                               atol=0, rtol=0)
    with pytest.raises(ValueError, match="without its text encoders"):
        bare(PROMPT, height=64, width=64, num_inference_steps=1)


def test_save_and_reload_keeps_outputs(tmp_path, pipe, embeds):
    pipe.save_pretrained(tmp_path)
    reloaded = UNOPipeline.from_pretrained(tmp_path)
    reloaded.set_progress_bar_config(disable=True)
    # weights loaded from files may sit differently in memory, changing summation order in the last bit
    torch.testing.assert_close(generate(reloaded, embeds), generate(pipe, embeds), atol=1e-6, rtol=0)


# --- bad input, in the user's words ---

@pytest.mark.parametrize("kwargs, message", [
    (dict(height=48), "between 64 and 2048"),
    (dict(width=4096), "between 64 and 2048"),
    (dict(height=64.5), "whole number"),
    (dict(num_inference_steps=0), "at least 1"),
    (dict(num_images_per_prompt=0), "number of images"),
    (dict(output_type="jpeg"), "output_type"),
    (dict(callback_on_step_end_tensor_inputs=["noise_pred"]), "noise_pred"),
])
def test_bad_settings_raise_input_error(pipe, embeds, kwargs, message):
    with pytest.raises(ValueError, match=message):
        generate(pipe, embeds, **kwargs)


def test_bad_references_raise_input_error(pipe, embeds, images):
    with pytest.raises(ValueError, match="at most 4"):
        generate(pipe, embeds, ref_images=[images["obama1"]] * 5)
    with pytest.raises(ValueError, match="Reference image 2 is not an image"):
        generate(pipe, embeds, ref_images=[images["obama1"], "obama2.jpg"])
    sliver = images["newton"].resize((600, 10))
    with pytest.raises(ValueError, match="Reference image 1 .*too narrow"):
        generate(pipe, embeds, ref_images=[sliver])


def test_prompt_and_embeddings_are_exclusive(pipe, embeds):
    with pytest.raises(ValueError, match="either a prompt or prompt_embeds"):
        pipe(PROMPT, prompt_embeds=embeds[0], pooled_prompt_embeds=embeds[1], height=64, width=64)
    with pytest.raises(ValueError, match="either a prompt or prompt_embeds"):
        pipe(height=64, width=64)
    with pytest.raises(ValueError, match="pooled_prompt_embeds"):
        pipe(prompt_embeds=embeds[0], height=64, width=64)


# --- the tiny build itself ---

def test_tiny_build_is_deterministic_per_seed():
    first, again, other = (build_tiny_components(seed=s)["transformer"].state_dict() for s in (0, 0, 1))
    assert all(torch.equal(first[k], again[k]) for k in first)
    assert any(not torch.equal(first[k], other[k]) for k in first)


def test_tiny_build_has_flux_structure(components):
    transformer, vae = components["transformer"].config, components["vae"].config
    assert transformer.in_channels == 4 * vae.latent_channels == 64
    assert sum(transformer.axes_dims_rope) == transformer.attention_head_dim
    assert transformer.guidance_embeds
    assert len(vae.block_out_channels) == 4
    assert (vae.shift_factor, vae.scaling_factor) == (0.1159, 0.3611)
    assert components["scheduler"].config.use_dynamic_shifting
    assert components["tokenizer"].model_max_length == 77 and components["tokenizer_2"].model_max_length == 512


def test_lazy_import_from_package():
    import umo_pipeline

    assert umo_pipeline.UNOPipeline is UNOPipeline
    assert math.isfinite(uno_mu(768, 768))
