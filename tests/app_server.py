"""Start `python app.py` in a subprocess on a free loopback port, as a user would, for client tests."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
START_TIMEOUT_S = 120


def wait_until(condition, timeout: float = 30.0) -> None:
    """Poll `condition` every 50 ms until it holds; fail the test after `timeout` seconds.

    Call it right after the event the condition waits on, so that the deadline counts from there: a
    generous deadline costs nothing on a fast machine and keeps a loaded one from failing."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def running_app(*flags: str, log_name: str):
    """Yields the URL of `app.py FLAGS` once it answers; its output goes to tests/output/LOG_NAME."""
    port = free_port()
    env = dict(os.environ, HF_HUB_OFFLINE="1", GRADIO_ANALYTICS_ENABLED="False", HF_HUB_DISABLE_TELEMETRY="1")
    (ROOT / "tests" / "output").mkdir(exist_ok=True)
    with open(ROOT / "tests" / "output" / log_name, "w", buffering=1) as log:
        process = subprocess.Popen(
            [sys.executable, "app.py", *flags, "--port", str(port), "--host", "127.0.0.1"],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
        )
        try:
            url = f"http://127.0.0.1:{port}"
            _wait_until_answering(process, url, log.name)
            yield url
        finally:
            process.terminate()
            process.wait(timeout=30)


def _wait_until_answering(process: subprocess.Popen, url: str, log_path: str) -> None:
    deadline = time.time() + START_TIMEOUT_S
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"app.py exited with {process.returncode}; see {log_path}")
        try:
            urllib.request.urlopen(url, timeout=2)
            return
        except OSError:
            if time.time() > deadline:
                raise RuntimeError(f"app.py did not answer within {START_TIMEOUT_S} s; see {log_path}") from None
            time.sleep(0.5)
