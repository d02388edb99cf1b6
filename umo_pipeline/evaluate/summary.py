"""summary.csv and summary.md: pooled mean ID-Sim / ID-Conf per variant (evaluate) or per method
(score), overall, per category and per number of identities, with the differences (UMO - base and
UMO + repair - UMO; or each method - the baseline), laid out like the paper's tables; the plots are
drawn in plots.py. `Methods` says how a run names its rows and which differences it shows."""

from __future__ import annotations

import csv
import io
from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable, NamedTuple

from umo_pipeline.evaluate.items import REPAIRED
from umo_pipeline.evaluate.metrics import summary_figure
from umo_pipeline.judge import rule
from umo_pipeline.labels import method_name
from umo_pipeline.matching import difference

CSV_COLUMNS = ("scope", "group", "variant", "items", "id_sim", "id_sim_scores", "id_conf", "id_conf_scores")
#: added where the set has ground truth (MultiID-Bench)
GROUND_TRUTH_COLUMNS = ("gt_sim", "gt_sim_scores", "copy_paste", "copy_paste_scores")
#: metric key -> the name tables give it
TITLES = {"id_sim": "ID-Sim", "id_conf": "ID-Conf", "gt_sim": "GT-Sim", "copy_paste": "CP"}
#: metric key -> MultiID-Bench's (name in its tables, key in its eval.py output), shown beside ours
#: under --metrics multiid-bench (eval.py at Doby-Xu/WithAnyone 996d152); ID-Conf is not theirs
MULTIID_NAMES = {"id_sim": ("Sim(Ref)", "sim_ref"), "gt_sim": ("Sim(GT)", "sim_ori"), "copy_paste": ("CP", "copy_geo")}
#: the pooled row under MultiID-Bench's rules: its tables are per subset, never pooled
POOLED_MULTIID = "all subsets pooled (not comparable with MultiID-Bench's tables, which are per subset)"


class Delta(NamedTuple):
    """A difference of two variants' figures, shown where a run has both."""

    variant: str
    against: str
    #: the summary row's name
    name: str
    #: a column title, formatted with the metric's title
    column: str
    #: the prefix of its per-(case, seed) values in `pairs` ("delta" -> delta_id_sim, ...)
    field: str


#: the variant value of each difference row in summary.csv and the tables
DELTAS = {
    "umo-base": Delta("umo", "base", "UMO - base", "Δ {title}", "delta"),
    "repair-umo": Delta(REPAIRED, "umo", "UMO + repair - UMO", "Δ {title} (repair)", "repair_delta"),
}


@dataclass(frozen=True)
class Methods:
    """How a run's tables name their rows and which differences they show: evaluate's variants of
    one model (UMO - base, ...), or score's named methods, each minus the baseline."""

    name: Callable[[str], str]
    deltas: dict
    title: str = "UMO evaluation"

    def row_name(self, variant: str) -> str:
        """A summary row's method: the variant's name, or the difference's ("UMO - base")."""
        return self.deltas[variant].name if variant in self.deltas else self.name(variant)


def compared_methods(names: list[str], baseline: str) -> Methods:
    """score's rows: the methods as named on the command line, and each other method - the baseline."""
    deltas = {f"{name} - {baseline}": Delta(name, baseline, f"{name} - {baseline}",
                                            "Δ {title} " + f"({name} - {baseline})", f"vs{k}")
              for k, name in enumerate(names) if name != baseline}
    return Methods(str, deltas, "Method comparison")


def methods_of(settings: dict) -> Methods:
    """The run's Methods, read from its settings (score's carry "methods" and "baseline")."""
    if "methods" in settings:
        return compared_methods(list(settings["methods"]), settings["baseline"])
    model = settings["model"]
    return Methods(lambda variant: method_name(model, variant), DELTAS)


def metric_title(metric: str, rules: str = "app") -> str:
    """A metric's column title; under MultiID-Bench's rules with its own name beside ours."""
    if rules == "multiid-bench" and metric in MULTIID_NAMES and MULTIID_NAMES[metric][0] != TITLES[metric]:
        return f"{TITLES[metric]} [{MULTIID_NAMES[metric][0]}]"
    return TITLES[metric]


def csv_column(metric: str, rules: str = "app") -> str:
    """A metric's summary.csv column: "id_sim", or under MultiID-Bench's rules "id_sim (sim_ref)", so
    a spreadsheet shows their eval.py key beside ours in one header cell."""
    if rules == "multiid-bench" and metric in MULTIID_NAMES:
        return f"{metric} ({MULTIID_NAMES[metric][1]})"
    return metric


def multiid_legend() -> str:
    """MultiID-Bench's names for our columns, in a sentence (summary.md and report.html)."""
    return "MultiID-Bench's names: " + "; ".join(f"{TITLES[m]} = {title} (`{key}` in its eval.py)"
                                                 for m, (title, key) in MULTIID_NAMES.items()) + "."


def has_ground_truth(records: list[dict]) -> bool:
    return any(r.get("ground_truth") for r in records)


def table_metrics(records: list[dict]) -> tuple[str, ...]:
    """The metrics a run's tables show: ID-Sim and ID-Conf, and GT-Sim and CP with a ground truth."""
    return ("id_sim", "id_conf", "gt_sim", "copy_paste") if has_ground_truth(records) else ("id_sim", "id_conf")


def group_rows(records: list[dict], rules: str = "app", deltas: dict = DELTAS) -> list[dict]:
    """One row per (scope, group, variant) plus a difference row per group with both variants of a
    `deltas` entry ("umo-base", "repair-umo"; score's "B - A");
    figures by `summary_figure` under `rules` (pooled, or MultiID-Bench's trimmed per-image means).
    Records marked "missing" (score: a method without an image for the case) count in "missing",
    not in "items"; rows have "missing" only when some record is."""
    variants = list(OrderedDict.fromkeys(r["variant"] for r in records))
    names = table_metrics(records)
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
                row = {"scope": scope, "group": group, "variant": variant,
                       "items": sum(not r.get("missing") for r in chosen)}
                if any("missing" in r for r in records):
                    row["missing"] = sum(bool(r.get("missing")) for r in chosen)
                for metric in names:
                    row[metric], row[f"{metric}_scores"] = summary_figure(chosen, metric, rules)
                by_variant[variant] = row
                rows.append(row)
            for key, delta in deltas.items():
                if delta.variant in by_variant and delta.against in by_variant:
                    new, old = by_variant[delta.variant], by_variant[delta.against]
                    row = {"scope": scope, "group": group, "variant": key, "items": new["items"]}
                    if "missing" in new:
                        row["missing"] = None
                    for metric in names:
                        row[metric], row[f"{metric}_scores"] = difference(new[metric], old[metric]), None
                    rows.append(row)
    return rows


def _group_order(value: str):
    return (0, int(value)) if value.isdigit() else (1, value)



def write_csv(rows: list[dict], rules: str = "app") -> str:
    """rules: under "multiid-bench" the metric columns carry MultiID-Bench's names (csv_column) and the
    pooled row's group says it is not comparable with their per-subset tables."""
    columns = CSV_COLUMNS + (GROUND_TRUTH_COLUMNS if rows and "gt_sim" in rows[0] else ())
    if rows and "missing" in rows[0]:
        columns = columns[:4] + ("missing",) + columns[4:]
    header = [csv_column(k, rules) if k in TITLES else k for k in columns]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    for row in rows:
        cells = {k: ("" if row[k] is None else round(row[k], 4) if isinstance(row[k], float) else row[k])
                 for k in columns}
        if rules == "multiid-bench" and row["scope"] == "all":
            cells["group"] = POOLED_MULTIID
        writer.writerow([cells[k] for k in columns])
    return buffer.getvalue()


def score_scale(settings: dict, benchmark: str) -> tuple[str, str, float]:
    """How a run's ID-Sim / ID-Conf read: (phrase for the text, short unit, top of the scale): x100,
    or OmniContext's 0-10 under the rules of UMO's scripts."""
    if settings.get("metrics") == "umo-eval" and benchmark == "omnicontext":
        return "on OmniContext's 0-10 scale", "0-10", 10.0
    return "x100", "x100", 100.0


def write_markdown(rows: list[dict], settings: dict, n_items: int, benchmark: str = "jsonl",
                   excluded: int = 0, repairs: str = "", missing: int = 0) -> str:
    """repairs: `describe_repairs` of the run's records; missing: images score found no file for."""
    methods = methods_of(settings)
    rules = settings["metrics"]
    names = _row_metrics(rows)
    titles = [metric_title(m, rules) for m in names]
    multiid = rules == "multiid-bench"
    lines = [
        f"# {methods.title} summary", "",
        describe_run(settings, n_items, missing) + " "
        + describe_figures(settings, benchmark, "gt_sim" in names, excluded)
        + (f" {multiid_legend()}" if multiid else "") + (f" {repairs}" if repairs else ""),
        "",
        f"## {POOLED_MULTIID[0].upper() + POOLED_MULTIID[1:]}" if multiid else "## Overall", "",
        "| Method | Items | " + ("Missing | " if _has_missing(rows) else "") + " | ".join(titles) + " |",
        "|---|---:|" + ("---:|" if _has_missing(rows) else "") + "---:|" * len(names),
    ]
    for row in (r for r in rows if r["scope"] == "all"):
        signed = row["variant"] in methods.deltas
        missed = [_count(row.get("missing"))] if _has_missing(rows) else []
        lines.append(f"| {methods.row_name(row['variant'])} | {row['items']} | " + "".join(f"{m} | " for m in missed)
                     + " | ".join(format_figure(row[m], signed) for m in names) + " |")
    category = "By subset (MultiID-Bench's tables)" if multiid else "By category"
    for scope, title in (("category", category), ("identities", "By number of identities")):
        lines += ["", f"## {title}", "", _table_header(rows, methods, scope, rules), _table_rule(rows)]
        for group in OrderedDict.fromkeys(r["group"] for r in rows if r["scope"] == scope):
            lines.append(_table_line(rows, methods, scope, group))
    return "\n".join(lines) + "\n"


def describe_run(settings: dict, n_items: int, missing: int = 0, *, mark=str, counted: str = "items") -> str:
    """The run in a sentence: the model and its settings (evaluate) or the methods' folders (score).
    `mark(text)` writes each name and setting (the report: escaped, in bold); `counted` names what
    `n_items` counts."""
    common = f"face backend {mark(settings['backend'])}; metrics {mark(settings['metrics'])}; {n_items} {counted}"
    if "methods" in settings:
        folders = ", ".join(f"{mark(name)} ({mark(info['folder'])}, {info['layout']} layout)"
                            for name, info in settings["methods"].items())
        lost = f", {mark(str(missing) + ' missing')} (no image found)" if missing else ""
        return f"Methods {folders}; baseline {mark(settings['baseline'])}; {common}{lost}."
    return (f"Model {mark(settings['model'])}, {settings['width']}x{settings['height']}, {settings['steps']} steps, "
            f"guidance {settings['guidance']}; {common}.")


def _has_missing(rows) -> bool:
    return bool(rows) and "missing" in rows[0]


def _count(value) -> str:
    return "" if value is None else str(value)


def describe_repairs(records: list[dict]) -> str:
    """How the "umo+repair" items went, in a sentence, and the judge's rule ("" when the run has none)."""
    repairs = [r["repair"] for r in records if r.get("repair") is not None]
    if not repairs:
        return ""
    kept, skipped = sum(bool(r["kept"]) for r in repairs), sum(bool(r["skipped"]) for r in repairs)
    return (f"UMO + repair: a repair was kept in {kept} of {len(repairs)} images; in {len(repairs) - kept - skipped} "
            f"the judge kept no repaint, and {skipped} had nothing to repair (every reference "
            f"matched, or no face to repair: each record's `repair` says why). {rule()}")


def describe_figures(settings: dict, benchmark: str, ground_truth: bool, excluded: int = 0) -> str:
    """What the summary's figures are, in a few sentences (the summary and the report print it)."""
    scale = score_scale(settings, benchmark)[0]
    if settings.get("metrics") == "multiid-bench":
        text = ("Figures follow MultiID-Bench's eval.py: per image the mean over its people, then the mean over "
                "images after dropping those beyond 1.5 IQR of the quartiles; ID-Sim is its Sim(Ref), the "
                "similarity to the face the Hungarian method assigns each reference; an image without a face, or "
                "a case with a reference without one, counts in no mean"
                + (f" ({excluded} such item{'s' if excluded != 1 else ''})" if excluded else "") + ". "
                "All x100: MultiID-Bench's tables print the raw value (divide by 100).")
    else:
        text = f"Pooled means over every (image, identity) score, {scale}."
    if ground_truth:
        text += (" GT-Sim: similarity of each person's output face to the same person in the ground-truth photo. "
                 "CP: copy-paste score, +100 when the output face is the reference photo's, -100 when it is the "
                 "ground truth's (lower is better; undefined when the face counts differ).")
    return text


def _row_metrics(rows) -> tuple[str, ...]:
    return tuple(m for m in TITLES if rows and m in rows[0])


def _variants(rows) -> list[str]:
    return list(OrderedDict.fromkeys(r["variant"] for r in rows))


def _table_header(rows, methods: Methods, scope: str, rules: str = "app") -> str:
    first = "Category" if scope == "category" else "Identities"
    cells = [first, "Items"]
    for metric in _row_metrics(rows):
        title = metric_title(metric, rules)
        cells += [methods.deltas[v].column.format(title=title) if v in methods.deltas else f"{methods.name(v)} {title}"
                  for v in _variants(rows)]
    return "| " + " | ".join(cells) + " |"


def _table_rule(rows) -> str:
    return "|---|" + "---:|" * (1 + len(_row_metrics(rows)) * len(_variants(rows)))


def _table_line(rows, methods: Methods, scope: str, group: str) -> str:
    mine = {r["variant"]: r for r in rows if r["scope"] == scope and r["group"] == group}
    items = max((r["items"] for r in mine.values()), default=0)
    cells = [group, str(items)]
    for metric in _row_metrics(rows):
        for variant in _variants(rows):
            row = mine.get(variant)
            cells.append(format_figure(row[metric] if row else None, signed=variant in methods.deltas))
    return "| " + " | ".join(cells) + " |"


def format_figure(value, signed: bool = False) -> str:
    """A summary figure as the tables show it: two decimals (signed for differences), or n/a."""
    if value is None:
        return "n/a"
    return f"{value:+.2f}" if signed else f"{value:.2f}"


def pairs(records: list[dict], deltas: dict = DELTAS) -> list[dict]:
    """Per (case, seed): the records of each variant and the differences of the item means (`deltas`;
    evaluate's: delta_id_sim = UMO - base, repair_delta_id_sim = UMO + repair - UMO, ...)."""
    grouped = OrderedDict()
    for record in records:
        grouped.setdefault((record["case"], record["seed"]), {})[record["variant"]] = record
    result = []
    for (case, seed), variants in grouped.items():
        pair = {"case": case, "seed": seed, "variants": variants, "first": next(iter(variants.values()))}
        for delta in deltas.values():
            new, old = variants.get(delta.variant), variants.get(delta.against)
            for metric in TITLES:
                pair[f"{delta.field}_{metric}"] = (difference(new.get(f"mean_{metric}"), old.get(f"mean_{metric}"))
                                                   if new and old else None)
        result.append(pair)
    return result
