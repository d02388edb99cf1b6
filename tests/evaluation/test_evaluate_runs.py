"""`evaluate` as people run it, in subprocesses on the tiny model: sharded over two CPU processes
by `accelerate launch --num_processes 2`, and killed part-way then resumed; each gives the
same records and summary as one uninterrupted single process."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.app_server import free_port
from tests.evaluation.fixtures import small_copy
from umo_pipeline.evaluate.runner import EXIT_AFTER_ENV, EXIT_AFTER_STATUS

ROOT = Path(__file__).resolve().parents[2]
ITEMS = ["portrait__s0__base", "portrait__s0__umo", "portrait__s1__base", "portrait__s1__umo",
         "portrait__s2__base", "portrait__s2__umo"]
ARGS = ["--model", "tiny", "--width", "256", "--height", "256", "--steps", "1", "--seeds", "0-2",
        "--backend", "dlib"]


@pytest.fixture(scope="module")
def prompt_set(tmp_path_factory, photos):
    folder = tmp_path_factory.mktemp("set")
    small_copy(photos["hopper"], folder / "refs" / "hopper.jpg", side=128)
    path = folder / "prompts.jsonl"
    path.write_text(json.dumps({"id": "portrait", "prompt": "A portrait in a garden",
                                "references": ["refs/hopper.jpg"]}) + "\n")
    return path


def _environment(**extra):
    env = dict(os.environ, HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT), **extra)
    env.pop(EXIT_AFTER_ENV, None)
    env.update(extra)
    return env


def _evaluate(prompt_set, out, launcher=(sys.executable,), env=None):
    command = [*launcher, "-m", "umo_pipeline", "evaluate", str(prompt_set), "--out", str(out), *ARGS]
    return subprocess.run(command, cwd=ROOT, env=env or _environment(), capture_output=True, text=True, timeout=600)


def _records(out: Path) -> list[dict]:
    records = [json.loads(line) for line in (out / "records.jsonl").read_text().splitlines()]
    for record in records:
        record.pop("timing")
    return records


@pytest.fixture(scope="module")
def single_run(prompt_set, tmp_path_factory):
    out = tmp_path_factory.mktemp("single")
    result = _evaluate(prompt_set, out)
    assert result.returncode == 0, result.stderr
    return out, result


def test_single_process_run(single_run):
    out, result = single_run
    assert f"report: {(out / 'report.html').resolve()}" in result.stdout.strip().splitlines()[-1]
    assert "process 0: 6 generated, 0 already complete" in result.stderr
    assert [r["item"] for r in _records(out)] == ITEMS


def test_two_accelerate_processes_give_the_same_records(single_run, prompt_set, tmp_path):
    out = tmp_path / "sharded"
    # On a machine without a GPU, `accelerate launch --cpu` starts one process (several need mpirun);
    # --multi_gpu starts two through torchrun and they join as a CPU (gloo) group.
    launcher = ("accelerate", "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
                "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", str(free_port()))
    result = _evaluate(prompt_set, out, launcher)
    assert result.returncode == 0, result.stderr[-3000:]
    # Each process ran its own share (accelerate's split: three items each).
    assert "process 0: 3 generated" in result.stderr and "process 1: 3 generated" in result.stderr
    assert len({json.loads((out / "items" / f"{i}.json").read_text())["timing"]["pid"] for i in ITEMS}) == 2
    assert _records(out) == _records(single_run[0])
    assert (out / "summary.csv").read_text() == (single_run[0] / "summary.csv").read_text()
    assert result.stdout.count("report: ") == 1  # the aggregation ran once, on the main process


def test_killed_run_resumes_without_redoing_complete_items(single_run, prompt_set, tmp_path):
    out = tmp_path / "resumed"
    killed = _evaluate(prompt_set, out, env=_environment(**{EXIT_AFTER_ENV: "3"}))
    assert killed.returncode == EXIT_AFTER_STATUS
    done = sorted(p.stem for p in (out / "items").glob("*.json"))
    assert done == sorted(ITEMS[:3]) and not (out / "records.jsonl").exists()
    # An item caught between its image and its record: the image is there, the record is not.
    (out / "items" / f"{ITEMS[2]}.json").unlink()
    (out / "items" / f".{ITEMS[3]}.png.999.tmp").write_bytes(b"half an image")
    kept = {name: (out / "items" / name).stat().st_mtime_ns for name in
            [f"{i}{suffix}" for i in ITEMS[:2] for suffix in (".json", ".png", ".faces.png")]}

    resumed = _evaluate(prompt_set, out)
    assert resumed.returncode == 0, resumed.stderr
    assert "process 0: 4 generated, 2 already complete" in resumed.stderr
    assert {name: (out / "items" / name).stat().st_mtime_ns for name in kept} == kept
    assert sorted(p.name for p in (out / "items").iterdir()) == sorted(
        f"{i}{suffix}" for i in ITEMS for suffix in (".json", ".png", ".faces.png"))
    assert _records(out) == _records(single_run[0])
    for name in ("summary.csv", "summary.md"):
        assert (out / name).read_text() == (single_run[0] / name).read_text()

    again = _evaluate(prompt_set, out)
    assert "process 0: 0 generated, 6 already complete" in again.stderr
