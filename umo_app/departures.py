"""A visitor who leaves (closed tab, killed client, dropped connection) or presses Stop cancels their
generation: `DepartureWatch` notices and raises a `StopFlag` that the step callback reads, also
inside a ZeroGPU worker process."""

from __future__ import annotations

import secrets
import tempfile
import threading
from pathlib import Path

from umo_app import gradio_internals


class StopFlag:
    """A stop request that crosses process boundaries: a file that exists once the generation should
    stop. ZeroGPU pickles a GPU function's arguments into a forked worker, where neither Gradio's
    queue nor a threading.Event of this process can be seen, but the file system can."""

    def __init__(self, folder: str | Path | None = None):
        folder = Path(folder or Path(tempfile.gettempdir()) / "umo_stop_flags")
        folder.mkdir(parents=True, exist_ok=True)
        self.path = folder / f"stop-{secrets.token_hex(8)}"

    def set(self) -> None:
        self.path.touch()

    def is_set(self) -> bool:
        return self.path.exists()

    def discard(self) -> None:
        self.path.unlink(missing_ok=True)


class DepartureWatch:
    """While a generation runs, checks a few times a second whether its visitor is still there and
    raises `flag` once they are not. Outside a Gradio event it watches nothing."""

    POLL_S = 0.2

    def __init__(self, flag: StopFlag | None = None):
        self.flag = flag or StopFlag()
        self._done = threading.Event()
        self._event, self._queue = gradio_internals.current_event()
        self._thread = None

    def __enter__(self) -> StopFlag:
        if self._event is not None:
            self._thread = threading.Thread(target=self._watch, name="umo-departure-watch", daemon=True)
            self._thread.start()
        return self.flag

    def __exit__(self, *exc) -> None:
        self._done.set()
        if self._thread is not None:
            self._thread.join()
        self.flag.discard()

    def _watch(self) -> None:
        while not self._done.wait(self.POLL_S):
            if not gradio_internals.still_wanted(self._event, self._queue):
                self.flag.set()
                return
