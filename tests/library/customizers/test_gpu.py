"""The CUDA code paths the CPU tests cannot reach, on the tiny models: both customizers on the GPU in
every memory mode (compare, fused, fp8, model CPU offload) with exact base/UMO switching, the fp8 kind
this GPU gets, and compiled blocks (inductor on CUDA) against eager. Skipped without a CUDA GPU;
bench/gpu_speed.py runs this file first on a lent GPU."""

from __future__ import annotations

import gc

import numpy as np
import pytest
import torch
from PIL import Image

from umo_pipeline.customizers import GenerationRequest, load_customizer, speed

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")

MEMORY_MODES = [
    ("tiny", {}), ("tiny", {"mode": "fused"}), ("tiny", {"fp8": True}),
    ("tiny", {"mode": "fused", "fp8": True, "dtype": "bfloat16"}), ("tiny", {"offload": True}),
    ("tiny-omnigen2", {}), ("tiny-omnigen2", {"mode": "fused"}), ("tiny-omnigen2", {"fp8": True}),
    ("tiny-omnigen2", {"offload": True}),
]


@pytest.fixture(scope="module")
def references():
    rng = np.random.default_rng(0)
    return [Image.fromarray(rng.integers(0, 256, (96, 64, 3), dtype=np.uint8)) for _ in range(2)]


@pytest.fixture(autouse=True)
def free_the_gpu():
    yield
    torch._dynamo.reset()
    gc.collect()
    torch.cuda.empty_cache()


def case_id(case) -> str:
    name, options = case
    return f"{name}-" + (",".join(f"{key}={value}" for key, value in options.items()) or "compare")


@pytest.mark.parametrize("name, options", MEMORY_MODES, ids=[case_id(case) for case in MEMORY_MODES])
def test_each_memory_mode_draws_an_image_and_switches_exactly(name, options, references):
    customizer = load_customizer(name, device="cuda", **options)
    request = GenerationRequest(prompt="two friends at a cafe", width=256, height=256, steps=4, seed=7,
                                guidance=customizer.defaults.guidance)
    first = customizer.generate(request, references, variant="umo")
    pixels = np.asarray(first, dtype=np.float32)
    assert first.size == (256, 256) and np.isfinite(pixels).all() and pixels.std() > 1.0
    if "base" in customizer.variants:
        base = customizer.generate(request, references, variant="base")
        again = customizer.generate(request, references, variant="umo")
        assert np.array_equal(np.asarray(first), np.asarray(again))  # back to UMO: the same image
        assert not np.array_equal(np.asarray(first), np.asarray(base))


def test_fp8_is_the_kind_this_gpu_allows():
    tiny = load_customizer("tiny", device="cuda", mode="fused", fp8=True, dtype="bfloat16")
    assert tiny.fp8 == speed.fp8_kind(speed.cuda_capability("cuda"))
    offloaded = load_customizer("tiny", device="cuda", mode="fused", fp8=True, offload=True)
    assert offloaded.fp8 == "storage"  # offload hooks do not move torchao's tensors


def test_compiled_blocks_give_the_eager_latents_on_the_gpu(references):
    def latents(customizer):
        return customizer.pipe(prompt="two people in a park", ref_images=references, height=64, width=64,
                               num_inference_steps=2, generator=torch.Generator().manual_seed(5),
                               output_type="latent").images

    eager = latents(load_customizer("tiny", device="cuda", mode="fused"))
    compiled = load_customizer("tiny", device="cuda", mode="fused", compile=True)
    assert "compiled blocks" in compiled.label
    assert (latents(compiled) - eager).abs().max().item() <= 1e-3
