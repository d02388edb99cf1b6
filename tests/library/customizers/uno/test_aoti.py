"""Ahead-of-time compiled blocks (the ZeroGPU AoTI path) on the tiny model, with PyTorch's own
AOTInductor on the CPU (`TorchAOTI`; the `spaces` wrappers cannot be imported with a CPU-only
PyTorch): the compiled blocks match the eager ones, shapes outside the bounds and adapters without a
program run eagerly, and a failing program never fails a generation.

Only the single-stream block kind is compiled here (one AOTInductor build, ~30 s on 2 cores); the
double-stream kind takes the same path (bench/gpu_speed.py compiles both on a GPU).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from umo_pipeline.customizers.uno import aoti
from umo_pipeline.customizers.uno.customizer import VARIANT_ADAPTERS, load_tiny

SINGLE = "single_transformer_blocks"
BOUNDS = (16, 1024)
EXAMPLE = ((64, 64), 2)  # 16 target tokens + 2 x 400 reference tokens


@pytest.fixture(scope="module")
def references():
    rng = np.random.default_rng(1)
    return [Image.fromarray(rng.integers(0, 256, (80, 64, 3), dtype=np.uint8)) for _ in range(2)]


def latents(pipe, references, size=64):
    return pipe(prompt="two people", ref_images=references, height=size, width=size, num_inference_steps=2,
                generator=torch.Generator().manual_seed(2), output_type="latent").images


def test_bounds_cover_the_page_presets_and_reference_counts():
    low, high = aoti.image_token_bounds()
    assert low == 32 * 32  # 512 x 512, no reference
    assert high == 64 * 64 + 4 * 20 * 20  # 1024 x 1024 with four references at 320 px (more than one at 512)
    assert (768 // 16) ** 2 + 2 * 400 <= high  # the default: 768 x 768, two references


def test_a_new_size_preset_is_covered_without_touching_aoti(monkeypatch):
    from umo_pipeline import params

    monkeypatch.setitem(params.SIZE_PRESETS, "Tall 1024 x 1536", (1024, 1536))
    assert aoti.image_token_bounds()[1] == 64 * 96 + 4 * 20 * 20


def test_compiled_single_blocks_match_eager_and_fall_back_outside_bounds(tmp_path, references):
    model = load_tiny(mode="fused")
    pipe = model.pipe
    eager_small, eager_large = latents(pipe, references), latents(pipe, references, size=320)
    compiler = aoti.TorchAOTI(tmp_path)
    report = aoti.compile_packages(model, compiler, bounds=BOUNDS, kinds=[SINGLE], example=EXAMPLE)
    assert report == {f"{SINGLE}/plain": "compiled"}
    states = aoti.install(model, compiler, report, bounds=BOUNDS)
    assert set(states) == {"transformer_blocks", SINGLE} and not states["transformer_blocks"].programs
    single = states[SINGLE]

    compiled_small = latents(pipe, references)
    assert single.compiled_calls == 2 * len(pipe.transformer.single_transformer_blocks) and single.eager_calls == 0
    assert (compiled_small - eager_small).abs().max().item() <= 1e-4
    # 320 x 320 with two references: 400 + 2 x 320 tokens, beyond the bounds: eager, exact
    assert torch.equal(latents(pipe, references, size=320), eager_large)
    assert single.eager_calls == 2 * len(pipe.transformer.single_transformer_blocks)

    # a program that breaks mid-request: the block kind turns eager and the request still succeeds
    def broken(**kwargs):
        raise RuntimeError("simulated AOTInductor failure")

    single.programs[""][0] = broken
    assert torch.allclose(latents(pipe, references), eager_small, atol=1e-4)
    assert single.failure == "RuntimeError: simulated AOTInductor failure"
    calls = single.compiled_calls
    latents(pipe, references)
    assert single.compiled_calls == calls  # stays eager from then on


def test_compare_mode_uses_a_program_only_for_the_adapter_it_was_compiled_with(tmp_path, references):
    model = load_tiny(mode="compare")
    pipe = model.pipe
    expected = {}
    for variant in ("umo", "base"):
        pipe.set_adapters(VARIANT_ADAPTERS[variant])
        expected[variant] = latents(pipe, references)
    compiler = aoti.TorchAOTI(tmp_path)
    report = aoti.compile_packages(model, compiler, bounds=BOUNDS, kinds=[SINGLE], variants=["umo"], example=EXAMPLE)
    assert report == {f"{SINGLE}/umo": "compiled"}
    single = aoti.install(model, compiler, report, bounds=BOUNDS)[SINGLE]
    pipe.set_adapters(VARIANT_ADAPTERS["umo"])
    assert (latents(pipe, references) - expected["umo"]).abs().max().item() <= 1e-4
    compiled = single.compiled_calls
    assert compiled > 0
    pipe.set_adapters(VARIANT_ADAPTERS["base"])  # no program for UNO's adapter: eager, exact
    assert torch.equal(latents(pipe, references), expected["base"]) and single.compiled_calls == compiled


def test_a_failed_capture_is_reported_not_raised(tmp_path):
    model = load_tiny(mode="fused")
    # bounds that exclude the example's own shape: export refuses, the report says why
    report = aoti.compile_packages(model, aoti.TorchAOTI(tmp_path), bounds=(16, 64), kinds=[SINGLE],
                                   example=EXAMPLE)
    assert report[f"{SINGLE}/plain"].startswith("not compiled (")
    states = aoti.install(model, aoti.TorchAOTI(tmp_path), report, bounds=(16, 64))
    assert not any(state.programs for state in states.values())


def test_which_models_get_ahead_of_time_compilation():
    from umo_pipeline import load_customizer

    assert aoti.supported(load_tiny(mode="fused")) and aoti.supported(load_tiny(mode="compare"))
    assert not aoti.supported(load_tiny(mode="fused", fp8=True))  # fp8 storage on this CPU: casting hooks
    assert not aoti.supported(load_customizer("tiny-omnigen2"))


def test_the_app_keeps_serving_when_zerogpu_compilation_cannot_run(references):
    from umo_app import zerogpu

    model = load_tiny(mode="fused")
    label = model.label
    # off ZeroGPU with a CPU-only PyTorch, spaces' AoTI cannot even be imported: every kind is
    # reported as not compiled, nothing is installed, and the model generates as before
    report = zerogpu.compile_on_zerogpu(model, compile_in_worker=lambda directory: aoti.compile_packages(
        model, aoti.SpacesAOTI(directory), example=EXAMPLE))
    assert set(report) == {"transformer_blocks/plain", f"{SINGLE}/plain"}
    assert all(outcome.startswith("not compiled (") for outcome in report.values())
    assert model.label == label
    assert latents(model.pipe, references).isfinite().all()
    assert zerogpu.compile_on_zerogpu("a model that failed to load") is None
