"""The one PNG writer's encoder (workflow.png): what it writes reads back in Pillow as the same pixels
and text, for every mode it takes, on real photos; the rest is left to Pillow."""

import io

import numpy as np
import pytest
from PIL import Image, ImageCms

from umo_pipeline.workflow import read_png_metadata, save_png
from umo_pipeline.workflow.png import encode_png

TEXT = {"prompt": "Zwei Freunde im Café, 東京", "seed": "42", "settings": '{"steps": 25}',
        "software": "umo_pipeline"}


@pytest.fixture(scope="module")
def photo(photos):
    return Image.open(photos["hopper"]).convert("RGB")


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "L", "LA"])
def test_pixels_and_text_read_back_as_written(photo, mode, tmp_path):
    picture = photo.convert(mode)
    if mode in ("RGBA", "LA"):
        alpha = np.tile(np.linspace(0, 255, picture.width, dtype=np.uint8), (picture.height, 1))
        picture.putalpha(Image.fromarray(alpha, mode="L"))
    path = tmp_path / "picture.png"
    save_png(picture, path, TEXT)
    with Image.open(path) as read:
        assert read.format == "PNG" and read.mode == mode and read.size == picture.size
        assert np.array_equal(np.asarray(read), np.asarray(picture))
    assert read_png_metadata(path) == TEXT  # Latin-1 as tEXt, the rest as UTF-8 iTXt


def test_the_file_is_about_as_small_as_pillows(photo):
    ours = encode_png(photo, level=1)
    pillows = io.BytesIO()
    photo.save(pillows, format="PNG", compress_level=1)
    assert len(ours) <= 1.15 * len(pillows.getvalue())


def test_other_pictures_are_left_to_pillow(photo, tmp_path):
    palette = photo.convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    profiled = photo.copy()
    profiled.info["icc_profile"] = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    for picture in (palette, photo.convert("1"), photo.convert("I;16"), profiled):
        assert encode_png(picture, TEXT) is None
        path = tmp_path / f"{picture.mode}.png"
        save_png(picture, path, TEXT)  # through Pillow: still written, with its text
        with Image.open(path) as read:
            assert np.array_equal(np.asarray(read), np.asarray(picture))
            assert read.info.get("icc_profile") == picture.info.get("icc_profile")
        assert read_png_metadata(path) == TEXT


def test_a_bad_text_key_is_refused(photo):
    with pytest.raises(ValueError, match="text key must be 1-79"):
        encode_png(photo, {"": "x"})
