"""summary.csv, summary.md and the plots: pooled mean ID-Sim / ID-Conf per variant, overall, per
category and per number of identities, with the UMO - base deltas, laid out like the paper's tables."""

from __future__ import annotations

import csv
import io
from collections import OrderedDict
from pathlib import Path

from umo_pipeline.evaluate.folder import atomic_write
from umo_pipeline.evaluate.metrics import pooled_mean
from umo_pipeline.labels import method_name

CSV_COLUMNS = ("scope", "group", "variant", "items", "id_sim", "id_sim_scores", "id_conf", "id_conf_scores")


def group_rows(records: list[dict]) -> list[dict]:
    """One row per (scope, group, variant) plus a "umo-base" row per group with both variants."""
    variants = list(OrderedDict.fromkeys(r["variant"] for r in records))
    scopes = [("all", lambda r: "all"), ("category", lambda r: r["category"]),
              ("identities", lambda r: str(r["n_identities"]))]
    rows = []
    for scope, key in scopes:
        groups = OrderedDict()
        for record in sorted(records, key=lambda r: _group_order(key(r))) if scope == "identities" else records:
            groups.setdefault(key(record), []).append(record)
        for group, members in groups.items():
            by_variant = {}
            for variant in variants:
                chosen = [r for r in members if r["variant"] == variant]
                if not chosen:
                    continue
                sims = [v for r in chosen for v in r["id_sim"] if v is not None]
                confs = [v for r in chosen for v in r["id_conf"] if v is not None]
                row = {"scope": scope, "group": group, "variant": variant, "items": len(chosen),
                       "id_sim": pooled_mean(sims), "id_sim_scores": len(sims),
                       "id_conf": pooled_mean(confs), "id_conf_scores": len(confs)}
                by_variant[variant] = row
                rows.append(row)
            if "base" in by_variant and "umo" in by_variant:
                base, umo = by_variant["base"], by_variant["umo"]
                rows.append({"scope": scope, "group": group, "variant": "umo-base", "items": umo["items"],
                             "id_sim": _difference(umo["id_sim"], base["id_sim"]), "id_sim_scores": None,
                             "id_conf": _difference(umo["id_conf"], base["id_conf"]), "id_conf_scores": None})
    return rows


def _group_order(value: str):
    return (0, int(value)) if value.isdigit() else (1, value)


def _difference(a, b):
    return None if a is None or b is None else a - b


def write_csv(rows: list[dict]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if row[k] is None else round(row[k], 4) if isinstance(row[k], float) else row[k])
                         for k in CSV_COLUMNS})
    return buffer.getvalue()


def score_scale(settings: dict, benchmark: str) -> tuple[str, str, float]:
    """How a run's ID-Sim / ID-Conf read: (phrase for the text, short unit, top of the scale): x100,
    or OmniContext's 0-10 under the rules of UMO's scripts."""
    if settings.get("metrics") == "umo-eval" and benchmark == "omnicontext":
        return "on OmniContext's 0-10 scale", "0-10", 10.0
    return "x100", "x100", 100.0


def write_markdown(rows: list[dict], settings: dict, n_items: int, benchmark: str = "jsonl") -> str:
    model = settings["model"]
    scale = score_scale(settings, benchmark)[0]
    lines = [
        "# UMO evaluation summary", "",
        f"Model {model}, {settings['width']}x{settings['height']}, {settings['steps']} steps, guidance "
        f"{settings['guidance']}; face backend {settings['backend']}; metrics {settings['metrics']}; "
        f"{n_items} items. ID-Sim and ID-Conf are pooled means over every (image, identity) score, {scale}.",
        "",
        "## Overall", "",
        "| Method | Items | ID-Sim | ID-Conf |", "|---|---:|---:|---:|",
    ]
    for row in (r for r in rows if r["scope"] == "all"):
        name = "UMO - base" if row["variant"] == "umo-base" else method_name(model, row["variant"])
        signed = row["variant"] == "umo-base"
        lines.append(f"| {name} | {row['items']} | {format_figure(row['id_sim'], signed)} "
                     f"| {format_figure(row['id_conf'], signed)} |")
    for scope, title in (("category", "By category"), ("identities", "By number of identities")):
        lines += ["", f"## {title}", "", _table_header(rows, model, scope), _table_rule(rows)]
        for group in OrderedDict.fromkeys(r["group"] for r in rows if r["scope"] == scope):
            lines.append(_table_line(rows, scope, group))
    return "\n".join(lines) + "\n"


def _variants(rows) -> list[str]:
    return list(OrderedDict.fromkeys(r["variant"] for r in rows))


def _table_header(rows, model: str, scope: str) -> str:
    first = "Category" if scope == "category" else "Identities"
    cells = [first, "Items"]
    for metric in ("ID-Sim", "ID-Conf"):
        cells += [f"{method_name(model, v)} {metric}" if v != "umo-base" else f"Δ {metric}" for v in _variants(rows)]
    return "| " + " | ".join(cells) + " |"


def _table_rule(rows) -> str:
    return "|---|" + "---:|" * (1 + 2 * len(_variants(rows)))


def _table_line(rows, scope: str, group: str) -> str:
    mine = {r["variant"]: r for r in rows if r["scope"] == scope and r["group"] == group}
    items = max((r["items"] for r in mine.values()), default=0)
    cells = [group, str(items)]
    for metric in ("id_sim", "id_conf"):
        for variant in _variants(rows):
            row = mine.get(variant)
            cells.append(format_figure(row[metric] if row else None, signed=variant == "umo-base"))
    return "| " + " | ".join(cells) + " |"


def format_figure(value, signed: bool = False) -> str:
    """A summary figure as the tables show it: two decimals (signed for differences), or n/a."""
    if value is None:
        return "n/a"
    return f"{value:+.2f}" if signed else f"{value:.2f}"


def pairs(records: list[dict]) -> list[dict]:
    """Per (case, seed): the records of each variant and the UMO - base deltas of the item means."""
    grouped = OrderedDict()
    for record in records:
        grouped.setdefault((record["case"], record["seed"]), {})[record["variant"]] = record
    result = []
    for (case, seed), variants in grouped.items():
        base, umo = variants.get("base"), variants.get("umo")
        deltas = {}
        for metric in ("mean_id_sim", "mean_id_conf"):
            deltas[metric] = (_difference(umo[metric], base[metric]) if base and umo else None)
        result.append({"case": case, "seed": seed, "variants": variants, "delta_id_sim": deltas["mean_id_sim"],
                       "delta_id_conf": deltas["mean_id_conf"], "first": next(iter(variants.values()))})
    return result


def write_plots(records: list[dict], folder: Path, settings: dict, benchmark: str = "jsonl") -> list[Path]:
    """ID-Sim of base vs UMO per (prompt, seed), and the mean deltas by number of identities, in the
    unit of the tables (score_scale)."""
    import matplotlib

    matplotlib.use("Agg")  # files only: no display on servers and accelerate workers
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    both = [p for p in pairs(records) if p["delta_id_sim"] is not None]
    written = []
    if not both:
        return written  # plots compare base with UMO; nothing to draw with one variant
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
    figure.tight_layout()
    path = folder / "id_sim_base_vs_umo.png"
    atomic_write(path, lambda tmp: figure.savefig(tmp, format="png"))
    plt.close(figure)
    written.append(path)

    by_count = OrderedDict()
    for p in sorted(both, key=lambda p: p["first"]["n_identities"]):
        by_count.setdefault(p["first"]["n_identities"], []).append(p)
    figure, axes = plt.subplots(figsize=(6, 4), dpi=100)
    counts = list(by_count)
    width = 0.38
    for offset, metric, label in ((-width / 2, "delta_id_sim", "Δ ID-Sim"), (width / 2, "delta_id_conf", "Δ ID-Conf")):
        means = [pooled_mean([p[metric] for p in by_count[n]]) for n in counts]
        axes.bar([i + offset for i in range(len(counts))], [m if m is not None else 0.0 for m in means],
                 width=width, label=label)
    axes.axhline(0, color="black", linewidth=0.8)
    axes.set_xticks(range(len(counts)), [str(n) for n in counts])
    axes.set_xlabel("number of identities")
    axes.set_ylabel(f"UMO - base ({unit}, mean per prompt and seed)")
    axes.legend()
    axes.set_title("Gain of UMO by number of identities")
    figure.tight_layout()
    path = folder / "deltas_by_identities.png"
    atomic_write(path, lambda tmp: figure.savefig(tmp, format="png"))
    plt.close(figure)
    written.append(path)
    return written
