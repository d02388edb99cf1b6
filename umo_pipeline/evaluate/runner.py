"""The evaluation loop: work items sharded across processes with accelerate, one atomic result per
item, a resumable folder, and the aggregation once on the main process at the end.

Folder layout (--out):
    run.json                 the settings of the run; a rerun with other settings is refused
    items/<item>.png         the generated image, its settings in the PNG metadata
    items/<item>.faces.png   the image with its labelled faces
    items/<item>.json        the record; written last, so its presence marks the item complete
    references/              small copies of the references for the report
    records.jsonl, summary.csv, summary.md, plots/*.png, report.html   (main process, at the end)

Every file is written to a temporary name and moved into place with os.replace, so a killed run
leaves each item either complete or absent (a PNG without its record is redone).
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

from umo_pipeline.errors import InputError
from umo_pipeline.matching import report_number
from umo_pipeline.evaluate import metrics as metric_rules
from umo_pipeline.evaluate.items import PromptCase, WorkItem, work_items
from umo_pipeline.evaluate.readers import read_prompt_set

#: Test hook: a process exits abruptly (like a kill) after writing this many items.
EXIT_AFTER_ENV = "UMO_EVAL_EXIT_AFTER"
EXIT_AFTER_STATUS = 75
RECORD_VERSION = 1


def run_from_args(args) -> int:
    """`python -m umo_pipeline evaluate ...`: the CLI entry point (see cli.add_evaluate_command)."""
    variants = _names(args.variants, "--variants")
    seeds = _seeds(args.seeds)
    if args.metrics not in metric_rules.METRICS:
        raise InputError(f"--metrics {args.metrics}: choose one of {', '.join(metric_rules.METRICS)}")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise InputError(f"{out}: exists and is not a folder")
    cases = read_prompt_set(args.prompts, args.format)
    if args.limit is not None:
        cases = cases[: args.limit]

    state = process_state(args.device)
    from umo_pipeline import load_customizer
    from umo_pipeline.options import face_backend, loader_options, settings_request

    backend = face_backend(args)
    device = args.device or str(state.device)
    customizer = load_customizer(args.model, **loader_options(args, device=device))
    request = settings_request(customizer, args)
    return evaluate(cases, customizer, backend, request, seeds=seeds, variants=variants, out=out,
                    metrics=args.metrics, model=args.model, state=state)


def evaluate(cases: list[PromptCase], customizer, backend, request, *, seeds, variants, out: Path,
             metrics: str = "app", model: str | None = None, state=None) -> int:
    """Run (or resume) every case x seed x variant, then aggregate on the main process."""
    if state is None:
        state = process_state(getattr(customizer, "device", None))
    missing = [v for v in variants if v not in customizer.variants]
    if missing:
        raise InputError(f"the {customizer.name} model cannot produce the variant(s) {', '.join(missing)}; "
                         f"it has {', '.join(customizer.variants)}")
    settings = run_settings(customizer, backend, request, metrics, model)
    items = work_items(cases, list(seeds), list(variants))
    (out / "items").mkdir(parents=True, exist_ok=True)
    _check_run_file(out, settings, state)
    state.wait_for_everyone()

    done = generated = 0
    exit_after = int(os.environ.get(EXIT_AFTER_ENV, "0") or 0)
    references: dict[str, tuple] = {}
    # Every process splits the full list the same way, then skips what is complete: a process
    # never races another over which items remain.
    with state.split_between_processes(items) as mine:
        bar = _progress_bar(len(mine), state)
        for item in mine:
            if not is_complete(out, item, settings):
                if item.case.id not in references:
                    references = {item.case.id: _prepare_references(item.case, backend, metrics)}
                _run_item(out, item, customizer, backend, request, settings, references[item.case.id])
                generated += 1
                if exit_after and generated >= exit_after:
                    bar.close()
                    os._exit(EXIT_AFTER_STATUS)
            done += 1
            bar.set_postfix_str(f"all processes {_count_complete(out, items)}/{len(items)}", refresh=False)
            bar.update(1)
        bar.close()
    print(f"process {state.process_index}: {generated} generated, {done - generated} already complete",
          file=sys.stderr, flush=True)
    state.wait_for_everyone()
    if state.is_main_process:
        from umo_pipeline.evaluate.aggregate import aggregate

        report = aggregate(out, items, settings)
        print(f"evaluated {len(items)} items ({len(cases)} prompts x {len(seeds)} seeds x {len(variants)} variants); "
              f"report: {report.resolve()}", flush=True)
    state.wait_for_everyone()
    return 0


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


def _check_run_file(out: Path, settings: dict, state) -> None:
    path = out / "run.json"
    if path.exists():
        try:
            stored = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            stored = None
        if stored is not None and stored != settings:
            changed = sorted(k for k in set(stored) | set(settings) if stored.get(k) != settings.get(k))
            raise InputError(f"{out} holds results made with other settings ({', '.join(changed)}); "
                             "use another --out folder or the same settings")
    elif state.is_main_process:
        atomic_write_text(path, json.dumps(settings, indent=2) + "\n")


def item_paths(out: Path, item: WorkItem) -> tuple[Path, Path, Path]:
    """(image, labelled faces, record) of one item."""
    folder = out / "items"
    return folder / f"{item.id}.png", folder / f"{item.id}.faces.png", folder / f"{item.id}.json"


def complete_record(out: Path, item: WorkItem, settings: dict) -> dict | None:
    """The item's record when it exists, is readable, is for these settings, and its image is the
    one it names; else None."""
    image, overlay, record_path = item_paths(out, item)
    try:
        record = json.loads(record_path.read_text(encoding="utf-8"))
        complete = (record.get("settings") == settings and record.get("version") == RECORD_VERSION
                    and overlay.is_file() and _sha256(image) == record.get("image_sha256"))
    except (OSError, json.JSONDecodeError, AttributeError):
        return None
    return record if complete else None


def is_complete(out: Path, item: WorkItem, settings: dict) -> bool:
    return complete_record(out, item, settings) is not None


def _count_complete(out: Path, items: list[WorkItem]) -> int:
    try:
        names = set(os.listdir(out / "items"))
    except OSError:
        return 0
    return sum(f"{item.id}.json" in names for item in items)


def _prepare_references(case: PromptCase, backend, metrics: str) -> tuple:
    """(images, faces chosen under umo-eval's rules or None) of a case's references."""
    from umo_pipeline.images import load_image

    images = []
    for k, source in enumerate(case.references):
        name = str(source) if isinstance(source, Path) else f"{case.where}: input image {k + 1}"
        images.append(load_image(source, name=name))
    faces = None
    if metrics == "umo-eval":
        faces = [metric_rules.reference_face(backend.detect(images[i]), case.benchmark) for i in case.identities]
    return images, faces


def _run_item(out: Path, item: WorkItem, customizer, backend, base_request, settings, references) -> dict:
    from umo_pipeline.analysis import analyze_identity
    from umo_pipeline.render import render_overlay
    from umo_pipeline.workflow import PNG_COMPRESS_LEVEL

    case = item.case
    images, umo_eval_faces = references
    request = replace(base_request, prompt=case.prompt, seed=item.seed)
    started = time.perf_counter()
    image = customizer.generate(request, images, variant=item.variant)
    generated = time.perf_counter()
    report = analyze_identity(images, image, backend, labels=list(case.names))
    if umo_eval_faces is None:
        id_sim, id_conf = metric_rules.app_scores(report, case.identities)
    else:
        S = metric_rules.umo_eval_similarity(umo_eval_faces, report.faces)
        id_sim, id_conf = metric_rules.umo_eval_scores(S, case.benchmark, [f is not None for f in umo_eval_faces])
    analysed = time.perf_counter()

    image_path, overlay_path, record_path = item_paths(out, item)
    level = PNG_COMPRESS_LEVEL  # lossless at any level; the app's measured choice for speed
    atomic_write(image_path, lambda path: image.save(path, format="PNG", compress_level=level,
                                                     pnginfo=_png_metadata(item, request, settings)))
    atomic_write(overlay_path,
                 lambda path: render_overlay(image, report).save(path, format="PNG", compress_level=level))
    record = {
        "version": RECORD_VERSION,
        "item": item.id, "case": case.id, "prompt": case.prompt, "benchmark": case.benchmark,
        "category": case.category, "n_identities": case.n_identities,
        "seed": item.seed, "variant": item.variant,
        "references": list(case.names), "identities": [case.names[i] for i in case.identities],
        "image": f"items/{image_path.name}", "overlay": f"items/{overlay_path.name}",
        "image_sha256": _sha256(image_path),
        "settings": settings, "backend": report.backend,
        "id_sim": _rounded(id_sim), "id_conf": _rounded(id_conf),
        "mean_id_sim": report_number(metric_rules.pooled_mean(id_sim)),
        "mean_id_conf": report_number(metric_rules.pooled_mean(id_conf)),
        "faces": len(report.faces),
        "report": report.to_dict(),
        "timing": {"generate_s": round(generated - started, 3), "analyse_s": round(analysed - generated, 3),
                   "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S"), "pid": os.getpid()},
    }
    atomic_write_text(record_path, json.dumps(record, indent=1) + "\n")
    return record


def _png_metadata(item: WorkItem, request, settings: dict):
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    info.add_text("prompt", request.prompt)
    info.add_text("seed", str(request.seed))
    info.add_text("variant", item.variant)
    info.add_text("settings", json.dumps(settings, sort_keys=True))
    info.add_text("item", item.id)
    info.add_text("software", "umo_pipeline evaluate")
    return info


def atomic_write(path: Path, write) -> None:
    """write(tmp_path), then move it over `path` in one step (a reader never sees half a file)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _rounded(values):
    return [report_number(v) for v in values]


def _progress_bar(total: int, state):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=f"process {state.process_index}", position=state.process_index,
                unit="item", file=sys.stderr, dynamic_ncols=True, leave=True, mininterval=0.5)


def _names(text: str, flag: str) -> list[str]:
    names = [part.strip() for part in text.split(",") if part.strip()]
    if not names or len(set(names)) != len(names):
        raise InputError(f"{flag} {text}: give a comma-separated list without repeats, e.g. base,umo")
    return names


def _seeds(text: str) -> list[int]:
    """"0,1,2" or a range "0-3" (inclusive) or a mix: "0-3,10"."""
    seeds = []
    for part in (p.strip() for p in text.split(",")):
        try:
            if "-" in part:
                low, high = part.split("-", 1)
                seeds.extend(range(int(low), int(high) + 1))
            else:
                seeds.append(int(part))
        except ValueError:
            raise InputError(f"--seeds {text}: expected whole numbers like 0,1,2 or a range like 0-3") from None
    if not seeds or len(set(seeds)) != len(seeds) or any(s < 0 for s in seeds):
        raise InputError(f"--seeds {text}: give distinct seeds from 0 up, like 0,1,2 or 0-3")
    return seeds
