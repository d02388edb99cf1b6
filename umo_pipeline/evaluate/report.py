"""report.html: one self-contained page (no network, no CDN; pictures by relative link) with one
row per prompt and seed: references (and the ground truth, where the set has one), each variant's
(evaluate: base, UMO, UMO + repair with what its repair kept) or each method's (score) image side by
side with its labelled faces, the metrics (GT-Sim and CP with a ground truth), and column headers
that sort the rows (by the UMO - base delta, a method's difference from the baseline, ...)."""

from __future__ import annotations

from html import escape

from umo_pipeline.evaluate import summary

_STYLE = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5em; color: #222; }
table { border-collapse: collapse; }
th, td { border: 1px solid #ccc; padding: 6px; vertical-align: top; }
th[data-sort] { cursor: pointer; background: #f1f1f5; user-select: none; white-space: nowrap; }
th[data-sort]::after { content: " \\2195"; color: #999; }
th[aria-sort=ascending]::after { content: " \\2191"; color: #222; }
th[aria-sort=descending]::after { content: " \\2193"; color: #222; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
td.better { color: #0a7d2c; font-weight: 600; } td.worse { color: #b3261e; font-weight: 600; }
img.ref { height: 72px; margin: 2px; border-radius: 4px; }
img.out { width: 256px; display: block; }
.prompt { max-width: 18em; } .muted { color: #777; font-size: 12px; }
.summary td, .summary th { padding: 4px 10px; }
.plots img { max-width: 45%; margin-right: 1em; border: 1px solid #ddd; }
"""

# Sorts on data-value (numbers; blank = no value, always last), toggling the direction per click.
_SCRIPT = """
document.querySelectorAll('#cases th[data-sort]').forEach(function (th) {
  th.addEventListener('click', function () {
    var column = th.cellIndex, body = document.querySelector('#cases tbody');
    var descending = th.getAttribute('aria-sort') !== 'descending';
    document.querySelectorAll('#cases th').forEach(function (h) { h.removeAttribute('aria-sort'); });
    th.setAttribute('aria-sort', descending ? 'descending' : 'ascending');
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var x = a.cells[column].getAttribute('data-value'), y = b.cells[column].getAttribute('data-value');
      if (x === '' || x === null) return (y === '' || y === null) ? 0 : 1;
      if (y === '' || y === null) return -1;
      var nx = parseFloat(x), ny = parseFloat(y);
      var order = (isNaN(nx) || isNaN(ny)) ? x.localeCompare(y) : nx - ny;
      return descending ? -order : order;
    });
    rows.forEach(function (row) { body.appendChild(row); });
  });
});
"""


def render(records: list[dict], rows: list[dict], settings: dict, thumbnails: dict, plots: list[str], *,
           benchmark: str = "jsonl", excluded: int = 0) -> str:
    methods = summary.methods_of(settings)
    rules = settings["metrics"]
    variants = list(dict.fromkeys(r["variant"] for r in records))
    compare = [d for d in methods.deltas.values() if d.variant in variants and d.against in variants]
    ground_truth = summary.has_ground_truth(records)
    metrics = summary.table_metrics(records)
    missing = sum(bool(r.get("missing")) for r in records)
    legend = f" {summary.multiid_legend()}" if rules == "multiid-bench" else ""
    parts = [
        "<!DOCTYPE html>", "<html lang=\"en\"><head><meta charset=\"utf-8\">",
        f"<title>{methods.title} report</title>", f"<style>{_STYLE}</style></head><body>",
        f"<h1>{methods.title} report</h1>",
        f"<p>{_run_line(settings, len(records) - missing, missing)} Click a column header to sort.</p>",
        f"<p class=\"muted\">{escape(summary.describe_figures(settings, benchmark, ground_truth, excluded))}"
        f"{escape(legend)} {escape(summary.describe_repairs(records))}</p>",
        _summary_table(rows, methods, metrics, rules),
    ]
    if plots:
        parts.append("<div class=\"plots\">" + "".join(f"<img src=\"{escape(p)}\" alt=\"plot\">" for p in plots) + "</div>")
    headers = [("Prompt", "text"), ("Seed", "num"), ("Identities", "num"), ("References", None)]
    if ground_truth:
        headers.append(("Ground truth", None))
    titles = {metric: summary.metric_title(metric, rules) for metric in metrics}
    for variant in variants:
        headers.append((f"{methods.name(variant)}", None))
    for variant in variants:
        for metric in metrics:
            headers.append((f"{methods.name(variant)} {titles[metric]}", "num"))
    for delta in compare:
        headers += [(delta.column.format(title=titles[metric]), "num") for metric in metrics]
    parts.append("<table id=\"cases\"><thead><tr>" + "".join(
        f"<th data-sort=\"{kind}\">{escape(title)}</th>" if kind else f"<th>{escape(title)}</th>"
        for title, kind in headers) + "</tr></thead><tbody>")
    for pair in summary.pairs(records, methods.deltas):
        parts.append(_row(pair, variants, thumbnails, compare, metrics, ground_truth))
    parts.append("</tbody></table>")
    parts.append(f"<script>{_SCRIPT}</script></body></html>")
    return "\n".join(parts) + "\n"


def _run_line(settings: dict, images: int, missing: int) -> str:
    """The run in a sentence (summary.describe_run), names in bold."""
    return summary.describe_run(settings, images, missing, mark=lambda text: f"<b>{escape(str(text))}</b>",
                                counted="images")


def _summary_table(rows, methods, metrics, rules: str = "app") -> str:
    missing = bool(rows) and "missing" in rows[0]
    pooled = " (" + summary.POOLED_MULTIID + ")" if rules == "multiid-bench" else ""
    caption = f"<caption>{escape(summary.POOLED_MULTIID)}</caption>" if pooled else ""
    lines = [f"<table class=\"summary\">{caption}<thead><tr><th>Method</th>"
             "<th>Items</th>" + ("<th>Missing</th>" if missing else "")
             + "".join(f"<th>{escape(summary.metric_title(m, rules))}</th>" for m in metrics) + "</tr></thead><tbody>"]
    for row in (r for r in rows if r["scope"] == "all"):
        signed = row["variant"] in methods.deltas
        name = methods.row_name(row["variant"])
        lines.append(f"<tr><td>{escape(name)}</td><td class=\"num\">{row['items']}</td>"
                     + (f"<td class=\"num\">{_count(row.get('missing'))}</td>" if missing else "")
                     + "".join(f"<td class=\"num\">{summary.format_figure(row[m], signed)}</td>" for m in metrics)
                     + "</tr>")
    lines.append("</tbody></table>")
    return "\n".join(lines)


def _count(value) -> str:
    return "" if value is None else str(value)


def _images(sources: list[str], names: list[str]) -> str:
    return "<td>" + "".join(f"<img class=\"ref\" src=\"{escape(src)}\" alt=\"{escape(name)}\" title=\"{escape(name)}\">"
                            for src, name in zip(sources, names)) + "</td>"


def _row(pair: dict, variants: list[str], thumbnails: dict, compare: list, metrics, ground_truth: bool) -> str:
    first = pair["first"]
    cells = [
        _cell(f"<div class=\"prompt\">{escape(first['prompt'])}</div><div class=\"muted\">{escape(first['case'])}"
              f" · {escape(first['category'])}</div>", first["prompt"]),
        _cell(str(pair["seed"]), pair["seed"], numeric=True),
        _cell(str(first["n_identities"]), first["n_identities"], numeric=True),
        _images(thumbnails.get(first["case"], []), first["references"]),
    ]
    if ground_truth:
        cells.append(_images(thumbnails.get(f"{first['case']}:ground truth", []), ["ground truth"]))
    for variant in variants:
        record = pair["variants"].get(variant)
        if record is None:
            cells.append("<td></td>")
            continue
        if record.get("missing"):
            cells.append(f"<td class=\"worse\">missing<div class=\"muted\">{escape(record['missing'])}</div></td>")
            continue
        notes = record["report"]["summary"]
        if record.get("excluded"):
            notes += f" Not scored: {record['excluded']}."
        elif record.get("ground_truth_match") and record["ground_truth_match"].get("copy_paste_undefined"):
            notes += f" CP undefined: {record['ground_truth_match']['copy_paste_undefined']}."
        if record.get("repair") is not None:
            notes += f" {repair_summary(record['repair'])}"
        cells.append(f"<td><a href=\"{escape(record['image'])}\"><img class=\"out\" src=\"{escape(record['overlay'])}\" "
                     f"alt=\"{escape(variant)}\"></a><div class=\"muted\">{escape(notes)}</div></td>")
    for variant in variants:
        record = pair["variants"].get(variant) or {}
        for metric in metrics:
            value = record.get(f"mean_{metric}")
            cells.append(_cell(summary.format_figure(value), value, numeric=True))
    for delta in compare:
        for metric in metrics:
            value = pair[f"{delta.field}_{metric}"]
            # a rise is good news except for the copy-paste score, where lower is better
            good = value is not None and value != 0 and ((value > 0) != (metric == "copy_paste"))
            trend = "" if value is None or value == 0 else (" better" if good else " worse")
            cells.append(_cell(summary.format_figure(value, signed=True), value, numeric=True, extra=trend))
    return "<tr>" + "".join(cells) + "</tr>"


def repair_summary(repair: dict) -> str:
    """What became of a "umo+repair" item's repair (its record's "repair"), in a sentence."""
    if repair["skipped"]:
        return f"Repair skipped: {repair['skipped']}"
    if repair["kept"]:
        return "Repair kept: " + "; ".join(repair["kept"]) + "."
    return "Repair kept nothing: the judge kept no repaint (each record's `repair` says why), so the UMO image stays."


def _cell(html: str, value, *, numeric: bool = False, extra: str = "") -> str:
    data = "" if value is None else escape(f"{value:.6f}" if isinstance(value, float) else str(value))
    css = ("num" if numeric else "") + extra
    return f"<td class=\"{css.strip()}\" data-value=\"{data}\">{html}</td>"
