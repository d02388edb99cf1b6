"""Each kind of work in its own bounded line (umo_app/queue_limits.py), against a running Gradio
server: why Gradio's own limit is not enough, the polls and the monitoring summary setup_queue tunes
(measured, so that a Gradio upgrade that changes them fails here), and the per-group limits through
gradio_client and plain HTTP."""

import json
import threading
import time

import gradio as gr
import httpx
import pytest
from gradio_client import Client
from gradio_client.utils import QueueError

from tests.app_server import wait_until
from tests.page.serving import join_as_a_page, run_probe, serving
from umo_app import gradio_internals
from umo_app.queue_limits import (ANALYSIS_GROUP, GPU_GROUP, MONITORING_SUMMARY_EVERY, PROGRESS_POLL_S,
                                  QUEUE_IDLE_POLL_S, QueueLimits, setup_queue)


def _held_until(release):
    def slow(text):
        release.wait(60)
        return text

    return slow


# -- what Gradio's queue does on its own -------------------------------------------------------------
def test_gradios_own_waiting_limit_counts_every_group_together():
    # Why setup_queue exists: a full line of one kind of work would refuse every other kind.
    release = threading.Event()
    with gr.Blocks() as demo:
        box = gr.Textbox()
        gr.Button("slow").click(_held_until(release), box, box, api_name="slow", concurrency_id="slow",
                                concurrency_limit=1)
        gr.Button("quick").click(lambda text: text, box, box, api_name="quick", concurrency_id="quick",
                                 concurrency_limit=1)
    demo.queue(max_size=1)
    with serving(demo) as url:
        try:
            running = Client(url, verbose=False).submit("one", api_name="/slow")
            wait_until(lambda: running.status().code.value == "PROCESSING")
            waiting = Client(url, verbose=False).submit("two", api_name="/slow")
            wait_until(lambda: waiting.status().code.value == "IN_QUEUE")
            # the quick group has a free slot and nothing waiting in it, and is still refused
            with pytest.raises(QueueError):
                Client(url, verbose=False).predict("three", api_name="/quick")
        finally:
            release.set()
        assert running.result(timeout=30) == "one" and waiting.result(timeout=30) == "two"


# Counts how long the server's loops sleep each time they go to sleep: each sleep is one wake-up, and
# an idle queue's two loops sleep their polling intervals over and over.
QUEUE_POLLS_PROBE = """
import asyncio, collections, json, sys, time
sleeps = collections.Counter()
plain_sleep = asyncio.sleep
async def counted_sleep(delay, *args, **kwargs):
    sleeps[delay] += 1
    return await plain_sleep(delay, *args, **kwargs)
asyncio.sleep = counted_sleep
import gradio as gr
from tests.page.serving import serving
from umo_app.queue_limits import QueueLimits, setup_queue
with gr.Blocks() as demo:
    gr.Button().click(lambda: None)
if sys.argv[1] == "setup_queue":
    setup_queue(demo, QueueLimits({}, {}))
else:
    demo.queue()
with serving(demo):
    time.sleep(1)  # past the start-up
    before, start = collections.Counter(sleeps), time.monotonic()
    time.sleep(3)  # idle: the time measured
    after, elapsed = collections.Counter(sleeps), time.monotonic() - start
print(json.dumps({repr(delay): (after[delay] - before[delay]) / elapsed for delay in after}))
"""


def _idle_wakeups_per_second(queue: str) -> dict[float, float]:
    """delay -> how many times a second the idle server's loops sleep for that long."""
    rates = json.loads(run_probe(QUEUE_POLLS_PROBE, queue).splitlines()[-1])
    return {float(delay): rate for delay, rate in rates.items()}


def test_the_idle_queue_polls_at_the_intervals_setup_queue_sets_less_often_than_gradios_default():
    # Gradio's own loops: a look for work every 1 ms, for progress every 10 ms; on a loaded machine
    # each sleep overruns, hence bounds far from the nominal 1000 and 100 a second
    plain = _idle_wakeups_per_second("plain")
    assert plain.get(0.001, 0) > 100 and plain.get(0.01, 0) > 20, plain
    # ours: the same two loops at 10 ms and 50 ms (never more often than that), Gradio's 1 ms gone
    ours = _idle_wakeups_per_second("setup_queue")
    assert 25 < ours.get(QUEUE_IDLE_POLL_S, 0) <= 1.1 / QUEUE_IDLE_POLL_S, ours
    assert 5 < ours.get(PROGRESS_POLL_S, 0) <= 1.1 / PROGRESS_POLL_S, ours
    assert ours.get(0.001, 0) == 0, ours
    assert sum(ours.values()) < sum(plain.values()) / 2, (ours, plain)


def test_gradios_monitoring_summary_is_refreshed_every_hundred_events_not_every_event(monkeypatch):
    monkeypatch.delenv("GRADIO_ANALYTICS_CACHE_FREQUENCY", raising=False)
    with gr.Blocks() as demo:
        box = gr.Textbox()
        gr.Button("x").click(lambda text: text, box, box, api_name="x", concurrency_id="x")
    setup_queue(demo, QueueLimits({"x": 1}, {}))
    with serving(demo) as url:
        client = Client(url, verbose=False)

        def summary():
            return httpx.get(f"{url}/monitoring/summary").json()

        # the summary is recomputed only once that many events were recorded since the last time
        for n in range(MONITORING_SUMMARY_EVERY - 1):
            assert client.predict(str(n), api_name="/x") == str(n)
        assert summary() == {"functions": {}}
        client.predict("last", api_name="/x")
        wait_until(lambda: summary()["functions"], timeout=10)
        assert summary()["functions"]["x"]["total_requests"] == MONITORING_SUMMARY_EVERY


# -- separate, bounded lines through a running server -----------------------------------------------
@pytest.fixture(scope="module")
def busy_server():
    """A page with a slow one-at-a-time event ("gpu" group, one may wait) and a quick one
    ("analysis" group): the slow one holds until the test releases it."""
    release = threading.Event()
    with gr.Blocks() as demo:
        box = gr.Textbox()
        out = gr.Textbox()
        gr.Button("slow").click(_held_until(release), box, out, api_name="slow", concurrency_id=GPU_GROUP,
                                concurrency_limit=1)
        gr.Button("quick").click(lambda text: text.upper(), box, out, api_name="quick",
                                 concurrency_id=ANALYSIS_GROUP, concurrency_limit=2)
    limits = QueueLimits({GPU_GROUP: 1, ANALYSIS_GROUP: 4}, {GPU_GROUP: ("generation", "generations")})
    setup_queue(demo, limits)
    with serving(demo) as url:
        yield url, demo, release
        release.set()


def test_a_full_generation_line_refuses_in_plain_words_and_analyses_still_run(busy_server):
    url, demo, release = busy_server
    running = Client(url, verbose=False).submit("one", api_name="/slow")
    wait_until(lambda: running.status().code.value == "PROCESSING")
    waiting = Client(url, verbose=False).submit("two", api_name="/slow")
    wait_until(lambda: gradio_internals.refusal_to_join(demo, GPU_GROUP) is not None)

    # gradio_client: Gradio's QueueError (HTTP 503), which API clients retry on
    with pytest.raises(QueueError):
        Client(url, verbose=False).predict("three", api_name="/slow")
    # the page (no API client header): the server's own words
    answer = join_as_a_page(url, "slow", ["four"], "page-session")
    assert answer.status_code == 400
    assert answer.json()["detail"] == ("Too busy right now: 1 generation is waiting, the most this server "
                                       "queues. Please try again in a minute.")

    # the other group is neither refused nor held up
    start = time.monotonic()
    assert Client(url, verbose=False).predict("quick", api_name="/quick") == "QUICK"
    assert time.monotonic() - start < 10 and not running.done()
    release.set()
    assert running.result(timeout=30) == "one" and waiting.result(timeout=30) == "two"
