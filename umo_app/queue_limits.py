"""Each kind of work waits in its own bounded line on top of Gradio's queue: analyses are never
refused or held up because generations fill the queue, and a full line says so in plain words."""

from __future__ import annotations

import os

from umo_app import gradio_internals

#: concurrency groups: one GPU job at a time; CPU analyses side by side
GPU_GROUP = "gpu"
ANALYSIS_GROUP = "analysis"

#: analyses (and reference previews) running side by side; face detection itself is serialised
#: inside each backend, the rest (decoding, drawing, writing files) overlaps
ANALYSIS_CONCURRENCY = max(2, min(4, os.cpu_count() or 2))

#: events between two refreshes of Gradio's monitoring summary (Gradio's default: every event)
MONITORING_SUMMARY_EVERY = 100
#: seconds between the queue's looks for work it can start while it has none it can start, and
#: between its looks for progress to send (Gradio's: 1 ms and 10 ms)
QUEUE_IDLE_POLL_S = 0.01
PROGRESS_POLL_S = 0.05


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

    def refusal(self, group: str | None, count: int) -> str | None:
        """The words turning an event away when `count` already wait in its group's full line; None
        when it may join."""
        limit = self.waiting.get(group)
        return self.message(group, count) if limit is not None and count >= limit else None


#: how many may wait: generations for the one GPU slot, analyses (CPU only) in a line of their own
QUEUE_LIMITS = QueueLimits(
    {GPU_GROUP: 16, ANALYSIS_GROUP: 64},
    {GPU_GROUP: ("generation", "generations"), ANALYSIS_GROUP: ("analysis", "analyses")},
)


def setup_queue(demo, limits: QueueLimits = QUEUE_LIMITS):
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
    # Gradio's 1 ms and 10 ms polls keep an idle server at about 10 % of a core here (3 % with ours);
    # an event waits at most 10 ms more to start, a progress bar moves 20 times a second
    gradio_internals.set_queue_polls(demo, QUEUE_IDLE_POLL_S, PROGRESS_POLL_S)
    gradio_internals.refuse_before_joining(demo, limits.refusal)
    return demo
