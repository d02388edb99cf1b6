"""Time per candidate: N seeds in one batched pipeline call against N = 1, on the tiny models.

For each model and N in 1..4, `Customizer.generate_batch` runs N seeds (one pipeline call: one noise
draw per seed, the prompt and references encoded once); the same seeds are also run one call each,
as they would be without batching. Prints the median wall and process-CPU seconds per candidate and
the ratio to N = 1. Runs alternate so machine load hits every case alike. On a CPU the tiny models
say how much per-call work a batch saves; on a GPU (--device cuda) a batch also fills the device.

    python bench/candidates.py [--models tiny tiny-omnigen2] [--size 256] [--steps 4] [--repeats 5] [--device cpu]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def timed(call) -> tuple[float, float]:
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()
    wall, cpu = time.perf_counter(), time.process_time()
    call()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter() - wall, time.process_time() - cpu


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["tiny", "tiny-omnigen2"])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--references", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)

    import torch

    from bench.local import photo_paths
    from umo_pipeline.customizers import load_customizer
    from umo_pipeline.customizers.request import GenerationRequest
    from umo_pipeline.images import load_image

    torch.set_num_threads(max(1, torch.get_num_threads()))
    photos = photo_paths()
    references = [load_image(photos[name]) for name in ("obama1", "hopper", "newton", "gauss")[: args.references]]
    print(f"torch threads {torch.get_num_threads()}, device {args.device}, {args.size}x{args.size}, "
          f"{args.steps} steps, {len(references)} references, {args.repeats} repeats (medians)")
    for name in args.models:
        customizer = load_customizer(name, device=args.device)
        request = GenerationRequest(prompt="two friends at a cafe", width=args.size, height=args.size,
                                    steps=args.steps, seed=0, extra=dict(customizer.defaults.extra))
        customizer.generate_batch(request, references, [0, 1])  # warm-up
        cases = {(n, mode): [] for n in range(1, 5) for mode in ("batched", "separate") if n > 1 or mode == "batched"}
        for _ in range(args.repeats):
            for n, mode in cases:
                seeds = list(range(n))
                if mode == "batched":
                    result = timed(lambda: customizer.generate_batch(request, references, seeds))
                else:
                    result = timed(lambda: [customizer.generate_batch(request, references, [s]) for s in seeds])
                cases[(n, mode)].append(result)
        base_wall = statistics.median(w for w, _ in cases[(1, "batched")])
        base_cpu = statistics.median(c for _, c in cases[(1, "batched")])
        print(f"\n{customizer.label}")
        print(f"  {'N':>2} {'mode':<9} {'wall s/candidate':>17} {'vs N=1':>7} {'CPU s/candidate':>16} {'vs N=1':>7}")
        for (n, mode), results in cases.items():
            wall = statistics.median(w for w, _ in results) / n
            cpu = statistics.median(c for _, c in results) / n
            print(f"  {n:>2} {mode:<9} {wall:>17.3f} {wall / base_wall:>7.2f} {cpu:>16.3f} {cpu / base_cpu:>7.2f}")


if __name__ == "__main__":
    main()
