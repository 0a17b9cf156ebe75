"""Nothing is silently cut to fit what the model sees (issue 15, extra kind c): with
--center_crop a non-square image trains on its centre square only, which dropped the rest of a
4000x1000 banner without a word (the squeeze without --center_crop was already said)."""

from __future__ import annotations

from PIL import Image

from trainer import data


def test_center_crop_names_the_images_it_cuts(tmp_path):
    folder = tmp_path / "imgs"
    folder.mkdir()
    Image.new("RGB", (256, 64), (9, 9, 9)).save(folder / "banner.png")
    Image.new("RGB", (64, 66), (9, 9, 9)).save(folder / "nearly.png")  # within 5%: silent
    Image.new("RGB", (64, 64), (9, 9, 9)).save(folder / "square.png")
    said: list[str] = []
    loaded = data.load_images(folder, 64, True, on_warning=lambda message, f: said.append(message))
    assert all(img.size == (64, 64) for img in loaded.images)
    (cut,) = [m for m in said if "not square" in m]
    assert "banner.png 256x64" in cut and "nearly.png" not in cut and "square.png" not in cut
    assert "--center_crop trains on each one's centre square only" in cut
    assert "squeezed" not in cut
