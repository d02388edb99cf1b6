"""The end of a run, once, on the main process: records.jsonl, summaries, plots and report.html
from the per-item records on disk (so a resumed run aggregates exactly like an uninterrupted one)."""

from __future__ import annotations

import json
from pathlib import Path

from umo_pipeline.errors import GenerationError
from umo_pipeline.evaluate import plots as run_plots
from umo_pipeline.evaluate import report as html_report
from umo_pipeline.evaluate import summary
from umo_pipeline.evaluate.folder import atomic_write, atomic_write_text, complete_record, remove_leftovers
from umo_pipeline.images import load_image

REFERENCE_THUMBNAIL = 160


def aggregate(out: Path, items, settings: dict) -> Path:
    """Write records.jsonl, summary.csv, summary.md, plots/ and report.html; the report's path."""
    return write_results(out, [stored_record(out, item, settings) for item in items], settings,
                         [item.case for item in items])


def stored_record(out: Path, item, settings: dict) -> dict:
    """An item's complete record; a plain error when a process left it unfinished."""
    record = complete_record(out, item, settings)
    if record is None:
        raise GenerationError(f"item {item.id} has no complete result in {out / 'items'}; run again to finish it")
    return record


def write_results(out: Path, records: list[dict], settings: dict, cases) -> Path:
    """records.jsonl, the summaries, plots and report.html of `records` (in their order; score's may
    hold "missing" placeholders), with thumbnails of `cases`' references; the report's path."""
    remove_leftovers(out)
    atomic_write_text(out / "records.jsonl", "".join(json.dumps(r, sort_keys=True) + "\n" for r in records))
    rules = settings["metrics"]
    rows = summary.group_rows(records, rules, summary.methods_of(settings).deltas)
    benchmark = records[0]["benchmark"] if records else "jsonl"
    excluded = sum(1 for r in records if r.get("excluded"))
    scored = sum(not r.get("missing") for r in records)
    atomic_write_text(out / "summary.csv", summary.write_csv(rows, rules))
    atomic_write_text(out / "summary.md", summary.write_markdown(rows, settings, scored, benchmark, excluded,
                                                                summary.describe_repairs(records),
                                                                missing=len(records) - scored))
    plots = run_plots.write_plots(records, out / "plots", settings, benchmark)
    thumbnails = _reference_thumbnails(out, cases)
    page = html_report.render(records, rows, settings, thumbnails, [p.relative_to(out).as_posix() for p in plots],
                              benchmark=benchmark, excluded=excluded)
    path = out / "report.html"
    atomic_write_text(path, page)
    return path


def _reference_thumbnails(out: Path, cases) -> dict[str, list[str]]:
    """case id -> relative paths of small JPEG copies of its references (made once); a case with a
    ground truth also gets "<case id>:ground truth" -> [its copy]."""
    folder = out / "references"
    folder.mkdir(exist_ok=True)
    result = {}
    for case in cases:
        if case.id in result:
            continue
        result[case.id] = [_thumbnail(out, folder / f"{case.id}-{k + 1}.jpg", source, case.names[k])
                           for k, source in enumerate(case.references)]
        if case.ground_truth is not None:
            result[f"{case.id}:ground truth"] = [
                _thumbnail(out, folder / f"{case.id}-gt.jpg", case.ground_truth, f"{case.where}: the ground truth")]
    return result


def _thumbnail(out: Path, path: Path, source, name: str) -> str:
    if not path.exists():
        image = load_image(source, name=str(source) if isinstance(source, Path) else name)
        image.thumbnail((REFERENCE_THUMBNAIL, REFERENCE_THUMBNAIL))
        atomic_write(path, lambda tmp: image.save(tmp, format="JPEG", quality=88))
    return path.relative_to(out).as_posix()
