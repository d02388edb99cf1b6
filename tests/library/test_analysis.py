"""Identity analysis end to end on real photos with the dlib backend (weights ship in its wheels)."""

import io
import json

import numpy as np
import pytest
from PIL import Image, ImageOps

from umo_pipeline import matching
from umo_pipeline.analysis import (
    IdentityReport,
    ReferenceFace,
    analyze_identity,
    analyze_reference,
    clear_reference_cache,
)
from umo_pipeline.errors import InputError
from umo_pipeline.faces import FaceBackend

# Where each photo's face is (x0, y0, x1, y1), measured once; only used to choose what to crop.
FACE_BOXES = {
    "obama1": (364, 152, 604, 392),
    "obama2": (159, 294, 463, 598),
    "obama3": (652, 305, 939, 592),
    "biden": (418, 241, 743, 564),
    "hopper": (161, 137, 377, 353),
    "astronaut": (179, 83, 267, 171),
    "newton": (328, 107, 453, 232),
    "gauss": (389, 266, 664, 542),
}
TILE = 320
# Reference photo -> the photo of the same person pasted into outputs (a different photo where one
# exists; otherwise the same photo, mirrored, so the pixels still differ).
OUTPUT_PHOTO = {"obama1": "obama2", "biden": "biden", "hopper": "hopper", "astronaut": "astronaut"}


def face_tile(photos, name: str, mirror: bool = False) -> Image.Image:
    """A square crop around the person's face, twice the face's size, TILE pixels wide."""
    x0, y0, x1, y1 = FACE_BOXES[name]
    cx, cy, half = (x0 + x1) / 2, (y0 + y1) / 2, max(x1 - x0, y1 - y0)
    image = Image.open(photos[name]).convert("RGB")
    tile = image.crop((round(cx - half), round(cy - half), round(cx + half), round(cy + half)))
    tile = tile.resize((TILE, TILE), Image.Resampling.LANCZOS)
    return ImageOps.mirror(tile) if mirror else tile


def compose(tiles: list[Image.Image]) -> Image.Image:
    """Tiles side by side on grey: a stand-in for a generated image with several people."""
    canvas = Image.new("RGB", (TILE * len(tiles), TILE), (128, 128, 128))
    for column, tile in enumerate(tiles):
        canvas.paste(tile, (column * TILE, 0))
    return canvas


def output_with(photos, references: list[str], order: list[int]) -> Image.Image:
    """The people of `references` pasted in the given column order (order[c] = reference index)."""
    names = [OUTPUT_PHOTO[references[i]] for i in order]
    return compose([face_tile(photos, n, mirror=(n in references)) for n in names])


def column_of(report: IdentityReport, face_index: int) -> int:
    x0, _, x1, _ = report.faces[face_index].bbox
    return int((x0 + x1) / 2 // TILE)


@pytest.mark.parametrize("order", [[1, 0], [2, 0, 1], [2, 3, 1, 0]])  # no one in their own column
def test_assignment_recovers_a_shuffled_order(photos, dlib_backend, order):
    n_refs = len(order)
    references = ["obama1", "biden", "hopper", "astronaut"][:n_refs]
    image = output_with(photos, references, order)

    report = analyze_identity([photos[n] for n in references], image, dlib_backend)

    assert len(report.faces) == n_refs
    columns = [column_of(report, face) for face in report.assignment]
    assert columns == [order.index(i) for i in range(n_refs)]
    assert report.statuses == [matching.MATCHED] * n_refs
    assert all(s >= dlib_backend.thresholds.match for s in report.id_sim)
    assert report.summary == f"{n_refs} of {n_refs} identities kept."


def test_identity_copied_onto_every_face(photos, dlib_backend):
    # The failure UMO fixes: the first person everywhere ("identity mixing"), the second nowhere.
    image = compose([face_tile(photos, "obama2"), face_tile(photos, "obama3")])
    report = analyze_identity([photos["obama1"], photos["biden"]], image, dlib_backend)
    assert report.statuses == [matching.CONFUSED, matching.NOT_FOUND]
    assert report.id_conf[0] < 1 - dlib_backend.thresholds.confusion_ratio
    # Reference 2 is assigned the leftover face but does not resemble it: pictures show "no match".
    leftover = report.assignment[1]
    assert report.face_identities[leftover] is None and report.face_identities[report.assignment[0]] == 0
    assert report.summary == (
        "0 of 2 identities kept; Reference 1 appears on two output faces; "
        "Reference 2 not found."
    )


def test_a_face_blending_two_people_confuses_both(photos, dlib_backend):
    blend = Image.blend(face_tile(photos, "newton"), face_tile(photos, "gauss"), 0.5)
    report = analyze_identity([photos["newton"], photos["gauss"]], blend, dlib_backend)
    assert len(report.faces) == 1
    assert report.statuses == [matching.CONFUSED, matching.CONFUSED]
    assert report.id_conf == [None, None]  # one face: undefined, not 0
    assert "Reference 1 and Reference 2 were confused" in report.summary


def test_output_without_a_face_gives_a_valid_report(photos, dlib_backend):
    empty = Image.new("RGB", (400, 300), (90, 140, 200))
    report = analyze_identity([photos["obama1"], photos["hopper"]], empty, dlib_backend)
    data = json.loads(json.dumps(report.to_dict()))
    assert data["faces"] == [] and data["similarity"] == [[], []]
    assert data["assignment"] == [None, None] and data["id_conf"] == [None, None]
    assert data["id_sim"] == [0.0, 0.0]
    assert data["statuses"] == ["not found", "not found"]
    assert data["summary"].startswith("No face found in the output image")


def test_exif_rotated_output_is_analysed_upright(photos, dlib_backend):
    image = output_with(photos, ["obama1", "hopper"], [1, 0])
    exif = Image.Exif()
    exif[0x0112] = 6
    stored = io.BytesIO()
    image.transpose(Image.Transpose.ROTATE_90).save(stored, "JPEG", quality=95, exif=exif.tobytes())
    report = analyze_identity([photos["obama1"], photos["hopper"]], stored.getvalue(), dlib_backend)
    assert report.image_size == image.size
    assert [column_of(report, f) for f in report.assignment] == [1, 0]
    assert report.statuses == [matching.MATCHED, matching.MATCHED]


def test_reference_with_several_faces_uses_the_largest_and_says_so(photos, dlib_backend):
    big, small = face_tile(photos, "gauss"), face_tile(photos, "newton").resize((220, 220))
    group = Image.new("RGB", (TILE * 2, TILE), (128, 128, 128))
    group.paste(small, (0, 50))
    group.paste(big, (TILE, 0))
    reference = analyze_reference(group, dlib_backend)
    assert reference.n_faces == 2
    assert reference.face.bbox[0] >= TILE  # the Gauss tile on the right
    assert reference.warning.startswith("2 faces found; the largest one (on the right, ")

    report = analyze_identity([group, photos["obama1"]], face_tile(photos, "gauss", mirror=True), dlib_backend)
    assert report.warnings == [f"Reference 1: {reference.warning}"]
    assert report.statuses[0] == matching.MATCHED


def test_reference_without_a_face(photos, dlib_backend):
    no_face = Image.open(photos["astronaut"]).convert("RGB").crop((330, 0, 512, 512))
    image = output_with(photos, ["obama1"], [0])
    report = analyze_identity([photos["obama1"], no_face], image, dlib_backend)
    assert report.statuses == [matching.MATCHED, matching.NO_REFERENCE_FACE]
    assert report.warnings == ["Reference 2: no face found in this image, so it cannot be compared"]
    data = report.to_dict()
    assert data["similarity"][1] == [None] and data["id_sim"][1] is None
    assert data["summary"] == "1 of 2 identities kept; no face in Reference 2."


class CountingBackend(FaceBackend):
    """The real dlib backend, counting how often it is asked to detect (to observe the cache)."""

    def __init__(self, backend: FaceBackend, name: str):
        self.backend, self.name, self.thresholds, self.calls = backend, name, backend.thresholds, 0

    def _detect(self, image):
        self.calls += 1
        return self.backend.detect(image)


def test_references_are_cached_by_content_and_backend(photos, dlib_backend):
    clear_reference_cache()
    counting = CountingBackend(dlib_backend, "dlib-counting")
    image = output_with(photos, ["obama1", "hopper"], [0, 1])
    analyze_identity([photos["obama1"], photos["hopper"]], image, counting)
    assert counting.calls == 3
    # Same content given differently (bytes, a fresh PIL image): only the output is analysed.
    same = [photos["obama1"].read_bytes(), Image.open(photos["hopper"])]
    analyze_identity(same, image, counting)
    assert counting.calls == 4
    analyze_reference(photos["obama1"], counting)  # a file seen before: not even decoded
    assert counting.calls == 4
    other_name = CountingBackend(dlib_backend, "dlib-other")
    analyze_reference(photos["obama1"], other_name)
    assert other_name.calls == 1


def test_analysed_references_can_be_passed_in_but_not_across_backends(photos, dlib_backend):
    reference = analyze_reference(photos["hopper"], dlib_backend)
    report = analyze_identity([reference], face_tile(photos, "hopper", mirror=True), dlib_backend)
    assert report.statuses == [matching.MATCHED]
    foreign = ReferenceFace(face=reference.face, n_faces=1, backend="insightface:buffalo_l", image_size=(1, 1))
    with pytest.raises(InputError, match="Reference 1 was analysed with the insightface:buffalo_l"):
        analyze_identity([foreign], face_tile(photos, "hopper"), dlib_backend)


def test_bad_reference_file_is_named(tmp_path, photos, dlib_backend):
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not really a jpeg")
    with pytest.raises(InputError, match=r"^broken\.jpg: not an image file"):
        analyze_identity([photos["obama1"], broken], face_tile(photos, "hopper"), dlib_backend)


def test_report_dict_has_the_documented_fields(photos, dlib_backend):
    image = output_with(photos, ["obama1", "hopper"], [1, 0])
    data = json.loads(json.dumps(analyze_identity([photos["obama1"], photos["hopper"]], image, dlib_backend).to_dict()))
    assert data["backend"] == "dlib"
    assert len(data["faces"]) == 2 and all(len(f["bbox"]) == 4 for f in data["faces"])
    for face in data["faces"]:
        x0, y0, x1, y1 = face["bbox"]
        assert 0 <= x0 < x1 <= image.width and 0 <= y0 < y1 <= image.height
    assert [len(row) for row in data["similarity"]] == [2, 2]
    assert sorted(data["assignment"]) == [0, 1]
    assert all(0 <= v <= 1 for v in data["id_sim"]) and all(0 <= v <= 1 for v in data["id_conf"])
    assert [r["label"] for r in data["references"]] == ["Reference 1", "Reference 2"]
    assert data["faces"][data["assignment"][0]]["identity"] == "Reference 1"
    assert data["faces"][data["assignment"][1]]["assigned_reference"] == 1
    assert data["mean_id_sim"] == pytest.approx(np.mean(data["id_sim"]), abs=1e-3)


def test_reference_cache_is_bounded(photos, dlib_backend, monkeypatch):
    from umo_pipeline import reference_cache as analysis

    clear_reference_cache()
    monkeypatch.setattr(analysis, "REFERENCE_CACHE_SIZE", 2)
    counting = CountingBackend(dlib_backend, "dlib-bounded")
    tiles = [face_tile(photos, name) for name in ("hopper", "newton", "gauss")]
    for tile in tiles:
        analyze_reference(tile, counting)
    assert len(analysis._reference_cache) == 2 and counting.calls == 3
    analyze_reference(tiles[0], counting)  # the oldest was evicted
    assert counting.calls == 4


def test_faces_are_numbered_left_to_right_then_top_to_bottom(photos, dlib_backend):
    # Two rows of two people; within a row the heads sit at different heights, as in real photos,
    # and the larger face is on the right (largest-first order would put it first).
    canvas = Image.new("RGB", (900, 760), (128, 128, 128))
    placements = [("hopper", 260, (20, 40)), ("biden", 320, (520, 0)),
                  ("newton", 300, (40, 420)), ("gauss", 280, (560, 460))]
    for name, side, where in placements:
        canvas.paste(face_tile(photos, name).resize((side, side)), where)
    report = analyze_identity([photos[name] for name, _, _ in placements], canvas, dlib_backend)
    assert len(report.faces) == 4
    # Face k in reading order shows reference k.
    assert report.assignment == [0, 1, 2, 3]
    data = report.to_dict()
    assert [f["number"] for f in data["faces"]] == [1, 2, 3, 4]
    assert [f["label"] for f in data["faces"]] == ["Face 1", "Face 2", "Face 3", "Face 4"]
    centres = [((f.bbox[0] + f.bbox[2]) / 2, (f.bbox[1] + f.bbox[3]) / 2) for f in report.faces]
    assert centres[0][0] < centres[1][0] and centres[2][0] < centres[3][0]
    assert max(centres[0][1], centres[1][1]) < min(centres[2][1], centres[3][1])


def test_reading_order_groups_uneven_rows():
    from types import SimpleNamespace

    from umo_pipeline.faces.common import reading_order

    def face(name, x, y, size=100):
        return SimpleNamespace(name=name, bbox=(x, y, x + size, y + size))

    # back row: heads 30 px apart in height; front row clearly lower
    faces = [face("c", 420, 10), face("a", 0, 40), face("b", 210, 0), face("e", 300, 260), face("d", 60, 240)]
    assert [f.name for f in reading_order(faces)] == ["a", "b", "c", "d", "e"]
    assert reading_order([]) == []


def test_report_states_its_definitions_and_shows_why_id_conf_is_what_it_is(photos, dlib_backend):
    image = output_with(photos, ["obama1", "hopper"], [1, 0])
    report = analyze_identity([photos["obama1"], photos["hopper"]], image, dlib_backend)
    data = json.loads(json.dumps(report.to_dict()))
    assert set(data["definitions"]) >= {"id_sim", "id_conf", "assigned_similarity", "unit"}
    for ref in data["references"]:
        assert ref["id_sim"] == pytest.approx(max(ref["best_similarity"], 0), abs=1e-4)
        assert ref["id_conf"] == pytest.approx(1 - ref["runner_up_similarity"] / ref["best_similarity"], abs=1e-3)
        assert ref["assigned_face_label"] == f"Face {ref['assigned_face'] + 1}"
        assert ref["assigned_similarity"] == pytest.approx(
            data["similarity"][data["references"].index(ref)][ref["assigned_face"]], abs=1e-4)
    assert data["mean_assigned_similarity"] == pytest.approx(np.mean(data["assigned_similarity"]), abs=1e-3)
    headers, rows = IdentityReport.TABLE_HEADERS, report.table_rows()
    assert len(rows) == 2 and all(len(row) == len(headers) for row in rows)
    ref0 = data["references"][0]
    assert rows[0][2] == f"{100 * ref0['id_sim']:.1f} (Face {ref0['best_face'] + 1})"
    assert rows[0][3] == f"{100 * ref0['runner_up_similarity']:.1f} (Face {ref0['runner_up_face'] + 1})"


def test_reference_without_a_face_reads_no_face_in_the_reference(photos, dlib_backend):
    blank = Image.new("RGB", (300, 300), (200, 180, 160))
    report = analyze_identity([photos["hopper"], blank], Image.new("RGB", (400, 300), (90, 90, 90)),
                              dlib_backend)
    assert report.statuses == ["not found", "no face in the reference"]
    rows = report.table_rows()
    assert rows[1][1:] == ["n/a", "n/a", "n/a", "n/a", "n/a", "no face in the reference"]
