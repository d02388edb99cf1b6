"""Each kind of upload the README promises, as a reference file: the library decodes it as a person
sees it (upright, transparency on white, 16 bits rescaled, first frame) and the face is found."""

import io

import numpy as np
import pytest
from PIL import Image

from umo_pipeline.analysis import analyze_reference, clear_reference_cache
from umo_pipeline.images import load_image


@pytest.fixture(scope="module")
def hopper(photos):
    return Image.open(photos["hopper"]).convert("RGB")


@pytest.fixture(scope="module")
def expected_box(dlib_backend, hopper):
    return np.array(dlib_backend.detect(hopper)[0].bbox)


def encode(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def sixteen_bit(hopper):
    return encode(Image.fromarray(np.asarray(hopper.convert("L"), dtype=np.uint16) * 257), "PNG")


def exif_rotated(hopper):
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    return encode(hopper.transpose(Image.Transpose.ROTATE_90), "JPEG", exif=exif.tobytes(), quality=95)


def transparent_with_hidden_colours(hopper):
    # The photo on a transparent frame whose hidden pixels are black: shown on white, it must load
    # as white around the photo, not black.
    canvas = Image.new("RGBA", (hopper.width + 200, hopper.height + 200), (0, 0, 0, 0))
    canvas.paste(hopper.convert("RGBA"), (100, 100))
    return encode(canvas, "PNG")


def animated(hopper):
    other = Image.new("RGB", hopper.size, (20, 20, 220))
    return encode(hopper, "GIF", save_all=True, append_images=[other], duration=100, loop=0)


@pytest.mark.parametrize("make, offset", [
    (sixteen_bit, 0), (exif_rotated, 0), (transparent_with_hidden_colours, 100), (animated, 0),
])
def test_reference_upload_is_decoded_as_seen_and_its_face_found(dlib_backend, hopper, expected_box, make, offset):
    clear_reference_cache()
    data = make(hopper)
    picture = load_image(data)
    reference = analyze_reference(data, dlib_backend)
    assert reference.face is not None and reference.n_faces == 1, make.__name__
    np.testing.assert_allclose(np.array(reference.face.bbox), expected_box + offset, atol=0.08 * hopper.width)
    if make is transparent_with_hidden_colours:
        assert picture.getpixel((10, 10)) == (255, 255, 255)
    if make is sixteen_bit:
        assert np.asarray(picture).mean() > 40 and np.asarray(picture).std() > 20, "not a white or flat picture"
