"""Departures across ZeroGPU's process boundary (umo_app/zerogpu.py): a stop raised in the server
stops a generation running in a GPU worker forked from it, whose arguments arrive pickled."""

import time
from pathlib import Path

from umo_app import zerogpu
from umo_app.departures import StopFlag


class StepLog:
    """A progress callback that survives pickling: one line per step in a file (it stands in for the
    progress bar that ZeroGPU relays from its worker to the page)."""

    def __init__(self, path):
        self.path = str(path)

    def __call__(self, value, desc=None):
        with open(self.path, "a") as log:
            log.write(f"{value[0]}\n")


def _steps(path) -> int:
    return len(path.read_text().split()) if path.exists() else 0


def _zerogpu_like_worker(arguments, results):
    # what a ZeroGPU worker does with a call: take the pickled arguments, run the function, answer
    from umo_pipeline.errors import GenerationCancelled

    job, progress, stop = arguments.get()
    try:
        zerogpu.generate_on_gpu(job, progress, stop)
        results.put("finished")
    except GenerationCancelled as error:
        results.put(f"cancelled: {error}")


def _server_with_a_forked_gpu_worker(folder: str, photo: str, report) -> None:
    """The scenario, in a fresh interpreter standing for the server: load the tiny model, fork the
    worker, send it a long job, raise the stop flag after 3 steps; reports (worker's answer, steps
    when the flag went up, steps in all, worker's exit code), or the reason it could not."""
    import multiprocessing

    from umo_pipeline import workflow
    from umo_pipeline.customizers import load_customizer
    from umo_pipeline.customizers.base import GenerationRequest
    from umo_pipeline.faces import get_face_backend
    from umo_pipeline.images import load_image

    request = GenerationRequest(prompt="a long one", width=512, height=512, steps=100, seed=1)
    job = workflow.prepare(load_customizer("tiny"), get_face_backend("dlib"), request, [load_image(photo)])
    context = multiprocessing.get_context("fork")
    arguments, results = context.SimpleQueue(), context.SimpleQueue()
    worker = context.Process(target=_zerogpu_like_worker, args=(arguments, results), daemon=True)
    worker.start()
    steps, stop = Path(folder) / "steps", StopFlag(folder)
    try:
        arguments.put((job, StepLog(steps), stop))
        deadline = time.monotonic() + 120
        while _steps(steps) < 3 and worker.is_alive() and time.monotonic() < deadline:
            time.sleep(0.05)
        if not worker.is_alive():
            report.put(("the worker ended before its third step: it could not take the job",))
            return
        stop.set()
        at_stop = _steps(steps)
        worker.join(timeout=60)
        report.put((results.get() if not results.empty() else None, at_stop, _steps(steps), worker.exitcode))
    finally:
        stop.discard()
        if worker.is_alive():
            worker.kill()


def test_a_stop_raised_in_the_server_stops_a_generation_running_in_a_forked_gpu_worker(tmp_path, photos):
    # A test double for ZeroGPU's worker (spaces.zero.wrappers, which needs ZeroGPU's scheduler): a
    # process forked from the server after the models loaded, that receives the GPU function's
    # arguments pickled through a multiprocessing queue after the fork, as spaces does. It cannot see
    # Gradio's queue or the server's memory; the departure watch's flag, raised there, must still stop
    # it. The "server" is a fresh interpreter: forking this test process, with the threads earlier
    # tests left running, can deadlock the child on a lock held at the fork.
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    report = context.SimpleQueue()
    server = context.Process(target=_server_with_a_forked_gpu_worker,
                             args=(str(tmp_path), str(photos["obama1"]), report))
    server.start()
    server.join(timeout=240)
    if server.is_alive():
        server.kill()
    assert not report.empty(), f"the scenario did not finish (exit code {server.exitcode})"
    answer, *counts = report.get()
    assert counts, answer
    at_stop, done, exitcode = counts
    assert exitcode == 0
    assert answer.startswith("cancelled: The generation was stopped")
    assert 3 <= at_stop <= done <= at_stop + 2 < 100
