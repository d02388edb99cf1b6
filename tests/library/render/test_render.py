"""Pictures of real analyses: sizes, outlined assignments, box colours, empty cases; saved to look at."""

import numpy as np
import pytest
from PIL import Image

from tests.library.test_analysis import compose, face_tile, output_with
from umo_pipeline.analysis import analyze_identity
from umo_pipeline.render import (
    DISPLAY_BOX,
    MAX_COLUMNS,
    OUTLINE_INNER,
    OUTLINE_OUTER,
    UNASSIGNED_COLOUR,
    heatmap_cell_box,
    heatmap_columns,
    heatmap_display_scale,
    reference_colour,
    render_comparison_sheet,
    render_heatmap,
    render_overlay,
)

FOUR = ["obama1", "biden", "hopper", "astronaut"]


@pytest.fixture(scope="module")
def kept(photos, dlib_backend):
    """Four people in shuffled columns: every identity kept."""
    image = output_with(photos, FOUR, [2, 3, 1, 0])
    return image, analyze_identity([photos[n] for n in FOUR], image, dlib_backend)


@pytest.fixture(scope="module")
def copied(photos, dlib_backend):
    """The first person twice and the third once: two identities lost, one face shows nobody."""
    image = compose([face_tile(photos, "obama2"), face_tile(photos, "obama3"), face_tile(photos, "hopper", True)])
    return image, analyze_identity([photos[n] for n in FOUR], image, dlib_backend)


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


def test_heatmap_size_grows_with_references_and_faces(photos, dlib_backend, kept):
    two = analyze_identity([photos["obama1"], photos["biden"]], output_with(photos, ["obama1", "biden"], [0, 1]),
                           dlib_backend)
    small, big = render_heatmap(two), render_heatmap(kept[1])
    assert big.height > small.height and big.width > small.width
    # planned for the page's box at two pixels per unit: never shrunk below half size there
    for heatmap in (small, big):
        assert heatmap.width <= 2 * DISPLAY_BOX[0] and heatmap.height <= 2 * DISPLAY_BOX[1]
        assert heatmap_display_scale(heatmap) >= 0.5


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


def test_no_faces_and_no_references_still_render(photos, dlib_backend, output_dir):
    empty = Image.new("RGB", (320, 240), (90, 140, 200))
    no_faces = analyze_identity([photos["obama1"], photos["hopper"]], empty, dlib_backend)
    no_refs = analyze_identity([], face_tile(photos, "hopper"), dlib_backend)
    for report, name in ((no_faces, "no_faces"), (no_refs, "no_refs")):
        heatmap = render_heatmap(report)
        heatmap.save(output_dir / f"heatmap_{name}.png")
        assert heatmap.width >= 400
    assert np.array_equal(np.asarray(render_overlay(empty, no_faces)), np.asarray(empty))
    assert render_overlay(face_tile(photos, "hopper"), no_refs).size == (320, 320)


def test_reference_without_face_renders_a_placeholder_row(photos, dlib_backend, output_dir):
    no_face = Image.open(photos["astronaut"]).convert("RGB").crop((330, 0, 512, 512))
    report = analyze_identity([photos["obama1"], no_face], output_with(photos, ["obama1"], [0]), dlib_backend)
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


def test_comparison_sheet_wraps_a_long_title_and_uses_custom_labels(photos, dlib_backend, output_dir):
    image = output_with(photos, ["obama1", "hopper"], [1, 0])
    report = analyze_identity([photos["obama1"], photos["hopper"]], image, dlib_backend, labels=["Barack", "Grace"])
    short = render_comparison_sheet([photos["obama1"], photos["hopper"]], [("UMO", image, report)])
    title = '"two scientists discussing a chalkboard full of equations in a sunlit library"  seed 42  umo-uno'
    long = render_comparison_sheet([photos["obama1"], photos["hopper"]], [("UMO", image, report)], title=title)
    assert long.width == short.width and long.height > short.height
    long.save(output_dir / "comparison_sheet_custom_labels.png")


def _ink_box(picture: Image.Image, box, background) -> tuple[int, int, int, int]:
    """Bounding box of the pixels in `box` that differ clearly from its background colour."""
    x0, y0, x1, y1 = box
    pixels = np.asarray(picture.crop((x0 + 8, y0 + 8, x1 - 8, y1 - 8)), dtype=np.int32)
    ink = np.abs(pixels - np.array(background)).sum(axis=2) > 120
    rows, cols = np.nonzero(ink)
    return cols.min(), rows.min(), cols.max() + 1, rows.max() + 1


def test_heatmap_text_is_at_least_12_px_where_the_page_shows_it(kept, copied):
    for _, report in (kept, copied):
        heatmap = render_heatmap(report)
        shown = heatmap_display_scale(heatmap)  # the page fits it into a 600 x 340 box
        assert heatmap.info["min_font_px"] * shown >= 12
        # Measured on the pixels: digits of a 12 px font are about 8.5 px tall; the cell values
        # use a larger font than the minimum, so their ink must show at least that tall.
        i, j = next((i, j) for i in range(len(report.references)) for j in range(len(report.faces))
                    if report.assignment[i] != j)
        box = heatmap_cell_box(report, i, j)
        background = heatmap.getpixel((box[0] + 3, box[1] + 3))
        ix0, iy0, ix1, iy1 = _ink_box(heatmap, box, background)
        assert (iy1 - iy0) * shown >= 8.5, (iy1 - iy0, shown)
        assert (ix1 - ix0) * shown >= 20  # "83.0": four glyphs, not a smudge


def test_heatmap_values_are_in_the_table_unit_and_the_title_is_given(kept, output_dir):
    report = kept[1]
    base, umo = render_heatmap(report, title="Base model (no UMO)"), render_heatmap(report, title="With UMO")
    base.save(output_dir / "heatmap_titled_base.png")
    assert base.size == umo.size
    title_band = (0, 0, base.width, 40)
    assert np.asarray(base.crop(title_band)).tolist() != np.asarray(umo.crop(title_band)).tolist()
    # The cells hold x100 values ("96.9", the table's unit), not 0-1 ("0.97"): the cell's pixels
    # are compared with each text drawn the same way on the same colour.
    from PIL import ImageDraw

    from umo_pipeline.render import similarity_colour
    from umo_pipeline.render.drawing import _centred_text, _font, _ink_for

    heatmap = render_heatmap(report)
    i, j = 0, next(j for j in range(len(report.faces)) if j != report.assignment[0])
    x0, y0, x1, y1 = heatmap_cell_box(report, i, j)
    cell = np.asarray(heatmap.crop((x0 + 1, y0 + 1, x1 - 1, y1 - 1)), dtype=np.int32)
    fill = similarity_colour(report.similarity[i][j], report.thresholds)

    def drawn(text):
        picture = Image.new("RGB", (x1 - x0, y1 - y0), fill)
        _centred_text(ImageDraw.Draw(picture), (0, 0, x1 - x0, y1 - y0), text, _font(28), _ink_for(fill))
        return np.asarray(picture.crop((1, 1, x1 - x0 - 1, y1 - y0 - 1)), dtype=np.int32)

    value = report.similarity[i][j]
    x100, unit = drawn(f"{100 * value:.1f}"), drawn(f"{value:.2f}")
    assert np.abs(cell - x100).mean() < 1.0 < np.abs(cell - unit).mean()


@pytest.fixture(scope="module")
def crowd(photos, dlib_backend):
    """The 1927 Solvay photo (29 faces) against three of its own faces as references."""
    from umo_pipeline.images import load_image

    image = load_image(photos["solvay"])
    faces = analyze_identity([], image, dlib_backend).faces
    picks = [faces[k] for k in (2, 12, 24)]
    refs = []
    for face in picks:
        x0, y0, x1, y1 = face.bbox
        margin = 0.6 * (x1 - x0)
        refs.append(image.crop((round(x0 - margin), round(y0 - margin), round(x1 + margin), round(y1 + margin)))
                    .resize((320, round(320 * (y1 - y0 + 2 * margin) / (x1 - x0 + 2 * margin)))))
    return image, analyze_identity(refs, image, dlib_backend), [2, 12, 24]


def test_many_faces_show_the_assigned_and_their_rivals_and_say_how_many_more(crowd, output_dir):
    image, report, picked = crowd
    n_faces = len(report.faces)
    assert n_faces > MAX_COLUMNS
    columns = heatmap_columns(report)
    assert len(columns) == MAX_COLUMNS and columns == sorted(columns)
    for i in range(3):
        assert report.assignment[i] in columns
        assert report.match.best_face[i] in columns and report.match.runner_up_face[i] in columns
    assert report.assignment == picked  # each reference found on the face it was cut from
    heatmap = render_heatmap(report)
    heatmap.save(output_dir / "heatmap_solvay.png")
    render_overlay(image, report).save(output_dir / "overlay_solvay.png")
    assert heatmap.info["min_font_px"] * heatmap_display_scale(heatmap) >= 12
    hidden = next(j for j in range(n_faces) if j not in columns)
    assert heatmap_cell_box(report, 0, hidden) is None
    # the note under the grid
    note_band = heatmap.crop((0, heatmap_cell_box(report, 2, columns[0])[3], heatmap.width,
                              heatmap_cell_box(report, 2, columns[0])[3] + 40))
    assert (np.asarray(note_band.convert("L")) < 200).sum() > 200, "the '+N more faces' line is drawn"
    assert len(report.to_dict()["similarity"][0]) == n_faces  # the JSON keeps every face


def test_overlay_tags_of_neighbours_do_not_overlap(crowd, kept):
    # In a crowd shown at page width the tags shrink to the face number, and none covers another.
    from umo_pipeline.render import overlay as render

    placed = []
    original = render._tag

    def recording(*args):
        placed.append(original(*args))
        return placed[-1]

    render._tag = recording
    try:
        for image, report in ((crowd[0], crowd[1]), kept):
            for width in (None, 600):
                placed.clear()
                render_overlay(image, report, width=width)
                assert len(placed) == len(report.faces)
                assert not any(render._overlap(a, b) for k, a in enumerate(placed) for b in placed[:k]), width
    finally:
        render._tag = original


def _ink_columns(picture: Image.Image, background=(255, 255, 255)) -> np.ndarray:
    """Per pixel column of `picture`, whether anything but the background is drawn in it."""
    pixels = np.asarray(picture.convert("RGB")).astype(int)
    return (np.abs(pixels - np.array(background)).sum(axis=2) > 30).any(axis=0)


def test_every_text_of_the_heatmap_fits_inside_it(photos, dlib_backend, kept, crowd, output_dir):
    # the right margin (8 layout units) stays blank: a text that ran on would cross it and the edge
    from umo_pipeline.render import PIXEL_SCALE

    empty = Image.new("RGB", (320, 240), (90, 140, 200))
    no_faces = analyze_identity([photos["obama1"], photos["hopper"]], empty, dlib_backend)
    one_reference = analyze_identity([photos["obama1"]], empty, dlib_backend)
    cases = {"no_faces": (no_faces, None), "no_faces_one_reference": (one_reference, None),
             "kept": (kept[1], None), "crowd": (crowd[1], None),
             "long_title": (kept[1], "#3 seed 1234567890: Base model (no UMO), from a rather long prompt title")}
    for name, (report, title) in cases.items():
        heatmap = render_heatmap(report, title=title)
        inked = _ink_columns(heatmap)
        margin = 8 * PIXEL_SCALE
        assert not inked[-margin + 2:].any(), f"{name}: something is drawn in the right margin"
        assert inked[:-margin].any()
    heatmap = render_heatmap(no_faces)
    heatmap.save(output_dir / "heatmap_no_faces.png")
    # the line saying so is whole: its ink ends with room to spare before the margin
    row = heatmap.crop((0, 40 * PIXEL_SCALE, heatmap.width, 90 * PIXEL_SCALE))
    assert np.flatnonzero(_ink_columns(row))[-1] < heatmap.width - 8 * PIXEL_SCALE
