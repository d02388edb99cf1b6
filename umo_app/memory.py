"""The server's memory stays flat after bursts of concurrent requests: few malloc arenas
(`limit_malloc_arenas`), and their free pages handed back once the server is idle (`IdleTrim`)."""

from __future__ import annotations

import functools
import inspect
import os
import threading
import time
from collections.abc import Callable

#: glibc's mallopt parameter number for the most malloc arenas (malloc.h: M_ARENA_MAX)
_M_ARENA_MAX = -8


def limit_malloc_arenas(count: int = 2) -> bool:
    """Cap glibc's malloc arenas for the rest of this process; True when the cap is in force.

    glibc gives threads their own arenas (up to 8 per core), and an arena keeps the pages of the
    images it once held. Gradio runs each request on whichever worker thread is free, so after a
    burst of concurrent analyses every arena holds a few large images: bench/load.py measured the
    server's memory at +32% and +41% after 20 concurrent users (829 -> 1091 MB), flat after that,
    and +1% to +17% with two arenas, at the same throughput. Call it before worker threads start:
    arenas made earlier stay in use. A MALLOC_ARENA_MAX set in the environment wins.
    Without glibc (macOS, musl) nothing changes and False is returned.
    """
    if os.environ.get("MALLOC_ARENA_MAX"):
        return False
    import ctypes

    mallopt = _glibc("mallopt", [ctypes.c_int, ctypes.c_int])
    return mallopt is not None and mallopt(_M_ARENA_MAX, int(count)) == 1


def _glibc(name: str, argtypes: list):
    """glibc's function `name` (returning an int) through ctypes; None without glibc (macOS, musl)."""
    import ctypes

    try:
        function = getattr(ctypes.CDLL(None), name)
    except (AttributeError, OSError):
        return None
    function.argtypes, function.restype = argtypes, ctypes.c_int
    return function


def _glibc_malloc_trim() -> Callable[[], object] | None:
    import ctypes

    trim = _glibc("malloc_trim", [ctypes.c_size_t])
    return None if trim is None else functools.partial(trim, 0)


class IdleTrim:
    """Hands the malloc heap's free pages back to the system once no request has run for `idle_s`.

    glibc returns a large freed block at once only when it was mmapped on its own; after the first
    image-sized block is freed, its dynamic threshold puts blocks of that size in the heap, where
    their pages stay with the process once freed (bench/load.py: 54 -> 216 MB of free heap held over
    300 analyses, most of the server's growth). Returning them after each request would cost the
    next request its page faults again (a fixed mmap threshold, which amounts to that, made each
    analysis 17-43 % slower here); returning them once the server is idle costs no request anything.
    `malloc_trim(0)` takes 15-20 ms for 200 MB, during which other threads' mallocs wait.

    Wrap each request handler with `around`; one process-wide instance (`IDLE_TRIM`) since the heap
    is process-wide. Without glibc nothing is trimmed.
    """

    def __init__(self, idle_s: float = 2.0, trim: Callable[[], object] | None = None):
        self.idle_s = float(idle_s)
        self._trim = trim if trim is not None else _glibc_malloc_trim()
        self._cond = threading.Condition()
        self._running = 0
        self._last_end = 0.0
        self._pending = False  # a request ended since the last trim
        self._thread: threading.Thread | None = None
        #: how many times the heap was trimmed (for tests and the log)
        self.trims = 0

    def __enter__(self) -> IdleTrim:
        with self._cond:
            self._running += 1
        return self

    def __exit__(self, *exc) -> None:
        with self._cond:
            self._running -= 1
            self._last_end = time.monotonic()
            self._pending = True
            if self._trim is not None and self._thread is None:
                self._thread = threading.Thread(target=self._watch, name="umo-idle-trim", daemon=True)
                self._thread.start()
            self._cond.notify_all()

    def around(self, fn: Callable) -> Callable:
        """`fn` counted as a request (same signature, so Gradio sees the same parameters)."""
        if inspect.isgeneratorfunction(fn):  # a streaming handler stays one (Gradio streams it)
            @functools.wraps(fn)
            def counted_stream(*args, **kwargs):
                with self:
                    yield from fn(*args, **kwargs)

            return counted_stream

        @functools.wraps(fn)
        def counted(*args, **kwargs):
            with self:
                return fn(*args, **kwargs)

        return counted

    def _watch(self) -> None:
        while True:
            with self._cond:
                while self._running or not self._pending:
                    self._cond.wait()
                wait = self._last_end + self.idle_s - time.monotonic()
                if wait > 0:
                    self._cond.wait(wait)
                    continue
                self._pending = False
                # trimmed while holding the lock: a request arriving meanwhile waits ~20 ms at most
                self._trim()
                self.trims += 1


#: the process's one idle trimmer (the malloc heap is the process's)
IDLE_TRIM = IdleTrim()
