"""Pictures of real analyses: sizes, outlined assignments, box colours, empty cases; saved to look at."""

import numpy as np
import pytest
from PIL import Image

from tests.test_analysis import compose, face_tile, output_with
from umo_pipeline.analysis import analyze_identity
from umo_pipeline.faces import get_face_backend
from umo_pipeline.render import (
    OUTLINE_INNER,
    OUTLINE_OUTER,
    UNASSIGNED_COLOUR,
    heatmap_cell_box,
    reference_colour,
    render_comparison_sheet,
    render_heatmap,
    render_overlay,
)

FOUR = ["obama1", "biden", "hopper", "astronaut"]


@pytest.fixture(scope="module")
def backend():
    return get_face_backend("dlib")


@pytest.fixture(scope="module")
def kept(photos, backend):
    """Four people in shuffled columns: every identity kept."""
    image = output_with(photos, FOUR, [2, 3, 1, 0])
    return image, analyze_identity([photos[n] for n in FOUR], image, backend)


@pytest.fixture(scope="module")
def copied(photos, backend):
    """The first person twice and the third once: two identities lost, one face shows nobody."""
    image = compose([face_tile(photos, "obama2"), face_tile(photos, "obama3"), face_tile(photos, "hopper", True)])
    return image, analyze_identity([photos[n] for n in FOUR], image, backend)


def _rgb(colour: str) -> tuple[int, int, int]:
    return tuple(int(colour[i:i + 2], 16) for i in (1, 3, 5))


def test_heatmap_outlines_exactly_the_assigned_cells(kept, copied, output_dir):
    for name, (_, report) in {"kept": kept, "copied": copied}.items():
        heatmap = render_heatmap(report)
        heatmap.save(output_dir / f"heatmap_{name}.png")
        for i in range(len(report.references)):
            for j in range(len(report.faces)):
                x0, y0, _, _ = heatmap_cell_box(report, i, j)
                outer, inner = heatmap.getpixel((x0 + 1, y0 + 1)), heatmap.getpixel((x0 + 5, y0 + 5))
                if report.assignment[i] == j:
                    assert (outer, inner) == (OUTLINE_OUTER, OUTLINE_INNER), (name, i, j)
                else:
                    assert outer != OUTLINE_OUTER and inner != OUTLINE_INNER, (name, i, j)


def test_heatmap_cells_get_brighter_with_similarity(kept):
    heatmap, report = render_heatmap(kept[1]), kept[1]

    def brightness(i, j):
        x0, y0, _, _ = heatmap_cell_box(report, i, j)
        return sum(heatmap.getpixel((x0 + 12, y0 + 12)))

    cells = [(i, j) for i in range(4) for j in range(4)]
    by_similarity = sorted(cells, key=lambda c: report.similarity[c[0]][c[1]])
    assert brightness(*by_similarity[-1]) > brightness(*by_similarity[0])


def test_heatmap_size_grows_with_references_and_faces(photos, backend, kept):
    two = analyze_identity([photos["obama1"], photos["biden"]], output_with(photos, ["obama1", "biden"], [0, 1]), backend)
    small, big = render_heatmap(two), render_heatmap(kept[1])
    assert big.height > small.height and big.width > small.width
    assert 500 <= big.width <= 900  # legible at demo size without scaling down much


def test_overlay_boxes_take_the_colour_of_the_reference_they_show(copied, kept, output_dir):
    for name, (image, report) in {"kept": kept, "copied": copied}.items():
        overlay = render_overlay(image, report)
        overlay.save(output_dir / f"overlay_{name}.png")
        assert overlay.size == image.size
        for j, face in enumerate(report.faces):
            x0, y0, x1, y1 = (round(v) for v in face.bbox)
            shown = report.face_identities[j]
            expected = _rgb(reference_colour(shown) if shown is not None else UNASSIGNED_COLOUR)
            left_edge = [overlay.getpixel((x0, y)) for y in range(y0 + 4, y1 - 4)]
            assert left_edge.count(expected) > 0.3 * len(left_edge), (name, j)  # dashes: ~half
    assert copied[1].face_identities.count(None) == 1  # the grey dashed "no match" face


def test_overlay_at_a_display_width_scales_the_boxes(kept):
    image, report = kept
    overlay = render_overlay(image, report, width=640)
    assert overlay.size == (640, round(image.height * 640 / image.width))
    x0, y0, x1, y1 = (v * 640 / image.width for v in report.faces[0].bbox)
    colour = _rgb(reference_colour(report.face_identities[0]))
    assert overlay.getpixel((round(x0), round((y0 + y1) / 2))) == colour
    # A half-size copy of the analysed image gets its boxes at half the coordinates.
    assert image.width == 2 * 640
    half = render_overlay(image.resize((640, image.height // 2)), report)
    assert half.getpixel((round(x0), round((y0 + y1) / 2))) == colour


def test_overlay_leaves_the_input_untouched(kept):
    image, report = kept
    before = np.asarray(image).copy()
    render_overlay(image, report)
    assert np.array_equal(before, np.asarray(image))


def test_no_faces_and_no_references_still_render(photos, backend, output_dir):
    empty = Image.new("RGB", (320, 240), (90, 140, 200))
    no_faces = analyze_identity([photos["obama1"], photos["hopper"]], empty, backend)
    no_refs = analyze_identity([], face_tile(photos, "hopper"), backend)
    for report, name in ((no_faces, "no_faces"), (no_refs, "no_refs")):
        heatmap = render_heatmap(report)
        heatmap.save(output_dir / f"heatmap_{name}.png")
        assert heatmap.width >= 400
    assert np.array_equal(np.asarray(render_overlay(empty, no_faces)), np.asarray(empty))
    assert render_overlay(face_tile(photos, "hopper"), no_refs).size == (320, 320)


def test_reference_without_face_renders_a_placeholder_row(photos, backend, output_dir):
    no_face = Image.open(photos["astronaut"]).convert("RGB").crop((330, 0, 512, 512))
    report = analyze_identity([photos["obama1"], no_face], output_with(photos, ["obama1"], [0]), backend)
    heatmap = render_heatmap(report)
    heatmap.save(output_dir / "heatmap_reference_without_face.png")
    x0, y0, _, _ = heatmap_cell_box(report, 1, 0)
    assert heatmap.getpixel((x0 + 10, y0 + 10)) == (238, 238, 238)


def test_comparison_sheet_puts_panels_side_by_side(photos, kept, copied, output_dir):
    references = [photos[n] for n in FOUR]
    one = render_comparison_sheet(references, [("UMO-UNO", *kept)])
    two = render_comparison_sheet(references, [("UNO", *copied), ("UMO-UNO", *kept)], title="UNO vs UMO-UNO, seed 0")
    two.save(output_dir / "comparison_sheet.png")
    assert two.width > one.width + 400
    assert two.height >= one.height
    # the colour bar under each reference thumbnail
    for i in range(4):
        assert _rgb(reference_colour(i)) in {two.getpixel((16 + i * 144 + x, 60 + 128 + 2)) for x in range(0, 120, 10)}


def test_comparison_sheet_wraps_a_long_title_and_uses_custom_labels(photos, backend, output_dir):
    image = output_with(photos, ["obama1", "hopper"], [1, 0])
    report = analyze_identity([photos["obama1"], photos["hopper"]], image, backend, labels=["Barack", "Grace"])
    short = render_comparison_sheet([photos["obama1"], photos["hopper"]], [("UMO", image, report)])
    title = '"two scientists discussing a chalkboard full of equations in a sunlit library"  seed 42  umo-uno'
    long = render_comparison_sheet([photos["obama1"], photos["hopper"]], [("UMO", image, report)], title=title)
    assert long.width == short.width and long.height > short.height
    long.save(output_dir / "comparison_sheet_custom_labels.png")
