"""Per-step overhead of UNOPipeline against diffusers' FluxPipeline on the same random transformer.

Both pipelines drive one shared FluxTransformer2DModel, big enough that the transformer dominates a
step on a CPU, with the same prompt embeddings, size (so the same token count: no references) and
steps; runs alternate so machine load hits both alike. A step is timed between consecutive
step callbacks. Prints the median per-step times and their ratio (goal: UNO / Flux <= 1.05).

    python bench/pipeline_overhead.py [--size 192] [--steps 5] [--repeats 8] [--hidden 256] [--threads 1] [--device cpu]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def bench_transformer(hidden: int, double_blocks: int, single_blocks: int, text_width: int):
    from diffusers import FluxTransformer2DModel

    head_dim = 64
    return FluxTransformer2DModel(
        patch_size=1, in_channels=64, num_layers=double_blocks, num_single_layers=single_blocks,
        attention_head_dim=head_dim, num_attention_heads=hidden // head_dim, joint_attention_dim=text_width,
        pooled_projection_dim=text_width, guidance_embeds=True, axes_dims_rope=(8, 28, 28),
    ).eval()


def step_times(pipe, **kwargs) -> tuple[list[float], list[float]]:
    """(wall seconds, process CPU seconds) between consecutive step callbacks of one generation.

    CPU time is what a step costs this process; on a machine shared with other jobs it varies
    much less than wall time.
    """
    import torch

    wall, cpu = [], []

    def stamp(pipeline, step, timestep, tensors):
        if tensors["latents"].is_cuda:
            torch.cuda.synchronize()
        wall.append(time.perf_counter())
        cpu.append(time.process_time())
        return {}

    pipe(callback_on_step_end=stamp, output_type="latent", **kwargs)
    return [b - a for a, b in zip(wall, wall[1:])], [b - a for a, b in zip(cpu, cpu[1:])]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=192, help="image side in pixels (tokens = (size/16)^2)")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=8)
    parser.add_argument("--threads", type=int, default=1,
                        help="CPU threads; 1 keeps figures steady on a machine shared with other jobs")
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--double-blocks", type=int, default=2)
    parser.add_argument("--single-blocks", type=int, default=2)
    parser.add_argument("--text-tokens", type=int, default=64)
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    args = parser.parse_args()

    import torch
    from diffusers import FluxPipeline

    from umo_pipeline.customizers.uno.tiny import build_tiny_components, flux_scheduler
    from umo_pipeline.customizers.uno.pipeline import UNOPipeline

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    components = build_tiny_components(seed=0)
    text_width = 256
    components["transformer"] = bench_transformer(args.hidden, args.double_blocks, args.single_blocks, text_width)
    flux = FluxPipeline(**{**components, "scheduler": flux_scheduler()})
    uno = UNOPipeline(**{**components, "scheduler": flux_scheduler()})
    for pipe in (flux, uno):
        pipe.set_progress_bar_config(disable=True)
        pipe.to(args.device)

    settings = dict(
        prompt_embeds=torch.randn(1, args.text_tokens, text_width, device=args.device),
        pooled_prompt_embeds=torch.randn(1, text_width, device=args.device),
        height=args.size, width=args.size, num_inference_steps=args.steps, guidance_scale=4.0,
    )
    runs = {"FluxPipeline": flux, "UNOPipeline": uno}
    wall = {name: [] for name in runs}
    cpu = {name: [] for name in runs}
    for pipe in runs.values():  # warm-up
        step_times(pipe, generator=torch.Generator().manual_seed(0), **settings)
    for repeat in range(args.repeats):
        order = list(runs) if repeat % 2 == 0 else list(runs)[::-1]
        for name in order:
            wall_s, cpu_s = step_times(runs[name], generator=torch.Generator().manual_seed(repeat), **settings)
            wall[name] += wall_s
            cpu[name] += cpu_s

    params = sum(p.numel() for p in components["transformer"].parameters()) / 1e6
    tokens = (args.size // 16) ** 2
    where = torch.cuda.get_device_name() if args.device == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"transformer: hidden {args.hidden}, {args.double_blocks} double + {args.single_blocks} single blocks, "
          f"{params:.1f} M params; {tokens} image + {args.text_tokens} text tokens; {args.steps} steps x "
          f"{args.repeats} runs; {where}")
    for label, table in (("wall", wall), ("cpu", cpu)):
        medians = {name: statistics.median(values) for name, values in table.items()}
        for name, median in medians.items():
            print(f"  {name:13s} {label:4s} median {median * 1000:9.2f} ms/step  min "
                  f"{min(table[name]) * 1000:9.2f}  (n={len(table[name])})")
        print(f"  ratio UNOPipeline / FluxPipeline, median {label} per step: "
              f"{medians['UNOPipeline'] / medians['FluxPipeline']:.3f}  (goal <= 1.05)")


if __name__ == "__main__":
    main()
