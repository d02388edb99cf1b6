"""workflow.compare_methods on real faces: several methods' images ranked against the same
references, failed images kept as rows, refusals in words, the files and the sheet."""

import csv
import json

import numpy as np
import pytest
from PIL import Image

from tests.library.test_analysis import compose, face_tile, output_with
from umo_pipeline import matching, workflow
from umo_pipeline.analysis import analyze_identity, clear_reference_cache
from umo_pipeline.errors import InputError
from umo_pipeline.render import MIN_TEXT, PIXEL_SCALE

REFERENCES = ["obama1", "hopper"]


@pytest.fixture(scope="module")
def pictures(photos):
    """name -> image: one keeps both people, one puts Biden where Hopper should be, one has no face."""
    return {"keeps both": output_with(photos, REFERENCES, [0, 1]),
            "replaces Hopper": compose([face_tile(photos, "obama2"), face_tile(photos, "biden")]),
            "blank": Image.new("RGB", (400, 300), (90, 140, 200))}


@pytest.fixture(scope="module")
def not_a_picture(tmp_path_factory):
    path = tmp_path_factory.mktemp("methods") / "notes_named_like_a_picture.png"
    path.write_text("not a picture")
    return path


@pytest.fixture(scope="module")
def compared(photos, pictures, not_a_picture, dlib_backend):
    # the replacing image first: the ranking, not the order given, must put the other one on top
    images = [pictures["replaces Hopper"], not_a_picture, pictures["keeps both"], pictures["blank"]]
    return workflow.compare_methods(dlib_backend, [photos[name] for name in REFERENCES], images,
                                    ["Swapped", "", "  Faithful ", "Blank"])


def test_the_image_that_keeps_both_people_ranks_first_with_its_own_numbers(compared, photos, pictures,
                                                                            dlib_backend):
    ranked = compared.ranked
    assert [method.name for method in ranked] == ["Faithful", "Swapped"]
    assert [method.rank for method in ranked] == [1, 2]
    faithful, swapped = ranked
    assert faithful.matched == 2 and faithful.report.statuses == [matching.MATCHED] * 2
    assert swapped.matched == 1 and swapped.report.statuses[0] == matching.MATCHED
    assert swapped.report.statuses[1] != matching.MATCHED
    assert faithful.matching_score > swapped.matching_score
    # the same numbers as analysing each image alone
    for method, picture in ((faithful, "keeps both"), (swapped, "replaces Hopper")):
        alone = analyze_identity([photos[name] for name in REFERENCES], pictures[picture], dlib_backend)
        assert method.report.id_sim == pytest.approx(alone.id_sim)
        assert method.report.assignment == alone.assignment
        assert method.matching_score == pytest.approx(alone.matching_score)
        assert method.heatmap is not None and method.heatmap.width > 0
    # Biden resembles neither reference as much as Hopper's own face does
    assert swapped.report.id_sim[1] < faithful.report.id_sim[1]


def test_failed_images_are_rows_with_their_message_and_the_others_stand(compared):
    assert [method.name for method in compared.methods] == ["Faithful", "Swapped", "notes_named_like_a_picture",
                                                            "Blank"]
    broken, blank = compared.methods[2:]
    assert broken.failed and broken.rank is None and broken.matching_score is None and broken.heatmap is None
    assert broken.message == "notes_named_like_a_picture: not an image file, or a format that cannot be read"
    assert blank.failed and blank.rank is None and blank.message.startswith("Blank: no face found")
    assert blank.image is not None  # the picture is still shown on the sheet
    lines = dict(workflow.describe_methods(compared))
    assert "#1 Faithful: score" in lines["Ranked by the matching score"]
    assert [text for label, text in workflow.describe_methods(compared) if label == "Not scored"] == [
        broken.message, blank.message]


def test_each_reference_is_found_once_per_comparison(photos, pictures, dlib_backend, monkeypatch):
    clear_reference_cache()
    seen = []
    detect = dlib_backend.detect
    monkeypatch.setattr(dlib_backend, "detect", lambda image: seen.append(image.size) or detect(image))
    images = [pictures["keeps both"], pictures["replaces Hopper"], pictures["keeps both"]]
    workflow.compare_methods(dlib_backend, [photos[name] for name in REFERENCES], images, ["A", "B", "C"])
    # two references, then one look per method's image (none of them needs a second, bordered look)
    assert len(seen) == len(REFERENCES) + len(images)


@pytest.mark.parametrize("count, names, words", [
    (1, None, "Add at least 2 images to compare (one per method); one was given"),
    (7, [f"M{n}" for n in range(7)], "At most 6 images can be compared at once; 7 were given"),
    (2, ["UNO", " uno "], 'Two images are both named "uno": give each method its own name'),
    (2, ["UNO", "  "], "Image 2 has no method name"),
    (2, ["UNO"], "1 method names given for 2 images"),
])
def test_bad_input_is_refused_in_words(photos, pictures, dlib_backend, count, names, words):
    images = [pictures["keeps both"]] * count
    with pytest.raises(InputError, match=words.replace("(", r"\(").replace(")", r"\)")):
        workflow.compare_methods(dlib_backend, [photos["obama1"]], images, names)


def test_no_references_is_refused(pictures, dlib_backend):
    with pytest.raises(InputError, match="Add at least one reference photo"):
        workflow.compare_methods(dlib_backend, [], [pictures["keeps both"], pictures["blank"]], ["A", "B"])


def test_names_default_to_the_file_stem(photos, dlib_backend):
    result = workflow.compare_methods(dlib_backend, [photos["obama1"]], [photos["obama2"], photos["biden"]])
    assert [method.name for method in result.methods] == ["obama2", "biden"]


def test_files_hold_the_ranking_the_reports_and_a_row_per_method_and_reference(compared, tmp_path):
    sheet, report, table = workflow.save_method_comparison(compared, tmp_path)
    assert [path.name for path in (sheet, report, table)] == ["methods_comparison.png", "methods_report.json",
                                                              "methods_scores.csv"]
    text = workflow.read_png_metadata(sheet)
    assert text["variant"] == "Method comparison" and text["backend"] == "dlib"
    assert [row["method"] for row in json.loads(text["methods"])] == [m.name for m in compared.methods]
    assert json.loads(text["references"]) == ["Reference 1", "Reference 2"]
    with Image.open(sheet) as written:
        assert written.size == compared.sheet.size
    data = json.loads(report.read_text())
    assert [(m["rank"], m["method"]) for m in data["methods"]] == [
        (1, "Faithful"), (2, "Swapped"), (None, "notes_named_like_a_picture"), (None, "Blank")]
    assert data["methods"][0]["report"]["statuses"] == ["matched", "matched"]
    assert data["methods"][0]["matching_score"] == pytest.approx(compared.methods[0].matching_score, abs=1e-4)
    assert data["methods"][2]["report"] is None and "not an image" in data["methods"][2]["message"]
    with open(table, newline="") as source:
        rows = list(csv.DictReader(source))
    assert list(rows[0]) == list(workflow.METHODS_CSV_COLUMNS)
    assert [(row["method"], row["reference"]) for row in rows] == [
        ("Faithful", "Reference 1"), ("Faithful", "Reference 2"), ("Swapped", "Reference 1"),
        ("Swapped", "Reference 2"), ("notes_named_like_a_picture", ""), ("Blank", "")]
    swapped = compared.methods[1].report
    assert float(rows[3]["id_sim"]) == pytest.approx(swapped.id_sim[1], abs=1e-4)
    assert rows[3]["status"] == swapped.statuses[1] and rows[1]["assigned_face"].startswith("Face ")
    assert rows[5]["message"].startswith("Blank: no face found") and rows[5]["id_sim"] == ""


def test_the_sheet_has_a_column_per_method_in_rank_order(compared):
    sheet, boxes = compared.sheet, compared.sheet.info["method_boxes"]
    assert list(boxes) == [method.name for method in compared.methods]
    lefts = [boxes[name]["column"][0] for name in boxes]
    assert lefts == sorted(lefts) and all(box["column"][2] <= sheet.width for box in boxes.values())
    faithful = compared.methods[0]
    x0, y0, x1, y1 = boxes["Faithful"]["image"]
    shown = np.asarray(sheet.crop((x0, y0, x1, y1)), dtype=float)
    expected = np.asarray(faithful.image.resize((x1 - x0, y1 - y0), Image.Resampling.LANCZOS), dtype=float)
    assert np.abs(shown - expected).mean() < 3  # the method's own picture, not another's
    x0, y0, x1, y1 = boxes["Faithful"]["heatmap"]
    assert y0 > boxes["Faithful"]["image"][3]  # under its image
    # the heatmap at half its page size: its smallest text back at MIN_TEXT px
    assert faithful.heatmap.info["min_font_px"] * (x1 - x0) / faithful.heatmap.width >= MIN_TEXT - 0.5
    assert boxes["notes_named_like_a_picture"]["image"] is None and boxes["Blank"]["image"] is not None
    assert boxes["Blank"]["heatmap"] is None


def test_six_methods_and_four_references_stay_legible(photos, dlib_backend):
    people = ["obama1", "biden", "hopper", "astronaut"]
    orders = [[0, 1, 2, 3], [1, 0, 2, 3], [3, 2, 1, 0], [0, 1, 3, 2], [2, 3, 0, 1], [1, 2, 3, 0]]
    images = [output_with(photos, people, order) for order in orders]
    result = workflow.compare_methods(dlib_backend, [photos[name] for name in people], images,
                                      ["UMO-UNO", "UNO", "OmniGen2", "XVerse", "DreamO", "WithAnyone"])
    assert len(result.ranked) == 6 and all(method.matched == 4 for method in result.ranked)
    sheet, boxes = result.sheet, result.sheet.info["method_boxes"]
    assert len(boxes) == 6
    widths = {box["column"][2] - box["column"][0] for box in boxes.values()}
    assert len(widths) == 1 and widths.pop() >= 360  # one column width, room for the numbers
    # every heatmap whole and at one pixel per layout unit or more: text at MIN_TEXT px
    for method in result.methods:
        x0, y0, x1, y1 = boxes[method.name]["heatmap"]
        assert x1 <= sheet.width and y1 <= sheet.height
        assert (x1 - x0) * PIXEL_SCALE >= method.heatmap.width - PIXEL_SCALE
    assert sheet.width <= 6 * 620 + 240  # a screen or two wide, not a poster
