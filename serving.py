"""How the app serves many visitors at once, on top of Gradio's queue.

- A visitor who leaves (closed tab, killed client, dropped connection) or presses Stop cancels their
  generation: `DepartureWatch` notices and raises a `StopFlag` that the step callback reads, also
  inside a ZeroGPU worker process.
- Each kind of work waits in its own bounded line (`setup_queue`): analyses are never refused or held
  up because generations fill the queue, and a full line says so in plain words.
- `DownloadsFolder` keeps the result files under a size cap and an age, inside Gradio's own upload
  folder so that Gradio serves them without a second copy.
- `limit_malloc_arenas` and `IdleTrim` keep the server's memory flat after bursts of concurrent
  requests: few malloc arenas, and their free pages handed back once the server is idle.
- `preload_matplotlib` moves a one-time import off the first request.

Gradio offers no public hook for the first two, so this module reads private pieces of Gradio 6
(the queue's active jobs and their `alive` flag, `Queue.push`, its two polling intervals, and
`Blocks.temp_file_sets` for `forget_served_files`); tests/test_serving.py pins each one and fails
when Gradio changes it.
"""

from __future__ import annotations

import functools
import logging
import os
import secrets
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger("umo.app")

#: concurrency groups: one GPU job at a time; CPU analyses side by side
GPU_GROUP = "gpu"
ANALYSIS_GROUP = "analysis"


# -- start-up --------------------------------------------------------------------------------------
def preload_matplotlib() -> bool:
    """Import matplotlib with its "agg" backend now; False when it is not installed.

    Gradio switches matplotlib to "agg" around every call it runs, and back to the backend it found.
    The first switch imports matplotlib and pyplot and probes for a backend: 0.4-0.6 s on the
    server's event loop, which holds up every visitor's connection during the first request. Done at
    start, that request costs what the others do; and with "agg" from the start (a server shows no
    windows) every later switch is from "agg" to "agg", even on a desktop where the probe would pick
    a windowing backend.
    """
    try:
        import matplotlib
        import matplotlib.pyplot  # noqa: F401 - what switching backends imports anyway
    except ImportError:
        return False
    matplotlib.use("agg")
    return matplotlib.get_backend() == "agg"


# -- memory ---------------------------------------------------------------------------------------
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


# -- departures -----------------------------------------------------------------------------------
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


def current_event():
    """The Gradio queue event the calling handler serves, with its queue; (None, None) outside one
    (tests calling handlers directly, a queue-less launch)."""
    from gradio.context import LocalContext

    blocks, event_id = LocalContext.blocks.get(None), LocalContext.event_id.get(None)
    queue = getattr(blocks, "_queue", None)
    if queue is None or event_id is None:
        return None, None
    for job in list(queue.active_jobs):
        for event in job or ():
            if event._id == event_id:
                return event, queue
    return None, queue


def still_wanted(event, queue) -> bool:
    """False once the visitor has left or cancelled.

    A dropped connection (closed tab, killed client) makes Gradio mark the session's running events
    `alive = False` and leave them in `active_jobs`; a cancel (`/cancel`, a Stop button's `cancels=`)
    ends the event's task, which takes it out of `active_jobs` while the handler's thread runs on.
    ZeroGPU's own scheduler reads the same `alive` flag while a request waits for a GPU.
    """
    if not event.alive:
        return False
    return any(job is not None and event in job for job in list(queue.active_jobs))


class DepartureWatch:
    """While a generation runs, checks a few times a second whether its visitor is still there and
    raises `flag` once they are not. Outside a Gradio event it watches nothing."""

    POLL_S = 0.2

    def __init__(self, flag: StopFlag | None = None):
        self.flag = flag or StopFlag()
        self._done = threading.Event()
        self._event, self._queue = current_event()
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
            if not still_wanted(self._event, self._queue):
                self.flag.set()
                return


# -- separate, bounded lines ----------------------------------------------------------------------
class QueueLimits:
    """How many events may wait in each concurrency group, and the words used when one is full."""

    def __init__(self, waiting: dict[str, int], nouns: dict[str, tuple[str, str]]):
        self.waiting = dict(waiting)
        #: group -> (what waits, singular and plural), e.g. ("generation", "generations")
        self.nouns = dict(nouns)

    @property
    def total(self) -> int:
        return sum(self.waiting.values())

    def message(self, group: str, count: int) -> str:
        one, many = self.nouns.get(group, ("request", "requests"))
        waiting = f"{count} {one if count == 1 else many} {'is' if count == 1 else 'are'} waiting"
        return f"Too busy right now: {waiting}, the most this server queues. Please try again in a minute."


#: events between two refreshes of Gradio's monitoring summary (Gradio's default: every event)
MONITORING_SUMMARY_EVERY = 100
#: seconds between the queue's looks for work it can start while it has none it can start, and
#: between its looks for progress to send (Gradio's: 1 ms and 10 ms)
QUEUE_IDLE_POLL_S = 0.01
PROGRESS_POLL_S = 0.05


def setup_queue(demo, limits: QueueLimits):
    """Turn on Gradio's queue with a waiting limit per concurrency group instead of one shared limit.

    Gradio's own max_size counts the events waiting in every group together, so a burst of one kind
    of work would refuse all others. Its refusal reaches gradio_client as a QueueError (HTTP 503, the
    client's fixed text) and the page as Gradio's generic "busy" text; ours carries the same HTTP 503
    for API clients (they retry on QueueError), and for the page, which shows the server's text only
    for other refusals, an HTTP 400 whose text the page shows as is.
    """
    # After every event Gradio rebuilds its monitoring summary with pandas from up to 10,000 past
    # events (5 ms of CPU at 500, 30 ms at 10,000 here, on a server where an analysis takes 400 ms);
    # every 100 events is often enough for the /monitoring page. An explicit setting wins.
    os.environ.setdefault("GRADIO_ANALYTICS_CACHE_FREQUENCY", str(MONITORING_SUMMARY_EVERY))
    # the overall cap stays as a backstop (and ZeroGPU Spaces would otherwise force it to 1)
    demo.queue(default_concurrency_limit=1, max_size=limits.total)
    queue = demo._queue
    # Gradio's 1 ms and 10 ms polls keep an idle server at about 10 % of a core here (3 % with ours);
    # an event waits at most 10 ms more to start, a progress bar moves 20 times a second
    queue.sleep_when_free = QUEUE_IDLE_POLL_S
    queue.progress_update_sleep_when_free = PROGRESS_POLL_S
    push = queue.push

    async def push_within_group_limit(body, request, username):
        group, count = _waiting_in_group(queue, body)
        limit = limits.waiting.get(group)
        if limit is not None and count >= limit:
            text = limits.message(group, count)
            from_api_client = request is not None and request.headers.get("x-gradio-user") == "api"
            return False, text, "queue_full" if from_api_client else "error"
        return await push(body, request, username)

    queue.push = push_within_group_limit
    return demo


def _waiting_in_group(queue, body) -> tuple[str | None, int]:
    from gradio import route_utils

    try:
        fn = route_utils.get_fn(queue.blocks, None, body)
    except Exception:  # noqa: BLE001 - an unknown function: Gradio's own push answers it
        return None, 0
    waiting = queue.event_queue_per_concurrency_id.get(fn.concurrency_id)
    return fn.concurrency_id, len(waiting.queue) if waiting is not None else 0


# -- the downloads folder --------------------------------------------------------------------------
def gradio_upload_folder() -> Path:
    """Where Gradio keeps uploads and what handlers return: files returned from inside it are served
    as they are; anything else is copied into it first."""
    from gradio.utils import get_upload_folder

    return Path(get_upload_folder())


class DownloadsFolder:
    """One folder per result (an unguessable name, since the file names inside are predictable),
    under a total size cap and an age; oldest removed first, and the latest result of each page
    still open kept as long as the cap allows."""

    def __init__(self, root: str | Path, max_bytes: int, max_age_s: float):
        self.root = Path(root)
        self.max_bytes = int(max_bytes)
        self.max_age_s = float(max_age_s)
        self._lock = threading.Lock()
        #: session -> its latest folder; ends with the page (forget) or with the folder
        self._latest: dict[str, Path] = {}
        #: folder -> bytes: folders are written once, so each is measured once
        self._sizes: dict[Path, int] = {}
        #: folders handed out whose files are still being written: never removed, not yet measured
        self._writing: set[Path] = set()
        #: the largest result so far: room kept free for each result being written
        self._largest = 0
        #: called with the folders just removed (the app drops them from Gradio's file records)
        self.on_removed: Callable[[list[Path]], object] | None = None

    def new_folder(self, session: str | None = None) -> Path:
        with self._lock:
            self.root.mkdir(parents=True, exist_ok=True)
            folder = self.root / secrets.token_hex(16)
            folder.mkdir()
            self._writing.add(folder)
            if session:
                self._latest[session] = folder
            self._prune(keep=folder)
            return folder

    def written(self, folder: Path) -> None:
        """Call once a folder's files are written: measures it and brings the total back under the cap."""
        with self._lock:
            self._writing.discard(folder)
            self._sizes[folder] = _bytes_in(folder)
            self._largest = max(self._largest, self._sizes[folder])
            self._prune(keep=folder)

    def forget(self, session: str) -> None:
        with self._lock:
            self._latest.pop(session, None)

    def total_bytes(self) -> int:
        return sum(_bytes_in(folder) for folder in self._folders())

    def _folders(self) -> list[Path]:
        if not self.root.is_dir():
            return []
        return [entry for entry in self.root.iterdir() if entry.is_dir()]

    def _prune(self, keep: Path) -> None:
        now = time.time()
        folders = []
        for folder in self._folders():
            if folder in self._writing:
                continue
            try:
                mtime = folder.stat().st_mtime
            except FileNotFoundError:
                continue
            if folder not in self._sizes:  # left by an earlier run, or written without written()
                self._sizes[folder] = _bytes_in(folder)
            folders.append((mtime, folder))
        live = set(self._latest.values())
        # the page's latest results go last: older first within each kind
        folders.sort(key=lambda item: (item[1] in live, item[0]))
        total = sum(self._sizes[folder] for _, folder in folders)
        # what is finished must leave room for what is being written, so the folder stays under the cap
        budget = self.max_bytes - self._largest * len(self._writing)
        removed = []
        for mtime, folder in folders:
            too_old = now - mtime > self.max_age_s and folder not in live
            if folder == keep or not (too_old or total > budget):
                continue
            shutil.rmtree(folder, ignore_errors=True)
            total -= self._sizes.pop(folder, 0)
            removed.append(folder)
        if removed and self.on_removed is not None:
            self.on_removed(removed)
        gone = [session for session, folder in self._latest.items() if not folder.exists()]
        for session in gone:
            del self._latest[session]
        for folder in [folder for folder in self._sizes if not folder.exists()]:
            del self._sizes[folder]


def forget_served_files(blocks, folders) -> int:
    """Drop the files of removed result folders from Gradio's records of the files it served; how
    many paths were dropped.

    Gradio keeps the path of every file a component returned (its sets in `Blocks.temp_file_sets`,
    for its own hourly clean-up) and, when a file is already gone, skips it without forgetting it:
    every result would leave its paths in the server's memory for good.
    """
    prefixes = set()
    for folder in folders:
        prefixes.update({f"{folder}{os.sep}", f"{Path(folder).resolve()}{os.sep}"})
    prefixes = tuple(prefixes)
    dropped = 0
    for paths in list(blocks.temp_file_sets):
        for path in [path for path in list(paths) if str(path).startswith(prefixes)]:
            paths.discard(path)
            dropped += 1
    return dropped


def _bytes_in(folder: Path) -> int:
    total = 0
    try:
        for entry in os.scandir(folder):
            if entry.is_file(follow_symlinks=False):
                total += entry.stat(follow_symlinks=False).st_size
    except FileNotFoundError:
        pass
    return total
