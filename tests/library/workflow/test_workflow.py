"""The shared generate -> analyze -> pictures -> downloads path, end to end on real faces.

The generator is `ComposingCustomizer` (a test double that pastes the references into its output),
so which reference sits where in the output is known, and the identity analysis (dlib backend, real
weights) must find it.
"""

import json

import pytest
from PIL import Image

from tests.composing_customizer import ComposingCustomizer, FailingCustomizer, tile_boxes
from umo_pipeline import params, workflow
from umo_pipeline.customizers.base import GenerationRequest
from umo_pipeline.errors import GenerationError, InputError
from umo_pipeline.images import load_image


@pytest.fixture(scope="module")
def customizer():
    return ComposingCustomizer()


def _refs(photos, *names):
    return [load_image(photos[name]) for name in names]


def _tile_of(bbox, boxes):
    cx, cy = (bbox[0] + bbox[2]) / 2, (bbox[1] + bbox[3]) / 2
    for index, (left, top, width, height) in enumerate(boxes):
        if left <= cx < left + width and top <= cy < top + height:
            return index
    return None


def _assert_each_reference_found_in_its_tile(report, request, n_refs):
    data = report.to_dict()
    boxes = tile_boxes(n_refs, request)
    for ref, face in enumerate(data["assignment"]):
        assert face is not None, f"reference {ref + 1} unassigned: {data['summary']}"
        assert _tile_of(data["faces"][face]["bbox"], boxes) == ref
        assert data["faces"][face]["assigned_reference"] == ref
    assert data["statuses"] == ["matched"] * n_refs, data["summary"]


@pytest.mark.parametrize("names", [("obama1", "hopper"), ("hopper", "obama1")], ids=["order", "swapped"])
def test_compare_mode_finds_each_reference_where_it_was_painted(customizer, dlib_backend, photos, names):
    request = GenerationRequest(prompt="two people", width=768, height=384, steps=3, seed=7)
    steps_seen = []
    result = workflow.generate_and_analyze(
        customizer, dlib_backend, request, _refs(photos, *names), compare=True,
        progress=lambda done, total, message: steps_seen.append((done, total)),
    )
    umo, base = result.panels
    assert (umo.variant, base.variant) == ("umo", "base")
    assert steps_seen == [(i, 6) for i in range(1, 7)]  # one bar across both variants
    _assert_each_reference_found_in_its_tile(umo.report, request, 2)
    # the base double paints reference 1 twice: reference 2 is lost, so UMO must come out ahead
    base_data = base.report.to_dict()
    assert base_data["statuses"][1] != "matched"
    assert base_data["id_sim"][1] < umo.report.to_dict()["id_sim"][1]
    assert result.deltas["id_sim"] > 0.02
    for panel in result.panels:
        assert panel.heatmap.width > 200 and panel.overlay.size == panel.image.size
    assert result.sheet.width > result.panels[0].image.width


def test_four_references_in_a_grid(customizer, dlib_backend, photos):
    request = GenerationRequest(prompt="four people", width=768, height=768, steps=2, seed=1)
    result = workflow.generate_and_analyze(
        customizer, dlib_backend, request, _refs(photos, "obama3", "newton", "gauss", "hopper")
    )
    assert len(result.panels) == 1 and result.deltas is None
    _assert_each_reference_found_in_its_tile(result.panels[0].report, request, 4)


def test_saved_outputs_carry_settings_and_the_analysis_fields(customizer, dlib_backend, photos, tmp_path):
    request = GenerationRequest(prompt="a portrait", width=512, height=512, steps=2, guidance=3.5, seed=42)
    result = workflow.generate_and_analyze(customizer, dlib_backend, request, _refs(photos, "obama2"), compare=True)
    saved = workflow.save_outputs(result, tmp_path)

    assert [p.name for p in saved.all] == [
        "umo_seed42.png", "base_seed42.png", "comparison_seed42.png", "report_seed42.json"
    ]
    meta = workflow.read_png_metadata(saved.images[0])
    assert meta["prompt"] == "a portrait" and meta["seed"] == "42"
    assert json.loads(meta["settings"]) == {
        "width": 512, "height": 512, "steps": 2, "guidance": 3.5, "seed": 42, "extra": {}
    }
    assert meta["model"] == customizer.label
    with Image.open(saved.images[0]) as png:
        assert png.size == (512, 512)

    report = json.loads(saved.report.read_text())
    for key in ("backend", "faces", "similarity", "assignment", "id_sim", "id_conf", "statuses", "summary"):
        assert key in report
    assert report["backend"] == "dlib" and report["seed"] == 42 and report["prompt"] == "a portrait"
    assert set(report["comparison"]) == {"base", "delta"}
    # one reference: both variants paint it, so UMO and base score alike
    assert abs(report["comparison"]["delta"]["id_sim"]) < 0.02


def test_text_only_generation_explains_that_the_heatmap_needs_references(customizer, dlib_backend, tmp_path):
    request = GenerationRequest(prompt="a mountain lake", width=256, height=256, steps=1, seed=3)
    result = workflow.generate_and_analyze(customizer, dlib_backend, request, [])
    panel = result.panels[0]
    assert panel.report.labels == [] and panel.heatmap is None
    assert any("need at least one reference" in note for note in result.notes)
    data = result.to_dict()
    assert data["id_sim"] == [] and data["seed"] == 3 and data["faces"] == []
    assert workflow.save_outputs(result, tmp_path).report.exists()


@pytest.mark.parametrize(
    "changes, words",
    [
        (dict(prompt="   "), "prompt is empty"),
        (dict(width=100), "between 256 and 2048"),
        (dict(height=5000), "between 256 and 2048"),
        (dict(width=500), "multiple of 16 (got 500; try 496 or 512)"),
        (dict(steps=0), "Steps must be between 1"),
        (dict(steps=2.5), "Steps must be a whole number .got 2.5"),
        (dict(width=float("nan")), "Width must be a finite number"),
        (dict(guidance=-1), "Guidance must be between"),
        (dict(seed=-5), "Seed must be between 0 and"),
        (dict(seed=1.5), "Seed must be a whole number"),
        (dict(extra={"image_guidance": 2.0}), "no setting called image_guidance"),
    ],
)
def test_bad_settings_are_refused_in_plain_words(customizer, changes, words):
    request = GenerationRequest(prompt="two people", width=512, height=512, steps=2)
    for key, value in changes.items():
        setattr(request, key, value)
    with pytest.raises(InputError, match=words.replace("(", r"\(").replace(")", r"\)")):
        customizer.check_request(request)


def test_too_many_references_and_missing_base_model(customizer, photos):
    refs = _refs(photos, "obama1") * 5
    with pytest.raises(InputError, match="at most 4 references"):
        customizer.check_references(refs)

    class UMOOnly(ComposingCustomizer):
        variants = ("umo",)

    with pytest.raises(InputError, match="no base model to compare with"):
        workflow.prepare(UMOOnly(), "dlib", GenerationRequest(prompt="x"), [], compare=True)


def test_seed_is_random_only_when_asked():
    assert workflow.pick_seed(1234, randomize=False) == 1234
    assert workflow.pick_seed("77", randomize=False) == 77
    drawn = {workflow.pick_seed(1234, randomize=True) for _ in range(5)}
    assert len(drawn) > 1 and all(0 <= s <= params.MAX_SEED for s in drawn)
    with pytest.raises(InputError):
        workflow.pick_seed(1.5, randomize=False)


def test_out_of_memory_becomes_a_message_and_the_next_request_works(dlib_backend, customizer, photos):
    request = GenerationRequest(prompt="two people", width=512, height=256, steps=2)
    refs = _refs(photos, "obama1", "hopper")
    with pytest.raises(GenerationError, match="ran out of memory generating 512x256 with 2 reference"):
        workflow.generate_and_analyze(FailingCustomizer(), dlib_backend, request, refs)
    assert workflow.generate_and_analyze(customizer, dlib_backend, request, refs).panels[0].image.size == (512, 256)


def test_analyze_any_image_needs_references_and_labels_its_faces(dlib_backend, customizer, photos):
    refs = _refs(photos, "newton", "gauss")
    request = GenerationRequest(prompt="x", width=768, height=384, steps=1)
    image = customizer.generate(request, refs)
    with pytest.raises(InputError, match="at least one reference"):
        workflow.analyze_image(dlib_backend, [], image)
    result = workflow.analyze_image(dlib_backend, refs, image, reference_names=["Reference 1", "Reference 3"])
    assert result.request is None and result.panels[0].variant == "image"
    data = result.to_dict()
    assert data["labels"] == ["Reference 1", "Reference 3"]
    owners = sorted(face["assigned_reference"] for face in data["faces"])
    assert [data["labels"][owner] for owner in owners] == ["Reference 1", "Reference 3"]


def test_reference_preview_shows_the_face_used_or_the_whole_photo(dlib_backend, photos):
    image, face = workflow.load_reference(photos["solvay"], "Reference 1", dlib_backend)
    assert face.n_faces > 10 and "faces found" in face.warning
    preview = workflow.reference_preview(image, face)
    assert max(preview.size) == workflow.PREVIEW_SIDE
    # the crop is centred on the chosen face, so the outline colour is present
    assert (46, 204, 113) in {preview.getpixel((x, preview.height // 2)) for x in range(preview.width)}

    blank = Image.new("RGB", (300, 200), "white")
    _, none = workflow.load_reference(blank, "Reference 2", dlib_backend)
    assert none.face is None and "no face" in none.warning
    assert workflow.reference_preview(blank, none).size == (256, 171)


def test_gpu_reservation_grows_with_the_work(customizer):
    small = GenerationRequest(prompt="x", steps=10)
    big = GenerationRequest(prompt="x", steps=50)
    assert workflow.gpu_seconds(customizer, small, 2, compare=False) < workflow.gpu_seconds(
        customizer, big, 2, compare=False
    ) < workflow.gpu_seconds(customizer, big, 2, compare=True)


def test_face_analysis_from_several_threads_at_once(dlib_backend, photos):
    # a web page previews several slots at once; the face models must not be entered concurrently
    from concurrent.futures import ThreadPoolExecutor

    from umo_pipeline.analysis import clear_reference_cache

    clear_reference_cache()
    names = ["obama1", "hopper", "obama2", "biden"] * 2
    images = {name: load_image(photos[name]) for name in names}
    with ThreadPoolExecutor(4) as pool:
        found = list(pool.map(lambda n: workflow.load_reference(images[n], n, dlib_backend)[1].n_faces, names))
    assert found == [1] * len(names)


@pytest.fixture
def composing_model_registered():
    from umo_pipeline.customizers import _LOADERS, register_customizer

    register_customizer("composing-test-double", lambda **options: ComposingCustomizer())
    yield "composing-test-double"
    _LOADERS.pop("composing-test-double")


def test_cli_compare_writes_a_sheet_per_prompt_and_seed(composing_model_registered, photos, tmp_path, capsys):
    from umo_pipeline import cli

    prompts = tmp_path / "prompts.txt"
    prompts.write_text("# two prompts\ntwo friends at a cafe\n\ntwo colleagues in a lab\n")
    status = cli.main([
        "compare", "--model", composing_model_registered, "--backend", "dlib",
        "--ref", str(photos["obama1"]), "--ref", str(photos["hopper"]), "--prompts-file", str(prompts),
        "--seed", "1", "--seed", "2", "--width", "768", "--height", "384", "--steps", "2",
        "--out", str(tmp_path / "out"),
    ])
    out = capsys.readouterr().out
    assert status == 0
    sheets = sorted(p.name for p in (tmp_path / "out").glob("comparison_*.png"))
    assert sheets == [f"comparison_prompt{p}_seed{s}.png" for p in (1, 2) for s in (1, 2)]
    assert out.count("UMO minus base (same seed): ID-Sim +") == 4
    assert "mean ID-Sim gain of UMO over the base model: +" in out
    report = json.loads((tmp_path / "out" / "report_prompt2_seed1.json").read_text())
    assert report["prompt"] == "two colleagues in a lab" and report["settings"]["width"] == 768


def test_cli_generate_with_the_tiny_model(photos, tmp_path, capsys):
    from umo_pipeline import cli

    status = cli.main([
        "generate", "--model", "tiny", "--backend", "dlib", "--prompt", "a portrait", "--ref", str(photos["obama1"]),
        "--width", "256", "--height", "256", "--steps", "2", "--seed", "4", "--out", str(tmp_path),
    ])
    out = capsys.readouterr().out
    assert status == 0 and '"a portrait" seed 4, 256x256, 2 steps' in out
    meta = workflow.read_png_metadata(tmp_path / "umo_seed4.png")
    assert meta["model"].startswith("tiny") and json.loads(meta["settings"])["steps"] == 2


@pytest.mark.parametrize("argv, words", [
    (["generate", "--model", "tiny", "--prompt", "x", "--ref", "missing.jpg"], "missing.jpg: file not found"),
    (["generate", "--model", "tiny", "--prompt", "x", "--set", "image_guidance"], "expected NAME=NUMBER"),
    (["compare", "--model", "tiny"], "at least one --prompt"),
])
def test_cli_bad_generation_input_is_one_line(argv, words, capsys):
    from umo_pipeline import cli

    assert cli.main(argv) == cli.EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert words in err and len(err.strip().splitlines()) == 1


def test_a_prepared_job_crosses_a_process_boundary_without_its_models(customizer, dlib_backend, photos):
    # ZeroGPU pickles the GPU function's arguments into a forked worker: the job must carry keys,
    # not the model, and come back to the very same customizer and face backend there
    import pickle

    request = GenerationRequest(prompt="two people", width=768, height=384, steps=2, seed=5)
    job = workflow.prepare(customizer, dlib_backend, request, _refs(photos, "obama1", "hopper"), compare=True)
    assert job.variants == ("umo", "base") and [f.n_faces for f in job.reference_faces] == [1, 1]
    copy = pickle.loads(pickle.dumps(job))
    assert copy.customizer is customizer and copy.backend is dlib_backend
    images = workflow.generate_images(copy)
    direct = workflow.generate_and_analyze(customizer, dlib_backend, request, _refs(photos, "obama1", "hopper"),
                                           compare=True)
    result = workflow.finish(job, images)
    assert result.to_dict()["similarity"] == direct.to_dict()["similarity"]
