"""One face repair against one full generation at the same steps, on the tiny models on the CPU.

The generation: --size x --size (768), two references (Barack Obama, Grace Hopper), --steps, through
`workflow.prepare -> generate_images -> finish` (the app's path). The repair: a --size picture made of
the example photos of Barack Obama and Joe Biden side by side, so Reference 2's (Grace Hopper's) face
is wrong; `workflow.prepare_repair -> generate_repairs -> finish_repair` with one candidate at
--strength (0.6) regenerates that face's crop at its working size (512 x 512: the face is 160 px, its
3x crop 480) conditioned on Grace Hopper alone. The faces are found by the face backend (dlib).

Timed: the generation phase (the GPU part: generate_images / generate_repairs) and the whole path
(checks, generation, analysis, pictures). Runs alternate so machine load hits both sides alike; each
figure is the median over --repeats with its range, the ratio repair / generation per repeat (paired).
The goal (issue 22): one face at 512 x 512 and strength 0.6 costs at most 40 % of a 768 x 768
generation.

The tiny models' sampling caps (UNO: 512 px, OmniGen2: 128 x 128 pixels) are lifted to the real
models' here, so each side is sampled at its real size with its real token count. Their transformers
are tiny, so the VAE and the per-call work weigh more than on a real model: also printed is the
FLUX.1-dev work of both sides by the UNO customizer's cost model (tokens x steps); the GPU figure is
bench/gpu_speed.py's "repair" part.

    python bench/repair.py [--models tiny tiny-omnigen2] [--size 768] [--steps 25] [--strength 0.6]
                           [--repeats 5] [--backend dlib] [--threads N]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as a script: the library and bench.common from this checkout

from umo_pipeline import params  # noqa: E402

EXAMPLES = ROOT / "examples"
PROMPT = "two friends having coffee at a cafe terrace"
GOAL = 0.40


def timed(call):
    """(result, wall seconds)."""
    start = time.perf_counter()
    result = call()
    return result, time.perf_counter() - start


class StepClock:
    """A workflow progress callback that times the denoising steps: the wall time per step between the
    first and the last step's report (the rest of a phase is encoding, the VAE and per-call work)."""

    def __init__(self):
        self.stamps = []

    def __call__(self, done, total, message=""):
        self.stamps.append(time.perf_counter())

    def per_step(self) -> float:
        return (self.stamps[-1] - self.stamps[0]) / max(1, len(self.stamps) - 1)


def gpu_phase(call):
    """(result, wall s, process CPU s, wall s per denoising step) of a generation phase."""
    clock, cpu = StepClock(), time.process_time()
    result, wall = timed(lambda: call(clock))
    return result, wall, time.process_time() - cpu, clock.per_step()


def spread(values) -> str:
    return f"{statistics.median(values):.3f} ({min(values):.3f}-{max(values):.3f})"


def real_size(customizer) -> None:
    """Lift a tiny model's sampling cap to the real model's, so it samples the sizes asked for."""
    if hasattr(customizer, "sampling_cap"):
        customizer.sampling_cap = None
    if hasattr(customizer, "max_pixels"):
        customizer.max_pixels = 1024 * 1024  # OmniGen2Customizer's own (outputs and references)


def flux_work(request, n_references: int) -> tuple[float, int]:
    """(FLOPs of FLUX.1-dev's steps for a request, its tokens), as the UNO customizer's cost model counts."""
    from umo_pipeline.customizers.uno.customizer import flux_step_flops, flux_tokens

    tokens = flux_tokens(request, n_references)
    return flux_step_flops(tokens) * request.denoising_steps, tokens


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["tiny", "tiny-omnigen2"])
    parser.add_argument("--size", type=int, default=768, help="the generation's side (default 768)")
    parser.add_argument("--steps", type=int, default=25, help="steps of both sides (the repair runs strength's share)")
    parser.add_argument("--strength", type=float, default=params.STRENGTH.default)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--backend", default="dlib")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's)")
    args = parser.parse_args(argv)

    import torch

    from bench.common import face_scene
    from umo_pipeline import workflow
    from umo_pipeline.analysis import analyze_reference
    from umo_pipeline.customizers import load_customizer
    from umo_pipeline.faces import get_face_backend
    from umo_pipeline.images import load_image

    if args.threads:
        torch.set_num_threads(args.threads)
    backend = get_face_backend(args.backend)
    obama, hopper, biden = (load_image(EXAMPLES / f"{name}.jpg") for name in ("barack_obama", "grace_hopper",
                                                                              "joe_biden"))
    references = [obama, hopper]
    boxes = [analyze_reference(photo, backend).face.bbox for photo in (obama, biden)]
    picture, _ = face_scene([obama, biden], boxes, size=args.size, tile=args.size * 5 // 12)
    print(f"{time.strftime('%Y-%m-%d')}, torch threads {torch.get_num_threads()}, face backend {backend.name}; "
          f"generation {args.size}x{args.size}, 2 references, {args.steps} steps; repair of Reference 2's face "
          f"(strength {args.strength}, 1 candidate); {args.repeats} repeats, median (min-max)")

    for name in args.models:
        customizer = load_customizer(name)
        real_size(customizer)
        settings = replace(customizer.defaults, steps=args.steps, seed=0)
        request = replace(settings, prompt=PROMPT, width=args.size, height=args.size)

        def generation():
            job, checks = timed(lambda: workflow.prepare(customizer, backend, request, references))
            images, *gpu = gpu_phase(lambda clock: workflow.generate_images(job, clock))
            _, rest = timed(lambda: workflow.finish(job, images))
            return (*gpu, checks + gpu[0] + rest), None

        def repair():
            job, checks = timed(lambda: workflow.prepare_repair(customizer, backend, picture, references, choose=[1],
                                                                strength=args.strength, settings=settings))
            crops, *gpu = gpu_phase(lambda clock: workflow.generate_repairs(job, clock))
            result, rest = timed(lambda: workflow.finish_repair(job, crops))
            return (*gpu, checks + gpu[0] + rest), (job, result)

        generation(), repair()  # warm-up: kernels, allocator, the face analysis cache
        rows = ("generation phase (the GPU part), wall", "generation phase, process CPU", "one denoising step, wall",
                "whole path (checks, analysis, pictures), wall")
        times = {side: [] for side in ("generation", "repair")}
        for _ in range(args.repeats):  # alternating, so load on the machine hits both sides alike
            figures, _ = generation()
            times["generation"].append(figures)
            figures, (job, result) = repair()
            times["repair"].append(figures)
        face = job.faces[0].request
        print(f"\n{name} (random weights, sampling cap lifted), {customizer.mode} mode: Reference 2's face, crop "
              f"{job.faces[0].crop_box}, regenerated at {face.width}x{face.height}, {face.denoising_steps} of "
              f"{face.steps} steps (kept: {result.repairs[0].kept}; the tiny model paints noise)")
        print("| seconds | generation | repair | repair / generation |")
        print("| --- | --- | --- | --- |")
        ratios = {}
        for k, title in enumerate(rows):
            full = [figures[k] for figures in times["generation"]]
            part = [figures[k] for figures in times["repair"]]
            ratios[k] = [r / g for r, g in zip(part, full)]  # paired: the same repeat's two runs
            print(f"| {title} | {spread(full)} | {spread(part)} | {spread(ratios[k])} |")
        median = statistics.median(ratios[0])
        verdict = "met" if median <= GOAL else "missed"
        print(f"goal, the GPU part of a repair <= {GOAL:.0%} of a generation's: {verdict} here ({median:.0%})")

    full_work, full_tokens = flux_work(replace(request, steps=args.steps), 2)
    face_work, face_tokens = flux_work(face, 1)
    print(f"\nFLUX.1-dev work by the UNO cost model: generation {full_tokens} tokens x {args.steps} steps = "
          f"{full_work / 1e15:.2f} PFLOP; repair {face_tokens} tokens x {face.denoising_steps} steps = "
          f"{face_work / 1e15:.2f} PFLOP; ratio {face_work / full_work:.2f}")


if __name__ == "__main__":
    main()
