"""What the CPU benches need from this checkout, without importing the tests or torch: the test photos
(files that `python -m tests.assets` fetched from PyPI packages), a free local port, and a started
app's first answer."""

from __future__ import annotations

import socket
import subprocess
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PHOTOS = ROOT / "tests" / ".assets" / "photos"
#: how long a started app.py may take to answer (a cold start imports torch and Gradio)
START_SECONDS = 180


def photo_paths() -> dict[str, Path]:
    """name -> path of each test photo (astronaut, hopper, obama1-3, biden, newton, gauss, solvay)."""
    found = {path.stem: path for path in sorted(PHOTOS.glob("*")) if path.is_file()}
    if not found:
        raise SystemExit(f"no test photos in {PHOTOS}: fetch them first with `python -m tests.assets`")
    return found


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_until_serving(server: subprocess.Popen, url: str, log: str) -> None:
    """Returns once `url` answers; RuntimeError naming `log` if the server exits or stays silent."""
    deadline = time.monotonic() + START_SECONDS
    while server.poll() is None:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            if time.monotonic() > deadline:
                break
            time.sleep(0.5)  # polling a starting server: its start is what is waited on
    state = "did not answer" if server.poll() is None else f"exited with {server.returncode}"
    raise RuntimeError(f"the app {state} within {START_SECONDS} s; see {log}")
