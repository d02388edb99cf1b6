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
.umo-slot-note {font-size:.8rem; min-height:1.4em; padding:0 4px}
.umo-ref-card {gap:4px !important}
.umo-slot-note p {margin:0}
#umo-generate-btn, #umo-analyze-btn {min-height:48px; font-size:1.05rem}
footer {display:none !important}
#umo-candidates-gallery .fixed-height {max-height:none; min-height:0}
"""


def theme() -> gr.themes.Base:
    return gr.themes.Soft(primary_hue="indigo", secondary_hue="amber", font=THEME_FONT,
                          font_mono=["ui-monospace", "SFMono-Regular", "Menlo", "monospace"])
