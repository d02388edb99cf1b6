"""Seeds and GPU time: which seeds a request's candidates use, and how many seconds of a shared GPU
(ZeroGPU) a job reserves or may take."""

from __future__ import annotations

import random

from umo_pipeline import params
from umo_pipeline.errors import InputError

#: the most seconds one generation reserves on ZeroGPU; `prepare` refuses a job estimated above it
#: (ZeroGPU may abort a call that overruns its reservation, and the GPU time is then spent for nothing)
GPU_SECONDS_CAP = 300


def candidate_seeds(seed: int, candidates: int) -> list[int]:
    """seed, seed + 1, ...: consecutive, so one seed reproduces the whole set; wraps past MAX_SEED."""
    return [(int(seed) + k) % (params.MAX_SEED + 1) for k in range(candidates)]


def pick_seed(seed, randomize: bool) -> int:
    """The seed to use: a fresh random one when asked (or when none is given), else `seed`."""
    if randomize or seed is None or seed == "":
        return random.randint(0, params.MAX_SEED)
    return params.SEED.check(seed)


def estimated_gpu_seconds(customizer, request, n_references: int, compare: bool, candidates: int = 1) -> float:
    """The customizer's estimate of a job's GPU time.

    Candidates count as whole images: a batch saves the text and reference encodings, but at these
    sizes a GPU is busy with one image's tokens already, so N images cost about N times the work.
    """
    n_images = (2 if compare else 1) * candidates
    return customizer.estimate_seconds(request, n_references, n_images)


def reserved_seconds(estimate: float) -> int:
    """Seconds to reserve on a shared GPU (ZeroGPU) for an estimate: a margin, within the cap."""
    return int(min(GPU_SECONDS_CAP, max(20, 1.25 * estimate + 5)))


def gpu_seconds(customizer, request, n_references: int, compare: bool, candidates: int = 1) -> int:
    """`reserved_seconds` of a generation's estimate."""
    return reserved_seconds(estimated_gpu_seconds(customizer, request, n_references, compare, candidates))


def job_gpu_seconds(job, *_ignored) -> int:
    """`gpu_seconds` of a prepared Job (the signature spaces.GPU's `duration` callable receives)."""
    return gpu_seconds(job.customizer, job.request, len(job.model_references), job.compare, job.candidates)


def check_gpu_budget(customizer, request, n_references: int, compare: bool, candidates: int,
                     limit: float) -> None:
    """Refuse a job whose estimated GPU time is above `limit` seconds, saying what would fit."""
    estimate = estimated_gpu_seconds(customizer, request, n_references, compare, candidates)
    refuse_over_budget("generation", estimate, limit,
                       f"Fewer candidates or steps, a smaller size{' or Compare off' if compare else ''} will fit.")


def refuse_over_budget(work: str, estimate: float, limit: float, advice: str) -> None:
    """Refuse `work` ("generation", "repair") estimated above `limit` GPU seconds, with `advice`."""
    if estimate > limit:
        raise InputError(f"This {work} would need about {estimate:.0f} s on the GPU, more than the "
                         f"{limit:.0f} s one request may use here. {advice}")
