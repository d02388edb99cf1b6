"""How the page looks: its CSS, theme and fonts."""

import gradio as gr

# System fonts: the page must not fetch web fonts (offline machines, privacy, first paint).
THEME_FONT = ["ui-sans-serif", "system-ui", "-apple-system", "Segoe UI", "Roboto", "sans-serif"]

CSS = """
.umo-header {display:flex; flex-wrap:wrap; align-items:center; justify-content:space-between; gap:8px}
.umo-header h1 {margin:0; font-size:1.6rem}
.umo-header p {margin:2px 0 0 0; opacity:.8}
.umo-badges {display:flex; flex-wrap:wrap; gap:6px}
.umo-badge {border-radius:999px; padding:3px 10px; font-size:.8rem; background:var(--neutral-100);
  border:1px solid var(--neutral-200); overflow-wrap:anywhere}
.dark .umo-badge {background:var(--neutral-800); border-color:var(--neutral-700)}
.umo-banner {border-radius:8px; padding:10px 14px; margin-top:6px; font-size:.92rem}
.umo-banner.warn {background:#fff7e6; border:1px solid #f5c16c; color:#7a4b00}
.umo-banner.info {background:#eef4fb; border:1px solid #a9c6e8; color:#1d3b5e}
.umo-banner.error {background:#fdecec; border:1px solid #f19999; color:#7d1b1b}
.umo-banner p {margin:0}
.umo-banner details {margin-top:4px; font-size:.85rem}
.umo-banner details p {margin-top:4px; overflow-wrap:anywhere}
.umo-banner summary {cursor:pointer; opacity:.8}
.umo-slot-note {font-size:.8rem; min-height:1.4em; padding:0 4px}
.umo-ref-card, .umo-method-card {gap:4px !important}
.umo-slot-note p {margin:0}
#umo-generate-btn, #umo-analyze-btn {min-height:48px; font-size:1.05rem}
footer {display:none !important}
#umo-candidates-gallery .fixed-height {max-height:none; min-height:0}
/* a refused request: one line under its button, the result above left as it was (handlers.on_the_page) */
.umo-refusal {margin:8px 0 0 0; padding:8px 12px; border-radius:8px; font-size:.95rem;
  background:#fdecec; border:1px solid #f19999; color:#7d1b1b}
/* pictures given the room their text needs (outputs.laid_out): one above the other at the column's
   width; a crowd's whole result below the inputs, at the page's width, its labelled faces at full size */
.umo-pictures > .umo-wide, .umo-pictures > .umo-crowd {min-width:100% !important}
.umo-main:has(.umo-crowd) > .umo-results {min-width:100% !important}
.umo-tall {height:auto !important}
.umo-tall img {width:100%; height:auto !important; max-height:none !important}
/* the per-reference table: every column in view (panels.TABLE_WIDTHS); on a phone the four that
   say the most (reference, ID-Sim with its face, ID-Conf, status) share the width, the rest is in
   the JSON report. Gradio draws the header as a table and the rows as flex rows of .body-cell */
.umo-table :is(th, .body-cell) {overflow-wrap:break-word}
@media (max-width: 640px) {
  .umo-table :is(th, td, .body-cell):is(:nth-child(2), :nth-child(4), :nth-child(6)) {display:none}
  .umo-table :is(th, .body-cell) {width:var(--umo-column) !important; min-width:var(--umo-column) !important;
    max-width:var(--umo-column) !important; flex:0 0 var(--umo-column) !important; font-size:.85rem}
  .umo-table :is(th, .body-cell):nth-child(1) {--umo-column:28%}
  .umo-table :is(th, .body-cell):nth-child(3) {--umo-column:32%}
  .umo-table :is(th, .body-cell):nth-child(5) {--umo-column:17%}
  .umo-table :is(th, .body-cell):nth-child(7) {--umo-column:23%}
}
/* the repair's table (panels.REPAIR_TABLE_WIDTHS): on a phone the reference, the similarity on its face
   after the repair, the change and the status; the face, the similarity before and ID-Conf are in the
   summary and the JSON report */
@media (max-width: 640px) {
  .umo-repair-table :is(th, td, .body-cell):is(:nth-child(2), :nth-child(3), :nth-child(6)) {display:none}
  .umo-repair-table :is(th, .body-cell) {width:var(--umo-column) !important; min-width:var(--umo-column) !important;
    max-width:var(--umo-column) !important; flex:0 0 var(--umo-column) !important; font-size:.85rem}
  .umo-repair-table :is(th, .body-cell):nth-child(1) {--umo-column:27%}
  .umo-repair-table :is(th, .body-cell):nth-child(4) {--umo-column:20%}
  .umo-repair-table :is(th, .body-cell):nth-child(5) {--umo-column:18%}
  .umo-repair-table :is(th, .body-cell):nth-child(7) {--umo-column:35%}
}
/* the Compare tab's table (panels.COMPARE_TABLE_WIDTHS, which hold on a phone too): there, smaller
   type and tighter cells, so that "Matched" and the scores stay on one line */
@media (max-width: 640px) {
  .umo-compare-table :is(th, .body-cell) {font-size:.75rem; padding-left:3px !important; padding-right:3px !important;
    overflow-wrap:break-word}
  .umo-compare-table :is(th, .body-cell) .cell-wrap {padding-left:0 !important; padding-right:0 !important}
}
"""


def theme() -> gr.themes.Base:
    return gr.themes.Soft(primary_hue="indigo", secondary_hue="amber", font=THEME_FONT,
                          font_mono=["ui-monospace", "SFMono-Regular", "Menlo", "monospace"])
