"""A visitor who leaves or presses Stop (umo_app/departures.py), against a running Gradio server: the
queue event a handler serves is found, a dropped connection and a cancel each make it no longer
wanted (the Gradio behaviour umo_app/gradio_internals.py relies on), and the departure watch raises
its stop flag."""

import threading
import time

import gradio as gr
import httpx
import pytest
from gradio_client import Client
from gradio_client.utils import Status

from tests.app_server import wait_until
from tests.page.serving import join_as_a_page, serving
from umo_app import gradio_internals
from umo_app.departures import DepartureWatch


class Visit:
    """One handler run, seen from the server's side: the event gradio_internals finds for it, the stop
    flag of its departure watch, and a hold until the test releases it."""

    def __init__(self):
        self.started, self.release, self.ended = threading.Event(), threading.Event(), threading.Event()
        self.event = self.queue = self.stop = None

    def still_wanted(self) -> bool:
        return gradio_internals.still_wanted(self.event, self.queue)


class Server:
    """A page whose handler holds while the test looks: "/hold" runs one at a time, "/pair" two."""

    def __init__(self):
        self.visits: dict[str, Visit] = {}

    def hold(self, name):
        visit = self.visits[name]
        visit.event, visit.queue = gradio_internals.current_event()
        with DepartureWatch() as stop:
            visit.stop = stop
            visit.started.set()
            visit.release.wait(60)
        visit.ended.set()
        return name

    def visit(self, name) -> Visit:
        self.visits[name] = Visit()
        return self.visits[name]


@pytest.fixture(scope="module")
def server():
    held = Server()
    with gr.Blocks() as demo:
        box = gr.Textbox()
        gr.Button("hold").click(held.hold, box, box, api_name="hold", concurrency_id="hold", concurrency_limit=1)
        gr.Button("pair").click(held.hold, box, box, api_name="pair", concurrency_id="pair", concurrency_limit=2)
    demo.queue()
    with serving(demo) as url:
        yield url, held
        for visit in held.visits.values():
            visit.release.set()


class PageVisitor:
    """A visitor the way the page is one: joins the queue, then listens to its events' stream; leaving
    closes the connection, as a closed tab does."""

    def __init__(self, url, api_name, name, session):
        answer = join_as_a_page(url, api_name, [name], session)
        assert answer.status_code == 200, answer.text
        self._client = httpx.Client(timeout=None)
        self._stream = self._client.stream("GET", f"{url}/gradio_api/queue/data", params={"session_hash": session})
        self._stream.__enter__()

    def leave(self):
        self._stream.__exit__(None, None, None)
        self._client.close()


def test_current_event_is_found_from_gradios_local_context(server):
    url, held = server
    assert gradio_internals.current_event() == (None, None)  # outside a handler
    first, second = held.visit("first"), held.visit("second")
    leaving = PageVisitor(url, "pair", "first", "first-session")
    staying = PageVisitor(url, "pair", "second", "second-session")
    assert first.started.wait(30) and second.started.wait(30)
    try:
        # each handler found its own event: the one whose visitor leaves is no longer wanted, the other is
        assert first.event is not None and first.queue is not None and first.event is not second.event
        assert first.still_wanted() and second.still_wanted()
        leaving.leave()
        wait_until(lambda: not first.still_wanted(), timeout=30)
        assert second.still_wanted()
    finally:
        first.release.set()
        second.release.set()
        staying.leave()


def test_a_departed_visitors_running_event_is_no_longer_wanted_and_keeps_its_slot(server):
    # What Gradio does when a visitor's event stream drops (closed tab, killed client): it marks the
    # running event, and lets the handler run on in its slot
    url, held = server
    departed = held.visit("departed")
    visitor = PageVisitor(url, "hold", "departed", "departed-session")
    assert departed.started.wait(30) and departed.still_wanted()
    visitor.leave()
    wait_until(lambda: not departed.still_wanted(), timeout=30)
    assert not departed.ended.is_set()
    next_one = held.visit("next")
    job = Client(url, verbose=False).submit("next", api_name="/hold")
    # the next visitor's event waits while the departed one's handler holds the only slot: a window in
    # which it must not start
    time.sleep(1.0)
    assert not next_one.started.is_set()
    departed.release.set()
    assert next_one.started.wait(30)
    next_one.release.set()
    assert job.result(timeout=30) == "next"


def test_a_cancelled_event_is_no_longer_wanted_once_out_of_the_active_jobs(server):
    # A cancel ends the event's task, which frees its slot while the handler's thread runs on.
    url, held = server
    cancelled = held.visit("cancelled")
    job = Client(url, verbose=False).submit("cancelled", api_name="/hold")
    assert cancelled.started.wait(30) and cancelled.still_wanted()
    # the client can cancel only once it knows its event (the server may start the handler before the
    # client has read the id its join returned, on a loaded machine): it knows it once it sees the run
    wait_until(lambda: job.status().code == Status.PROCESSING, timeout=30)
    job.cancel()
    wait_until(lambda: not cancelled.still_wanted(), timeout=30)
    next_one = held.visit("after-cancel")
    following = Client(url, verbose=False).submit("after-cancel", api_name="/hold")
    assert next_one.started.wait(30) and not cancelled.ended.is_set()
    cancelled.release.set()
    next_one.release.set()
    assert following.result(timeout=30) == "after-cancel"


def test_the_departure_watch_raises_the_stop_flag_when_the_visitor_leaves(server):
    url, held = server
    watched = held.visit("watched")
    visitor = PageVisitor(url, "hold", "watched", "watched-session")
    assert watched.started.wait(30)
    stop = watched.stop
    # the visitor is still there for several of the watch's looks: a window in which the flag must
    # stay down
    time.sleep(3 * DepartureWatch.POLL_S)
    assert not stop.is_set()
    visitor.leave()
    wait_until(stop.is_set, timeout=30)
    watched.release.set()
    assert watched.ended.wait(30)
    assert not stop.path.exists()  # no flag files left behind
