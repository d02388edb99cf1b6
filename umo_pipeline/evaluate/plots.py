"""The run's plots (plots/*.png), drawn with matplotlib on the Agg backend: ID-Sim of base against
UMO per prompt and seed and the mean gains by number of identities (evaluate), or each method's
ID-Sim against the baseline's and its mean difference by number of identities (score); with a
ground truth GT-Sim against the copy-paste score; in the unit of the summary's tables."""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path

from umo_pipeline.evaluate.folder import atomic_write
from umo_pipeline.evaluate.metrics import pooled_mean
from umo_pipeline.evaluate.summary import TITLES, has_ground_truth, methods_of, pairs, score_scale
from umo_pipeline.labels import method_name


def _saved(plt, figure, path: Path) -> Path:
    """`figure` laid out, written to `path` (under a temporary name, then moved) and closed."""
    figure.tight_layout()
    atomic_write(path, lambda tmp: figure.savefig(tmp, format="png"))
    plt.close(figure)
    return path


def write_plots(records: list[dict], folder: Path, settings: dict, benchmark: str = "jsonl") -> list[Path]:
    """ID-Sim of base vs UMO per (prompt, seed) and the mean deltas by number of identities; with a
    ground truth, GT-Sim against the copy-paste score per image; in the unit of the tables (score_scale)."""
    import matplotlib

    matplotlib.use("Agg")  # files only: no display on servers and accelerate workers
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    written = []
    records = [r for r in records if not r.get("missing")]
    if "methods" in settings:
        written += _methods_plots(plt, records, folder, settings, benchmark)
    else:
        both = [p for p in pairs(records) if p["delta_id_sim"] is not None]
        if both:  # these compare base with UMO; nothing to draw with one variant
            written += _base_and_umo_plots(plt, both, folder, settings, benchmark)
    if has_ground_truth(records):
        path = _ground_truth_plot(plt, records, folder, settings)
        if path is not None:
            written.append(path)
    return written


def _base_and_umo_plots(plt, both, folder: Path, settings: dict, benchmark: str) -> list[Path]:
    written = []
    model = settings["model"]
    _, unit, top = score_scale(settings, benchmark)
    figure, axes = plt.subplots(figsize=(5, 5), dpi=100)
    xs = [p["variants"]["base"]["mean_id_sim"] for p in both]
    ys = [p["variants"]["umo"]["mean_id_sim"] for p in both]
    axes.scatter(xs, ys, s=18, alpha=0.8)
    # the whole scale, so the distance from the diagonal reads like the tables' numbers
    low, high = min(xs + ys + [0.0]), max(xs + ys + [top])
    axes.plot([low, high], [low, high], color="grey", linewidth=1, linestyle="--")
    axes.set_xlim(low, high)
    axes.set_ylim(low, high)
    axes.set_xlabel(f"{method_name(model, 'base')} ID-Sim ({unit})")
    axes.set_ylabel(f"{method_name(model, 'umo')} ID-Sim ({unit})")
    axes.set_title(f"ID-Sim per prompt and seed ({len(both)})")
    path = _saved(plt, figure, folder / "id_sim_base_vs_umo.png")
    written.append(path)

    by_count = OrderedDict()
    for p in sorted(both, key=lambda p: p["first"]["n_identities"]):
        by_count.setdefault(p["first"]["n_identities"], []).append(p)
    figure, axes = plt.subplots(figsize=(6, 4), dpi=100)
    counts = list(by_count)
    shown = [m for m in TITLES if m in ("id_sim", "id_conf") or any(p[f"delta_{m}"] is not None for p in both)]
    width = 0.76 / len(shown)
    for k, metric in enumerate(shown):
        offset = (k - (len(shown) - 1) / 2) * width
        means = [pooled_mean([p[f"delta_{metric}"] for p in by_count[n]]) for n in counts]
        axes.bar([i + offset for i in range(len(counts))], [m if m is not None else 0.0 for m in means],
                 width=width, label=f"Δ {TITLES[metric]}")
    axes.axhline(0, color="black", linewidth=0.8)
    axes.set_xticks(range(len(counts)), [str(n) for n in counts])
    axes.set_xlabel("number of identities")
    axes.set_ylabel(f"UMO - base ({unit}, mean per prompt and seed)")
    axes.legend()
    axes.set_title("Gain of UMO by number of identities")
    path = _saved(plt, figure, folder / "deltas_by_identities.png")
    written.append(path)
    return written


def _ground_truth_plot(plt, records: list[dict], folder: Path, settings: dict) -> Path | None:
    """GT-Sim (up: like the person in the scene) against CP (right: copied from the reference photo)
    per image, one colour per variant: MultiID-Bench's trade-off picture."""
    name = methods_of(settings).name
    series = OrderedDict()
    for record in records:
        if record.get("mean_gt_sim") is not None and record.get("mean_copy_paste") is not None:
            series.setdefault(record["variant"], []).append((record["mean_copy_paste"], record["mean_gt_sim"]))
    if not series:
        return None
    figure, axes = plt.subplots(figsize=(5.5, 4.5), dpi=100)
    for variant, points in series.items():
        axes.scatter([x for x, _ in points], [y for _, y in points], s=18, alpha=0.8,
                     label=f"{name(variant)} ({len(points)})")
    axes.axvline(0, color="grey", linewidth=1, linestyle="--")
    axes.set_xlim(-100, 100)
    axes.set_xlabel("copy-paste score CP (x100; +100 = the reference photo copied)")
    axes.set_ylabel("GT-Sim (x100)")
    axes.set_title("Similarity to the ground truth vs copy-paste, per image")
    axes.legend()
    path = _saved(plt, figure, folder / "gt_sim_vs_copy_paste.png")
    return path


def _methods_plots(plt, records: list[dict], folder: Path, settings: dict, benchmark: str) -> list[Path]:
    """score: each method's ID-Sim against the baseline's per prompt and seed (one colour per method),
    and each method's mean difference from the baseline by number of identities."""
    deltas = list(methods_of(settings).deltas.values())
    compared = pairs(records, methods_of(settings).deltas)
    _, unit, top = score_scale(settings, benchmark)
    baseline = settings["baseline"]
    figure, axes = plt.subplots(figsize=(5, 5), dpi=100)
    values = [0.0, top]
    for delta in deltas:
        both = [p for p in compared if p[f"{delta.field}_id_sim"] is not None]
        xs = [p["variants"][baseline]["mean_id_sim"] for p in both]
        ys = [p["variants"][delta.variant]["mean_id_sim"] for p in both]
        values += xs + ys
        axes.scatter(xs, ys, s=18, alpha=0.8, label=f"{delta.variant} ({len(both)})")
    low, high = min(values), max(values)
    axes.plot([low, high], [low, high], color="grey", linewidth=1, linestyle="--")
    axes.set_xlim(low, high)
    axes.set_ylim(low, high)
    axes.set_xlabel(f"{baseline} ID-Sim ({unit})")
    axes.set_ylabel(f"method's ID-Sim ({unit})")
    axes.set_title("ID-Sim per prompt and seed against the baseline")
    if deltas:
        axes.legend()
    scatter = _saved(plt, figure, folder / "id_sim_vs_baseline.png")

    counts = sorted({p["first"]["n_identities"] for p in compared})
    figure, axes = plt.subplots(figsize=(6, 4), dpi=100)
    width = 0.76 / max(1, len(deltas))
    for k, delta in enumerate(deltas):
        offset = (k - (len(deltas) - 1) / 2) * width
        means = [pooled_mean([p[f"{delta.field}_id_sim"] for p in compared if p["first"]["n_identities"] == n])
                 for n in counts]
        axes.bar([i + offset for i in range(len(counts))], [m if m is not None else 0.0 for m in means],
                 width=width, label=delta.name)
    axes.axhline(0, color="black", linewidth=0.8)
    axes.set_xticks(range(len(counts)), [str(n) for n in counts])
    axes.set_xlabel("number of identities")
    axes.set_ylabel(f"Δ ID-Sim against {baseline} ({unit}, mean per prompt and seed)")
    if deltas:
        axes.legend()
    axes.set_title("Difference from the baseline by number of identities")
    bars = _saved(plt, figure, folder / "id_sim_delta_by_identities.png")
    return [scatter, bars]
