"""Face-crop references: the square around the face found for the slot's preview, with the
customizer's margin, is what the customizer receives; no second face detection; a reference without
a face is used whole, with a warning. Real photos, the real dlib backend, the composing test double
(which records the references it received)."""

import pytest
from PIL import Image

from tests.composing_customizer import ComposingCustomizer
from umo_app.handlers import DemoHandlers
from umo_app.layout import build_demo
from umo_app.panels import SLOTS
from umo_pipeline import workflow
from umo_pipeline.customizers.base import GenerationRequest
from umo_pipeline.faces.base import FaceBackend
from umo_pipeline.images import load_image


class CountingBackend(FaceBackend):
    """The real dlib backend under another name (so nothing comes from earlier tests' cache), counting
    the images it is asked to search for faces."""

    def __init__(self, inner):
        self.inner, self.name, self.thresholds, self.detections = inner, "dlib-counted", inner.thresholds, 0

    def _detect(self, image):
        self.detections += 1
        return self.inner._detect(image)


def _assert_square_around(box, bbox, image_size, margin):
    left, top, right, bottom = box
    width, height = image_size
    long_side = max(bbox[2] - bbox[0], bbox[3] - bbox[1])
    expected = min(long_side * (1 + 2 * margin), width, height)
    assert abs((right - left) - expected) <= 1 and right - left == bottom - top
    assert 0 <= left and 0 <= top and right <= width and bottom <= height
    # the whole face is inside, with the margin wherever the image has room for it
    assert left <= bbox[0] and top <= bbox[1] and right >= bbox[2] and bottom >= bbox[3]


@pytest.mark.parametrize("name, margin", [("obama1", 0.5), ("hopper", 0.5), ("astronaut", 0.35), ("newton", 0.5)])
def test_crop_box_is_a_square_with_the_margin_around_the_face(dlib_backend, photos, name, margin):
    image = load_image(photos[name])
    face = dlib_backend.detect(image)[0]
    box = workflow.face_crop_box(face.bbox, image.size, margin)
    _assert_square_around(box, face.bbox, image.size, margin)
    # with room on every side, the face sits in the middle of the crop
    centre = ((box[0] + box[2]) / 2, (box[1] + box[3]) / 2)
    assert abs(centre[0] - (face.bbox[0] + face.bbox[2]) / 2) <= 1
    assert abs(centre[1] - (face.bbox[1] + face.bbox[3]) / 2) <= 1


def test_crop_box_near_an_edge_moves_inside_and_never_outgrows_the_image(dlib_backend, photos):
    # Obama's face with only a few pixels of photo to its left: the square shifts right instead
    photo = load_image(photos["obama1"])
    edge = photo.crop((340, 0, photo.width, photo.height))
    face = dlib_backend.detect(edge)[0]
    box = workflow.face_crop_box(face.bbox, edge.size, 0.5)
    assert box[0] == 0
    _assert_square_around(box, face.bbox, edge.size, 0.5)
    # Newton's portrait is 432 px tall: a margin of 1.5 x the face would need 680 px
    newton = load_image(photos["newton"])
    face = dlib_backend.detect(newton)[0]
    box = workflow.face_crop_box(face.bbox, newton.size, 1.5)
    assert box[3] - box[1] == newton.height and box[1] == 0
    _assert_square_around(box, face.bbox, newton.size, 1.5)


def test_the_crop_is_what_the_customizer_receives_without_a_second_detection(dlib_backend, photos, tmp_path):
    backend = CountingBackend(dlib_backend)
    customizer = ComposingCustomizer()
    handlers = DemoHandlers(customizer, backend, downloads_root=tmp_path)
    preview, note = handlers.preview_reference(0, str(photos["obama1"]), face_crop=True)
    handlers.preview_reference(1, str(photos["hopper"]))
    assert backend.detections == 2 and "will receive this crop" in note

    *_, outputs = handlers.generate("two people", reference_1=str(photos["obama1"]),
                                    reference_2=str(photos["hopper"]), width=768, height=384, steps=1, seed=3,
                                    randomize_seed=False, face_crop_1=True, progress=lambda *a, **k: None)
    # the references' faces came from the previews' detections: only the output was searched
    assert backend.detections == 3
    obama, hopper = load_image(photos["obama1"]), load_image(photos["hopper"])
    face = workflow.load_reference(photos["obama1"], "Reference 1", backend)[1].face
    box = workflow.face_crop_box(face.bbox, obama.size, customizer.face_crop_margin)
    received = customizer.received
    assert received[0].size == (box[2] - box[0], box[3] - box[1])
    assert received[0].tobytes() == obama.crop(box).tobytes()
    assert received[1].tobytes() == hopper.tobytes()  # no crop asked for: the whole photo
    # the slot's preview is that same crop, shrunk
    assert preview.size == (workflow.PREVIEW_SIDE, workflow.PREVIEW_SIDE)
    expected = obama.crop(box).resize(preview.size)
    assert max(abs(a - b) for a, b in zip(preview.getpixel((128, 128)), expected.getpixel((128, 128)))) <= 2
    # and the analysis still finds both identities in the output
    assert [row[-1] for row in outputs[5]] == ["matched", "matched"]


def test_a_reference_without_a_face_keeps_the_whole_image_with_a_warning(dlib_backend, photos, tmp_path):
    blank = tmp_path / "sky.png"
    Image.new("RGB", (320, 240), (120, 170, 230)).save(blank)
    customizer = ComposingCustomizer()
    handlers = DemoHandlers(customizer, dlib_backend, downloads_root=tmp_path)
    preview, note = handlers.preview_reference(1, str(blank), face_crop=True)
    assert "No face found" in note and "whole image will be used" in note
    assert preview.size == (256, 192)

    with pytest.warns(UserWarning, match="Reference 2: no face found, so the whole image was used"):
        *_, outputs = handlers.generate("two people", reference_1=str(photos["obama1"]), reference_2=str(blank),
                                        width=768, height=384, steps=1, seed=3, randomize_seed=False,
                                        face_crop_1=True, face_crop_2=True, progress=lambda *a, **k: None)
    assert customizer.received[1].size == (320, 240)
    report = outputs[7]
    assert any("whole image was used instead of a face crop" in note for note in report["notes"])

    request = GenerationRequest(prompt="x", width=512, height=256, steps=1)
    result = workflow.generate_and_analyze(customizer, dlib_backend, request, [Image.open(blank)], face_crops=[True])
    assert any("Reference 1: no face found" in note for note in result.notes)


def test_face_crop_choices_must_match_the_references(dlib_backend, photos):
    with pytest.raises(Exception, match="2 face-crop choices given for 1 references"):
        workflow.prepare(ComposingCustomizer(), dlib_backend, GenerationRequest(prompt="x", width=512, height=256),
                         [load_image(photos["obama1"])], face_crops=[True, False])


def test_every_generation_slot_has_a_face_crop_checkbox_off_by_default(dlib_backend):
    config = build_demo(ComposingCustomizer(), dlib_backend, device="cpu").get_config_file()
    boxes = [c for c in config["components"] if str(c["props"].get("elem_id", "")).endswith("-crop")]
    assert [c["props"]["elem_id"] for c in boxes] == [f"umo-gen-ref-{n}-crop" for n in range(1, SLOTS + 1)]
    assert all(c["props"]["value"] is False and c["props"]["label"] == "Use face crop" for c in boxes)
