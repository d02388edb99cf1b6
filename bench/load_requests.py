"""What bench/load.py watches on gradio_client's HTTP requests in its own process: how old each result
was when its client fetched it (FetchAges), and where one call's time goes (RequestLog)."""

from __future__ import annotations

import threading
import time
from pathlib import Path


class FetchAges:
    """How old each result was when its client had fetched it: the time a result-file download
    (GET /file=...umo_downloads/...) ended, less its result folder's modification time, the age the
    downloads folder measures before it may remove a result. Wraps httpx.Client.send for this
    process (gradio_client makes its own httpx clients), as RequestLog does; a download answered
    with anything but 200 is counted as lost."""

    def __init__(self):
        import httpx

        self.ages: list[float] = []
        self.lost: list[str] = []
        self._lock = threading.Lock()
        self._send = httpx.Client.send
        ages = self

        def send(client, request, *args, **kwargs):
            response = ages._send(client, request, *args, **kwargs)
            path = request.url.path
            if request.method == "GET" and "/file=" in path and "umo_downloads" in path:
                ages.note(Path(path.split("/file=", 1)[1]), response.status_code)
            return response

        httpx.Client.send = send

    def note(self, file: Path, status: int) -> None:
        ended = time.time()
        try:
            age = ended - file.parent.stat().st_mtime
        except FileNotFoundError:
            age = None
        with self._lock:
            if status != 200:
                self.lost.append(f"HTTP {status}: {file.parent.name}/{file.name}")
            elif age is not None:
                self.ages.append(age)

    def take(self) -> tuple[list[float], list[str]]:
        """The ages and losses noted since the last take."""
        with self._lock:
            taken = self.ages, self.lost
            self.ages, self.lost = [], []
        return taken

    def close(self) -> None:
        import httpx

        httpx.Client.send = self._send


def print_fetch_ages(fetches: FetchAges) -> None:
    from umo_app.downloads import DOWNLOADS_MIN_AGE_S

    ages, lost = fetches.take()
    if ages:
        print(f"   result age when its client had fetched it: p50 {pct(ages, 50):.2f} s, p95 {pct(ages, 95):.2f} s, "
              f"max {max(ages):.2f} s over {len(ages)} files (kept at least {DOWNLOADS_MIN_AGE_S} s); "
              f"lost: {len(lost)}" + "".join(f"\n     {item}" for item in lost[:5]))


class RequestLog:
    """Every HTTP request gradio_client makes, timed (it makes its own httpx clients, so the bench
    wraps httpx.Client.send for its own process): how long one call spends uploading, waiting for its
    result, and downloading the result files."""

    def __init__(self):
        import httpx

        self.entries: list[tuple[str, str, float, float]] = []
        self._send = httpx.Client.send
        log = self

        def send(client, request, *args, **kwargs):
            start = time.perf_counter()
            try:
                return log._send(client, request, *args, **kwargs)
            finally:
                log.entries.append((request.method, request.url.path, start, time.perf_counter()))

        httpx.Client.send = send

    def close(self) -> None:
        import httpx

        httpx.Client.send = self._send

    def phases(self, start: float, end: float) -> dict[str, float]:
        """Seconds spent on uploads, from joining the queue to the result, and on downloads."""
        spans = [(method, path, a, b) for method, path, a, b in self.entries if start <= a <= end]
        uploads = sum(b - a for method, path, a, b in spans if path.endswith("/upload"))
        joined = [a for method, path, a, b in spans if path.endswith("/queue/join")]
        files = [(a, b) for method, path, a, b in spans if method == "GET" and "/file=" in path]
        downloads = sum(b - a for a, b in files)
        waited = (min(a for a, b in files) if files else end) - (joined[0] if joined else start)
        return {"uploads": uploads, "queue and processing": waited, "downloads": downloads}


def pct(values, q):
    """The q-th percentile of `values` (nearest rank); nan when there are none."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]
