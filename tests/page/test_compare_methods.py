"""The Compare methods tab's handler, called as the page and /compare_methods call it: real photos,
the ranked table, the gallery, the sheet and the downloads, a failed image as a row, refusals as
one line under the button."""

import json
from pathlib import Path

import gradio as gr
import pytest
from PIL import Image

from tests.library.test_analysis import compose, face_tile, output_with
from umo_app.handlers import DemoHandlers, on_the_page
from umo_app.outputs import COMPARE_TABLE_HEADERS, CompareOutputs


@pytest.fixture
def handlers(dlib_backend, tmp_path):
    # no generating model: the Compare tab needs none
    return DemoHandlers("no model here", dlib_backend, downloads_root=tmp_path / "downloads")


@pytest.fixture(scope="module")
def method_files(photos, tmp_path_factory):
    """Files as a visitor uploads them: UMO's image keeps Obama and Hopper, UNO's puts Biden where
    Hopper should be, and a text file named like a picture."""
    return upload_files(tmp_path_factory.mktemp("uploads"), {
        "umo_output": output_with(photos, ["obama1", "hopper"], [0, 1]),
        "uno_output": compose([face_tile(photos, "obama2"), face_tile(photos, "biden")])})


def upload_files(folder, pictures: dict) -> dict:
    """stem -> path of each picture saved as <stem>.png in `folder`, and "notes": a text file named
    like a picture (what a visitor may drop by mistake)."""
    paths = {}
    for stem, picture in pictures.items():
        paths[stem] = folder / f"{stem}.png"
        picture.save(paths[stem])
    paths["notes"] = folder / "notes.png"
    paths["notes"].write_text("not a picture")
    return paths


def test_compare_ranks_the_methods_and_writes_the_sheet_json_and_csv(handlers, photos, method_files):
    out = handlers.compare_methods(reference_1=str(photos["obama1"]), reference_3=str(photos["hopper"]),
                                   image_1=str(method_files["uno_output"]), image_2=str(method_files["notes"]),
                                   image_4=str(method_files["umo_output"]), name_1="UNO", name_4="")
    assert isinstance(out, CompareOutputs)
    # a row per method, best first; the names default to the file's stem; the failed image last
    assert [row[:2] for row in out.table] == [["1", "umo_output"], ["2", "UNO"], ["-", "notes"]]
    assert len(out.table[0]) == len(COMPARE_TABLE_HEADERS)
    assert out.table[0][3] == "2/2" and out.table[1][3] == "1/2"
    assert out.table[0][4].startswith("Reference 1: ") and "; Reference 3: " in out.table[0][4]
    assert out.table[2][2:] == ["n/a", "n/a", "notes: not an image file, or a format that cannot be read"]
    assert "#1 umo_output: score" in out.summary and "**Not scored:** notes: not an image" in out.summary
    # the gallery: each scored method's picture then its heatmap; the failed file has no picture
    assert [caption.split(":")[0] for _, caption in out.gallery] == ["#1 umo_output", "umo_output", "#2 UNO", "UNO"]
    assert all(Path(path).exists() for path, _ in out.gallery)
    assert [Path(path).name for path in out.downloads] == ["methods_comparison.png", "methods_report.json",
                                                           "methods_scores.csv"]
    assert out.sheet == out.downloads[0]
    assert Path(out.downloads[0]).parent.parent == handlers.downloads_root
    report = json.loads(Path(out.downloads[1]).read_text())
    assert report == json.loads(json.dumps(out.report))
    assert report["reference_names"] == ["Reference 1", "Reference 3"]
    with Image.open(out.sheet) as sheet:
        assert sheet.width > 3 * 360  # the references and a column per method


@pytest.mark.parametrize("images, names, words", [
    (["umo_output"], [""], "Add at least 2 images to compare"),
    (["umo_output", "uno_output"], ["UMO", "umo"], 'Two images are both named "umo"'),
])
def test_refusals_raise_for_the_api_and_show_one_line_on_the_page(handlers, photos, method_files, images, names,
                                                                 words):
    given = {f"image_{n}": str(method_files[stem]) for n, stem in enumerate(images, start=1)}
    given |= {f"name_{n}": name for n, name in enumerate(names, start=1)}
    with pytest.raises(gr.Error, match=words):
        handlers.compare_methods(reference_1=str(photos["obama1"]), **given)
    shown = on_the_page(handlers.compare_methods, CompareOutputs)(reference_1=str(photos["obama1"]), **given)
    assert len(shown) == len(CompareOutputs._fields) + 1 and all(value == gr.skip() for value in shown[:-1])
    assert words in shown[-1].replace("&quot;", '"') and 'role="alert"' in shown[-1]


def test_no_reference_is_refused_in_words(handlers, method_files):
    with pytest.raises(gr.Error, match="Add at least one reference photo"):
        handlers.compare_methods(image_1=str(method_files["umo_output"]), image_2=str(method_files["uno_output"]))


def test_a_method_slot_is_named_after_its_file_until_edited(method_files):
    assert DemoHandlers.method_name_for(str(method_files["uno_output"]), "") == "uno_output"
    assert DemoHandlers.method_name_for(str(method_files["uno_output"]), "old name") == "uno_output"
    assert DemoHandlers.method_name_for(None, "UNO") == "UNO"  # a cleared slot keeps what was typed
