"""Bad and unusual images (issue 7): skip the broken ones with a warning naming each file and
go on; convert every odd mode to plain RGB correctly; refuse decompression bombs; never hang
on a symlink loop. Only when no image survives does a run stop (DataError, exit code 2).
"""

from __future__ import annotations

import io
import os
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from trainer import data
from trainer.errors import DataError
from trainer.preflight import preflight

from tests.helpers import make_config


def png_bytes(img: Image.Image) -> bytes:
    buffer = io.BytesIO()
    img.save(buffer, "PNG")
    return buffer.getvalue()


def good(folder: Path, name: str = "good.png", colour=(10, 200, 30), size=64) -> Path:
    path = folder / name
    Image.new("RGB", (size, size), colour).save(path)
    return path


def fake_png_header(width: int, height: int) -> bytes:
    """A tiny file whose PNG header claims width x height pixels (a decompression bomb)."""
    def chunk(kind: bytes, payload: bytes) -> bytes:
        crc = zlib.crc32(kind + payload) & 0xFFFFFFFF
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", crc)
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(b"\x00" * 16)) + chunk(b"IEND", b""))


def load(folder: Path, resolution: int = 64):
    warnings: list[tuple[str, str]] = []
    result = data.load_images(folder, resolution, False,
                              on_warning=lambda msg, f: warnings.append((msg, f)))
    return result, warnings


# --- broken files: skipped, each named, the rest used ----------------------------------------


@pytest.fixture
def mixed_folder(tmp_path) -> Path:
    folder = tmp_path / "mixed"
    folder.mkdir()
    good(folder, "a-good.png")
    good(folder, "b-good.jpg", (200, 10, 10))
    whole = png_bytes(Image.new("RGB", (64, 64), (1, 2, 3)))
    (folder / "truncated.png").write_bytes(whole[: len(whole) // 2])
    (folder / "corrupt.png").write_bytes(whole[:16] + os.urandom(200))
    (folder / "notes.jpg").write_text("this is a text file with an image extension")
    (folder / "zero.png").write_bytes(b"")
    (folder / "readme.txt").write_text("ignored: not an image name")
    return folder


BROKEN = {"truncated.png": "corrupt or truncated", "corrupt.png": "",
          "notes.jpg": "not an image PIL can read", "zero.png": "empty (0 bytes)"}


def test_broken_files_are_skipped_with_a_warning_naming_each(mixed_folder):
    result, warnings = load(mixed_folder)
    assert [p.name for p in result.paths] == ["a-good.png", "b-good.jpg"]
    assert len(result.images) == 2 and all(i.size == (64, 64) for i in result.images)
    by_file = {Path(f).name: msg for msg, f in warnings}
    assert set(by_file) == set(BROKEN)
    for name, words in BROKEN.items():
        message = by_file[name]
        assert message.startswith(f"Skipped {name}: ") and words in message
        assert "\n" not in message and message.endswith(".")


def test_a_run_reports_skipped_images_as_warning_events(mixed_folder, tiny_model_dir,
                                                        tmp_path):
    from trainer import train

    small = Image.new("RGB", (20, 30), (5, 5, 5))
    small.save(mixed_folder / "c-small.png")
    events: list = []
    config = make_config(tiny_model_dir, mixed_folder, tmp_path, max_train_steps=1,
                         save_steps=0, checkpointing_steps=0, dvar_eval_every=0)
    result = train(config, emit=events.append)
    assert result.reason == "max_steps"
    warned = {Path(e.file).name: e.message for e in events if e.type == "warning" and e.file}
    assert set(BROKEN) <= set(warned)
    assert "upscaled" in warned["c-small.png"] and "20x30" in warned["c-small.png"]
    started = next(e for e in events if e.type == "run_started")
    assert started.dataset["n_images"] == 3


def test_no_surviving_image_is_a_data_error_naming_the_files(tmp_path):
    folder = tmp_path / "all-bad"
    folder.mkdir()
    (folder / "zero.png").write_bytes(b"")
    (folder / "text.jpg").write_text("nope")
    with pytest.raises(DataError) as info:
        load(folder)
    message = str(info.value)
    assert info.value.field == "train_data_dir" and "\n" not in message
    assert "None of the 2 image files" in message and "zero.png" in message
    assert "text.jpg" in message


def test_preflight_refuses_a_folder_of_broken_images_before_writing(tmp_path, tiny_model_dir):
    folder = tmp_path / "all-bad"
    folder.mkdir()
    for i in range(5):
        (folder / f"img{i}.png").write_bytes(b"")
    config = make_config(tiny_model_dir, folder, tmp_path)
    with pytest.raises(DataError, match=r"None of the 5 image files .* and 2 more"):
        preflight(config)
    assert not config.output_path.exists()


def test_unreadable_file_is_skipped(tmp_path, monkeypatch):
    folder = tmp_path / "perm"
    folder.mkdir()
    good(folder)
    locked = good(folder, "locked.png")
    # chmod 000 does not stop root (the tests run as root): make opening it fail the same way.
    real_open = Image.open

    def open_(fp, *args, **kwargs):
        if Path(fp) == locked:
            raise PermissionError(13, "Permission denied", str(fp))
        return real_open(fp, *args, **kwargs)

    monkeypatch.setattr(Image, "open", open_)
    result, warnings = load(folder)
    assert [p.name for p in result.paths] == ["good.png"]
    message = ("Skipped locked.png: it cannot be read (Permission denied); fix its permissions "
               "or remove it.")
    assert warnings == [(message, str(locked))]


# --- odd but valid images: converted correctly -------------------------------------------------


def test_palette_image(tmp_path):
    img = Image.new("P", (64, 64), 1)
    img.putpalette([0, 0, 0, 30, 60, 90] + [0] * 762)
    img.save(tmp_path / "pal.png")
    out = data.open_rgb(tmp_path / "pal.png")
    assert out.mode == "RGB" and out.getpixel((5, 5)) == (30, 60, 90)


def test_palette_with_transparency_goes_on_white(tmp_path):
    img = Image.new("P", (64, 64), 1)
    img.putpalette([0, 0, 0, 0, 0, 255] + [0] * 762)
    img.putpixel((0, 0), 0)
    img.save(tmp_path / "ptrans.png", transparency=1)
    out = data.open_rgb(tmp_path / "ptrans.png")
    assert out.getpixel((10, 10)) == (255, 255, 255)  # transparent index -> white
    assert out.getpixel((0, 0)) == (0, 0, 0)


def test_greyscale_image(tmp_path):
    Image.new("L", (64, 64), 77).save(tmp_path / "grey.png")
    out = data.open_rgb(tmp_path / "grey.png")
    assert out.mode == "RGB" and out.getpixel((3, 3)) == (77, 77, 77)


def test_sixteen_bit_image_is_scaled_not_clipped(tmp_path):
    arr = np.zeros((64, 64), dtype=np.uint16)
    arr[:, :32] = 65535
    arr[:, 32:] = 32896  # 128/255 of full scale
    Image.fromarray(arr).save(tmp_path / "g16.png")
    assert Image.open(tmp_path / "g16.png").mode.startswith("I")
    out = np.asarray(data.open_rgb(tmp_path / "g16.png"))
    assert out[0, 0].tolist() == [255, 255, 255]
    assert out[0, 40].tolist() == [128, 128, 128]


def test_cmyk_jpeg(tmp_path):
    Image.new("CMYK", (64, 64), (0, 255, 255, 0)).save(tmp_path / "cmyk.jpg", quality=95)
    out = np.asarray(data.open_rgb(tmp_path / "cmyk.jpg")).astype(int)
    assert np.abs(out[32, 32] - [255, 0, 0]).max() <= 6  # pure red, within JPEG error


def test_transparent_png_is_composited_on_white(tmp_path):
    img = Image.new("RGBA", (64, 64), (255, 0, 0, 0))  # fully transparent red
    for x in range(32):
        for y in range(64):
            img.putpixel((x, y), (0, 0, 255, 255) if y < 32 else (0, 0, 0, 128))
    img.save(tmp_path / "rgba.png")
    out = data.open_rgb(tmp_path / "rgba.png")
    assert out.mode == "RGB"
    assert out.getpixel((48, 10)) == (255, 255, 255)  # transparent -> white, not red/black
    assert out.getpixel((10, 10)) == (0, 0, 255)  # opaque stays
    r, g, b = out.getpixel((10, 48))  # half-transparent black over white -> mid grey
    assert abs(r - 127) <= 1 and r == g == b


def test_greyscale_with_alpha(tmp_path):
    Image.new("LA", (64, 64), (0, 0)).save(tmp_path / "la.png")
    assert data.open_rgb(tmp_path / "la.png").getpixel((1, 1)) == (255, 255, 255)


# --- transparency is decided from the file, not from its mode name (issue 15, item 4) --------

TRANSPARENT_PNGS = {
    # mode: (image whose pixel (1, 0) is the transparent key and (0, 0) is opaque, key,
    #        the RGB expected at (0, 0))
    "L": (Image.fromarray(np.array([[200, 0]], dtype=np.uint8)), 0, (200, 200, 200)),
    "1": (Image.fromarray(np.array([[True, False]])), 0, (255, 255, 255)),
    "1 key white": (Image.fromarray(np.array([[False, True]])), 1, (0, 0, 0)),
    "I;16": (Image.fromarray(np.array([[65535, 1000]], dtype=np.uint16)), 1000,
             (255, 255, 255)),
    "RGB": (Image.fromarray(np.array([[[10, 20, 30], [0, 0, 0]]], dtype=np.uint8)),
            (0, 0, 0), (10, 20, 30)),
}


@pytest.mark.parametrize("name", TRANSPARENT_PNGS)
def test_a_trns_transparent_level_goes_on_white_in_every_png_colour_type(tmp_path, name):
    """PNG optimisers write greyscale (1, 8, 16 bit) and RGB images with a tRNS key: the key
    pixels are transparent and must train on white, like RGBA, never on black."""
    img, key, opaque = TRANSPARENT_PNGS[name]
    img.save(tmp_path / "t.png", transparency=key)
    with Image.open(tmp_path / "t.png") as reopened:
        assert "transparency" in reopened.info  # the file really carries tRNS
    out = data.open_rgb(tmp_path / "t.png")
    assert out.mode == "RGB"
    assert out.getpixel((1, 0)) == (255, 255, 255)
    assert out.getpixel((0, 0)) == opaque


def _every_mode_case(mode: str) -> tuple[Image.Image, bool]:
    """A 2x1 image of `mode` whose pixel (1, 0) is transparent when the mode can say so
    (an alpha band, or an info["transparency"] key); returns (image, has_transparency)."""
    img = Image.new(mode, (2, 1))
    bands = img.getbands()
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        alpha = bands.index("a" if mode in ("RGBa", "La") else "A")
        opaque = tuple(255 if i == alpha else 40 for i in range(len(bands)))
        img.putpixel((0, 0), opaque)
        return img, True  # (1, 0) is all zeros: alpha 0
    if mode in ("LAB", "HSV", "YCbCr", "CMYK"):
        return img, False  # no way to mark a pixel transparent in these modes
    if mode == "1":
        img.putpixel((1, 0), 1)  # the key is the set (white) level; (0, 0) stays black
        img.info["transparency"] = 1
        return img, True
    if len(bands) == 1:
        img.putpixel((0, 0), 40)
        img.info["transparency"] = 0
        return img, True
    img.putpixel((0, 0), (40,) * len(bands))
    img.info["transparency"] = (0, 0, 0)
    return img, True


@pytest.mark.parametrize("mode", Image.MODES)
def test_every_pil_mode_becomes_rgb_with_its_transparency_on_white(mode):
    img, transparent = _every_mode_case(mode)
    out = data._to_rgb(img)
    assert out.mode == "RGB" and out.size == img.size
    if transparent:
        assert out.getpixel((1, 0)) == (255, 255, 255), mode
        assert out.getpixel((0, 0)) != (255, 255, 255), mode
    else:
        plain = Image.new(mode, (2, 1)).convert("RGB")
        assert out.getpixel((1, 0)) == plain.getpixel((1, 0)), mode


def test_a_transparency_key_that_no_pixel_has_changes_nothing(tmp_path):
    Image.new("L", (4, 4), 90).save(tmp_path / "k.png", transparency=3)
    assert data.open_rgb(tmp_path / "k.png").getpixel((2, 2)) == (90, 90, 90)


def test_exif_rotated_jpeg_is_turned_upright(tmp_path):
    # Stored 80 wide x 40 tall, left half white; EXIF orientation 6 = rotate 90 deg clockwise
    # to display, so the upright image is 40 wide x 80 tall with the white half on top.
    img = Image.new("RGB", (80, 40), (0, 0, 0))
    img.paste((255, 255, 255), (0, 0, 40, 40))
    exif = img.getexif()
    exif[0x0112] = 6
    img.save(tmp_path / "rotated.jpg", exif=exif.tobytes(), quality=95)
    out = data.open_rgb(tmp_path / "rotated.jpg")
    assert out.size == (40, 80)
    assert min(out.getpixel((20, 10))) > 240  # top: white
    assert max(out.getpixel((20, 70))) < 15  # bottom: black


def test_small_image_is_upscaled_with_a_warning(tmp_path):
    folder = tmp_path / "small"
    folder.mkdir()
    good(folder, "tiny.png", size=16)
    result, warnings = load(folder, resolution=64)
    assert result.images[0].size == (64, 64)
    message = "tiny.png is 16x16, smaller than 64; it was upscaled and may look soft."
    assert warnings == [(message, str(folder / "tiny.png"))]


# --- hostile files ----------------------------------------------------------------------------


def test_decompression_bomb_header_is_refused_without_decoding(tmp_path):
    folder = tmp_path / "bomb"
    folder.mkdir()
    (folder / "bomb.png").write_bytes(fake_png_header(100_000, 100_000))
    good(folder)
    result, warnings = load(folder)
    assert [p.name for p in result.paths] == ["good.png"]
    ((message, file),) = warnings
    assert Path(file).name == "bomb.png"
    assert "Skipped bomb.png" in message and "10,000,000,000 pixels" in message
    assert "decompression bomb" in message and "downscale it first" in message


def test_image_over_a_lowered_pixel_limit_is_refused(tmp_path, monkeypatch):
    big = good(tmp_path, "big.png", size=200)  # 40,000 pixels: cheap to make
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 25_000)
    with pytest.raises(ValueError, match=r"it is 200x200 pixels, more than the 25,000 pixels"):
        data.open_rgb(big)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1_000)  # over 2x: PIL's own error path
    with pytest.raises(ValueError, match=r"40,000 pixels, more than the 1,000 pixels"):
        data.open_rgb(big)


def test_symlink_loops_in_the_data_dir(tmp_path):
    folder = tmp_path / "loops"
    folder.mkdir()
    good(folder)
    (folder / "again").symlink_to(folder)  # a folder loop: never entered
    (folder / "sub").mkdir()
    (folder / "sub" / "up").symlink_to(folder)
    (folder / "self.png").symlink_to(folder / "self.png")  # a file link to itself
    (folder / "dangling.jpg").symlink_to(folder / "gone.jpg")
    (folder / "linked.png").symlink_to(folder / "good.png")  # a good link is used
    result, warnings = load(folder)
    assert [p.name for p in result.paths] == ["good.png", "linked.png"]
    by_file = {Path(f).name: msg for msg, f in warnings}
    assert set(by_file) == {"self.png", "dangling.jpg"}
    assert "cannot be read" in by_file["self.png"]
