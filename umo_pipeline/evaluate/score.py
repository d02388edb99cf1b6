"""`python -m umo_pipeline score`: other methods' images (methods.py) for a prompt set, analysed and
scored by the same rules, records, sharding and aggregation as evaluate (runner.py, folder.py,
aggregate.py); the methods become the rows of the tables, each minus the baseline.

An item is (case, seed, method): its record lives in <out>/items/<case>__s<seed>__<method>.json
with the labelled faces beside it; the image itself stays in the method's folder (the record links
it and holds its hash, so an image replaced there is scored again). A method without an image for
an item is printed as missing and counted as missing in the summary, never skipped silently.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from umo_pipeline.analysis import analyze_identity
from umo_pipeline.errors import InputError
from umo_pipeline.evaluate import metrics as metric_rules
from umo_pipeline.evaluate.aggregate import stored_record, write_results
from umo_pipeline.evaluate.folder import atomic_write, atomic_write_text, check_run_file, is_complete, item_paths
from umo_pipeline.evaluate.items import PromptCase, WorkItem
from umo_pipeline.evaluate.methods import MethodFolder
from umo_pipeline.evaluate.runner import item_record, prepare_references, process_state, run_shards
from umo_pipeline.images import load_image
from umo_pipeline.render import render_overlay
from umo_pipeline.workflow import save_png


def score(cases: list[PromptCase], methods: list[MethodFolder], backend, *, seeds, out: Path,
          metrics: str = "app", baseline: str | None = None, state=None) -> int:
    """Score (or resume scoring) every case x seed x method, then aggregate on the main process."""
    if not methods:
        raise InputError("give at least one --method NAME=FOLDER")
    names = [m.name for m in methods]
    baseline = names[0] if baseline is None else baseline
    if baseline not in names:
        raise InputError(f"--baseline {baseline}: not one of the methods ({', '.join(names)})")
    if state is None:
        state = process_state()
    seeds = list(seeds)
    run = {"command": "score", "backend": backend.name, "metrics": metrics}
    by_name = {m.name: m for m in methods}
    plan, items, missing = [], [], []
    for case in cases:
        for seed in seeds:
            for method in methods:
                image = method.image_for(case, seed, seeds[0])
                item = WorkItem(case, seed, method.name)
                plan.append((item, image))
                if image is None:
                    missing.append(item)
                else:
                    items.append(item)
    if state.is_main_process:
        _say_missing(methods, cases, plan, len(cases) * len(seeds))
    (out / "items").mkdir(parents=True, exist_ok=True)
    check_run_file(out, run, state.is_main_process)
    state.wait_for_everyone()

    images = {item.id: image for item, image in plan if image is not None}
    references: dict[str, tuple] = {}

    def score_one(item: WorkItem) -> None:
        if item.case.id not in references:  # the items of one case follow each other
            references.clear()
            references[item.case.id] = prepare_references(item.case, backend, metrics)
        _score_item(out, item, images[item.id], backend, item_settings(run, by_name[item.variant]),
                    references[item.case.id])

    run_shards(items, state, out, lambda item: is_complete(out, item, item_settings(run, by_name[item.variant])),
               score_one, "scored")
    if state.is_main_process:
        records = [_missing_record(item, by_name[item.variant]) if image is None
                   else stored_record(out, item, item_settings(run, by_name[item.variant])) for item, image in plan]
        settings = {**run, "methods": {m.name: m.settings() for m in methods}, "baseline": baseline, "seeds": seeds}
        report = write_results(out, records, settings, cases)
        print(f"scored {len(items)} images ({len(cases)} prompts x {len(seeds)} seeds x {len(methods)} methods, "
              f"{len(missing)} missing); report: {report.resolve()}", flush=True)
    state.wait_for_everyone()
    return 0


def item_settings(run: dict, method: MethodFolder) -> dict:
    """What must match for a stored record to count: the run's backend and rules, and where the
    method's images come from."""
    return {**run, "method": method.settings()}


def _say_missing(methods, cases, plan, per_method: int) -> None:
    """One line per missing image and a count per method (on stdout: part of the result), and the
    images that match no case (a misnamed file would otherwise read only as missing)."""
    for item, image in plan:
        if image is None:
            method = next(m for m in methods if m.name == item.variant)
            print(f"missing: {method.name}: case {item.case.id} seed {item.seed}: "
                  f"{method.looked_for(item.case, item.seed)}", flush=True)
    for method in methods:
        count = sum(1 for item, image in plan if image is None and item.variant == method.name)
        print(f"{method.name}: {per_method - count} of {per_method} images found in {method.folder} "
              f"({method.layout} layout{'' if method.variant is None else ', variant ' + method.variant})"
              + (f", {count} missing" if count else ""), flush=True)
        strays = method.unmatched(cases)
        if strays:
            print(f"note: {method.name}: {len(strays)} image(s) match no case of the set, e.g. {strays[0]}",
                  file=sys.stderr, flush=True)


def _score_item(out: Path, item: WorkItem, source: Path, backend, settings: dict, references) -> dict:
    images, scoring_faces, truth_faces = references
    started = time.perf_counter()
    image = load_image(source, name=str(source))
    report = analyze_identity(images, image, backend, labels=list(item.case.names))
    scores = metric_rules.score_item(settings["metrics"], item.case, report, scoring_faces, truth_faces)
    _, overlay_path, record_path = item_paths(out, item)
    atomic_write(overlay_path, lambda path: save_png(render_overlay(image, report), path))
    record = {
        **item_record(out, item, report, scores, truth_faces, source, overlay_path, settings),
        "method": item.variant, "missing": None,
        "timing": {"analyse_s": round(time.perf_counter() - started, 3),
                   "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S"), "pid": os.getpid()},
    }
    atomic_write_text(record_path, json.dumps(record, indent=1) + "\n")
    return record


def _missing_record(item: WorkItem, method: MethodFolder) -> dict:
    """A placeholder for an image the method does not have: counted as missing, in no mean."""
    case = item.case
    return {
        "item": item.id, "case": case.id, "prompt": case.prompt, "benchmark": case.benchmark,
        "category": case.category, "n_identities": case.n_identities, "seed": item.seed,
        "variant": item.variant, "method": item.variant, "references": list(case.names),
        "identities": [case.names[i] for i in case.identities], "ground_truth": None,
        "missing": method.looked_for(case, item.seed),
        "id_sim": None, "id_conf": None, "mean_id_sim": None, "mean_id_conf": None,
        "gt_sim": None, "copy_paste": None, "mean_gt_sim": None, "mean_copy_paste": None, "excluded": None,
    }
