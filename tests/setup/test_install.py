"""`pip install .` as a user runs it: a clean copy of the repository installed into a fresh virtual
environment, then the `umo` command run from another folder on a real photo.

The fresh environment gets its dependencies (torch, dlib, ...) from the environment running these
tests, through a .pth line, and pip installs the package alone (--no-deps, no build isolation: no
network, no second copy of torch); what is checked is ours: the build, the files it installs, the
command, and the dependencies the package declares.
"""

from __future__ import annotations

import json
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from tests.setup.test_fresh_setup import _clean_copy


def _run(args, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    done = subprocess.run([str(a) for a in args], cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          env={"PATH": "/usr/bin:/bin", "HOME": str(cwd), "HF_HUB_OFFLINE": "1"})
    assert done.returncode == 0, f"{args} failed:\n{done.stdout}\n{done.stderr}"
    return done


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """(the fresh environment's python, its `umo` command, the folder it is run from)."""
    root = tmp_path_factory.mktemp("install")
    source = _clean_copy(root / "checkout")
    _run([sys.executable, "-m", "venv", "--without-pip", root / "env"], cwd=root)
    python = root / "env" / "bin" / "python"
    purelib = _run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], cwd=root).stdout
    Path(purelib.strip(), "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    _run([sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "--no-build-isolation",
          "--quiet", source], cwd=root)
    elsewhere = root / "elsewhere"
    elsewhere.mkdir()
    return python, root / "env" / "bin" / "umo", elsewhere


def test_the_umo_command_analyses_a_real_photo_from_another_folder(installed, photos):
    python, umo, elsewhere = installed
    where = _run([python, "-c", "import umo_pipeline; print(umo_pipeline.__file__)"], cwd=elsewhere).stdout
    assert "/env/lib/" in where and "/checkout/" not in where  # the installed copy, not the checkout

    _run([umo, "analyze", "--ref", photos["obama1"], "--ref", photos["hopper"], "--image", photos["obama2"],
          "--backend", "dlib", "--json", "report.json", "--heatmap", "heat.png"], cwd=elsewhere)
    report = json.loads((elsewhere / "report.json").read_text())
    assert report["statuses"] == ["matched", "not found"] and len(report["faces"]) == 1
    assert (elsewhere / "heat.png").stat().st_size > 1000
    # the same command as `python -m umo_pipeline`, under its installed name
    assert _run([umo, "--help"], cwd=elsewhere).stdout.startswith("usage: umo ")


def test_the_package_declares_its_dependencies_and_extras(installed):
    python, _, elsewhere = installed
    script = ("import json; from importlib import metadata; d = metadata.distribution('umo-pipeline'); "
              "print(json.dumps({'requires': d.requires, 'version': d.version, "
              "'files': [str(f) for f in d.files]}))")
    info = json.loads(_run([python, "-c", script], cwd=elsewhere).stdout)
    plain = {r.split(";")[0].split(">")[0].split("=")[0].split("<")[0].strip() for r in info["requires"]
             if "extra ==" not in r}
    assert {"torch", "diffusers", "transformers", "peft", "insightface", "dlib-bin", "huggingface-hub"} <= plain
    assert "gradio" not in plain and any(r.startswith("gradio") and 'extra == "app"' in r for r in info["requires"])
    assert any(r.startswith("matplotlib") and 'extra == "eval"' in r for r in info["requires"])
    import umo_pipeline

    assert info["version"] == umo_pipeline.__version__
    files = info["files"]
    assert any(f.endswith("umo_pipeline/cli.py") for f in files) and any(f.endswith("umo_pipeline/judge.py")
                                                                          for f in files)
    assert not any(f.startswith(("tests/", "bench/", "umo_app/")) for f in files)
