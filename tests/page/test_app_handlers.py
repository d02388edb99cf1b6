"""The app's handlers called directly, with the composing test double as the generator and the real
dlib face backend, so every picture and number they return comes from real faces."""

import inspect
import json
from pathlib import Path

import gradio as gr
import pytest
from PIL import Image

from tests.composing_customizer import ComposingCustomizer, FailingCustomizer
from umo_app import launch, zerogpu
from umo_app.handlers import DemoHandlers
from umo_app.layout import build_demo
from umo_app.panels import SLOTS


class NoProgress:
    """Stands in for gr.Progress outside a running server; records what the bar would show."""

    def __init__(self):
        self.updates = []

    def __call__(self, value, desc=None):
        self.updates.append(value)


@pytest.fixture
def handlers(dlib_backend, tmp_path):
    return DemoHandlers(ComposingCustomizer(), dlib_backend, downloads_root=tmp_path / "downloads")


def _generate(handlers, prompt, refs, **settings):
    slots = dict(zip(["reference_1", "reference_2", "reference_3", "reference_4"], [str(r) for r in refs]))
    options = dict(width=768, height=384, steps=2, guidance=4.0, seed=11, randomize_seed=False, compare=False)
    options.update(settings)
    progress = NoProgress()
    return final(handlers.generate(prompt, **slots, **options, progress=progress)), progress


def final(stream):
    """The last result of a streaming handler (/generate yields the composed scene, then the image
    after each person placed)."""
    results = list(stream)
    assert results, "the handler gave no result"
    return results[-1]


def test_generate_with_comparison_returns_every_output(handlers, photos):
    out, progress = _generate(handlers, "two people", [photos["obama1"], photos["hopper"]], compare=True)
    assert out.seed == 11 and "Seed 11" in out.summary
    assert "UMO minus base (same seed):** ID-Sim +" in out.summary
    # pictures come back as the files already written (the image is the downloadable PNG itself)
    assert out.image == out.downloads[0] and out.slider == (out.downloads[1], out.image)
    assert _size(out.image) == (768, 384) and _size(out.overlay) == (768, 384) and _size(out.slider[0]) == (768, 384)
    assert _size(out.heatmap)[0] > 200 and _size(out.base_heatmap)[0] > 200
    assert Image.open(out.overlay).format == "JPEG" and Image.open(out.heatmap).format == "PNG"
    assert all(Path(p).parent == Path(out.downloads[0]).parent for p in (out.heatmap, out.overlay, out.base_heatmap))
    assert [row[-1] for row in out.table] == ["matched", "matched"]
    assert out.base_table[1][-1] != "matched"
    assert progress.updates[-1] == (4, 4)  # both variants counted in one bar
    names = [Path(p).name for p in out.downloads]
    assert names == ["umo_seed11.png", "base_seed11.png", "comparison_seed11.png", "report_seed11.json"]
    assert all(Path(p).is_relative_to(handlers.downloads_root) for p in out.downloads)
    assert json.loads(Path(out.downloads[-1]).read_text()) == json.loads(json.dumps(out.report))
    assert out.report["comparison"]["delta"]["id_sim"] > 0
    # one candidate: no gallery, and the JSON report is the one it always was
    assert out.gallery["visible"] is False and out.gallery["value"] is None
    assert [view["seed"] for view in out.candidate_views] == [11] and "candidates" not in out.report


def test_slot_numbers_stay_the_reference_names(handlers, photos):
    # references in slots 2 and 4 are called Reference 2 and Reference 4 everywhere
    out = handlers.analyze(None, str(photos["newton"]), None, str(photos["gauss"]),
                           image=str(_composed(photos, "newton", "gauss")))
    assert [row[0] for row in out.table] == ["Reference 2", "Reference 4"]
    assert out.report["labels"] == ["Reference 2", "Reference 4"]
    assert [row[-1] for row in out.table] == ["matched", "matched"]
    assert [Path(p).name for p in out.downloads] == ["comparison_analysis.png", "report_analysis.json"]


def _size(path):
    with Image.open(path) as image:
        return image.size


def _composed(photos, *names):
    from umo_pipeline.customizers.base import GenerationRequest
    from umo_pipeline.images import load_image

    path = Path(photos[names[0]]).parent.parent / f"composed_{'_'.join(names)}.png"
    if not path.exists():
        refs = [load_image(photos[n]) for n in names]
        ComposingCustomizer().generate(GenerationRequest("x", width=768, height=384), refs).save(path)
    return path


def test_text_only_generation_warns_that_the_heatmap_needs_references(handlers):
    with pytest.warns(UserWarning, match="need at least one reference"):
        out, _ = _generate(handlers, "a lighthouse at dusk", [], width=256, height=256)
    assert _size(out.image) == (256, 256) and out.heatmap is None and out.table == [] and out.slider is None
    assert out.report["id_sim"] == [] and out.report["prompt"] == "a lighthouse at dusk"


@pytest.mark.parametrize(
    "prompt, settings, words",
    [
        ("", {}, "prompt is empty"),
        ("two people", {"width": 4096}, "Width must be between"),
        ("two people", {"height": 250}, "Height must be between"),
        ("two people", {"steps": 500}, "Steps must be between"),
    ],
)
def test_bad_settings_come_back_as_messages(handlers, photos, prompt, settings, words):
    with pytest.raises(gr.Error, match=words):
        _generate(handlers, prompt, [photos["obama1"]], **settings)


def test_unreadable_reference_is_named(handlers, tmp_path, photos):
    not_an_image = tmp_path / "notes.jpg"
    not_an_image.write_text("this is text")
    with pytest.raises(gr.Error, match="Reference 2: not an image file"):
        _generate(handlers, "two people", [photos["obama1"], not_an_image])


def test_generation_failure_is_a_message_and_the_app_keeps_working(dlib_backend, photos, tmp_path):
    failing = DemoHandlers(FailingCustomizer(), dlib_backend, downloads_root=tmp_path)
    with pytest.raises(gr.Error, match="ran out of memory"):
        _generate(failing, "two people", [photos["obama1"]])
    working = DemoHandlers(ComposingCustomizer(), dlib_backend, downloads_root=tmp_path)
    out, _ = _generate(working, "two people", [photos["obama1"]])
    assert _size(out.image) == (768, 384)


def test_a_missing_face_backend_fails_before_any_generation(photos, tmp_path):
    # the identity analysis comes after the GPU work: without a face backend that work would be
    # wasted (on ZeroGPU, a visitor's quota), so the request must be refused before it starts
    customizer = ComposingCustomizer()
    handlers = DemoHandlers(customizer, "the insightface pack buffalo_l is not in ~/.insightface/models",
                                downloads_root=tmp_path)
    with pytest.raises(gr.Error, match="Face analysis is unavailable: the insightface pack buffalo_l"):
        _generate(handlers, "two people", [photos["obama1"], photos["hopper"]])
    assert customizer.calls == []


def test_a_missing_face_pack_fails_in_prepare_not_after_generation(photos, tmp_path, monkeypatch):
    from umo_pipeline import workflow
    from umo_pipeline.customizers.base import GenerationRequest
    from umo_pipeline.errors import FaceModelUnavailable

    monkeypatch.setenv("UMO_INSIGHTFACE_ROOT", str(tmp_path / "no-packs-here"))
    customizer = ComposingCustomizer()
    request = GenerationRequest(prompt="two people", width=768, height=384, steps=2)
    with pytest.raises(FaceModelUnavailable):
        workflow.generate_and_analyze(customizer, "insightface", request, [Image.open(photos["obama1"])])
    assert customizer.calls == []


def test_without_a_model_generate_explains_and_analyze_still_works(dlib_backend, photos, tmp_path):
    handlers = DemoHandlers("UMO-UNO weights are not available offline: FLUX.1-dev missing.", dlib_backend,
                                downloads_root=tmp_path)
    with pytest.raises(gr.Error, match="Generation is unavailable here: UMO-UNO weights"):
        _generate(handlers, "two people", [photos["obama1"]])
    out = handlers.analyze(str(photos["obama1"]), image=str(photos["obama2"]))
    assert out.table[0][-1] == "matched"


def test_analyze_asks_for_what_is_missing(handlers, photos):
    with pytest.raises(gr.Error, match="at least one reference"):
        handlers.analyze(image=str(photos["obama2"]))
    with pytest.raises(gr.Error, match="Add the image to analyse"):
        handlers.analyze(str(photos["obama1"]))


def test_reference_preview_shows_the_face_or_says_why_not(handlers, photos, tmp_path):
    preview, note = handlers.preview_reference(0, str(photos["hopper"]))
    assert max(preview.size) == 256 and note.startswith("One face found")

    preview, note = handlers.preview_reference(1, str(photos["solvay"]))
    assert preview is not None and "faces found; the largest one" in note

    blank = tmp_path / "blank.png"
    Image.new("RGB", (200, 200), "white").save(blank)
    preview, note = handlers.preview_reference(2, str(blank))
    assert "No face found" in note

    broken = tmp_path / "broken.png"
    broken.write_bytes(Path(photos["hopper"]).read_bytes()[:2000])
    preview, note = handlers.preview_reference(3, str(broken))
    assert preview is None and "Reference 4" in note and "truncated" in note
    assert handlers.preview_reference(0, None) == (None, "")


class FiveReferenceModel(ComposingCustomizer):
    """Test double declaring what OmniGen2 declares: five references and its own settings."""

    max_references = 5
    extra_settings = ("image_guidance", "cfg_range_start", "cfg_range_end")


def _page(customizer, backend):
    config = build_demo(customizer, backend, device="cpu").get_config_file()
    return config, {c["id"]: c for c in config["components"]}


@pytest.mark.parametrize("customizer, hidden_slots, extras_visible",
                         [(ComposingCustomizer(), SLOTS - 4, False), (FiveReferenceModel(), SLOTS - 5, True)])
def test_page_adapts_to_the_model(dlib_backend, customizer, hidden_slots, extras_visible):
    config, components = _page(customizer, dlib_backend)
    assert {"generate", "analyze"} <= {dep.get("api_name") for dep in config["dependencies"]}
    header = json.dumps([c["props"].get("value") for c in components.values() if c["type"] == "html"])
    assert "Tiny test model" in header and "Face backend: <b>dlib</b>" in header and "Device: <b>cpu</b>" in header
    cards = [c for c in components.values() if "umo-ref-card" in (c["props"].get("elem_classes") or [])]
    assert len(cards) == 3 * SLOTS  # Generate, Analyze and Compare methods
    # the model's own number shown, the others one "Add a person" away, on each tab
    assert sum(c["props"].get("visible") is False for c in cards) == 3 * hidden_slots
    adds = [c for c in components.values() if str(c["props"].get("elem_id")).endswith("-add-person")]
    assert len(adds) == 3 and all(c["props"]["visible"] is True for c in adds)
    extras = [c for c in components.values() if c["props"].get("label") in ("Image guidance", "Guidance ends at")]
    assert len(extras) == 2 and all(c["props"]["visible"] is extras_visible for c in extras)


def test_unusual_but_valid_photos_are_accepted(handlers, photos, tmp_path):
    # CMYK, 16-bit grey, palette with transparency and an EXIF-rotated photo all yield a face (the
    # HOG detector finds upright faces only, so the rotated one is found only if EXIF was applied)
    from PIL import ImageOps

    source = Image.open(photos["obama1"]).convert("RGB")
    variants = {
        "cmyk.jpg": lambda p: source.convert("CMYK").save(p),
        "gray16.png": lambda p: source.convert("L").point(lambda v: v * 256, "I").convert("I;16").save(p),
        "palette.png": lambda p: source.convert("P", palette=Image.Palette.ADAPTIVE).save(p, transparency=0),
        "rotated.jpg": lambda p: _save_rotated(ImageOps, source, p),
    }
    for name, write in variants.items():
        path = tmp_path / name
        write(path)
        preview, note = handlers.preview_reference(0, str(path))
        assert note.startswith("One face found") and preview is not None, (name, note)


def _save_rotated(ImageOps, source, path):
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 clockwise to view": the pixels are stored lying on their side
    source.transpose(Image.Transpose.ROTATE_90).save(path, exif=exif)


def test_off_spaces_the_gpu_entry_point_is_a_plain_function():
    assert not hasattr(zerogpu.generate_on_gpu, "zerogpu")


def test_no_gpu_is_said_before_any_weights_are_looked_for(monkeypatch):
    import umo_pipeline.hub

    def no_lookup(*args, **kwargs):
        raise AssertionError("weights were looked up on a machine that cannot run the model")

    monkeypatch.setattr(umo_pipeline.hub, "resolve_weights", no_lookup)
    customizer, backend, device = launch.load_models(
        launch.parse_args(["--model", "umo-uno", "--face-backend", "dlib"]))
    assert device == "cpu"
    assert isinstance(customizer, str) and "No CUDA GPU found" in customizer and "--model tiny" in customizer


def test_missing_weights_become_the_banner_not_a_crash():
    customizer, backend, device = launch.load_models(
        launch.parse_args(["--model", "umo-uno", "--device", "cpu", "--face-backend", "dlib"]))
    assert isinstance(customizer, str) and "FLUX.1-dev" in customizer
    assert backend.name == "dlib"
    demo = build_demo(customizer, backend, device=device)
    banner = json.dumps([c["props"].get("value") for c in demo.get_config_file()["components"]
                         if c["type"] == "html"])
    assert "Generation unavailable" in banner and "Analyze tab still works" in banner


def test_downloads_stay_under_the_cap_and_keep_each_pages_latest_result(dlib_backend, photos, tmp_path):
    handlers = DemoHandlers(ComposingCustomizer(), dlib_backend, downloads_root=tmp_path / "downloads")
    first = final(handlers.generate("two people", str(photos["obama1"]), width=256, height=256, steps=1,
                                    randomize_seed=False, seed=3, progress=NoProgress(),
                                    visitor=gr.Request(session_hash="page-a")))
    folder_a = Path(first.downloads[0]).parent
    one_result = sum(p.stat().st_size for p in folder_a.iterdir())
    handlers.downloads.max_bytes = int(2.5 * one_result)  # room for two results
    handlers.downloads.min_age_s = 0  # the results this test just made may go at once
    others = [Path(final(handlers.generate("two people", str(photos["obama1"]), width=256, height=256, steps=1,
                                           randomize_seed=False, seed=3, progress=NoProgress(),
                                           visitor=gr.Request(session_hash="page-b"))).downloads[0]).parent
              for k in range(3)]
    # page A still shows its result; page B's earlier results made room
    assert folder_a.exists() and [f.exists() for f in others] == [False, False, True]
    assert handlers.downloads.total_bytes() <= handlers.downloads.max_bytes


def test_on_zerogpu_a_generation_too_long_for_one_gpu_call_is_refused_in_plain_words(handlers, photos, monkeypatch):
    monkeypatch.delenv("SPACES_ZERO_GPU", raising=False)
    assert zerogpu.gpu_seconds_limit() is None  # a local GPU runs as long as it takes
    monkeypatch.setenv("SPACES_ZERO_GPU", "true")
    with pytest.raises(gr.Error, match="would need about 410 s on the GPU, more than the 300 s"):
        _generate(handlers, "two people", [photos["obama1"]], steps=50, candidates=4)
    assert handlers.customizer.calls == []
    out, _ = _generate(handlers, "two people", [photos["obama1"]], steps=2, candidates=4)
    assert len(handlers.customizer.calls) > 0 and out.image


# -- the page's own events --------------------------------------------------------------------------
def test_the_api_is_generate_analyze_compare_and_repair_only_with_the_handlers_parameters(dlib_backend):
    from umo_app.outputs import AnalyzeOutputs, CompareOutputs, GenerateOutputs, RepairOutputs

    demo = build_demo(ComposingCustomizer(), dlib_backend, device="cpu")
    api = demo.get_api_info()
    assert set(api["named_endpoints"]) == {"/generate", "/analyze", "/compare_methods", "/repair"}
    assert not api["unnamed_endpoints"]
    handlers = DemoHandlers(ComposingCustomizer(), dlib_backend)
    for name, handler, returns in (("/generate", handlers.generate, GenerateOutputs),
                                   ("/analyze", handlers.analyze, AnalyzeOutputs),
                                   ("/compare_methods", handlers.compare_methods, CompareOutputs),
                                   ("/repair", handlers.repair, RepairOutputs)):
        endpoint = api["named_endpoints"][name]
        names = [parameter["parameter_name"] for parameter in endpoint["parameters"]]
        # the names the handler shows (slots.per_slot: its slot lists as reference_N / face_crop_N)
        assert names == list(inspect.signature(handler).parameters)[:len(names)]
        assert names[names.index("reference_1"):][:SLOTS] == [f"reference_{n}" for n in range(1, SLOTS + 1)]
        # every output but the page's own state (the candidates' views); no status line
        assert len(endpoint["returns"]) == len(returns._fields) - (name == "/generate")
    # the page's events (its buttons, the status lines) call the same handlers, outside the API
    page_events = [dep for dep in demo.config["dependencies"] if dep["api_visibility"] == "private"]
    status_lines = ("umo-gen-status", "umo-ana-status", "umo-cmp-status", "umo-gen-repair-status",
                    "umo-ana-repair-status")
    status_ids = {component["id"] for component in demo.config["components"]
                  if component["props"].get("elem_id") in status_lines}
    assert len(status_ids) == 5 and sum(bool(status_ids & set(dep["outputs"])) for dep in page_events) >= 5
    # /compare_methods: the slots, then each method's image and name
    names = [parameter["parameter_name"] for parameter in api["named_endpoints"]["/compare_methods"]["parameters"]]
    assert names[SLOTS:] == [f"image_{n}" for n in range(1, 7)] + [f"name_{n}" for n in range(1, 7)]


def test_on_the_page_a_refusal_leaves_every_output_and_says_why_once(handlers, photos):
    from umo_app.handlers import on_the_page
    from umo_app.outputs import CROWD, WIDE, GenerateOutputs, laid_out

    page_generate = on_the_page(handlers.generate, GenerateOutputs, laid_out)
    refused = final(page_generate("   ", reference_1=str(photos["obama1"]), progress=NoProgress()))
    assert len(refused) == len(GenerateOutputs._fields) + 1
    assert all(value == gr.skip() for value in refused[:-1])
    assert "prompt is empty" in refused[-1] and 'role="alert"' in refused[-1]
    with pytest.raises(gr.Error, match="prompt is empty"):  # the API endpoint still raises it
        final(handlers.generate("   ", reference_1=str(photos["obama1"]), progress=NoProgress()))

    done = final(page_generate("two people", reference_1=str(photos["obama1"]), reference_2=str(photos["hopper"]),
                               width=768, height=384, steps=2, progress=NoProgress()))
    assert done[-1] == ""
    shown = GenerateOutputs(*done[:-1])
    # two faces: the heatmap fits beside the image, nothing needs the page's width
    assert Path(shown.heatmap["value"]).exists() and shown.heatmap["elem_classes"] == []
    assert shown.table == done[GenerateOutputs._fields.index("table")] and len(shown.table) == 2
    assert WIDE != CROWD


def test_a_crowd_takes_the_page_width_and_wide_heatmaps_the_column_width(handlers, photos):
    from umo_app.outputs import CROWD, TALL, WIDE, laid_out

    crowd = laid_out(handlers.analyze(str(photos["obama1"]), str(photos["hopper"]), image=str(photos["solvay"])))
    assert crowd.overlay["elem_classes"] == [WIDE, CROWD, TALL] and crowd.heatmap["elem_classes"] == [WIDE, CROWD]
    four = laid_out(handlers.analyze(*[str(photos[n]) for n in ("obama1", "biden", "hopper", "newton")],
                                        image=str(photos["obama2"])))
    assert four.heatmap["elem_classes"] == []  # one face: a narrow heatmap
    # a heatmap wider than the half panel it would share (320 CSS px, drawn at 2 pixels each) gets
    # the column's width, and so does the picture beside it
    wide = laid_out(_generate(handlers, "four people", [photos[n] for n in ("obama1", "biden", "hopper", "newton")],
                                 width=1024, height=1024)[0])
    with Image.open(wide.heatmap["value"]) as heatmap:
        assert heatmap.width > 2 * 320
    assert wide.heatmap["elem_classes"] == [WIDE] and wide.image["elem_classes"] == [WIDE]


def test_the_face_backend_banner_is_one_line_with_the_how_to_folded_away(photos):
    from umo_app.panels import backend_banner
    from umo_pipeline.faces import get_face_backend

    fallback = get_face_backend("auto", insightface_root="/nonexistent/umo-test-no-packs", download=False)
    assert fallback.name == "dlib" and fallback.fallback_reason
    banner = backend_banner(fallback)
    line, folded = banner.split("<details>")
    assert "Identity scores by dlib, not ArcFace" in line
    for how_to in ("unzip", "http", "UMO_INSIGHTFACE", "licen"):
        assert how_to not in line and how_to in folded.replace("&#x27;", "'").lower() or how_to not in line
    assert "<details open" not in banner and "unzip" in folded
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    assert "Identity analysis" in readme and "UMO_INSIGHTFACE_ROOT" in readme and "UMO_INSIGHTFACE_DOWNLOAD" in readme


# -- face repair ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def wrong_second_face(photos):
    """Obama, and Gauss where Hopper (Reference 2) should be: the composing double's picture."""
    return _composed(photos, "obama1", "gauss")


def test_repair_mends_the_wrong_face_with_its_reference_and_writes_its_files(dlib_backend, photos, wrong_second_face,
                                                                             tmp_path):
    from umo_app.outputs import identity_of, repair_offer
    from umo_pipeline import params, workflow
    from umo_pipeline.images import load_image

    # seed 3 repaints nothing, 4 paints an impostor (the astronaut), 5 paints Hopper: 5 must be kept
    customizer = ComposingCustomizer(impostor=load_image(photos["astronaut"]), impostor_seeds=[4],
                                     untouched_seeds=[3])
    handlers = DemoHandlers(customizer, dlib_backend, downloads_root=tmp_path / "downloads")
    refs = (str(photos["obama1"]), str(photos["hopper"]))
    analysed = handlers.analyze(*refs, image=str(wrong_second_face))
    assert [row[-1] for row in analysed.table] == ["matched", "not found"]
    # the panel offers both references, Reference 2 ticked: its face is the wrong one
    offer = repair_offer(identity_of(analysed.report))
    assert offer.panel["visible"] is True and offer.results["visible"] is False
    assert offer.references["choices"] == [("Reference 1 (matched)", 1), ("Reference 2 (not found)", 2)]
    assert offer.references["value"] == [2]

    progress = NoProgress()
    out = handlers.repair(str(wrong_second_face), *refs, references=offer.references["value"], candidates=3,
                          seed=3, progress=progress)
    # every repaint was conditioned on Hopper alone
    assert [seed for seed, _, _ in customizer.inpaints] == [3, 4, 5]
    assert all(len(given) == 1 and given[0].size == load_image(photos["hopper"]).size
               for _, _, given in customizer.inpaints)
    steps = customizer.inpaints[0][1].denoising_steps
    assert progress.updates[0] == (0, 3 * steps) and progress.updates[-1] == (3 * steps, 3 * steps)

    rows = {row[0]: row for row in out.table}
    assert rows["Reference 2"][-1] == "not found -> matched" and rows["Reference 1"][-1] == "matched"
    assert float(rows["Reference 2"][4]) > 5 and float(rows["Reference 2"][3]) > float(rows["Reference 2"][2])
    assert "**Kept:** Face 2 repaired with Reference 2 (seed 5, best of 3 candidates)" in out.summary
    assert "not found -&gt; matched" in out.summary
    # the repaired PNG is what the page shows, beside the image as given (the slider) and the heatmap
    assert [Path(p).name for p in out.downloads] == ["repaired.png", "report_repaired.json"]
    assert out.image == out.downloads[0] and out.slider[1] == out.image
    assert _size(out.slider[0]) == _size(out.image) == (768, 384) and Image.open(out.heatmap).format == "PNG"
    with Image.open(out.slider[0]) as before, Image.open(wrong_second_face) as given:
        assert before.tobytes() == given.convert("RGB").tobytes()
    assert all(Path(p).is_relative_to(handlers.downloads_root) for p in (*out.downloads, out.slider[0], out.heatmap))
    meta = workflow.read_png_metadata(out.image)
    assert json.loads(meta["repair"])["strength"] == params.STRENGTH.default and meta["kept"] == "Reference 2: seed 5"
    assert json.loads(Path(out.downloads[1]).read_text()) == json.loads(json.dumps(out.report))
    assert out.report["references"][1]["status_after"] == "matched" and out.report["settings"]["seeds"] == [3, 4, 5]


@pytest.mark.parametrize("case, words", [
    ("no faces", "No face was found in the image to repair"),
    ("empty slot", "Reference 3 is empty: add its photo"),
    ("reference without a face", "Reference 2 cannot be repaired: no face was found in its photo"),
    ("no face assigned", "Reference 2 cannot be repaired: no face in the image was assigned to it"),
    ("face too small", r"Face 1 \(Reference 1's face\) is 36 x 36 pixels, too small to repair"),
    ("over the upload limits", "The image to repair: the image has too many pixels"),
    ("nothing wrong", "Nothing to repair: every reference is matched already"),
    ("no image", "Add the image to repair"),
])
def test_repair_refusals_are_plain_messages_and_nothing_is_generated(dlib_backend, photos, tmp_path, case, words):
    customizer = ComposingCustomizer()
    handlers = DemoHandlers(customizer, dlib_backend, downloads_root=tmp_path)
    blank = tmp_path / "blank.png"
    Image.new("RGB", (400, 300), "white").save(blank)
    obama, hopper = str(photos["obama1"]), str(photos["hopper"])
    one_face = str(photos["obama2"])
    if case == "face too small":  # Obama's face at a tenth of its size: about 36 px across
        small = Image.open(one_face).convert("RGB")
        small.resize((small.width // 10, small.height // 10)).save(tmp_path / "small.png")
    if case == "over the upload limits":  # 400 megapixels of nothing: a few kB on disk
        Image.new("1", (20000, 20000)).save(tmp_path / "bomb.png")
    calls = {
        "no faces": dict(image=str(blank), reference_1=obama),
        "empty slot": dict(image=one_face, reference_1=obama, references=[3]),
        "reference without a face": dict(image=one_face, reference_1=obama, reference_2=str(blank), references=[2]),
        "no face assigned": dict(image=one_face, reference_1=obama, reference_2=hopper, references=[2]),
        "face too small": dict(image=str(tmp_path / "small.png"), reference_1=obama, references=[1]),
        "over the upload limits": dict(image=str(tmp_path / "bomb.png"), reference_1=obama),
        "nothing wrong": dict(image=one_face, reference_1=obama),
        "no image": dict(reference_1=obama),
    }
    with pytest.raises(gr.Error, match=words):
        handlers.repair(**calls[case], progress=NoProgress())
    assert customizer.inpaints == []


def test_without_a_model_repair_says_it_needs_one_and_the_analyze_tab_says_so(dlib_backend, photos, tmp_path):
    handlers = DemoHandlers("UMO-UNO weights are not available offline: FLUX.1-dev missing.", dlib_backend,
                            downloads_root=tmp_path)
    with pytest.raises(gr.Error, match="Repairing faces needs a generating model, and none is loaded here: UMO-UNO"):
        handlers.repair(str(photos["obama2"]), str(photos["obama1"]), progress=NoProgress())
    config, components = _page("UMO-UNO weights are not available offline.", dlib_backend)
    by_elem = {c["props"].get("elem_id"): c for c in components.values()}
    assert "umo-ana-repair" not in by_elem and "umo-gen-repair" in by_elem  # the API's components live there
    assert "Repairing a face needs a generating model" in by_elem["umo-ana-repair-unavailable"]["props"]["value"]
    config, components = _page(ComposingCustomizer(), dlib_backend)
    by_elem = {c["props"].get("elem_id"): c for c in components.values()}
    assert "umo-ana-repair-unavailable" not in by_elem
    # both panels wait for a result to offer references
    assert by_elem["umo-gen-repair"]["props"]["visible"] is False and by_elem["umo-ana-repair"]["props"]["visible"] is False


def test_on_the_page_a_repair_shows_its_results_and_a_refusal_leaves_them(dlib_backend, photos, wrong_second_face,
                                                                          tmp_path):
    from umo_app.handlers import on_the_page
    from umo_app.outputs import RepairOutputs, RepairShown, repair_laid_out

    handlers = DemoHandlers(ComposingCustomizer(), dlib_backend, downloads_root=tmp_path)
    page_repair = on_the_page(handlers.repair, RepairOutputs, repair_laid_out, RepairShown)
    refs = (str(photos["obama1"]), str(photos["hopper"]))
    refused = page_repair(str(wrong_second_face), *refs, references=[4], progress=NoProgress())
    assert len(refused) == len(RepairOutputs._fields) + len(RepairShown._fields) + 1
    assert all(value == gr.skip() for value in refused[:-1]) and "Reference 4 is empty" in refused[-1]
    done = page_repair(str(wrong_second_face), *refs, progress=NoProgress())
    shown = RepairOutputs(*done[:len(RepairOutputs._fields)])
    assert done[-1] == "" and done[-2]["visible"] is True
    assert Path(shown.image["value"]).name == "repaired.png" and [row[0] for row in shown.table] == [
        "Reference 1", "Reference 2"]


def test_a_generation_and_each_candidate_offer_their_own_references_to_repair(dlib_backend, photos, tmp_path):
    from umo_app.outputs import RepairOffer

    # seed 20 mixes the identities (Obama twice), seed 21 keeps both
    handlers = DemoHandlers(ComposingCustomizer(mixing_seeds={20}), dlib_backend, downloads_root=tmp_path)
    out, _ = _generate(handlers, "two people", [photos["obama1"], photos["hopper"]], seed=20, candidates=2)
    views = out.candidate_views
    assert [view["seed"] for view in views] == [21, 20]
    for index, ticked in ((0, []), (1, [1, 2])):
        shown = handlers.show_candidate_on_the_page(views, gr.SelectData(None, {"index": index, "value": None}))
        offer = RepairOffer(*shown[-len(RepairOffer._fields):])
        assert offer.references["value"] == ticked and offer.panel["visible"] is True


def test_off_spaces_the_repair_gpu_entry_point_is_a_plain_function():
    assert not hasattr(zerogpu.repair_on_gpu, "zerogpu")
