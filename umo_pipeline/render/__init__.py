"""Pictures of an identity report, one module per picture: the similarity heatmap (heatmap), labelled
face boxes on the output (overlay), a side-by-side comparison sheet (sheet), several methods' images
ranked against the same references (methods_sheet) and the preview of the face a reference
contributes (preview); colours, fonts and text helpers they share (drawing).
Pillow and numpy only; colours are colour-blind safe (Okabe-Ito, viridis). Every public name is
importable from umo_pipeline.render.
"""

from umo_pipeline.render.drawing import (
    BACKGROUND,
    INK,
    MUTED,
    REFERENCE_COLOURS,
    UNASSIGNED_COLOUR,
    reference_colour,
)
from umo_pipeline.render.heatmap import (
    DISPLAY_BOX,
    MAX_COLUMNS,
    MIN_TEXT,
    NO_FACE_TEXT,
    OUTLINE_INNER,
    OUTLINE_OUTER,
    PIXEL_SCALE,
    display_position,
    heatmap_cell_box,
    heatmap_columns,
    heatmap_display_scale,
    render_heatmap,
    scale_colours,
    similarity_colour,
)
from umo_pipeline.render.overlay import TAG_WIDTH_SHARE, render_overlay
from umo_pipeline.render.preview import PREVIEW_MARGIN, PREVIEW_OUTLINE, PREVIEW_SIDE, render_reference_preview
from umo_pipeline.render.sheet import PAD, PANEL_WIDTH, REFERENCE_THUMB, render_comparison_sheet
from umo_pipeline.render.methods_sheet import render_methods_sheet

__all__ = [
    "BACKGROUND", "DISPLAY_BOX", "INK", "MAX_COLUMNS", "MIN_TEXT", "MUTED", "NO_FACE_TEXT", "OUTLINE_INNER",
    "OUTLINE_OUTER", "PAD", "PANEL_WIDTH", "PIXEL_SCALE", "PREVIEW_MARGIN", "PREVIEW_OUTLINE", "PREVIEW_SIDE",
    "REFERENCE_COLOURS", "REFERENCE_THUMB", "TAG_WIDTH_SHARE", "UNASSIGNED_COLOUR", "display_position",
    "heatmap_cell_box", "heatmap_columns", "heatmap_display_scale", "reference_colour", "render_reference_preview",
    "render_comparison_sheet", "render_heatmap", "render_methods_sheet", "render_overlay", "scale_colours",
    "similarity_colour",
]
