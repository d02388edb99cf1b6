"""The README's run command as a new user on a fresh Debian machine types it: from a clean copy of
the repository, with Debian's own /usr/bin/python3 first on the PATH (pyenv's shims and any active
venv taken off it). Debian's Python refuses `pip install` into itself (PEP 668), so these fail if the
scripts ever install into, or run the app with, the system's Python."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.app_server import free_port

ROOT = Path(__file__).resolve().parents[2]
SYSTEM_PYTHON = Path("/usr/bin/python3")
STAMP = ".umo-installed-requirements.txt"


def _clean_copy(dest: Path) -> Path:
    """The working tree as a fresh clone of it would be (tracked and new files, uncommitted edits
    included), without .venv, tests/.assets, caches or anything else git ignores."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                            cwd=ROOT, check=True, capture_output=True).stdout.decode().split("\0")
    for name in filter(None, listed):
        source = ROOT / name
        if source.is_file():  # a file deleted in the working tree is still listed by --cached
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name)
    return dest


def _fresh_machine_env(**extra: str) -> dict[str, str]:
    """This process's environment with /usr/bin first and no pyenv, conda base or venv ahead of it."""
    drop = {str(Path(sys.prefix) / "bin"), os.environ.get("VIRTUAL_ENV", "/nonexistent") + "/bin"}
    kept = [entry for entry in os.environ.get("PATH", "").split(os.pathsep)
            if entry and entry not in drop and "/.pyenv" not in entry]
    env = {key: value for key, value in os.environ.items()
           if key not in ("VIRTUAL_ENV", "PYENV_VERSION", "PYTHONPATH", "PYTHONHOME")}
    env["PATH"] = os.pathsep.join(["/usr/bin", *kept])
    env.update(extra)
    return env


def _system_python_version() -> tuple[int, int]:
    assert SYSTEM_PYTHON.exists(), "these tests stand in for a fresh Debian machine: /usr/bin/python3 is needed"
    out = subprocess.run([str(SYSTEM_PYTHON), "-c", "import sys; print(*sys.version_info[:2])"],
                         check=True, capture_output=True, text=True).stdout.split()
    return int(out[0]), int(out[1])


def _venv_of_this_run() -> str | None:
    """The venv that scripts/test.sh (or .ci/run) made and is running these tests in, if any."""
    if sys.prefix != sys.base_prefix and (Path(sys.prefix) / STAMP).is_file():
        return sys.prefix
    return None


def _wait_for_page(process: subprocess.Popen, url: str, log_path: Path, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        if process.poll() is not None:
            pytest.fail(f"the run command exited with {process.returncode}:\n{log_path.read_text()[-3000:]}")
        try:
            urllib.request.urlopen(url, timeout=2)
            return
        except OSError:
            if time.monotonic() > deadline:
                pytest.fail(f"no page at {url} after {timeout_s} s; see {log_path}")
            time.sleep(0.5)


def _bash(script: str, cwd: Path, env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", "-c", script], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)


# Installing requirements.txt into a second, fresh venv takes about 3.5 minutes on 2 cores (2.3 GB of
# packages, measured), for an install pip already does once at the start of this very run: test.sh
# (and .ci/run on a clean clone, from /usr/bin/python3) has just filled the venv these tests run in.
# So when that venv exists, the run command is pointed at it with UMO_VENV: the clean copy, the
# system Python first on the PATH, the interpreter and version checks, the venv validation, the
# requirements stamp and the flags all go through scripts/run.sh for real, and a run.sh that pip-
# installed into the system Python (PEP 668 error) or started app.py with it (no torch there) fails
# here. The creation of a venv from the system Python is exercised for real, and quickly, by
# test_venv_is_made_from_the_system_python_and_reused below. Run outside such a venv (plain pytest),
# this test makes the full fresh venv inside the copy, and takes minutes.
@pytest.mark.timeout(1500)
def test_run_command_serves_the_page_from_a_clean_copy_with_the_system_python(tmp_path, output_dir):
    assert (3, 11) <= _system_python_version() <= (3, 13)
    copy = _clean_copy(tmp_path / "repo")
    assert not (copy / ".venv").exists()
    reused = _venv_of_this_run()
    env = _fresh_machine_env(**({"UMO_VENV": reused} if reused else {}))
    port = free_port()
    log_path = output_dir / "fresh_setup_run.log"
    with open(log_path, "w", buffering=1) as log:
        # The README's command, word for word, plus the flags it passes through to app.py.
        process = subprocess.Popen(["bash", "scripts/run.sh", "--model", "tiny", "--port", str(port)],
                                   cwd=copy, env=env, stdout=log, stderr=subprocess.STDOUT,
                                   start_new_session=True)
        try:
            url = f"http://127.0.0.1:{port}"
            # Without a venv to reuse, pip's whole install runs before the app starts.
            _wait_for_page(process, url, log_path, timeout_s=120 if reused else 1200)
            with urllib.request.urlopen(url, timeout=10) as page:
                assert page.status == 200 and b"gradio" in page.read().lower()
            with urllib.request.urlopen(url + "/config", timeout=10) as config:
                assert "Tiny test model" in config.read().decode()  # --model tiny reached app.py
        finally:
            with contextlib.suppress(ProcessLookupError):  # already gone when the test failed early
                os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=30)
    text = log_path.read_text()
    assert "externally-managed-environment" not in text
    if reused:
        assert "Creating the virtual environment" not in text and "Installing" not in text
    else:
        assert (copy / ".venv" / STAMP).is_file()


def test_venv_is_made_from_the_system_python_and_reused(tmp_path):
    """scripts/venv.sh with a one-line requirements file that a new venv already satisfies (pip), so
    nothing is downloaded: created from /usr/bin/python3, put first on the PATH, reused while the
    requirements are unchanged, installed again when they change, made again when broken."""
    _system_python_version()
    copy = _clean_copy(tmp_path / "repo")
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("pip\n")
    venv = tmp_path / "venv"
    # An inherited PIP_BREAK_SYSTEM_PACKAGES must be dropped, not passed on to pip.
    env = _fresh_machine_env(UMO_VENV=str(venv), PIP_BREAK_SYSTEM_PACKAGES="1")
    system_site = subprocess.run([str(SYSTEM_PYTHON), "-c", "import site; print(*site.getsitepackages())"],
                                 check=True, capture_output=True, text=True).stdout.split()
    before = {path: sorted(os.listdir(path)) for path in system_site if os.path.isdir(path)}
    script = (f"source scripts/venv.sh && umo_venv_ready {requirements} && command -v python3 && "
              "python3 -c 'import sys; print(sys.base_prefix)' && echo ${PIP_BREAK_SYSTEM_PACKAGES-dropped}")

    first = _bash(script, copy, env)
    assert first.returncode == 0, first.stderr
    assert first.stdout.split() == [str(venv / "bin" / "python3"), "/usr", "dropped"]
    assert "home = /usr/bin" in (venv / "pyvenv.cfg").read_text()
    assert "Creating the virtual environment" in first.stderr and "Installing requirements.txt" in first.stderr

    again = _bash(script, copy, env)
    assert again.returncode == 0, again.stderr
    assert "Creating" not in again.stderr and "Installing" not in again.stderr

    requirements.write_text("pip  # any edit means a new install\n")
    edited = _bash(script, copy, env)
    assert edited.returncode == 0, edited.stderr
    assert "Creating" not in edited.stderr and "Installing requirements.txt" in edited.stderr

    (venv / "bin" / "python").unlink()  # as when the interpreter it was made from is gone
    remade = _bash(script, copy, env)
    assert remade.returncode == 0, remade.stderr
    assert "is not usable" in remade.stderr and "Creating the virtual environment" in remade.stderr

    after = {path: sorted(os.listdir(path)) for path in before}
    assert after == before, "the system's site-packages changed"


def _old_python() -> str:
    """A real Python older than 3.11 where one is installed (pyenv keeps several here), else a named
    test double that answers like Python 3.9 would."""
    for found in sorted(Path.home().glob(".pyenv/versions/3.[0-9]*/bin/python3.[0-9]*")):
        if found.name in ("python3.8", "python3.9", "python3.10"):
            return str(found)
    double = ROOT / "tests" / "output" / "python3.9-double"
    double.parent.mkdir(exist_ok=True)
    double.write_text('#!/bin/sh\n[ "$1" = --version ] && echo "Python 3.9.18"\nexit 1\n')
    double.chmod(0o755)
    return str(double)


def test_too_old_python_is_refused_plainly_or_passed_over(tmp_path):
    old = _old_python()
    copy = _clean_copy(tmp_path / "repo")
    env = _fresh_machine_env(UMO_VENV=str(tmp_path / "venv"), UMO_PYTHON=old)
    refused = _bash("bash scripts/run.sh --model tiny", copy, env)
    assert refused.returncode != 0 and not (tmp_path / "venv").exists()
    assert "needs Python 3.11, 3.12 or 3.13" in refused.stderr and old in refused.stderr
    assert refused.stderr.count("\n") == 1, refused.stderr  # one plain line, no traceback

    # A too-old python3 first on the PATH (an old conda base, say) does not hide Debian's own.
    shadow = tmp_path / "shadow"
    shadow.mkdir()
    (shadow / "python3").symlink_to(old)
    env = _fresh_machine_env(UMO_VENV=str(tmp_path / "venv"))
    env["PATH"] = f"{shadow}:{env['PATH']}"
    chosen = _bash("source scripts/venv.sh && umo_find_python", copy, env)
    assert chosen.returncode == 0, chosen.stderr
    assert chosen.stdout.strip() in {f"/usr/bin/python3.{minor}" for minor in (11, 12, 13)} | {str(SYSTEM_PYTHON)}
