"""Every private piece of Gradio the page reads or patches, and nothing else; checked against Gradio 6.31
(requirements.txt pins that minor version). The page's tests (tests/page: test_departures,
test_queue_limits, test_downloads) check each piece by what it does and fail when a Gradio upgrade
changes one. Gradio offers no public hook for any of these:

- the queue event a handler serves, and whether its visitor is still there (`LocalContext`,
  `Blocks._queue`, `Queue.active_jobs`, `Event._id`, `Event.alive`): for departures.py;
- the queue's two polling intervals and a check before an event joins its line (`Queue.push` and its
  answers, `route_utils.get_fn`, `Queue.event_queue_per_concurrency_id`): for queue_limits.py;
- Gradio's upload folder (`utils.get_upload_folder`), its records of the files it served
  (`Blocks.temp_file_sets`) and the function its file route calls (`routes.file_fetch`): for
  downloads.py and the layout (`served_files` and `answer_for_file` let the tests look at them);
- an image slot's `preprocess`, replaced so the handler receives the uploaded file itself: for panels.py.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path


# -- the running event and its visitor --------------------------------------------------------------
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


# -- the queue ------------------------------------------------------------------------------------
def set_queue_polls(demo, idle_s: float, progress_s: float) -> None:
    """How long the queue's loops sleep between looks for work they can start (while there is none)
    and between looks for progress to send (Gradio's: 1 ms and 10 ms)."""
    queue = demo._queue
    queue.sleep_when_free = idle_s
    queue.progress_update_sleep_when_free = progress_s


def refuse_before_joining(demo, refusal: Callable[[str | None, int], str | None]) -> None:
    """Before an event joins its line, `refusal(concurrency group, events waiting in it)` may turn it
    away with a text (None lets it join).

    The refusal reaches gradio_client as Gradio's "queue_full" (HTTP 503, the client's fixed text,
    and clients retry on it) and the page as an "error" (HTTP 400), whose text the page shows as is.
    """
    queue = demo._queue
    push = queue.push

    async def push_unless_refused(body, request, username):
        group, waiting = _waiting_in_group(queue, body)
        text = refusal(group, waiting)
        if text is not None:
            from_api_client = request is not None and request.headers.get("x-gradio-user") == "api"
            return False, text, "queue_full" if from_api_client else "error"
        return await push(body, request, username)

    push_unless_refused.refusal = refusal  # read by refusal_to_join
    queue.push = push_unless_refused


def _waiting_in_group(queue, body) -> tuple[str | None, int]:
    from gradio import route_utils

    try:
        fn = route_utils.get_fn(queue.blocks, None, body)
    except Exception:  # noqa: BLE001 - an unknown function: Gradio's own push answers it
        return None, 0
    return fn.concurrency_id, _waiting(queue, fn.concurrency_id)


def _waiting(queue, concurrency_id: str) -> int:
    waiting = queue.event_queue_per_concurrency_id.get(concurrency_id)
    return len(waiting.queue) if waiting is not None else 0


# -- files ------------------------------------------------------------------------------------------
def upload_folder() -> Path:
    """Where Gradio keeps uploads and what handlers return: files returned from inside it are served
    as they are; anything else is copied into it first."""
    from gradio.utils import get_upload_folder

    return Path(get_upload_folder())


def served_files(blocks) -> list[str]:
    """Every file path Gradio keeps in its records of the files it served (`Blocks.temp_file_sets`),
    including those of files that are gone."""
    return [str(path) for paths in list(blocks.temp_file_sets) for path in list(paths)]


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


#: folders whose files the file route serves opened first (see serve_results_from)
_RESULT_FOLDERS: list[Path] = []


def serve_results_from(folder) -> None:
    """Gradio's file route answers for the files under `folder` (a folder of results the app removes
    in time) with the file opened before the answer starts, and 404 for a file that is gone.

    Gradio answers a path that does not exist with 403 ("File not allowed"), and one removed between
    its check and the answer's own look at the file with HTTP 500 (Starlette's FileResponse raises
    RuntimeError "File at path ... does not exist"); under load the two are seconds apart. Gradio's
    checks still decide what may be served; a file that passed them is opened at once and sent from
    the open file (a removal after that cannot take it away), whole: Range requests get the whole
    file, which HTTP allows. Process-wide, like the route it patches; other paths are untouched.
    """
    from gradio import routes

    folder = Path(folder).resolve()
    if folder not in _RESULT_FOLDERS:
        _RESULT_FOLDERS.append(folder)
    if not getattr(routes.file_fetch, "serves_results", False):
        routes.file_fetch = _fetch_results_opened(routes.file_fetch)


def _fetch_results_opened(gradios_fetch):
    from starlette.background import BackgroundTask
    from starlette.exceptions import HTTPException
    from starlette.responses import StreamingResponse

    def file_fetch(path_or_url, request, blocks_or_config, upload_dir):
        path = _in_result_folders(path_or_url)
        if path is None:
            return gradios_fetch(path_or_url, request, blocks_or_config, upload_dir)
        gone = HTTPException(404, "This result file is no longer kept; run the request again.")
        try:
            answer = gradios_fetch(path_or_url, request, blocks_or_config, upload_dir)
        except HTTPException:
            if not path.is_file():
                raise gone from None
            raise
        except FileNotFoundError:  # Gradio's ranged answer looks at the file too
            raise gone from None
        try:
            opened = open(path, "rb")  # noqa: SIM115 - closed when sent (or by the background task)
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise gone from None
        headers = {name: answer.headers[name] for name in ("content-type", "content-disposition")
                   if name in answer.headers}
        headers["content-length"] = str(os.fstat(opened.fileno()).st_size)
        return StreamingResponse(_chunks(opened), headers=headers, background=BackgroundTask(opened.close))

    file_fetch.serves_results = True
    return file_fetch


def _in_result_folders(path_or_url) -> Path | None:
    """The resolved path when it lies under one of the result folders, else None."""
    if not _RESULT_FOLDERS or "://" in str(path_or_url):
        return None
    try:
        path = Path(os.path.abspath(str(path_or_url))).resolve()
    except (OSError, ValueError):
        return None
    if any(path.is_relative_to(folder) for folder in _RESULT_FOLDERS):
        return path
    return None


def answer_for_file(path, blocks, request):
    """The answer Gradio's file route makes for `request` asking for `path`, from the function the
    route calls (the one serve_results_from puts in place), before any of it is sent."""
    from gradio import routes

    return routes.file_fetch(str(path), request, blocks, str(upload_folder()))


def _chunks(opened, size: int = 256 * 1024):
    with opened:
        while chunk := opened.read(size):
            yield chunk


def hand_over_upload_path(image):
    """Make a gr.Image give its handlers the uploaded file itself (its path in Gradio's upload folder)
    instead of Gradio's decoded picture; returns the same component.

    The instance's preprocess is replaced: a gr.Image subclass would make Gradio write a .pyi stub
    next to the subclass's file at import time.
    """
    def preprocess(payload):
        return None if payload is None else payload.path

    image.preprocess = preprocess
    return image


def refusal_to_join(demo, concurrency_id: str) -> str | None:
    """What the check `refuse_before_joining` installed would answer an event of `concurrency_id`
    joining its line now (the text), or None when it may join; None too without a queue or a check.
    Reads only: the page asks before its own event joins (layout.py), so that a full line is said
    on the page's status line instead of Gradio's pop-up. The check is the very `refusal` the wrapper
    of `Queue.push` applies, so that the page and the queue can never apply different limits."""
    queue = getattr(demo, "_queue", None)
    refusal = getattr(getattr(queue, "push", None), "refusal", None)
    if refusal is None:
        return None
    return refusal(concurrency_id, _waiting(queue, concurrency_id))
