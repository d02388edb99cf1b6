"""load_image on real photos saved in every awkward form a user may upload."""

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from umo_pipeline.errors import InputError
from umo_pipeline.images import load_image, load_image_with_alpha


@pytest.fixture(scope="module")
def hopper(photos) -> Image.Image:
    return Image.open(photos["hopper"]).convert("RGB")


def _encode(image: Image.Image, fmt: str, **kwargs) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **kwargs)
    return buffer.getvalue()


def _mean_abs_diff(a: Image.Image, b: Image.Image) -> float:
    return float(np.abs(np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)).mean())


def test_paths_bytes_file_objects_and_pil_images_give_the_same_rgb(photos, hopper):
    from_path = load_image(photos["hopper"])
    from_str = load_image(str(photos["hopper"]))
    data = photos["hopper"].read_bytes()
    from_bytes = load_image(data)
    with open(photos["hopper"], "rb") as f:
        from_file = load_image(f)
    from_pil = load_image(Image.open(photos["hopper"]))
    for image in (from_path, from_str, from_bytes, from_file, from_pil):
        assert image.mode == "RGB" and image.size == hopper.size
        assert _mean_abs_diff(image, hopper) == 0


def test_exif_rotated_photo_comes_back_upright(hopper):
    # Orientation 6 = "rotate 90 degrees clockwise to display": store the photo turned the other way.
    stored = hopper.transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    exif[0x0112] = 6
    data = _encode(stored, "JPEG", exif=exif.tobytes(), quality=95)
    loaded = load_image(data, name="rotated.jpg")
    assert loaded.size == hopper.size
    assert _mean_abs_diff(loaded, hopper) < 3


def test_cmyk_jpeg(hopper):
    loaded = load_image(_encode(hopper.convert("CMYK"), "JPEG", quality=95))
    assert loaded.mode == "RGB" and _mean_abs_diff(loaded, hopper) < 4


def test_grayscale_and_1_bit(hopper):
    gray = hopper.convert("L")
    loaded = load_image(_encode(gray, "PNG"))
    assert loaded.mode == "RGB"
    assert _mean_abs_diff(loaded.convert("L"), gray) == 0
    assert load_image(_encode(hopper.convert("1"), "PNG")).mode == "RGB"


def test_16_bit_grayscale_is_rescaled_not_clipped(hopper):
    gray = np.asarray(hopper.convert("L"), dtype=np.uint16)
    wide = Image.fromarray(gray * 257)
    data = _encode(wide, "PNG")
    assert Image.open(io.BytesIO(data)).mode.startswith("I")
    loaded = load_image(data, name="deep.png")
    assert _mean_abs_diff(loaded.convert("L"), hopper.convert("L")) < 1


def test_transparent_pixels_become_white(hopper):
    rgba = hopper.convert("RGBA")
    alpha = Image.new("L", rgba.size, 255)
    alpha.paste(0, (0, 0, 50, 50))
    rgba.putalpha(alpha)
    loaded = load_image(_encode(rgba, "PNG"))
    pixels = np.asarray(loaded)
    assert (pixels[:50, :50] == 255).all()
    assert _mean_abs_diff(loaded.crop((60, 60, 300, 300)), hopper.crop((60, 60, 300, 300))) == 0


def test_palette_images_with_and_without_transparency(hopper):
    palette = hopper.convert("P", palette=Image.Palette.ADAPTIVE, colors=64)
    assert _mean_abs_diff(load_image(_encode(palette, "PNG")), hopper) < 12
    palette.info["transparency"] = palette.getpixel((0, 0))
    loaded = load_image(_encode(palette, "PNG", transparency=palette.getpixel((0, 0))))
    assert loaded.getpixel((0, 0)) == (255, 255, 255)


def test_the_alpha_channel_can_be_kept_beside_the_flattened_picture(hopper):
    rgba = hopper.convert("RGBA")
    alpha = Image.new("L", rgba.size, 255)
    alpha.paste(0, (0, 0, 50, 50))
    rgba.putalpha(alpha)
    picture, kept = load_image_with_alpha(_encode(rgba, "PNG"))
    assert picture.mode == "RGB" and np.array_equal(np.asarray(picture), np.asarray(load_image(_encode(rgba, "PNG"))))
    assert np.array_equal(np.asarray(kept), np.asarray(alpha))
    palette = hopper.convert("P", palette=Image.Palette.ADAPTIVE, colors=64)
    _, kept = load_image_with_alpha(_encode(palette, "PNG", transparency=palette.getpixel((0, 0))))
    assert kept.getpixel((0, 0)) == 0 and kept.getextrema() == (0, 255)
    # no transparency, or an alpha channel that hides nothing: no alpha
    assert load_image_with_alpha(hopper)[1] is None
    assert load_image_with_alpha(_encode(hopper.convert("RGBA"), "PNG"))[1] is None


@pytest.mark.parametrize("fmt", ["GIF", "WEBP"])
def test_animations_give_their_first_frame(fmt):
    red, blue = Image.new("RGB", (64, 48), (220, 20, 20)), Image.new("RGB", (64, 48), (20, 20, 220))
    data = _encode(red, fmt, save_all=True, append_images=[blue], duration=100, loop=0)
    assert getattr(Image.open(io.BytesIO(data)), "n_frames", 1) == 2
    r, g, b = load_image(data).getpixel((10, 10))
    assert r > 180 and b < 60


def test_not_an_image_names_the_file():
    with pytest.raises(InputError, match=r"^notes\.txt: not an image file"):
        load_image(b"these are my notes, not a photo", name="notes.txt")


def test_truncated_file(photos):
    data = photos["obama1"].read_bytes()
    with pytest.raises(InputError, match=r"^cut\.jpg: the image is truncated or damaged"):
        load_image(data[: len(data) // 2], name="cut.jpg")


def _png_claiming_size(width: int, height: int) -> bytes:
    """A tiny real PNG whose header claims width x height: a decompression bomb's first bytes."""
    data = bytearray(_encode(Image.new("L", (8, 8)), "PNG"))
    ihdr = bytearray(data[16:29])
    ihdr[0:8] = struct.pack(">II", width, height)
    data[16:29] = ihdr
    data[29:33] = struct.pack(">I", zlib.crc32(b"IHDR" + bytes(ihdr)))
    return bytes(data)


@pytest.mark.parametrize("side", [10_000, 30_000])  # over our limit; over Pillow's own bomb limit
def test_decompression_bomb_is_refused_before_decoding(side):
    with pytest.raises(InputError, match=r"^bomb\.png: the image (is too large|has too many pixels)"):
        load_image(_png_claiming_size(side, side), name="bomb.png")


def test_pixel_limit_is_configurable(photos):
    with pytest.raises(InputError, match=r"obama1\.jpg: the image is too large \(\d+ x \d+"):
        load_image(photos["obama1"], max_pixels=10_000)


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(InputError, match=r"^nope\.png: file not found"):
        load_image(tmp_path / "nope.png")
    with pytest.raises(InputError, match="not a file"):
        load_image(tmp_path)


def test_unsupported_source_type():
    with pytest.raises(InputError, match="expected an image file, got int"):
        load_image(42)
