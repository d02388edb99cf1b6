"""report.html: one self-contained page (no network, no CDN; pictures by relative link) with one
row per prompt and seed: references, base and UMO images with their labelled faces, the metrics,
and column headers that sort the rows (by the UMO - base delta, for one)."""

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
td.up { color: #0a7d2c; font-weight: 600; } td.down { color: #b3261e; font-weight: 600; }
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


def render(records: list[dict], rows: list[dict], settings: dict, thumbnails: dict, plots: list[str]) -> str:
    model = settings["model"]
    variants = list(dict.fromkeys(r["variant"] for r in records))
    compare = "base" in variants and "umo" in variants
    parts = [
        "<!DOCTYPE html>", "<html lang=\"en\"><head><meta charset=\"utf-8\">",
        "<title>UMO evaluation report</title>", f"<style>{_STYLE}</style></head><body>",
        "<h1>UMO evaluation report</h1>",
        f"<p>Model <b>{escape(model)}</b>, {settings['width']}x{settings['height']}, {settings['steps']} steps, "
        f"guidance {settings['guidance']}; face backend <b>{escape(settings['backend'])}</b>; metrics "
        f"<b>{escape(settings['metrics'])}</b>; {len(records)} images. Click a column header to sort.</p>",
        _summary_table(rows, model),
    ]
    if plots:
        parts.append("<div class=\"plots\">" + "".join(f"<img src=\"{escape(p)}\" alt=\"plot\">" for p in plots) + "</div>")
    headers = [("Prompt", "text"), ("Seed", "num"), ("Identities", "num"), ("References", None)]
    for variant in variants:
        headers.append((f"{method_name(model, variant)}", None))
    for variant in variants:
        headers.append((f"{method_name(model, variant)} ID-Sim", "num"))
        headers.append((f"{method_name(model, variant)} ID-Conf", "num"))
    if compare:
        headers += [("Δ ID-Sim", "num"), ("Δ ID-Conf", "num")]
    parts.append("<table id=\"cases\"><thead><tr>" + "".join(
        f"<th data-sort=\"{kind}\">{escape(title)}</th>" if kind else f"<th>{escape(title)}</th>"
        for title, kind in headers) + "</tr></thead><tbody>")
    for pair in summary.pairs(records):
        parts.append(_row(pair, variants, thumbnails, compare))
    parts.append("</tbody></table>")
    parts.append(f"<script>{_SCRIPT}</script></body></html>")
    return "\n".join(parts) + "\n"


def _summary_table(rows, model: str) -> str:
    lines = ["<table class=\"summary\"><thead><tr><th>Method</th><th>Items</th><th>ID-Sim</th><th>ID-Conf</th>"
             "</tr></thead><tbody>"]
    for row in (r for r in rows if r["scope"] == "all"):
        signed = row["variant"] == "umo-base"
        name = "UMO - base" if signed else method_name(model, row["variant"])
        lines.append(f"<tr><td>{escape(name)}</td><td class=\"num\">{row['items']}</td>"
                     f"<td class=\"num\">{summary.format_figure(row['id_sim'], signed)}</td>"
                     f"<td class=\"num\">{summary.format_figure(row['id_conf'], signed)}</td></tr>")
    lines.append("</tbody></table>")
    return "\n".join(lines)


def _row(pair: dict, variants: list[str], thumbnails: dict, compare: bool) -> str:
    first = pair["first"]
    cells = [
        _cell(f"<div class=\"prompt\">{escape(first['prompt'])}</div><div class=\"muted\">{escape(first['case'])}"
              f" · {escape(first['category'])}</div>", first["prompt"]),
        _cell(str(pair["seed"]), pair["seed"], numeric=True),
        _cell(str(first["n_identities"]), first["n_identities"], numeric=True),
        "<td>" + "".join(f"<img class=\"ref\" src=\"{escape(src)}\" alt=\"{escape(name)}\" title=\"{escape(name)}\">"
                         for src, name in zip(thumbnails.get(first["case"], []), first["references"])) + "</td>",
    ]
    for variant in variants:
        record = pair["variants"].get(variant)
        if record is None:
            cells.append("<td></td>")
            continue
        cells.append(f"<td><a href=\"{escape(record['image'])}\"><img class=\"out\" src=\"{escape(record['overlay'])}\" "
                     f"alt=\"{escape(variant)}\"></a><div class=\"muted\">{escape(record['report']['summary'])}</div></td>")
    for variant in variants:
        record = pair["variants"].get(variant) or {}
        cells.append(_cell(summary.format_figure(record.get("mean_id_sim")), record.get("mean_id_sim"), numeric=True))
        cells.append(_cell(summary.format_figure(record.get("mean_id_conf")), record.get("mean_id_conf"), numeric=True))
    if compare:
        for key in ("delta_id_sim", "delta_id_conf"):
            value = pair[key]
            trend = "" if value is None or value == 0 else (" up" if value > 0 else " down")
            cells.append(_cell(summary.format_figure(value, signed=True), value, numeric=True, extra=trend))
    return "<tr>" + "".join(cells) + "</tr>"


def _cell(html: str, value, *, numeric: bool = False, extra: str = "") -> str:
    data = "" if value is None else escape(f"{value:.6f}" if isinstance(value, float) else str(value))
    css = ("num" if numeric else "") + extra
    return f"<td class=\"{css.strip()}\" data-value=\"{data}\">{html}</td>"
