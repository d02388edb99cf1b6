"""How the page serves many visitors (umo_app's queue_limits, departures, downloads, memory), against
the real Gradio: the private pieces of Gradio umo_app/gradio_internals.py relies on (pinned here, so a
Gradio upgrade that changes them fails these tests), the per-group waiting limits through a running
server with gradio_client and plain HTTP, and the downloads folder's size cap and age on real files."""

import asyncio
import os
import shutil
import threading
import time
from pathlib import Path

import gradio as gr
import httpx
import pytest
from gradio_client import Client, handle_file
from gradio_client.utils import QueueError

from tests.app_server import free_port, wait_for
from umo_app import gradio_internals, memory, zerogpu
from umo_app.departures import DepartureWatch, StopFlag
from umo_app.downloads import DownloadsFolder
from umo_app.layout import build_demo
from umo_app.queue_limits import (ANALYSIS_GROUP, GPU_GROUP, MONITORING_SUMMARY_EVERY, QUEUE_LIMITS, QueueLimits,
                                  setup_queue)

ROOT = Path(__file__).resolve().parents[2]


# -- what the page reads in Gradio's queue -------------------------------------------------------
@pytest.fixture
def queue_with_one_running_event():
    from gradio.queueing import Event

    with gr.Blocks() as demo:
        button = gr.Button()
        button.click(lambda: None, api_name="work")
    demo.queue()
    queue = demo._queue
    fn = next(iter(demo.fns.values()))
    event = Event("visitor-session", fn, request=None, username=None)
    queue.active_jobs = [None, [event], None]
    return demo, queue, event


def test_gradio_marks_a_departed_visitors_running_event_not_alive_and_keeps_it_active(queue_with_one_running_event):
    # What routes.py does when a visitor's event stream drops (closed tab, killed client).
    _, queue, event = queue_with_one_running_event
    assert gradio_internals.still_wanted(event, queue)
    asyncio.run(queue.clean_events(session_hash="visitor-session"))
    assert event.alive is False and queue.active_jobs[1] == [event]
    assert not gradio_internals.still_wanted(event, queue)


def test_a_cancelled_event_is_no_longer_wanted_once_out_of_the_active_jobs(queue_with_one_running_event):
    # A cancel ends the event's task, whose clean-up empties its active_jobs slot.
    _, queue, event = queue_with_one_running_event
    queue.active_jobs[1] = None
    assert event.alive and not gradio_internals.still_wanted(event, queue)


def test_current_event_is_found_from_gradios_local_context(queue_with_one_running_event):
    from gradio.context import LocalContext

    demo, queue, event = queue_with_one_running_event
    assert gradio_internals.current_event() == (None, None)
    blocks_token, id_token = LocalContext.blocks.set(demo), LocalContext.event_id.set(event._id)
    try:
        assert gradio_internals.current_event() == (event, queue)
    finally:
        LocalContext.blocks.reset(blocks_token)
        LocalContext.event_id.reset(id_token)


def test_the_departure_watch_raises_the_stop_flag_when_the_visitor_leaves(queue_with_one_running_event):
    from gradio.context import LocalContext

    demo, queue, event = queue_with_one_running_event
    blocks_token, id_token = LocalContext.blocks.set(demo), LocalContext.event_id.set(event._id)
    try:
        watch = DepartureWatch()
    finally:
        LocalContext.blocks.reset(blocks_token)
        LocalContext.event_id.reset(id_token)
    with watch as stop:
        time.sleep(3 * DepartureWatch.POLL_S)
        assert not stop.is_set()
        asyncio.run(queue.clean_events(session_hash="visitor-session"))
        deadline = time.time() + 5
        while not stop.is_set() and time.time() < deadline:
            time.sleep(0.05)
        assert stop.is_set()
    assert not stop.path.exists()  # no flag files left behind


def test_gradios_own_waiting_limit_counts_every_group_together():
    # Why setup_queue exists: a full line of one kind of work would refuse every other kind.
    import inspect

    from gradio.queueing import Queue

    assert "len(self) >= self.max_size" in inspect.getsource(Queue.push)
    assert "event_queue_per_concurrency_id.values()" in inspect.getsource(Queue.__len__)


def test_the_queue_polls_less_often_than_gradios_default():
    # the private intervals setup_queue sets are still the ones Gradio's queue loops sleep for
    import inspect

    from gradio.queueing import Queue

    plain = gr.Blocks().queue()._queue
    assert (plain.sleep_when_free, plain.progress_update_sleep_when_free) == (0.001, 0.01)
    assert "await asyncio.sleep(self.sleep_when_free)" in inspect.getsource(Queue.start_processing)
    assert "await asyncio.sleep(self.progress_update_sleep_when_free)" in inspect.getsource(
        Queue.start_progress_updates)
    ours = setup_queue(gr.Blocks(), QueueLimits({}, {}))._queue
    assert (ours.sleep_when_free, ours.progress_update_sleep_when_free) == (0.01, 0.05)


def test_gradios_monitoring_summary_is_refreshed_every_hundred_events_not_every_event(monkeypatch):
    monkeypatch.delenv("GRADIO_ANALYTICS_CACHE_FREQUENCY", raising=False)
    with gr.Blocks() as demo:
        gr.Button("x").click(lambda: None)
    setup_queue(demo, QueueLimits({}, {}))
    queue = demo._queue
    assert queue.ANAYLTICS_CACHE_FREQUENCY == MONITORING_SUMMARY_EVERY
    # the summary is recomputed only once that many events were recorded since the last time
    queue.event_count_at_last_cache, queue.events_recorded = 0, MONITORING_SUMMARY_EVERY - 1
    record = {"time": 0.0, "status": "success", "process_time": 0.4, "function": "x"}
    assert queue.compute_analytics_summary([record]) == {"functions": {}}
    queue.events_recorded += 1
    assert queue.compute_analytics_summary([record])["functions"]["x"]["total_requests"] == 1


# -- separate, bounded lines through a running server -----------------------------------------------
@pytest.fixture(scope="module")
def busy_server():
    """A page with a slow one-at-a-time event ("gpu" group, one may wait) and a quick one
    ("analysis" group): the slow one holds until the test releases it."""
    release = threading.Event()

    def slow(text):
        release.wait(60)
        return text

    with gr.Blocks() as demo:
        box = gr.Textbox()
        out = gr.Textbox()
        gr.Button("slow").click(slow, box, out, api_name="slow", concurrency_id=GPU_GROUP,
                                concurrency_limit=1)
        gr.Button("quick").click(lambda text: text.upper(), box, out, api_name="quick",
                                 concurrency_id=ANALYSIS_GROUP, concurrency_limit=2)
    limits = QueueLimits({GPU_GROUP: 1, ANALYSIS_GROUP: 4},
                                 {GPU_GROUP: ("generation", "generations")})
    setup_queue(demo, limits)
    port = free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    yield f"http://127.0.0.1:{port}", demo, release
    release.set()
    demo.close()


def test_a_full_generation_line_refuses_in_plain_words_and_analyses_still_run(busy_server):
    url, demo, release = busy_server
    running = Client(url, verbose=False).submit("one", api_name="/slow")
    _wait_until(lambda: running.status().code.value == "PROCESSING")
    waiting = Client(url, verbose=False).submit("two", api_name="/slow")
    _wait_until(lambda: len(demo._queue.event_queue_per_concurrency_id[GPU_GROUP].queue) == 1)

    # gradio_client: Gradio's QueueError (HTTP 503), which API clients retry on
    with pytest.raises(QueueError):
        Client(url, verbose=False).predict("three", api_name="/slow")
    # the page (no API client header): the server's own words
    fn_index = next(i for i, fn in demo.fns.items() if fn.api_name == "slow")
    answer = httpx.post(f"{url}/gradio_api/queue/join", json={
        "data": ["four"], "fn_index": fn_index, "session_hash": "page-session", "event_data": None,
        "trigger_id": None})
    assert answer.status_code == 400
    assert answer.json()["detail"] == ("Too busy right now: 1 generation is waiting, the most this server "
                                       "queues. Please try again in a minute.")

    # the other group is neither refused nor held up
    start = time.monotonic()
    assert Client(url, verbose=False).predict("quick", api_name="/quick") == "QUICK"
    assert time.monotonic() - start < 10 and not running.done()
    release.set()
    assert running.result(timeout=30) == "one" and waiting.result(timeout=30) == "two"


def _wait_until(condition, timeout=30):
    deadline = time.time() + timeout
    while not condition():
        assert time.time() < deadline, "timed out"
        time.sleep(0.05)


# -- the downloads folder ---------------------------------------------------------------------------
def _result(downloads, size, age_s=0, session=None, mtime=None):
    folder = downloads.new_folder(session)
    (folder / "image.png").write_bytes(b"x" * size)
    if age_s or mtime is not None:
        then = time.time() - age_s if mtime is None else mtime
        os.utime(folder, (then, then))
    downloads.written(folder)
    return folder


def test_downloads_stay_under_the_cap_oldest_first(tmp_path):
    downloads = DownloadsFolder(tmp_path, max_bytes=3000, max_age_s=3600)
    folders = [_result(downloads, 1000, age_s=100 - k) for k in range(5)]
    assert downloads.total_bytes() <= 3000
    assert [f.exists() for f in folders] == [False, False, True, True, True]
    assert len(folders[0].name) == 32  # unguessable: the file names inside are predictable


def test_downloads_keep_each_open_pages_latest_result_before_older_ones(tmp_path):
    downloads = DownloadsFolder(tmp_path, max_bytes=3000, max_age_s=3600)
    kept = _result(downloads, 1000, age_s=500, session="open-page")
    others = [_result(downloads, 1000, age_s=100 - k) for k in range(3)]
    assert kept.exists() and [f.exists() for f in others] == [False, True, True]
    downloads.forget("open-page")  # the page closed
    _result(downloads, 1000)
    assert not kept.exists() and downloads.total_bytes() <= 3000


def test_downloads_expire_with_age_unless_a_page_still_shows_them(tmp_path):
    downloads = DownloadsFolder(tmp_path, max_bytes=10**6, max_age_s=60)
    shown = _result(downloads, 10, age_s=120, session="page")
    old = _result(downloads, 10, age_s=120)
    _result(downloads, 10)
    assert shown.exists() and not old.exists()


def test_room_is_made_for_a_result_before_it_is_written(tmp_path):
    downloads = DownloadsFolder(tmp_path, max_bytes=3000, max_age_s=3600)
    finished = [_result(downloads, 1000, age_s=100 - k) for k in range(3)]
    folder = downloads.new_folder()
    assert [f.exists() for f in finished] == [False, True, True]
    (folder / "image.png").write_bytes(b"x" * 1000)
    assert downloads.total_bytes() <= 3000


def test_a_result_being_written_is_never_removed(tmp_path):
    downloads = DownloadsFolder(tmp_path, max_bytes=1500, max_age_s=3600, min_age_s=0)
    being_written = downloads.new_folder()
    (being_written / "image.png").write_bytes(b"x" * 1000)
    _result(downloads, 1000)
    assert being_written.exists()
    downloads.written(being_written)
    assert downloads.total_bytes() <= 1500


class Clock:
    """A clock the test sets: ages measured against the result folders' own times, no sleeping."""

    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_no_result_is_removed_before_the_minimum_age_however_far_over_the_cap(tmp_path, caplog):
    clock = Clock()
    downloads = DownloadsFolder(tmp_path, max_bytes=1500, max_age_s=3600, min_age_s=30, clock=clock)
    start = 1_000_000.0
    clock.now = start
    first = _result(downloads, 1000, mtime=start)
    clock.now = start + 29.9
    with caplog.at_level("WARNING", logger="umo.downloads"):
        second = _result(downloads, 1000, mtime=clock.now)
    # over the cap, and both kept: the first is 29.9 s old
    assert first.exists() and second.exists() and downloads.total_bytes() == 2000
    assert "over its" in caplog.text and "its 2 results are all younger than 30 s" in caplog.text
    caplog.clear()

    clock.now = start + 30.1
    third = _result(downloads, 1000, mtime=clock.now)
    assert not first.exists() and second.exists() and third.exists()  # 30.1 s old: removed
    assert caplog.text == ""  # still over the cap: warned once a minute at most
    clock.now = start + 60.0
    fourth = _result(downloads, 1000, mtime=clock.now)
    assert [f.exists() for f in (second, third, fourth)] == [False, True, True]

    # once the results age, the cap holds again and the log says so
    clock.now = start + 200.0
    with caplog.at_level("INFO", logger="umo.downloads"):
        fifth = _result(downloads, 100, mtime=clock.now)
    assert not third.exists() and fifth.exists() and downloads.total_bytes() <= 1500
    assert "back under its" in caplog.text


def test_after_a_burst_the_folder_comes_back_under_its_cap_without_another_result(tmp_path):
    downloads = DownloadsFolder(tmp_path, max_bytes=1500, max_age_s=3600, min_age_s=0.5)
    results = [_result(downloads, 1000) for _ in range(3)]  # all younger than the minimum age
    wait_for(lambda: downloads.total_bytes() <= 1500, timeout=30)
    assert results[-1].exists() and not results[0].exists()


def test_the_minimum_age_is_kept_by_the_page_and_shorter_than_the_longest_age():
    from umo_app import downloads

    folder = downloads.page_downloads()
    assert folder.min_age_s == downloads.DOWNLOADS_MIN_AGE_S > 0
    assert downloads.DOWNLOADS_MIN_AGE_S <= downloads.DOWNLOADS_MAX_AGE_S
    with pytest.raises(ValueError):
        DownloadsFolder(folder.root, max_bytes=1, max_age_s=10, min_age_s=20)


def test_gradios_file_route_calls_the_fetch_the_page_wraps_and_refuses_a_missing_file_with_403():
    # the piece serve_results_from replaces: the file route looks `file_fetch` up in gradio.routes at
    # each request, with these arguments; and Gradio's own answer for a missing file is 403
    import inspect

    from gradio import route_utils, routes
    from starlette.exceptions import HTTPException

    assert "return file_fetch(path_or_url, request, blocks, app.uploaded_file_dir)" in inspect.getsource(
        routes.App.create_app)
    assert list(inspect.signature(route_utils.file_fetch).parameters) == [
        "path_or_url", "request", "blocks_or_config", "upload_dir"]
    demo = gr.Blocks()
    missing = gradio_internals.upload_folder() / "no-such-folder" / "gone.png"
    with pytest.raises(HTTPException) as refused:
        route_utils.file_fetch(str(missing), None, demo, str(gradio_internals.upload_folder()))
    assert refused.value.status_code == 403


@pytest.fixture(scope="module")
def analysing_server():
    """The page (no model: Analyze only) on a free port, with its own downloads folder."""
    from umo_pipeline.faces import get_face_backend

    demo = build_demo("no model in this test", get_face_backend("dlib"), device="cpu")
    setup_queue(demo, QUEUE_LIMITS)
    port = free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    yield f"http://127.0.0.1:{port}", demo
    demo.close()


def _analysed_files(url, photos) -> list[str]:
    client = Client(url, verbose=False, download_files=False)
    result = client.predict(handle_file(str(photos["obama1"])), None, None, None, None,
                            handle_file(str(photos["obama2"])), api_name="/analyze")
    return [item["path"] for item in _file_data(result)]


def _file_data(value):
    if isinstance(value, dict):
        return [value] if "path" in value and "url" in value else [
            item for inner in value.values() for item in _file_data(inner)]
    if isinstance(value, list | tuple):
        return [item for inner in value for item in _file_data(inner)]
    return []


def test_a_removed_result_file_answers_404_and_the_server_keeps_answering(analysing_server, photos):
    url, demo = analysing_server
    files = _analysed_files(url, photos)
    assert files and all(Path(path).is_file() for path in files)
    gone, kept = Path(files[0]), Path(files[-1])
    gone.unlink()
    answer = httpx.get(f"{url}/gradio_api/file={gone}")
    assert answer.status_code == 404, answer.text
    assert answer.json()["detail"] == "This result file is no longer kept; run the request again."
    shutil.rmtree(kept.parent)  # the whole result folder, as the cap removes it
    assert httpx.get(f"{url}/gradio_api/file={kept}").status_code == 404
    # the server keeps answering: a new analysis, its files served whole
    again = _analysed_files(url, photos)
    served = httpx.get(f"{url}/gradio_api/file={again[0]}")
    assert served.status_code == 200 and served.content == Path(again[0]).read_bytes()
    assert served.headers["content-length"] == str(len(served.content))
    # outside the results, Gradio's own answers stand
    assert httpx.get(f"{url}/gradio_api/file={ROOT / 'app.py'}").status_code == 403


def test_a_result_file_removed_while_its_answer_is_on_its_way_is_still_sent_whole(analysing_server, photos):
    # the race behind the HTTP 500 under load: the file passes Gradio's checks, then the cap removes it
    # before the answer reads it. The page's file route opens it first, so the answer still has it.
    from gradio import routes
    from starlette.requests import Request

    url, demo = analysing_server
    path = Path(_analysed_files(url, photos)[0])
    content = path.read_bytes()
    request = Request({"type": "http", "method": "GET", "path": "/file", "headers": [], "query_string": b""})
    answer = routes.file_fetch(str(path), request, demo, str(gradio_internals.upload_folder()))
    shutil.rmtree(path.parent)
    sent = []

    async def receive():
        await asyncio.sleep(60)
        return {"type": "http.disconnect"}

    async def send(message):
        sent.append(message)

    asyncio.run(answer({"type": "http", "method": "GET", "asgi": {"spec_version": "2.4"}}, receive, send))
    assert sent[0]["status"] == 200
    assert b"".join(message.get("body", b"") for message in sent[1:]) == content


def test_removed_results_leave_gradios_records_of_served_files(tmp_path):
    # Gradio records every file path an output returned and keeps the record when the file is gone;
    # the app's hook drops the paths of the folders the downloads folder removes. Two endpoints, one
    # with the hook and one without, each returning a new result file per call under a cap of two.
    import secrets

    root = gradio_internals.upload_folder() / f"test-records-{secrets.token_hex(4)}"
    kept = DownloadsFolder(root / "kept", max_bytes=2500, max_age_s=3600, min_age_s=0)
    forgotten = DownloadsFolder(root / "forgotten", max_bytes=2500, max_age_s=3600, min_age_s=0)

    def result(downloads):
        def write(text):
            folder = downloads.new_folder()
            (folder / "result.txt").write_text(text * 1000)
            downloads.written(folder)
            return str(folder / "result.txt")
        return write

    with gr.Blocks() as demo:
        box, out = gr.Textbox(), gr.File()
        gr.Button("kept").click(result(kept), box, out, api_name="kept")
        gr.Button("forgotten").click(result(forgotten), box, out, api_name="forgotten")
    forgotten.on_removed = lambda folders: gradio_internals.forget_served_files(demo, folders)
    demo.queue()
    port = free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    try:
        client = Client(f"http://127.0.0.1:{port}", verbose=False, download_files=False)
        for n in range(6):
            client.predict(str(n), api_name="/kept")
            client.predict(str(n), api_name="/forgotten")
    finally:
        demo.close()

    def recorded(downloads):
        paths = [Path(p) for paths in demo.temp_file_sets for p in paths if str(p).startswith(str(downloads.root))]
        return [p for p in paths if p.exists()], [p for p in paths if not p.exists()]

    alive, stale = recorded(kept)
    assert len(alive) == 2 and len(stale) == 4  # Gradio's own behaviour: removed files stay recorded
    alive, stale = recorded(forgotten)
    assert len(alive) == 2 and stale == []
    shutil.rmtree(root)


# -- memory after bursts -------------------------------------------------------------------------------
ARENA_PROBE = """
import ctypes, sys, tempfile, threading
from umo_app import memory
if sys.argv[1] == "limit":
    assert memory.limit_malloc_arenas(2)
start = threading.Barrier(8)
def request():  # a burst: eight threads at once, each holding a few image-sized blocks
    start.wait()
    for _ in range(50):
        blocks = [ctypes.create_string_buffer(200_000) for _ in range(5)]
        del blocks
threads = [threading.Thread(target=request) for _ in range(8)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
libc = ctypes.CDLL(None)
libc.fopen.restype = ctypes.c_void_p
path = tempfile.mktemp()
report = ctypes.c_void_p(libc.fopen(path.encode(), b"w"))
libc.malloc_info(0, report)
libc.fclose(report)
print(open(path).read().count("<heap nr="))
"""


def _arenas_after_a_burst(mode: str) -> int:
    import subprocess
    import sys

    env = {key: value for key, value in os.environ.items() if key != "MALLOC_ARENA_MAX"}
    done = subprocess.run([sys.executable, "-c", ARENA_PROBE, mode], capture_output=True, text=True, env=env,
                          cwd=ROOT, timeout=60, check=True)
    return int(done.stdout.split()[-1])


def test_a_burst_of_threads_uses_two_malloc_arenas_once_limited():
    # glibc's malloc_info lists one <heap> per arena: unlimited, a burst of eight threads spreads over
    # several (each keeping the pages it held); limited, they share two
    assert _arenas_after_a_burst("free") > 2
    assert _arenas_after_a_burst("limit") == 2


class CountingTrim:
    """Stands in for malloc_trim where only *when* it runs is tested: counts the calls."""

    def __init__(self):
        self.calls = 0

    def __call__(self):
        self.calls += 1


def test_the_heap_is_trimmed_once_the_server_has_been_idle_and_never_while_a_request_runs():
    trim = CountingTrim()
    idle = memory.IdleTrim(idle_s=0.5, trim=trim)
    with idle:  # a long request; a short one starts and ends meanwhile
        with idle:
            pass
        time.sleep(0.8)
        assert trim.calls == 0
    time.sleep(0.1)
    assert trim.calls == 0  # not idle long enough yet
    wait_for(lambda: trim.calls == 1, timeout=5)
    time.sleep(0.8)
    assert trim.calls == 1  # nothing ran since: nothing more to hand back

    counted = idle.around(lambda x, *, y: x + y)
    for _ in range(8):  # requests a short gap apart: no trim between them, one after the last
        assert counted(1, y=2) == 3
        time.sleep(0.1)
        assert trim.calls == 1
    wait_for(lambda: trim.calls == 2, timeout=5)
    assert idle.trims == 2


TRIM_PROBE = """
import sys, time
from umo_app import memory

def rss_mb():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024

start = rss_mb()
freed = b"x" * 4_000_000  # a large block (mmapped, the first time) whose release raises glibc's
del freed                 # mmap threshold: from now on blocks up to its size come from the heap
images, kept = [], []
for _ in range(60):  # image-sized blocks in the heap, smaller ones between them that stay
    images.append(b"x" * 3_000_000)
    kept.append(b"y" * 100_000)
del images
held = rss_mb()
idle = memory.IdleTrim(idle_s=0.2)
with idle:
    pass
while idle.trims == 0:
    time.sleep(0.05)
print(start, held, rss_mb())
"""


def test_idle_trim_hands_freed_image_sized_blocks_back_to_the_system():
    # the real malloc_trim in a fresh interpreter: 180 MB of freed 3 MB blocks stay with the process
    # (between small blocks still in use) until the idle trim hands them back
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", TRIM_PROBE], capture_output=True, text=True, timeout=60,
                          cwd=ROOT, check=True)
    start, held, trimmed = map(float, done.stdout.split())
    assert held - start > 120, (start, held, trimmed)
    assert held - trimmed > 120, (start, held, trimmed)


MATPLOTLIB_PROBE = """
import sys
from umo_app.launch import preload_matplotlib
if sys.argv[1] == "preloaded":
    assert preload_matplotlib()
from gradio.utils import MatplotlibBackendMananger  # what Gradio enters around every call it runs
before = set(sys.modules)
with MatplotlibBackendMananger():
    pass
import matplotlib
print(len(set(sys.modules) - before), matplotlib.get_backend())
"""


def _modules_imported_by_gradios_first_call(mode: str) -> tuple[int, str]:
    import subprocess
    import sys

    env = {key: value for key, value in os.environ.items() if key != "MPLBACKEND"}
    done = subprocess.run([sys.executable, "-c", MATPLOTLIB_PROBE, mode], capture_output=True, text=True, env=env,
                          cwd=ROOT, timeout=120, check=True)
    count, backend = done.stdout.split()
    return int(count), backend


def test_the_first_request_imports_nothing_once_matplotlib_is_preloaded():
    # a fresh interpreter: Gradio's first call imports matplotlib and pyplot (on the event loop, in a
    # server); after the start-up preload it imports nothing, and the backend stays "agg"
    imported, _ = _modules_imported_by_gradios_first_call("as-is")
    assert imported > 20
    assert _modules_imported_by_gradios_first_call("preloaded") == (0, "agg")


def test_the_apps_requests_hold_the_trim_off_until_the_last_one_ends(monkeypatch, photos):
    # through the running page: analyses ending while a generation runs do not trim; the end of the
    # generation, once idle, does
    from tests.composing_customizer import PacedCustomizer
    from umo_pipeline.faces import get_face_backend

    trim = CountingTrim()
    monkeypatch.setattr(memory, "IDLE_TRIM", memory.IdleTrim(idle_s=0.5, trim=trim))
    customizer = PacedCustomizer(step_seconds=0.1)
    demo = build_demo(customizer, get_face_backend("dlib"), device="cpu")
    setup_queue(demo, QUEUE_LIMITS)
    port = free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    try:
        client = Client(f"http://127.0.0.1:{port}", verbose=False)
        reference = handle_file(str(photos["obama1"]))
        generation = client.submit("a portrait", reference, steps=100, randomize_seed=False,
                                   api_name="/generate")
        wait_for(lambda: customizer.steps_run and customizer.steps_run[-1] > 0)
        for _ in range(2):
            client.predict(reference, None, None, None, None, handle_file(str(photos["obama2"])),
                           api_name="/analyze")
        time.sleep(1.0)
        assert trim.calls == 0 and not generation.done()
        generation.result(timeout=60)
        wait_for(lambda: trim.calls == 1, timeout=10)
    finally:
        demo.close()


# -- departures across ZeroGPU's process boundary ---------------------------------------------------
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
