"""The evaluation loop: work items sharded across processes with accelerate, one atomic result per
item in the run folder (folder.py), and the aggregation once on the main process at the end.

A case may give more references than the model takes (up to params.MAX_PEOPLE): its "base" and
"umo" images are then generated conditioned on the first ones, as a generation is by default
(`conditioned_on`: workflow.checks.conditioned's rule), and scored against all of them; each record
says whom the model saw ("conditioned").

A "umo+repair" item is not generated from noise: it takes the "umo" image of its case and seed (from
that item's complete record, so a run that adds the variant to a finished one only repairs; made
here when there is none) and runs `workflow.repair` on it with its default settings (every
reference not matched): a generation's "then repair faces that are not matched" option, which for
a case past the model's limit places the people the model did not see.
"""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

from umo_pipeline.analysis import analyze_identity
from umo_pipeline.errors import InputError
from umo_pipeline.evaluate import metrics as metric_rules
from umo_pipeline.evaluate.aggregate import aggregate
from umo_pipeline.evaluate.folder import (
    RECORD_VERSION, atomic_write, atomic_write_text, check_run_file, complete_record, count_complete, is_complete,
    item_paths, sha256,
)
from umo_pipeline.evaluate.items import MADE_FROM, PromptCase, WorkItem, work_items
from umo_pipeline.faces.common import reading_order
from umo_pipeline.images import load_image
from umo_pipeline.matching import report_number
from umo_pipeline.render import render_overlay
from umo_pipeline.workflow import png_text, save_png
from umo_pipeline.workflow.checks import conditioned

#: Test hook: a process exits abruptly (like a kill) after writing this many items.
EXIT_AFTER_ENV = "UMO_EVAL_EXIT_AFTER"
EXIT_AFTER_STATUS = 75


def evaluate(cases: list[PromptCase], customizer, backend, request, *, seeds, variants, out: Path,
             metrics: str = "app", model: str | None = None, state=None) -> int:
    """Run (or resume) every case x seed x variant, then aggregate on the main process."""
    if state is None:
        state = process_state(getattr(customizer, "device", None))
    offered = [*customizer.variants, *(made for made, source in MADE_FROM.items() if source in customizer.variants)]
    missing = [v for v in variants if v not in offered]
    if missing:
        raise InputError(f"the {customizer.name} model cannot produce the variant(s) {', '.join(missing)}; "
                         f"it has {', '.join(offered)}")
    settings = run_settings(customizer, backend, request, metrics, model)
    items = work_items(cases, list(seeds), list(variants))
    (out / "items").mkdir(parents=True, exist_ok=True)
    check_run_file(out, settings, state.is_main_process)
    state.wait_for_everyone()

    references: dict[str, tuple] = {}

    def run(item: WorkItem) -> None:
        if item.case.id not in references:  # one case at a time: its seeds and variants follow each other
            references.clear()
            references[item.case.id] = prepare_references(item.case, backend, metrics)
        _run_item(out, item, customizer, backend, request, settings, references[item.case.id])

    run_shards(items, state, out, lambda item: is_complete(out, item, settings), run, "generated")
    if state.is_main_process:
        report = aggregate(out, items, settings)
        print(f"evaluated {len(items)} items ({len(cases)} prompts x {len(seeds)} seeds x {len(variants)} variants); "
              f"report: {report.resolve()}", flush=True)
    state.wait_for_everyone()
    return 0


def run_shards(items: list[WorkItem], state, out: Path, complete, run, verb: str) -> None:
    """This process's share of `items`: run(item) for each one that is not complete(item), with a
    progress bar; every process waits for the others at the end. Shared by evaluate and score."""
    done = ran = 0
    exit_after = int(os.environ.get(EXIT_AFTER_ENV, "0") or 0)
    # Every process splits the full list the same way, then skips what is complete: a process
    # never races another over which items remain.
    with state.split_between_processes(items) as mine:
        bar = _progress_bar(len(mine), state)
        for item in mine:
            if not complete(item):
                run(item)
                ran += 1
                if exit_after and ran >= exit_after:
                    bar.close()
                    os._exit(EXIT_AFTER_STATUS)
            done += 1
            bar.set_postfix_str(f"all processes {count_complete(out, items)}/{len(items)}", refresh=False)
            bar.update(1)
        bar.close()
    print(f"process {state.process_index}: {ran} {verb}, {done - ran} already complete",
          file=sys.stderr, flush=True)
    state.wait_for_everyone()


def process_state(device: str | None = None):
    """accelerate's view of this process (index, count, device): one process unless started by
    `accelerate launch` (or torchrun), which sets the rank variables it reads."""
    import torch
    from accelerate import PartialState

    # PartialState only joins a multi-process CPU group when told it runs on the CPU; without a
    # GPU (or with --device cpu) that is the only way the processes can find each other.
    cpu = (os.environ.get("ACCELERATE_USE_CPU", "").lower() in ("1", "true", "yes")
           or (device or "").startswith("cpu") or not torch.cuda.is_available())
    return PartialState(cpu=cpu)


def run_settings(customizer, backend, request, metrics: str, model: str | None) -> dict:
    """What must match for a stored item to count as a result of this run."""
    return {
        "model": model or customizer.name,
        "width": request.width, "height": request.height, "steps": request.steps,
        "guidance": request.guidance, "extra": dict(request.extra),
        "backend": backend.name, "metrics": metrics,
    }


def prepare_references(case: PromptCase, backend, metrics: str) -> tuple:
    """(images, faces chosen under the metrics' rules or None, faces of the ground truth or None)
    of a case: made once per case, shared by its seeds and variants."""
    images = []
    for k, source in enumerate(case.references):
        name = str(source) if isinstance(source, Path) else f"{case.where}: input image {k + 1}"
        images.append(load_image(source, name=name))
    faces = metric_rules.scoring_reference_faces(metrics, backend, images, case)
    truth = None
    if case.ground_truth is not None:
        name = str(case.ground_truth) if isinstance(case.ground_truth, Path) else f"{case.where}: the ground truth"
        truth = reading_order(backend.detect(load_image(case.ground_truth, name=name)))
    return images, faces, truth


def conditioned_on(customizer, case: PromptCase) -> list[int]:
    """The references (indices) the model is conditioned on for `case`: all of them when it takes
    that many, else the first it takes, as a generation is by default."""
    return conditioned(None, case.names, customizer.max_references)


def _generate(customizer, request, images, seen: list[int], variant: str):
    """The model's image of `variant` conditioned on the references `seen` (conditioned_on)."""
    return customizer.generate(request, [images[index] for index in seen], variant=variant)


def _run_item(out: Path, item: WorkItem, customizer, backend, base_request, settings, references) -> dict:
    case = item.case
    images, scoring_faces, truth_faces = references
    request = replace(base_request, prompt=case.prompt, seed=item.seed)
    seen = conditioned_on(customizer, case)
    started = time.perf_counter()
    report = repair = None
    if item.source is None:
        image = _generate(customizer, request, images, seen, item.variant)
    else:
        image, report, repair = _repaired(out, item, customizer, backend, request, settings, images, seen)
    generated = time.perf_counter()
    if report is None:
        report = analyze_identity(images, image, backend, labels=list(case.names))
    scores = metric_rules.score_item(settings["metrics"], case, report, scoring_faces, truth_faces)
    analysed = time.perf_counter()

    image_path, overlay_path, record_path = item_paths(out, item)
    text = png_text(item.variant, software="umo_pipeline evaluate", prompt=request.prompt, seed=request.seed,
                    settings=settings, item=item.id, repair=(repair or {}).get("settings") or None)
    atomic_write(image_path, lambda path: save_png(image, path, text))
    atomic_write(overlay_path, lambda path: save_png(render_overlay(image, report), path))
    record = {
        **item_record(out, item, report, scores, truth_faces, image_path, overlay_path, settings),
        # whom the model saw when it made the image (a repair's: its umo image's); scored against all
        "conditioned": [case.names[index] for index in seen],
        **({} if repair is None else {"repair": repair}),
        "timing": {"generate_s": round(generated - started, 3), "analyse_s": round(analysed - generated, 3),
                   "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S"), "pid": os.getpid()},
    }
    atomic_write_text(record_path, json.dumps(record, indent=1) + "\n")
    return record


def item_record(out: Path, item: WorkItem, report, scores, truth_faces, image: Path, overlay: Path,
                settings: dict) -> dict:
    """The fields every item's record has (evaluate's and score's): what was scored, where its
    pictures are (relative to the run folder), the scores and the identity report."""
    case = item.case
    return {
        "version": RECORD_VERSION,
        "item": item.id, "case": case.id, "prompt": case.prompt, "benchmark": case.benchmark,
        "category": case.category, "n_identities": case.n_identities,
        "seed": item.seed, "variant": item.variant,
        "references": list(case.names), "identities": [case.names[i] for i in case.identities],
        "ground_truth": None if truth_faces is None else {"faces": len(truth_faces)},
        # relative to the run folder: evaluate's items/..., score's ../<method folder>/...
        "image": Path(os.path.relpath(image, out)).as_posix(),
        "overlay": Path(os.path.relpath(overlay, out)).as_posix(),
        "image_sha256": sha256(image),
        "settings": settings, "backend": report.backend,
        **scores.record_fields(),
        "faces": len(report.faces),
        "report": report.to_dict(),
    }


def _repaired(out: Path, item: WorkItem, customizer, backend, request, settings: dict, images, seen: list[int]):
    """The source item's image repaired by `workflow.repair` (default choice: every reference not
    matched, those the model did not see included): (image, its identity report, what the record
    says of the repair). A repair the workflow refuses (nothing to repair, no face, a face too
    small) leaves the image as it was, with the report None (analysed by the caller) and the
    reason in "skipped"."""
    from umo_pipeline import workflow

    source = item.source
    record = complete_record(out, source, settings)
    if record is not None:
        original = load_image(out / record["image"], name=str(out / record["image"]))
    else:  # not a variant of this run, or not made yet: the same seed gives the same image
        original = _generate(customizer, request, images, seen, source.variant)
    info = {"from": source.variant, "from_image": None if record is None else record["image"], "skipped": None,
            "kept": [], "references": [], "repairs": [], "settings": None, "notes": []}
    try:
        result = workflow.repair(customizer, backend, original, images, reference_names=list(item.case.names),
                                 settings=request, seed=item.seed)
    except InputError as error:
        info["skipped"] = str(error)
        return original, None, info
    info.update(kept=[f"{r.reference_name}: seed {r.kept_seed}" for r in result.repairs if r.kept],
                references=result.changes(), repairs=[r.to_dict() for r in result.repairs],
                matching_score=[report_number(score) for score in result.matching_scores],
                settings=result.settings, notes=list(result.notes))
    return result.image, result.after.report, info


def _progress_bar(total: int, state):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=f"process {state.process_index}", position=state.process_index,
                unit="item", file=sys.stderr, dynamic_ncols=True, leave=True, mininterval=0.5)
