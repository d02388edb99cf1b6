"""UMO-OmniGen2 as a Customizer: loading (local files in the published layout, offline failures),
base-vs-UMO comparison, fused mode, settings, cost estimate, and the app's workflow end to end."""

import time

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

from umo_pipeline.customizers.base import GenerationRequest, Inpainting
from umo_pipeline.customizers.omnigen2.customizer import (
    OmniGen2Customizer,
    load_tiny_omnigen2,
    load_umo_omnigen2,
)
from umo_pipeline.customizers.omnigen2.lora import random_omnigen2_lora
from umo_pipeline.customizers.omnigen2.tiny import build_tiny_omnigen2, save_tiny_omnigen2
from umo_pipeline.errors import InputError, WeightsUnavailable

REQUEST = GenerationRequest(prompt="the man in the first image and the man in the second image", width=256,
                            height=256, steps=2, guidance=5.0, seed=3)


@pytest.fixture(scope="module")
def faces(photos):
    return [Image.open(photos["obama1"]), Image.open(photos["biden"])]


@pytest.fixture(scope="module")
def compare():
    return load_tiny_omnigen2(mode="compare")


def pixels(image):
    return np.asarray(image, dtype=np.int16)


def test_declares_what_the_ui_needs(compare):
    assert compare.max_references == 5
    assert compare.extra_settings == ("image_guidance", "cfg_range_start", "cfg_range_end")
    assert compare.variants == ("umo", "base") and compare.is_test_model
    assert "first image" in compare.prompt_tips
    d = compare.defaults
    assert (d.steps, d.guidance, d.extra["image_guidance"], d.width) == (50, 5.0, 2.0, 1024)


def test_base_and_umo_differ_and_switching_back_reproduces(compare, faces):
    umo = compare.generate(REQUEST, faces, variant="umo")
    base = compare.generate(REQUEST, faces, variant="base")
    again = compare.generate(REQUEST, faces, variant="umo")
    assert umo.size == (256, 256) and umo.mode == "RGB"
    assert np.abs(pixels(umo) - pixels(base)).max() > 10
    assert (pixels(umo) == pixels(again)).all()


def test_fused_mode_matches_the_umo_adapter(compare, faces):
    fused = load_tiny_omnigen2(mode="fused")
    assert fused.variants == ("umo",)
    a, b = compare.generate(REQUEST, faces, variant="umo"), fused.generate(REQUEST, faces)
    assert np.abs(pixels(a) - pixels(b)).max() <= 2  # fusing changes rounding only
    with pytest.raises(InputError, match="offers umo"):
        fused.generate(REQUEST, faces, variant="base")


def test_loads_a_checkpoint_folder_in_the_published_layout(tmp_path, compare, faces):
    folder = save_tiny_omnigen2(tmp_path / "OmniGen2")
    lora = random_omnigen2_lora(build_tiny_omnigen2().transformer, rank=4, seed=1, std=0.3)
    save_file(lora, str(tmp_path / "UMO_OmniGen2.safetensors"))
    loaded = load_umo_omnigen2(model_path=folder, lora_path=tmp_path / "UMO_OmniGen2.safetensors",
                               device="cpu", dtype="float32")
    assert loaded.name == "umo-omnigen2" and not loaded.is_test_model and loaded.max_pixels == 1024 * 1024
    loaded.max_pixels = compare.max_pixels  # the tiny build samples small; compare like with like
    # same weights as the in-memory tiny build, so the same picture at the same settings
    small = GenerationRequest(**{**REQUEST.__dict__, "width": 256, "height": 256})
    for variant in ("umo", "base"):
        ours, expected = loaded.generate(small, faces, variant=variant), compare.generate(small, faces, variant=variant)
        assert (pixels(ours) == pixels(expected)).all()


def test_offline_without_weights_fails_fast_naming_what_is_missing(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("UMO_OMNIGEN2_PATH", raising=False)
    monkeypatch.delenv("UMO_OMNIGEN2_LORA", raising=False)
    start = time.monotonic()
    with pytest.raises(WeightsUnavailable) as error:
        load_umo_omnigen2(device="cpu", cache_dir=tmp_path)
    assert time.monotonic() - start < 5
    assert "OmniGen2/OmniGen2" in str(error.value) and "UMO_OmniGen2.safetensors" in str(error.value)
    assert "UMO_OMNIGEN2_PATH" in str(error.value)


def test_incomplete_local_folder_and_missing_lora_are_reported(tmp_path, monkeypatch):
    folder = tmp_path / "OmniGen2"
    (folder / "transformer").mkdir(parents=True)
    (folder / "model_index.json").write_text("{}")
    monkeypatch.setenv("UMO_OMNIGEN2_LORA", str(tmp_path / "nowhere.safetensors"))
    with pytest.raises(WeightsUnavailable, match="nowhere.safetensors does not exist"):
        load_umo_omnigen2(model_path=folder, device="cpu")
    save_file({"x": torch.zeros(1)}, str(tmp_path / "lora.safetensors"))
    with pytest.raises(WeightsUnavailable, match="lacks vae/, scheduler/, mllm/, processor/"):
        load_umo_omnigen2(model_path=folder, lora_path=tmp_path / "lora.safetensors", device="cpu")


@pytest.mark.parametrize("extra, message", [
    ({"cfg_range_start": 0.8, "cfg_range_end": 0.2}, "cfg range"),
    ({"image_guidance": -1.0}, "Image guidance must be between 1 and 5"),
    ({"true_cfg": 2.0}, "no setting called true_cfg"),
])
def test_bad_settings_are_refused_in_plain_words(compare, faces, extra, message):
    with pytest.raises(InputError, match=message):
        compare.generate(GenerationRequest(**{**REQUEST.__dict__, "extra": extra}), faces)


def test_six_references_are_refused(compare, faces):
    with pytest.raises(InputError, match="at most 5"):
        compare.generate(REQUEST, faces * 3)


def test_progress_reports_every_step(compare, faces):
    seen = []
    compare.generate(REQUEST, faces[:1], progress=lambda done, total: seen.append((done, total)))
    assert seen == [(1, 2), (2, 2)]


def test_inpainting_samples_within_the_pixel_budget_and_keeps_the_unmasked_picture(compare, faces, photos,
                                                                                    monkeypatch):
    """The tiny build samples at most 128x128: a 256x256 picture is repainted at 128x128 and scaled back."""
    picture = Image.open(photos["hopper"]).convert("RGB").resize((256, 256), Image.LANCZOS)
    with torch.no_grad():
        latents = compare.pipe.image_latents(picture.resize((128, 128), Image.LANCZOS))
        round_trip = compare.pipe.decode_latents(latents, 128, 128, "pil")[0].resize((256, 256), Image.BILINEAR)
    nothing, right_half = Image.new("L", (256, 256), 0), Image.new("L", (256, 256), 0)
    right_half.paste(255, (128, 0, 256, 256))
    seen, decoded = [], []
    decode = compare.pipe.decode_latents
    monkeypatch.setattr(compare.pipe, "decode_latents",
                        lambda latents, *a: decoded.append(latents) or decode(latents, *a))

    def repaint(mask):
        request = GenerationRequest(**{**REQUEST.__dict__, "steps": 4,
                                       "inpaint": Inpainting(picture, mask, 0.5)})
        return pixels(compare.generate(request, faces[:1], progress=lambda *step: seen.append(step)))

    assert (repaint(nothing) == pixels(round_trip)).all()
    assert seen == [(1, 2), (2, 2)]  # 4 steps at strength 0.5
    repaint(right_half)
    # the kept half's latents are the picture's exactly (the tiny VAE's decoder, with its group norms,
    # spreads some of the repainted half over the whole picture, so pixels are not compared here)
    assert torch.equal(decoded[-1][..., :8], latents[..., :8])
    assert (decoded[-1][..., 8:] - latents[..., 8:]).abs().mean() > 0.05


def test_cost_estimate_counts_three_passes_and_reproduces_the_published_a800_times(monkeypatch):
    from umo_pipeline.customizers.omnigen2 import customizer as module

    real = OmniGen2Customizer(object(), name="umo-omnigen2", label="x", mode="compare", device="cuda")
    request = real.defaults
    monkeypatch.setattr(module, "EFFECTIVE_FLOPS", 1.6e14)  # the authors' A800
    one, two = real.estimate_seconds(request, 1), real.estimate_seconds(request, 2)
    assert one == pytest.approx(67, rel=0.15) and two == pytest.approx(99, rel=0.15)
    assert real.estimate_seconds(request, 1, n_variants=2) == pytest.approx(2 * one)
    assert len(module.step_tokens(1024, 1024, 4096, 1)) == 3 and len(module.step_tokens(1024, 1024, 0, 0)) == 2


def test_app_workflow_end_to_end_with_identity_analysis(compare, faces):
    from umo_pipeline.faces import get_face_backend
    from umo_pipeline.workflow import generate_and_analyze, gpu_seconds

    request = GenerationRequest(prompt=REQUEST.prompt, width=256, height=256, steps=2, guidance=5.0, seed=1,
                                extra={"image_guidance": 2.0, "cfg_range_start": 0.0, "cfg_range_end": 1.0})
    result = generate_and_analyze(compare, get_face_backend("dlib"), request, faces,
                                  reference_names=["Obama", "Biden"], compare=True)
    assert [p.variant for p in result.panels] == ["umo", "base"]
    assert [p.title for p in result.panels] == ["UMO-OmniGen2", "OmniGen2 (no UMO)"]
    assert all(p.image.size == (256, 256) and p.heatmap is not None for p in result.panels)
    assert result.sheet is not None and "tiny" in result.model
    assert gpu_seconds(compare, request, 2, compare=True) >= 20


def test_registered_names_load_through_load_customizer(tmp_path, monkeypatch):
    from umo_pipeline.customizers import available_customizers, load_customizer

    assert {"umo-omnigen2", "tiny-omnigen2"} <= set(available_customizers())
    tiny = load_customizer("tiny-omnigen2", mode="fused", fp8=True)
    assert isinstance(tiny, OmniGen2Customizer) and "fp8 weights" in tiny.label
    # under fp8 storage the UMO LoRA stays an unfused adapter in the compute dtype
    assert "UMO LoRA unfused (fp8)" in tiny.label
    assert {p.dtype for n, p in tiny.pipe.transformer.named_parameters() if ".lora_" in n} == {torch.float32}
    assert tiny.generate(REQUEST, []).size == (256, 256)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(WeightsUnavailable):
        load_customizer("umo-omnigen2", device="cpu", cache_dir=tmp_path)


def test_unknown_mode_and_offload_without_cuda_fail_before_loading(tmp_path):
    with pytest.raises(InputError, match="Unknown mode"):
        load_umo_omnigen2(mode="fast", device="cpu", cache_dir=tmp_path)
    if not torch.cuda.is_available():
        from umo_pipeline.errors import GenerationError

        with pytest.raises(GenerationError, match="needs a CUDA GPU"):
            load_umo_omnigen2(offload=True, device="cpu", cache_dir=tmp_path)


def test_dpm_solver_option_changes_the_sampler_not_the_interface(faces):
    from umo_pipeline.customizers.omnigen2.scheduler import OmniGen2DPMSolverScheduler

    dpm = load_tiny_omnigen2(mode="fused", solver="dpmsolver++")
    assert isinstance(dpm.pipe.scheduler, OmniGen2DPMSolverScheduler) and "DPM-Solver++" in dpm.label
    assert dpm.generate(REQUEST, faces[:1]).size == (256, 256)
    with pytest.raises(InputError, match="Unknown solver"):
        load_tiny_omnigen2(solver="heun")


def test_a_too_narrow_reference_is_an_input_error(compare):
    from PIL import Image

    sliver = Image.new("RGB", (2000, 20), "white")
    with pytest.raises(InputError, match="Reference image 1 .2000x20. is too narrow"):
        compare.generate(REQUEST, [sliver])
