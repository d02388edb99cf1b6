"""What the page's serving tests share: a Gradio demo served on a free loopback port, joining its
queue the way the page does, and a Python snippet run in a fresh interpreter."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from pathlib import Path

import httpx

from tests.app_server import free_port

ROOT = Path(__file__).resolve().parents[2]


@contextlib.contextmanager
def serving(demo, **options):
    """Yields the URL of `demo` launched on a free loopback port; closed on leaving."""
    port = free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True, **options)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        demo.close()


def fn_index(url: str, api_name: str) -> int:
    """The number a page (not an API client) sends to the queue for the event named `api_name`, read
    from the page's own configuration as the browser reads it."""
    dependencies = httpx.get(f"{url}/config").json()["dependencies"]
    return next(dependency["id"] for dependency in dependencies if dependency["api_name"] == api_name)


def join_as_a_page(url: str, api_name: str, data: list, session: str) -> httpx.Response:
    """Ask the queue to run `api_name` the way the page does (no API client header)."""
    return httpx.post(f"{url}/gradio_api/queue/join", json={
        "data": data, "fn_index": fn_index(url, api_name), "session_hash": session, "event_data": None,
        "trigger_id": None})


def run_probe(script: str, *args: str, without_env: tuple[str, ...] = (), timeout: float = 120) -> str:
    """Run `script` in a fresh interpreter from the project root (so that what it measures is not
    disturbed by the threads and imports of earlier tests); its standard output."""
    env = {key: value for key, value in os.environ.items() if key not in without_env}
    done = subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True, env=env,
                          cwd=ROOT, timeout=timeout, check=True)
    return done.stdout
