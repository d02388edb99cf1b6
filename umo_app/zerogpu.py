"""The GPU entry points (a generation, a face repair, each person of a group's placing), and the one
place that knows about ZeroGPU (Hugging Face's shared GPUs, attached per call of a `spaces.GPU`
function): whether the page runs on it, the GPU time one request may reserve there, and the
transformer's blocks compiled ahead of time. A group's job is split into calls (the composition,
then one per person placed), so each fits its own reservation.

ZeroGPU runs a `spaces.GPU` function in a worker forked from this process at the call; a Job (and a
RepairJob) pickles its customizer and face backend as keys that the worker resolves in its inherited
copy, and only PIL images come back. Off ZeroGPU, `spaces.GPU` leaves the function as it is.
"""

import spaces  # noqa: I001 - on ZeroGPU, spaces must be imported before anything touches CUDA

import logging
import os
import tempfile
import threading
from pathlib import Path

from umo_pipeline import workflow
from umo_pipeline.customizers.uno.aoti import COMPILE_SECONDS
from umo_pipeline.errors import GenerationCancelled

log = logging.getLogger("umo.app")

# Gradio frees a cancelled event's queue slot while its thread still runs; this lock keeps such an
# orphaned generation (it stops at its next step) from sharing the pipeline with the next one.
GPU_LOCK = threading.Lock()


def on_zerogpu() -> bool:
    """True on a ZeroGPU Space (read each time: the environment says so, and tests change it)."""
    return bool(os.environ.get("SPACES_ZERO_GPU"))


@spaces.GPU(duration=workflow.job_gpu_seconds)
def generate_on_gpu(job, progress=None, stop=None):
    """`stop` (a departures.StopFlag, readable inside a ZeroGPU worker too) ends the job at its next step."""
    return workflow.generate_images(job, _step_reporter(progress, stop, "generation"))


@spaces.GPU(duration=workflow.repair_gpu_seconds)
def repair_on_gpu(job, progress=None, stop=None, count=None):
    """A face repair's masked re-generations (workflow.generate_repairs), every face x candidate in one
    GPU call; `stop` as for generate_on_gpu. Callers hold GPU_LOCK, as for a generation. `count` (a
    placement.JobCount): this call is one person of a group's placing, and the bar shows the whole
    job's count and message. Its duration is asked by the formula a generation's is (reserved_seconds)."""
    return workflow.generate_repairs(job, _step_reporter(progress, stop, "repair" if count is None else "generation",
                                                         count))


def _step_reporter(progress, stop, work: str, count=None):
    """The step callback of one GPU call: ends it once `stop` is raised, else moves the progress bar
    (with the step's message; with `count`, the whole job's count and message)."""
    def report_step(done, total, message):
        if stop is not None and stop.is_set():
            log.warning("Stopping a %s at step %d/%d: its client disconnected or pressed Stop.", work, done, total)
            raise GenerationCancelled(f"The {work} was stopped: Stop was pressed or the page was closed.")
        if progress is not None:
            if count is not None:
                done, total, message = count.step(done)
            progress((done, total), desc=message)

    return report_step


def gpu_seconds_limit() -> float | None:
    """On ZeroGPU, the most GPU time one generation may reserve; elsewhere no limit."""
    return workflow.GPU_SECONDS_CAP if on_zerogpu() else None


def model_device(requested: str | None) -> str | None:
    """The device to load models on: ZeroGPU attaches the GPU per call, so models go to "cuda" there;
    otherwise the one asked for, or None to let each loader pick."""
    return requested or ("cuda" if on_zerogpu() else None)


# -- ahead-of-time compilation at start ------------------------------------------------------------
#: the model being compiled: set before the GPU call, so the worker ZeroGPU forks for it inherits the
#: loaded model and only the folder's name crosses the process boundary
_compiling = None


@spaces.GPU(duration=COMPILE_SECONDS)
def _compile_blocks_in_gpu_worker(directory: str) -> dict:
    # runs in ZeroGPU's forked worker, which holds the same loaded model; only strings come back
    from umo_pipeline.customizers.uno import aoti

    return aoti.compile_packages(_compiling, aoti.SpacesAOTI(directory))


def compile_on_zerogpu(customizer, compile_in_worker=None) -> dict | None:
    """ZeroGPU: the transformer's blocks compiled ahead of time, once, at start (see
    umo_pipeline/customizers/uno/aoti.py); the report of what was compiled, or None when not applicable.
    Any failure leaves those blocks eager: the page works either way."""
    from umo_pipeline.customizers.uno import aoti

    global _compiling
    if isinstance(customizer, str) or not aoti.supported(customizer):
        return None
    directory = str(Path(tempfile.gettempdir()) / "umo_aoti")
    _compiling = customizer
    try:
        report = (compile_in_worker or _compile_blocks_in_gpu_worker)(directory)
        states = aoti.install(customizer, aoti.SpacesAOTI(directory), report)
    except Exception as error:  # noqa: BLE001 - compilation is an optimisation, never a reason to fail
        log.warning("Ahead-of-time compilation failed (%s: %s); running eagerly.", type(error).__name__, error)
        return None
    log.info("Ahead-of-time compilation: %s", report)
    if any(state.programs for state in states.values()):
        customizer.label += ", blocks compiled ahead of time (ZeroGPU AoTI)"
    return report


def compile_at_start(customizer) -> dict | None:
    """On ZeroGPU, compile_on_zerogpu (UMO_AOTI=0 skips it); elsewhere nothing."""
    if on_zerogpu() and os.environ.get("UMO_AOTI", "1") != "0":
        return compile_on_zerogpu(customizer)
    return None
