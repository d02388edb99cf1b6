"""report.html: one self-contained page (no network, no CDN; pictures by relative link) with one
row per prompt and seed: references (and the ground truth, where the set has one), base and UMO
images (and UMO + repair, with what its repair kept) with their labelled faces, the metrics (GT-Sim
and CP with a ground truth), and column headers that sort the rows (by the UMO - base delta, or the
repair's gain over UMO, for one)."""

from __future__ import annotations

from html import escape

from umo_pipeline.evaluate import summary
from umo_pipeline.labels import method_name

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
    model = settings["model"]
    variants = list(dict.fromkeys(r["variant"] for r in records))
    compare = [d for d in summary.DELTAS.values() if d.variant in variants and d.against in variants]
    ground_truth = summary.has_ground_truth(records)
    metrics = summary.table_metrics(records)
    parts = [
        "<!DOCTYPE html>", "<html lang=\"en\"><head><meta charset=\"utf-8\">",
        "<title>UMO evaluation report</title>", f"<style>{_STYLE}</style></head><body>",
        "<h1>UMO evaluation report</h1>",
        f"<p>Model <b>{escape(model)}</b>, {settings['width']}x{settings['height']}, {settings['steps']} steps, "
        f"guidance {settings['guidance']}; face backend <b>{escape(settings['backend'])}</b>; metrics "
        f"<b>{escape(settings['metrics'])}</b>; {len(records)} images. Click a column header to sort.</p>",
        f"<p class=\"muted\">{escape(summary.describe_figures(settings, benchmark, ground_truth, excluded))} "
        f"{escape(summary.describe_repairs(records))}</p>",
        _summary_table(rows, model, metrics),
    ]
    if plots:
        parts.append("<div class=\"plots\">" + "".join(f"<img src=\"{escape(p)}\" alt=\"plot\">" for p in plots) + "</div>")
    headers = [("Prompt", "text"), ("Seed", "num"), ("Identities", "num"), ("References", None)]
    if ground_truth:
        headers.append(("Ground truth", None))
    for variant in variants:
        headers.append((f"{method_name(model, variant)}", None))
    for variant in variants:
        for metric in metrics:
            headers.append((f"{method_name(model, variant)} {summary.TITLES[metric]}", "num"))
    for delta in compare:
        headers += [(delta.column.format(title=summary.TITLES[metric]), "num") for metric in metrics]
    parts.append("<table id=\"cases\"><thead><tr>" + "".join(
        f"<th data-sort=\"{kind}\">{escape(title)}</th>" if kind else f"<th>{escape(title)}</th>"
        for title, kind in headers) + "</tr></thead><tbody>")
    for pair in summary.pairs(records):
        parts.append(_row(pair, variants, thumbnails, compare, metrics, ground_truth))
    parts.append("</tbody></table>")
    parts.append(f"<script>{_SCRIPT}</script></body></html>")
    return "\n".join(parts) + "\n"


def _summary_table(rows, model: str, metrics) -> str:
    lines = ["<table class=\"summary\"><thead><tr><th>Method</th><th>Items</th>"
             + "".join(f"<th>{summary.TITLES[m]}</th>" for m in metrics) + "</tr></thead><tbody>"]
    for row in (r for r in rows if r["scope"] == "all"):
        signed = row["variant"] in summary.DELTAS
        name = summary.row_name(model, row["variant"])
        lines.append(f"<tr><td>{escape(name)}</td><td class=\"num\">{row['items']}</td>"
                     + "".join(f"<td class=\"num\">{summary.format_figure(row[m], signed)}</td>" for m in metrics)
                     + "</tr>")
    lines.append("</tbody></table>")
    return "\n".join(lines)


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
