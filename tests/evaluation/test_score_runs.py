"""`score` as people run it, in subprocesses: sharded over two CPU processes by `accelerate launch
--num_processes 2`, it gives the same records and summary as one process."""

import json
import subprocess
import sys

import pytest

from tests.app_server import free_port
from tests.evaluation.test_evaluate_runs import ROOT, _environment
from tests.evaluation.test_score import CASES, kept_both, lost_second, write_set


@pytest.fixture(scope="module")
def bench(tmp_path_factory, photos):
    root = tmp_path_factory.mktemp("score-runs")
    prompts = write_set(root / "set", photos)
    for name in ("A", "B"):
        (root / name).mkdir()
    for case in CASES:
        kept_both(photos, case).save(root / "A" / f"{case}.png")
        lost_second(photos, case).save(root / "B" / f"{case}.png")
    (root / "B" / "pair-3.png").unlink()  # one missing image: reported alike by both runs
    return root, prompts


def _score(bench, out, launcher=(sys.executable,)):
    root, prompts = bench
    command = [*launcher, "-m", "umo_pipeline", "score", str(prompts), "--method", f"A={root / 'A'}",
               "--method", f"B={root / 'B'}", "--backend", "dlib", "--out", str(out)]
    return subprocess.run(command, cwd=ROOT, env=_environment(), capture_output=True, text=True, timeout=600)


def _records(out):
    records = [json.loads(line) for line in (out / "records.jsonl").read_text().splitlines()]
    for record in records:
        record.pop("timing", None)
    return records


def test_two_accelerate_processes_give_the_same_records_as_one(bench, tmp_path):
    single = tmp_path / "single"
    one = _score(bench, single)
    assert one.returncode == 0, one.stderr
    assert "process 0: 5 scored, 0 already complete" in one.stderr
    assert one.stdout.count("missing: B: case pair-3 seed 0") == 1

    sharded = tmp_path / "sharded"
    launcher = ("accelerate", "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
                "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", str(free_port()))
    two = _score(bench, sharded, launcher)
    assert two.returncode == 0, two.stderr[-3000:]
    # accelerate's split of the five images found: three and two
    assert "process 0: 3 scored" in two.stderr and "process 1: 2 scored" in two.stderr
    pids = {json.loads(p.read_text())["timing"]["pid"] for p in (sharded / "items").glob("*.json")}
    assert len(pids) == 2
    assert _records(sharded) == _records(single)
    for name in ("summary.csv", "summary.md"):
        assert (sharded / name).read_text() == (single / name).read_text()
    # the main process alone prints the missing image and the report
    assert two.stdout.count("missing: B: case pair-3 seed 0") == 1 and two.stdout.count("report: ") == 1
