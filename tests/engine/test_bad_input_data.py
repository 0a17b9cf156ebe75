"""A bad training-data folder (issue 7) is refused in one sentence naming --train_data_dir and
what to do, before anything is written; images that train but not as the user may think
(squeezed, captions ignored) are said (tests/bad_input_helpers.py)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from trainer.errors import DataError

from tests.bad_input_helpers import IS_ROOT, refused


# --- the data folder ------------------------------------------------------------------------


def test_data_dir_missing(tiny_config, tmp_path):
    refused(tiny_config(train_data_dir=str(tmp_path / "nope")), DataError, "train_data_dir",
            str(tmp_path / "nope"), "does not exist")


def test_data_dir_empty(tiny_config, tmp_path):
    (tmp_path / "empty").mkdir()
    refused(tiny_config(train_data_dir=str(tmp_path / "empty")), DataError, "train_data_dir",
            "holds no images")


def test_data_dir_holds_no_images(tiny_config, tmp_path):
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "notes.txt").write_text("not an image")
    (folder / "sub.png").mkdir()  # a folder with an image name is not an image
    refused(tiny_config(train_data_dir=str(folder)), DataError, "train_data_dir", "holds no images",
            "PNG, JPEG")


def test_data_dir_is_a_file(tiny_config, tmp_path):
    (tmp_path / "file.png").write_bytes(b"x")
    refused(tiny_config(train_data_dir=str(tmp_path / "file.png")), DataError, "train_data_dir",
            "is a file, not a folder")


def test_data_dir_holding_only_broken_images_names_them(tiny_config, tmp_path):
    folder = tmp_path / "broken"
    folder.mkdir()
    (folder / "empty.png").write_bytes(b"")
    (folder / "text.jpg").write_text("hello")
    refused(tiny_config(train_data_dir=str(folder)), DataError, "train_data_dir",
            "None of the 2 image files", "empty.png", "text.jpg", "0 bytes")


def test_data_dir_unreadable_simulated(tiny_config, tmp_path, monkeypatch):
    # Tests run as root, where chmod 000 does not stop reads: simulate what a user gets.
    folder = tmp_path / "locked"
    folder.mkdir()
    real_scandir = os.scandir

    def scandir(path="."):
        if Path(path) == folder:
            raise PermissionError(13, "Permission denied", str(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    refused(tiny_config(train_data_dir=str(folder)), DataError, "train_data_dir",
            "cannot be read", "permission", "chmod")


@pytest.mark.skipif(IS_ROOT, reason="root reads a chmod 000 folder anyway; the simulated "
                                    "test above covers the message")
def test_data_dir_unreadable_for_real(tiny_config, tmp_path):
    folder = tmp_path / "locked"
    folder.mkdir()
    folder.chmod(0)
    try:
        refused(tiny_config(train_data_dir=str(folder)), DataError, "train_data_dir",
                "cannot be read")
    finally:
        folder.chmod(0o755)


def test_non_square_images_and_ignored_caption_files_are_said(tmp_path):
    from PIL import Image

    from trainer import data

    folder = tmp_path / "imgs"
    folder.mkdir()
    Image.new("RGB", (128, 64), (9, 9, 9)).save(folder / "wide.png")
    Image.new("RGB", (64, 66), (9, 9, 9)).save(folder / "nearly.png")  # within 5%: silent
    (folder / "wide.txt").write_text("a photo of a cat, kohya style caption")
    said: list[str] = []
    data.load_images(folder, 64, False, on_warning=lambda message, file: said.append(message))
    squeezed = [m for m in said if "not square" in m]
    assert len(squeezed) == 1 and "wide.png 128x64" in squeezed[0]
    assert "nearly.png" not in squeezed[0] and "--center_crop" in squeezed[0]
    captions = [m for m in said if "caption file" in m]
    assert len(captions) == 1 and "wide.txt" in captions[0]
    assert "--learnable_property" in captions[0]
    said.clear()
    data.load_images(folder, 64, True, on_warning=lambda message, file: said.append(message))
    # Cropped, not squeezed: said too, since the rest of the picture is never seen.
    (cropped,) = [m for m in said if "not square" in m]
    assert "wide.png" in cropped and "squeezed" not in cropped and "centre square" in cropped
