"""How much of a LoRA survives fp8: fused-then-quantised vs quantised base + bf16 LoRA (CPU, real fp8 matmuls).

One linear layer of FLUX-like size with a rank-r LoRA whose delta is a given fraction of the base
weight (Frobenius norm). Four ways to run it in fp8, each against the exact float32 result:

  compute, fused    (W + BA) in bf16, then per-row dynamic fp8 quantisation of weight and activations
                    and one fp8 matmul (torch._scaled_mm): what `--fp8` does in fused mode on an fp8 GPU
  compute, unfused  W quantised the same way, the LoRA in bf16 beside it (what compare mode does)
  storage, fused    (W + BA) cast to float8_e4m3fn without a scale, upcast per layer (layerwise casting)
  storage, unfused  W cast likewise, the LoRA in bf16 (what `--fp8` does on GPUs without fp8 compute)

and bf16 fused as the baseline. Two figures per way, for base weights of std 0.02 and 0.002:
  output error  ||y - y_exact|| / ||y_exact||: how far the layer's output moves from the exact one
  delta kept    <y - x W^T, x (BA)^T> / ||x (BA)^T||^2: how much of the LoRA's effect is in the output
                (1.0: all of it, on average; what rounding adds is noise around it)

    python bench/fp8_lora_error.py            # about 10 s on 2 CPU cores

torch._scaled_mm runs fp8 matmuls on the CPU too, with the same per-row scaling torchao uses on a GPU,
so these are the numerics, not an emulation; only the speed needs a GPU.
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


def main() -> None:
    ratios = (0.01, 0.05, 0.2)
    print("fp8 and a LoRA: one 1024x1024 linear layer, 512 tokens, LoRA rank 64; output error against float32 "
          "/ share of the LoRA's effect kept")
    for std in (0.02, 0.002):
        table = {ratio: errors(ratio, weight_std=std) for ratio in ratios}
        print(f"\nbase weights N(0, {std:g})\n")
        print("| way | " + " | ".join(f"LoRA = {r:g} x base" for r in ratios) + " |")
        print("| --- |" + " --- |" * len(ratios))
        for way in table[ratios[0]]:
            cells = [f"{table[r][way][0]:.3f} / {table[r][way][1]:.2f}" for r in ratios]
            print(f"| {way} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
