"""Speed options on the tiny models: which machine gets what (fp8 kind, attention backend), fused QKV
and compiled blocks against the eager model, the cache preset, the flags, and the fp8 + LoRA numerics.

The fp8 compute kernels and FlashAttention-3 only run on a GPU (bench/gpu_speed.py measures them);
here their selection is tested, and the numerics of fp8 with a LoRA through real fp8 matmuls on the CPU.
"""

from __future__ import annotations

import argparse

import numpy as np
import pytest
import torch
from PIL import Image

from umo_pipeline import load_customizer
from umo_pipeline.customizers import speed
from bench.fp8_numerics import errors  # the measurement the library's fp8 rule rests on
from umo_pipeline.customizers.uno.customizer import VARIANT_ADAPTERS, load_tiny
from umo_pipeline.errors import InputError
from umo_pipeline.options import add_model_arguments, loader_options

HOPPER, ADA, AMPERE = (9, 0), (8, 9), (8, 0)


@pytest.fixture(scope="module")
def references():
    rng = np.random.default_rng(0)
    return [Image.fromarray(rng.integers(0, 256, (96, 64, 3), dtype=np.uint8)) for _ in range(2)]


def latents(customizer, references, steps=2, variant="umo"):
    """The final packed latents (no decoding), for tight comparisons."""
    if customizer.mode == "compare":
        customizer.pipe.set_adapters(VARIANT_ADAPTERS[variant])
    return pipe_latents(customizer.pipe, references, steps)


def pipe_latents(pipe, references, steps=2):
    return pipe(prompt="two people in a park", ref_images=references, height=64, width=64,
                           num_inference_steps=steps, generator=torch.Generator().manual_seed(5),
                           output_type="latent").images


# -- selection ------------------------------------------------------------------------------------
@pytest.mark.parametrize("capability, offload, torchao, kind", [
    (None, False, True, "storage"),      # CPU
    (AMPERE, False, True, "storage"),    # A100: no fp8 tensor cores
    (ADA, False, True, "compute"),       # L4 / RTX 4090
    (HOPPER, False, True, "compute"),    # H100 / H200
    ((10, 0), False, True, "compute"),   # Blackwell
    (HOPPER, True, True, "storage"),     # offload hooks do not move torchao's tensors
    (HOPPER, False, False, "storage"),   # torchao not installed
])
def test_fp8_kind_follows_the_gpu(capability, offload, torchao, kind):
    assert speed.fp8_kind(capability, offload=offload, torchao_available=torchao) == kind


@pytest.mark.parametrize("capability, dtype, kernels, backend", [
    (HOPPER, torch.bfloat16, True, speed.FA3_BACKEND),
    (HOPPER, torch.float16, True, speed.FA3_BACKEND),
    (HOPPER, torch.float32, True, speed.SDPA_BACKEND),  # FA3 has no float32 kernel
    (HOPPER, torch.bfloat16, False, speed.SDPA_BACKEND),
    (ADA, torch.bfloat16, True, speed.SDPA_BACKEND),    # FA3 is Hopper-only
    ((10, 0), torch.bfloat16, True, speed.SDPA_BACKEND),
    (None, torch.bfloat16, True, speed.SDPA_BACKEND),
])
def test_attention_backend_follows_the_gpu(capability, dtype, kernels, backend):
    assert speed.attention_backend(capability, dtype, kernels_available=kernels) == backend


def test_plan_per_mode_and_machine():
    common = dict(offload=False, compile=False, fast_cache=False, dtype=torch.bfloat16, torchao_available=True,
                  kernels_available=True)
    h200_fused = speed.plan_speed(mode="fused", fp8=False, capability=HOPPER, **common)
    assert (h200_fused.fuse_lora, h200_fused.fuse_qkv, h200_fused.fp8, h200_fused.attention) == (
        True, True, None, speed.FA3_BACKEND)
    # fp8 compute: the LoRA is fused in bf16 and the sum quantised, so QKV can be fused as well
    h200_fp8 = speed.plan_speed(mode="fused", fp8=True, capability=HOPPER, **common)
    assert (h200_fp8.fuse_lora, h200_fp8.fuse_qkv, h200_fp8.fp8) == (True, True, "compute")
    # fp8 storage (A100, CPU): the UMO LoRA stays unfused in bf16, so no fused QKV either
    a100_fp8 = speed.plan_speed(mode="fused", fp8=True, capability=AMPERE, **common)
    assert (a100_fp8.fuse_lora, a100_fp8.fuse_qkv, a100_fp8.fp8, a100_fp8.attention) == (
        False, False, "storage", speed.SDPA_BACKEND)
    # compare mode keeps two switchable adapters: nothing fused, whatever the GPU
    compare = speed.plan_speed(mode="compare", fp8=True, capability=HOPPER, **common)
    assert (compare.fuse_lora, compare.fuse_qkv, compare.fp8) == (False, False, "compute")
    no_qkv = speed.plan_speed(mode="fused", fp8=False, capability=HOPPER, supports_qkv_fusion=False,
                              supports_attention_backends=False, **common)
    assert (no_qkv.fuse_lora, no_qkv.fuse_qkv, no_qkv.attention) == (True, False, speed.SDPA_BACKEND)
    labels = speed.plan_speed(mode="fused", fp8=False, capability=HOPPER, **{**common, "compile": True,
                                                                           "fast_cache": True}).labels()
    assert labels == ["fused QKV", "FlashAttention-3", "compiled blocks", "Faster, approximate (First Block Cache)"]


def test_an_unavailable_attention_kernel_falls_back_to_sdpa():
    tiny = load_tiny(mode="fused")
    # a backend whose package is missing here: set_attention_backend refuses, the model keeps SDPA
    assert speed.set_attention(tiny.pipe.transformer, "_flash_3") == speed.SDPA_BACKEND
    assert speed.set_attention(tiny.pipe.transformer, speed.SDPA_BACKEND) == speed.SDPA_BACKEND


# -- mode switches on the tiny model ----------------------------------------------------------------
def test_each_mode_says_how_it_runs_on_this_cpu():
    fused, compare = load_tiny(mode="fused"), load_tiny(mode="compare")
    fp8_fused, fp8_compare = load_tiny(mode="fused", fp8=True), load_tiny(mode="compare", fp8=True)
    assert "fused QKV" in fused.label and "UMO LoRA fused" in fused.label and fused.fp8 is False
    assert "fused QKV" not in compare.label and "UNO vs UMO comparison" in compare.label
    for model in (fp8_fused, fp8_compare):  # no fp8 tensor cores on a CPU: storage only, and it says so
        assert model.fp8 == "storage" and "fp8 weights (storage only, bf16 compute)" in model.label
        assert "fp8 compute" not in model.label and "fused QKV" not in model.label
    assert "UMO LoRA unfused (fp8)" in fp8_fused.label
    assert not speed.has_lora_layers(fused.pipe.transformer) and speed.has_lora_layers(fp8_fused.pipe.transformer)


def test_fused_mode_fuses_qkv_and_matches_the_umo_adapter(references):
    fused = load_tiny(mode="fused")
    attention = fused.pipe.transformer.transformer_blocks[0].attn
    assert attention.fused_projections and not hasattr(attention, "to_q") and hasattr(attention, "to_added_qkv")
    single = fused.pipe.transformer.single_transformer_blocks[0].attn
    assert single.fused_projections and not hasattr(single, "to_k")
    # fused LoRA + fused QKV vs the UMO adapter on separate projections: the same function
    compare = load_tiny(mode="compare")
    assert torch.allclose(latents(fused, references), latents(compare, references, variant="umo"), atol=1e-4, rtol=0)


def test_fused_qkv_alone_is_exact_to_1e5(references):
    from umo_pipeline.customizers.uno.pipeline import UNOPipeline
    from umo_pipeline.customizers.uno.tiny import build_tiny_components

    pipe = UNOPipeline(**build_tiny_components(seed=3))
    pipe.set_progress_bar_config(disable=True)
    before = pipe_latents(pipe, references)
    assert speed.fuse_qkv(pipe.transformer) == 2  # one double-stream and one single-stream attention
    after = pipe_latents(pipe, references)
    assert (after - before).abs().max().item() <= 1e-5


def test_fused_qkv_refuses_while_lora_layers_are_present():
    compare = load_tiny(mode="compare")
    with pytest.raises(ValueError, match="LoRA fused first"):
        speed.fuse_qkv(compare.pipe.transformer)


def test_compiled_blocks_match_eager_with_cpu_inductor(references):
    eager = load_tiny(mode="fused")
    compiled = load_tiny(mode="fused", compile=True)
    assert "compiled blocks" in compiled.label
    block = compiled.pipe.transformer.transformer_blocks[0]
    assert block._compiled_call_impl is not None  # torch.compile's regional wrapper is in place
    torch._dynamo.reset()
    difference = (latents(compiled, references, steps=1) - latents(eager, references, steps=1)).abs().max().item()
    assert difference <= 1e-4


def test_compare_mode_compiles_and_still_switches_exactly(references):
    # aot_eager: dynamo + AOT autograd without inductor's C++ build, to keep this test quick; the
    # inductor numerics are tested above
    compare = load_tiny(mode="compare")
    umo_eager, base_eager = latents(compare, references, 1, "umo"), latents(compare, references, 1, "base")
    speed.compile_blocks(compare.pipe.transformer, backend="aot_eager")
    umo, base = latents(compare, references, 1, "umo"), latents(compare, references, 1, "base")
    again = latents(compare, references, 1, "umo")
    assert torch.allclose(umo, umo_eager, atol=1e-5) and torch.allclose(base, base_eager, atol=1e-5)
    assert torch.equal(umo, again) and not torch.allclose(umo, base)


def test_fast_cache_is_off_by_default_and_said_when_on(references):
    exact = load_tiny(mode="fused")
    assert "First Block Cache" not in exact.label and not exact.pipe.transformer.is_cache_enabled
    cached = load_tiny(mode="fused", fast_cache=True)
    assert "Faster, approximate (First Block Cache)" in cached.label and cached.pipe.transformer.is_cache_enabled
    # random tiny weights change too much per step for the default threshold: nothing is skipped
    assert torch.equal(latents(cached, references, 4), latents(exact, references, 4))


def test_fast_cache_skips_blocks_approximately_and_repeatably(references):
    exact, cached = load_tiny(mode="fused"), load_tiny(mode="fused")
    # a threshold this loose makes every step after the first reuse the cached residual
    speed.enable_fast_cache(cached.pipe.transformer, threshold=100.0)
    calls = []
    last_block = cached.pipe.transformer.single_transformer_blocks[-1]
    # the block is still called when skipped (its hook returns the cached result): count its own work
    handle = last_block.proj_out.register_forward_pre_hook(lambda module, args: calls.append(1))
    first = latents(cached, references, 4)
    skipped_steps = 4 - len(calls)
    second = latents(cached, references, 4)
    handle.remove()
    assert skipped_steps == 3  # only the first step ran the tail of the network
    assert torch.isfinite(first).all() and torch.equal(first, second)  # the cache is reset for every image
    assert not torch.allclose(first, latents(exact, references, 4), atol=1e-3)  # approximate: it changes the image


def test_omnigen2_compiles_its_lumina2_blocks_and_refuses_the_cache_preset():
    model = load_customizer("tiny-omnigen2", mode="fused")
    assert speed.repeated_block_names(model.pipe.transformer)[:1] == ["noise_refiner.0"]
    assert "fused QKV" not in model.label  # Lumina2's attention reads separate Q, K, V
    with pytest.raises(InputError, match="does not take the option.s. fast_cache"):
        load_customizer("tiny-omnigen2", fast_cache=True)
    # aot_eager for speed (see above); the blocks run through dynamo and give the eager result
    transformer = model.pipe.transformer
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(1, 16, 8, 8, generator=generator)
    text, mask = torch.randn(1, 6, transformer.config.text_feat_dim, generator=generator), torch.ones(1, 6)
    ref = [torch.randn(16, 8, 6, generator=generator)]
    eager = transformer(x, torch.tensor([0.3]), text, mask, ref)[0]
    speed.compile_blocks(transformer, backend="aot_eager")
    assert torch.allclose(transformer(x, torch.tensor([0.3]), text, mask, ref)[0], eager, atol=1e-5)


def test_flags_reach_the_loaders():
    parser = argparse.ArgumentParser()
    add_model_arguments(parser, default_model="tiny")
    assert loader_options(parser.parse_args([])) == {}
    options = loader_options(parser.parse_args(["--compile", "--fast-cache", "--fp8"]))
    assert options == {"compile": True, "fast_cache": True, "fp8": True}


# -- fp8 and the LoRA: real fp8 matmuls on the CPU --------------------------------------------------
def test_fp8_compute_keeps_a_fused_lora_as_well_as_an_unfused_one():
    for weight_std in (0.02, 0.002):
        table = errors(0.01, weight_std=weight_std, features=512, tokens=256, rank=32)
        fused_error, fused_kept = table["fp8 compute, fused"]
        unfused_error, _ = table["fp8 compute, LoRA unfused"]
        # per-row scales: the fused sum is rounded like the base alone, so neither output is further
        # from the exact one, and the LoRA's effect is all there on average
        assert fused_error < 0.05 and abs(fused_error - unfused_error) < 0.1 * unfused_error
        assert abs(fused_kept - 1.0) < 0.05
    # without a scale (storage), small weights fall into fp8's coarse subnormal range
    storage_error, _ = errors(0.01, weight_std=0.002, features=512, tokens=256, rank=32)["fp8 storage, fused"]
    assert storage_error > 4 * fused_error
