"""The downloads folder (umo_app/downloads.py): its size cap and ages on real files, and its results
served by a running Gradio server through the file route the page wraps, including files removed
while their answer is on its way and Gradio's records of the files it served."""

import asyncio
import os
import secrets
import shutil
import time
from pathlib import Path

import gradio as gr
import httpx
import pytest
from gradio_client import Client, handle_file

from tests.app_server import wait_until
from tests.page.serving import ROOT, serving
from umo_app import gradio_internals
from umo_app.downloads import DownloadsFolder
from umo_app.layout import build_demo
from umo_app.queue_limits import QUEUE_LIMITS, setup_queue


# -- the folder -------------------------------------------------------------------------------------
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
    wait_until(lambda: downloads.total_bytes() <= 1500, timeout=30)
    assert results[-1].exists() and not results[0].exists()


def test_the_minimum_age_is_kept_by_the_page_and_shorter_than_the_longest_age():
    from umo_app import downloads

    folder = downloads.page_downloads()
    assert folder.min_age_s == downloads.DOWNLOADS_MIN_AGE_S > 0
    assert downloads.DOWNLOADS_MIN_AGE_S <= downloads.DOWNLOADS_MAX_AGE_S
    with pytest.raises(ValueError):
        DownloadsFolder(folder.root, max_bytes=1, max_age_s=10, min_age_s=20)


# -- the results served -----------------------------------------------------------------------------
@pytest.fixture
def own_upload_folder():
    """A folder of its own in Gradio's upload folder, where served files live; removed afterwards."""
    root = gradio_internals.upload_folder() / f"test-downloads-{secrets.token_hex(4)}"
    yield root
    shutil.rmtree(root, ignore_errors=True)


def _one_file_page(folder):
    """A page whose one event returns a new result file in `folder`."""
    downloads = DownloadsFolder(folder, max_bytes=10**6, max_age_s=3600, min_age_s=0)

    def write(text):
        result = downloads.new_folder()
        (result / "result.txt").write_text(text * 1000)
        downloads.written(result)
        return str(result / "result.txt")

    with gr.Blocks() as demo:
        box, out = gr.Textbox(), gr.File()
        gr.Button("write").click(write, box, out, api_name="write")
    demo.queue()
    return demo


def test_gradios_file_route_calls_the_fetch_the_page_wraps_and_refuses_a_missing_file_with_403(own_upload_folder):
    # the piece serve_results_from replaces: the file route calls the fetch the page put in place, at
    # each request and with the arguments the page's fetch passes on to Gradio's; and Gradio's own
    # answer for a missing file is 403
    results = own_upload_folder / "results"
    demo = _one_file_page(results)
    with serving(demo) as url:
        client = Client(url, verbose=False, download_files=False)
        served = Path(client.predict("x", api_name="/write")["path"])
        assert httpx.get(f"{url}/gradio_api/file={served}").content == served.read_bytes()
        gradio_internals.serve_results_from(results)  # once the server is running
        answer = httpx.get(f"{url}/gradio_api/file={served}")
        assert answer.status_code == 200 and answer.content == served.read_bytes()
        served.unlink()
        assert httpx.get(f"{url}/gradio_api/file={served}").status_code == 404  # the page's fetch said so
        missing = gradio_internals.upload_folder() / "no-such-folder" / "gone.png"
        assert httpx.get(f"{url}/gradio_api/file={missing}").status_code == 403


@pytest.fixture(scope="module")
def analysing_server(dlib_backend):
    """The page (no model: Analyze only) on a free port, with its own downloads folder."""
    demo = build_demo("no model in this test", dlib_backend, device="cpu")
    setup_queue(demo, QUEUE_LIMITS)
    with serving(demo) as url:
        yield url, demo


def _analysed_files(url, photos) -> list[str]:
    client = Client(url, verbose=False, download_files=False)
    result = client.predict(handle_file(str(photos["obama1"])), image=handle_file(str(photos["obama2"])),
                            api_name="/analyze")
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
    from starlette.requests import Request

    url, demo = analysing_server
    path = Path(_analysed_files(url, photos)[0])
    content = path.read_bytes()
    request = Request({"type": "http", "method": "GET", "path": "/file", "headers": [], "query_string": b""})
    answer = gradio_internals.answer_for_file(path, demo, request)
    shutil.rmtree(path.parent)
    sent = []

    async def receive():
        # the visitor stays connected for longer than the answer takes: no disconnect comes
        await asyncio.sleep(60)
        return {"type": "http.disconnect"}

    async def send(message):
        sent.append(message)

    asyncio.run(answer({"type": "http", "method": "GET", "asgi": {"spec_version": "2.4"}}, receive, send))
    assert sent[0]["status"] == 200
    assert b"".join(message.get("body", b"") for message in sent[1:]) == content


def test_removed_results_leave_gradios_records_of_served_files(own_upload_folder):
    # Gradio records every file path an output returned and keeps the record when the file is gone;
    # the app's hook drops the paths of the folders the downloads folder removes. Two endpoints, one
    # with the hook and one without, each returning a new result file per call under a cap of two.
    kept = DownloadsFolder(own_upload_folder / "kept", max_bytes=2500, max_age_s=3600, min_age_s=0)
    forgotten = DownloadsFolder(own_upload_folder / "forgotten", max_bytes=2500, max_age_s=3600, min_age_s=0)

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
    with serving(demo) as url:
        client = Client(url, verbose=False, download_files=False)
        for n in range(6):
            client.predict(str(n), api_name="/kept")
            client.predict(str(n), api_name="/forgotten")

    def recorded(downloads):
        paths = [Path(p) for p in gradio_internals.served_files(demo) if p.startswith(str(downloads.root))]
        return [p for p in paths if p.exists()], [p for p in paths if not p.exists()]

    alive, stale = recorded(kept)
    assert len(alive) == 2 and len(stale) == 4  # Gradio's own behaviour: removed files stay recorded
    alive, stale = recorded(forgotten)
    assert len(alive) == 2 and stale == []
