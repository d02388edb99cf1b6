"""What fp8 does to a linear layer with a LoRA, in plain torch: the numerics behind the fp8 choices.

umo_pipeline.customizers.speed and the LoRA loaders fuse the UMO LoRA before fp8 *compute* (per-row
scales) and keep it unfused under fp8 *storage* (a plain cast); `errors` measures why, on one layer,
against float32 (tests/library/customizers/test_speed.py asserts the rule on these numbers).
torch._scaled_mm runs fp8 matmuls on the CPU too, with the same per-row scaling torchao uses on a
GPU, so these are the numerics, not an emulation. bench/fp8_lora_error.py prints the table.
"""

from __future__ import annotations

import torch

FP8 = torch.float8_e4m3fn
FP8_MAX = torch.finfo(FP8).max  # 448


def quantize_rows(t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-row (last dim) absmax scaling into float8_e4m3fn: (values, float32 scales of shape [rows, 1])."""
    scale = t.float().abs().amax(dim=-1, keepdim=True).clamp(min=1e-12) / FP8_MAX
    return (t.float() / scale).clamp(-FP8_MAX, FP8_MAX).to(FP8), scale


def fp8_compute_linear(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """x [tokens, in] @ weight [out, in]^T with dynamic per-token / per-output-row fp8 (torchao's PerRow)."""
    xq, xs = quantize_rows(x)
    wq, ws = quantize_rows(weight)
    return torch._scaled_mm(xq, wq.t(), scale_a=xs, scale_b=ws.t(), out_dtype=torch.bfloat16)


def fp8_storage_linear(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """diffusers' layerwise casting: the weight stored as float8 by a plain cast, upcast to bf16 to run."""
    return x.to(torch.bfloat16) @ weight.to(FP8).to(torch.bfloat16).t()


def lora_bf16(x: torch.Tensor, down: torch.Tensor, up: torch.Tensor) -> torch.Tensor:
    return (x.to(torch.bfloat16) @ down.to(torch.bfloat16).t()) @ up.to(torch.bfloat16).t()


def layer(delta_ratio: float, *, features: int = 1024, tokens: int = 512, rank: int = 64, weight_std: float = 0.02,
          seed: int = 0):
    """(x, W, down, up) in float32 with ||up @ down|| = delta_ratio * ||W||."""
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(tokens, features, generator=generator)
    weight = torch.randn(features, features, generator=generator) * weight_std
    down = torch.randn(rank, features, generator=generator)
    up = torch.randn(features, rank, generator=generator)
    scale = (delta_ratio * weight.norm() / (up @ down).norm()).sqrt()
    return x, weight, down * scale, up * scale


def errors(delta_ratio: float, **sizes) -> dict[str, tuple[float, float]]:
    """way -> (output error, delta kept) for one LoRA size."""
    x, weight, down, up = layer(delta_ratio, **sizes)
    fused_bf16 = (weight + up @ down).to(torch.bfloat16)
    exact_base, exact_delta = x @ weight.t(), x @ (up @ down).t()
    exact = exact_base + exact_delta
    ways = {
        "bf16, fused": x.to(torch.bfloat16) @ fused_bf16.t(),
        "fp8 compute, fused": fp8_compute_linear(x, fused_bf16),
        "fp8 compute, LoRA unfused": fp8_compute_linear(x, weight) + lora_bf16(x, down, up),
        "fp8 storage, fused": fp8_storage_linear(x, fused_bf16),
        "fp8 storage, LoRA unfused": fp8_storage_linear(x, weight) + lora_bf16(x, down, up),
    }
    result = {}
    for way, output in ways.items():
        output = output.float()
        output_error = ((output - exact).norm() / exact.norm()).item()
        kept = (((output - exact_base) * exact_delta).sum() / (exact_delta * exact_delta).sum()).item()
        result[way] = (output_error, kept)
    return result
