"""The command line: `analyze` in a subprocess (and in-process for the cheap error cases), `repair`
and `generate` in-process with the composing test double (a group of six for a model that takes four)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from tests.library.test_analysis import TILE, output_with
from umo_pipeline.cli import EXIT_BAD_INPUT, main

ROOT = Path(__file__).resolve().parents[2]


def run_cli(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, HF_HUB_OFFLINE="1", OMP_NUM_THREADS="2")
    return subprocess.run([sys.executable, "-m", "umo_pipeline", *map(str, args)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def swapped(photos, tmp_path_factory) -> Path:
    """Hopper on the left, Obama on the right (references given as Obama, Hopper)."""
    path = tmp_path_factory.mktemp("cli") / "out.png"
    output_with(photos, ["obama1", "hopper"], [1, 0]).save(path)
    return path


def test_analyze_writes_report_and_pictures(photos, swapped, tmp_path):
    report_path, heatmap, overlay = tmp_path / "report.json", tmp_path / "heat.png", tmp_path / "boxes.png"
    result = run_cli("analyze", "--ref", photos["obama1"], "--ref", photos["hopper"], "--image", swapped,
                     "--backend", "dlib", "--json", report_path, "--heatmap", heatmap, "--overlay", overlay)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[dlib] 2 of 2 identities kept."
    report = json.loads(report_path.read_text())
    assert report["backend"] == "dlib"
    assert report["statuses"] == ["matched", "matched"]
    # Reference 1 (Obama) is in the right-hand column, Reference 2 (Hopper) in the left one.
    centres = [(f["bbox"][0] + f["bbox"][2]) / 2 for f in report["faces"]]
    assert [int(centres[j] // TILE) for j in report["assignment"]] == [1, 0]
    assert len(report["similarity"]) == 2 and all(len(row) == 2 for row in report["similarity"])
    assert all(0 <= v <= 1 for v in report["id_sim"] + report["id_conf"])
    assert Image.open(overlay).size == Image.open(swapped).size
    assert Image.open(heatmap).width >= 400


def test_analyze_prints_the_report_without_json_option(photos, swapped):
    result = run_cli("analyze", "--ref", photos["hopper"], "--image", swapped, "--backend", "dlib")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    face = report["faces"][report["assignment"][0]]
    assert face["identity"] == "Reference 1" and face["bbox"][2] <= TILE  # Hopper, left column
    assert report["summary"] == "1 of 1 identity kept; 1 extra face in the output."


def test_bad_reference_is_one_line_naming_the_file(photos, swapped, tmp_path):
    notes = tmp_path / "notes.jpg"
    notes.write_text("not a photo")
    result = run_cli("analyze", "--ref", photos["obama1"], "--ref", notes, "--image", swapped, "--backend", "dlib")
    assert result.returncode == EXIT_BAD_INPUT
    assert result.stderr == f"error: {notes}: not an image file, or a format that cannot be read\n"
    assert result.stdout == ""


def _error_line(capsys, argv) -> str:
    assert main(argv) == EXIT_BAD_INPUT
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err and captured.err.count("\n") == 1
    return captured.err.strip()


def test_truncated_output_image(capsys, photos, swapped, tmp_path):
    cut = tmp_path / "cut.png"
    data = swapped.read_bytes()
    cut.write_bytes(data[: len(data) // 3])
    line = _error_line(capsys, ["analyze", "--ref", str(photos["hopper"]), "--image", str(cut), "--backend", "dlib"])
    assert line.startswith(f"error: {cut}: the image is truncated or damaged")


def test_missing_file_and_oversized_image(capsys, photos, tmp_path):
    missing = tmp_path / "missing.jpg"
    line = _error_line(capsys, ["analyze", "--ref", str(missing), "--image", str(photos["hopper"])])
    assert line == f"error: {missing}: file not found"
    huge = tmp_path / "huge.png"
    Image.new("1", (9000, 6000)).save(huge)  # 54 megapixels, a few kB on disk
    line = _error_line(capsys, ["analyze", "--ref", str(photos["hopper"]), "--image", str(huge)])
    assert line.startswith(f"error: {huge}: the image is too large (9000 x 6000")


def test_unusable_destinations_are_refused_before_analysis(capsys, photos, swapped, tmp_path):
    base = ["analyze", "--ref", str(photos["hopper"]), "--image", str(swapped), "--backend", "dlib"]
    line = _error_line(capsys, base + ["--heatmap", str(tmp_path / "no" / "heat.png")])
    assert line.endswith("does not exist)")
    line = _error_line(capsys, base + ["--overlay", str(tmp_path / "boxes.xyz")])
    assert line == f"error: {tmp_path / 'boxes.xyz'}: unknown picture format; use a .png, .jpg or .webp name"


def test_output_without_faces_is_a_valid_report(capsys, photos, tmp_path):
    sky = tmp_path / "sky.png"
    Image.new("RGB", (300, 200), (90, 140, 200)).save(sky)
    assert main(["analyze", "--ref", str(photos["hopper"]), "--image", str(sky), "--backend", "dlib"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["faces"] == [] and report["statuses"] == ["not found"] and report["id_conf"] == [None]


def test_exif_rotated_cmyk_output_is_analysed_upright(capsys, photos, tmp_path):
    upright = output_with(photos, ["obama1", "hopper"], [0, 1])
    exif = Image.Exif()
    exif[0x0112] = 8  # "rotate 90 degrees counter-clockwise to display"
    stored = tmp_path / "rotated.jpg"
    upright.transpose(Image.Transpose.ROTATE_270).convert("CMYK").save(stored, quality=95, exif=exif.tobytes())
    argv = ["analyze", "--ref", str(photos["obama1"]), "--ref", str(photos["hopper"]), "--image", str(stored),
            "--backend", "dlib"]
    assert main(argv) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["image_size"] == list(upright.size)
    assert report["statuses"] == ["matched", "matched"]


def test_missing_arguments_are_argparse_errors():
    result = run_cli("analyze", "--image", "x.png")
    assert result.returncode == 2 and "--ref" in result.stderr and "Traceback" not in result.stderr


def test_commands_are_registered_by_functions():
    from umo_pipeline.cli import build_parser

    def add_hello_command(subcommands):
        subcommands.add_parser("hello").set_defaults(run=lambda args: 0)

    parser = build_parser([add_hello_command])
    assert parser.parse_args(["hello"]).run(None) == 0
    with pytest.raises(SystemExit):
        parser.parse_args(["analyze"])


# ---------------------------------------------------------------- repair


@pytest.fixture
def composing_model(photos):
    """The composing test double under a model name, for `--model`."""
    from tests.composing_customizer import ComposingCustomizer
    from umo_pipeline.customizers import _LOADERS, register_customizer

    register_customizer("composing-test-double", lambda **options: ComposingCustomizer())
    yield "composing-test-double"
    _LOADERS.pop("composing-test-double")


def test_repair_prints_before_after_and_writes_the_files(capsys, photos, composing_model, tmp_path):
    from tests.library.workflow.test_repair import scene
    from umo_pipeline.workflow import read_png_metadata

    image = tmp_path / "out.png"
    scene(photos, ["obama2", "biden"]).save(image)  # Hopper (Reference 2) should be where Biden is
    status = main(["repair", "--model", composing_model, "--backend", "dlib", "--image", str(image),
                   "--ref", str(photos["obama1"]), "--ref", str(photos["hopper"]), "--candidates", "2",
                   "--strength", "0.8", "--prompt", "a close-up of the man's face", "--out", str(tmp_path / "fixed")])
    out = capsys.readouterr().out
    assert status == 0
    lines = dict(line.strip().split(": ", 1) for line in out.splitlines() if not line.startswith("wrote"))
    assert lines["Reference 1"].endswith("matched") and "-> " in lines["Reference 1"]
    assert lines["Reference 2"].endswith("not found -> matched")
    assert lines["Kept"].startswith("Face 2 repaired with Reference 2 (seed 0, best of 2 candidates): similarity on "
                                    "the face ")
    assert lines["Rule"].startswith("A repair is kept only if the repainted face stays its reference's")
    assert lines["Matching score"].count(" -> ") == 1
    settings = json.loads(read_png_metadata(tmp_path / "fixed" / "repaired.png")["repair"])
    assert settings["strength"] == 0.8 and settings["prompt"] == "a close-up of the man's face"
    report = json.loads((tmp_path / "fixed" / "report_repaired.json").read_text())
    assert [row["status_after"] for row in report["references"]] == ["matched", "matched"]


@pytest.mark.parametrize("extra, words", [
    (["--reference", "3"], "error: --reference 3: there is no Reference 3; the references are numbered 1 to 2, in "
                           "the order of --ref."),
    (["--reference", "0"], "error: --reference 0: there is no Reference 0; the references are numbered 1 to 2, in "
                           "the order of --ref."),
    (["--candidates", "5"], "error: Candidates must be between 1 and 4 (got 5)."),
    (["--strength", "1.5"], "error: Strength must be between 0.05 and 1 (got 1.5)."),
])
def test_repair_bad_input_is_one_line(capsys, photos, composing_model, swapped, tmp_path, extra, words):
    argv = ["repair", "--model", composing_model, "--backend", "dlib", "--image", str(swapped),
            "--ref", str(photos["obama1"]), "--ref", str(photos["hopper"]), "--out", str(tmp_path), *extra]
    assert _error_line(capsys, argv) == words
    assert not (tmp_path / "repaired.png").exists()


def test_repair_of_a_faceless_image_is_one_line(capsys, photos, composing_model, tmp_path):
    sky = tmp_path / "sky.png"
    Image.new("RGB", (300, 200), (90, 140, 200)).save(sky)
    argv = ["repair", "--model", composing_model, "--backend", "dlib", "--image", str(sky),
            "--ref", str(photos["hopper"]), "--out", str(tmp_path)]
    line = _error_line(capsys, argv)
    assert line == "error: No face was found in the image to repair, so there is nothing to repair."


# ---------------------------------------------------------------- generate: groups past the model's limit

#: six people for a model that takes four (the composing double's max_references, like UNO's)
GROUP = ["astronaut", "hopper", "obama1", "biden", "newton", "gauss"]


@pytest.fixture
def crowd_model(photos, dlib_backend):
    """The composing double with two strangers of the Solvay photo: it paints the references it
    receives, then the strangers a model draws for the people it had no photo of."""
    from tests.composing_customizer import ComposingCustomizer
    from tests.library.workflow.test_placement import STRANGERS, solvay_face
    from umo_pipeline.customizers import _LOADERS, register_customizer

    double = ComposingCustomizer(crowd=[solvay_face(photos, dlib_backend, index) for index in STRANGERS])
    register_customizer("crowd-test-double", lambda **options: double)
    yield double
    _LOADERS.pop("crowd-test-double")


def _generate_group(photos, tmp_path, *extra: str) -> list[str]:
    argv = ["generate", "--model", "crowd-test-double", "--backend", "dlib", "--prompt", "six friends at a picnic",
            "--width", "768", "--height", "1152", "--steps", "4", "--seed", "11", "--out", str(tmp_path)]
    return argv + [arg for name in GROUP for arg in ("--ref", str(photos[name]))] + list(extra)


def _lines(out: str) -> list[tuple[str, str]]:
    return [tuple(line.strip().split(": ", 1)) for line in out.splitlines() if line.startswith("  ")]


def test_generate_six_people_composes_with_four_and_places_two(capsys, photos, crowd_model, tmp_path):
    import numpy as np

    from umo_pipeline.images import load_image
    from umo_pipeline.workflow import read_png_metadata

    assert main(_generate_group(photos, tmp_path)) == 0
    out = capsys.readouterr().out
    assert crowd_model.calls[0] == ("umo", 4)  # the scene, from the first four
    placed_from = [references for _, _, references in crowd_model.inpaints]
    assert len(placed_from) == 2 and all(len(references) == 1 for references in placed_from)
    for (reference,), name in zip(placed_from, GROUP[4:]):  # each placed from their own photo alone
        assert np.array_equal(np.asarray(reference), np.asarray(load_image(photos[name])))

    lines = _lines(out)
    said = dict(lines)
    assert said["People"] == ("The model saw Reference 1, Reference 2, Reference 3 and Reference 4; Reference 5 "
                              "and Reference 6 were left for placing.")
    assert lines[0] == ("With UMO, 2 placed", "6 of 6 identities kept.")
    placed = [text for label, text in lines if label == "Placed"]
    assert [text.split(" (seed 11")[0].split(" repaired with ")[1] for text in placed] == ["Reference 5", "Reference 6"]
    assert "Not placed" not in said and said["Rule"].startswith("A repair is kept only if")
    wrote = out.splitlines()[-1]
    assert wrote.startswith(f"wrote {tmp_path / 'placed_seed11.png'}, {tmp_path / 'umo_seed11.png'}, ")
    assert read_png_metadata(tmp_path / "placed_seed11.png")["placed"]
    report = json.loads(next(tmp_path.glob("report*.json")).read_text())
    assert report["placement"]["placed"] == ["Reference 5", "Reference 6"]
    assert report["placement"]["conditioned"] == [f"Reference {n}" for n in range(1, 5)]
    assert len(report["references"]) == 6


def test_generate_conditions_on_the_people_chosen_and_places_nobody_when_told(capsys, photos, crowd_model, tmp_path):
    chosen = ["--condition", "1", "--condition", "3", "--condition", "5", "--condition", "6"]
    assert main(_generate_group(photos, tmp_path, *chosen, "--no-place")) == 0
    out = capsys.readouterr().out
    assert crowd_model.calls == [("umo", 4)] and crowd_model.inpaints == []
    assert ("Note", "Reference 2, Reference 4: not shown to the model and not placed (placing is off), so only "
                    "scored.") in _lines(out)
    assert not list(tmp_path.glob("placed_*"))


@pytest.mark.parametrize("extra, words", [
    (["--condition", "7"], "error: --condition 7: there is no Reference 7; the references are numbered 1 to 6, in "
                           "the order of --ref."),
    (["--condition", "0"], "error: --condition 0: there is no Reference 0; the references are numbered 1 to 6, in "
                           "the order of --ref."),
    (["--ref", "{solvay}", "--ref", "{obama2}", "--ref", "{obama3}"],
     "error: --ref is given 9 times: at most 8 people can be given, one photo each."),
])
def test_generate_refuses_a_group_it_cannot_make_in_one_line(capsys, photos, crowd_model, tmp_path, extra, words):
    extra = [arg.format(**photos) for arg in extra]
    assert _error_line(capsys, _generate_group(photos, tmp_path, *extra)) == words
    assert crowd_model.calls == [] and not list(tmp_path.iterdir())


def test_generate_help_says_how_extra_people_are_placed(capsys):
    from umo_pipeline.cli import build_parser

    with pytest.raises(SystemExit):
        build_parser().parse_args(["generate", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert ("Up to 8 people: the model sees as many as it takes (umo-uno 4, umo-omnigen2 5) and each other person "
            "is then repaired onto the face the assignment gives them, from their own photo (--place).") in text
    assert "--place, --no-place then repair faces that are not matched" in text
    assert "--condition N condition the model on Reference N (1 = the first --ref)" in text


def test_compare_places_a_group_as_generate_does(capsys, photos, crowd_model, tmp_path):
    argv = ["compare", "--model", "crowd-test-double", "--backend", "dlib", "--prompt", "six friends at a picnic",
            "--width", "768", "--height", "1152", "--steps", "4", "--seed", "11", "--out", str(tmp_path),
            *[arg for name in GROUP for arg in ("--ref", str(photos[name]))], "--condition", "2", "--condition", "3",
            "--condition", "4", "--condition", "5"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    # base and UMO from the four chosen, then References 1 and 6 placed on the UMO image
    assert crowd_model.calls[:2] == [("umo", 4), ("base", 4)]
    assert len(crowd_model.inpaints) == 2
    report = json.loads(next(tmp_path.glob("report*.json")).read_text())
    assert report["placement"]["conditioned"] == ["Reference 2", "Reference 3", "Reference 4", "Reference 5"]
    assert report["placement"]["placed"] == ["Reference 1", "Reference 6"]
    assert "People: The model saw Reference 2" in out
