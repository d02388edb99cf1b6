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

The layer and the four ways live in bench/fp8_numerics.py (real fp8 matmuls, so
the numerics, not an emulation; only the speed needs a GPU).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.fp8_numerics import errors  # noqa: E402


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
