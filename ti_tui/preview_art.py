"""Show a preview PNG in any colour terminal: each cell paints two pixels with "▀".

The upper pixel is the foreground colour and the lower one the background, so a W x H cell
area holds a W x 2H picture. It works over SSH in every terminal with 256 colours or more
(Rich downgrades truecolour itself); no image protocol is needed.
"""

from __future__ import annotations

import os
from functools import lru_cache

from rich.style import Style
from rich.text import Text


def fit(size: tuple[int, int], width: int, height: int) -> tuple[int, int]:
    """Pixel size of an image of `size` scaled into width x (2*height) pixels, ratio kept."""
    w, h = size
    scale = min(width / w, (2 * height) / h)
    return max(1, int(w * scale)), max(2, int(h * scale) // 2 * 2)


def half_blocks(path: str, width: int, height: int) -> Text | None:
    """The picture at `path` in at most width x height cells, or None if it cannot be read.

    Cached on the file's size and modification time, so the dashboard can ask every frame.
    """
    if width < 1 or height < 1:
        return None
    try:
        info = os.stat(path)
    except OSError:
        return None
    return _render(path, info.st_mtime_ns, info.st_size, width, height)


@lru_cache(maxsize=8)
def _render(path: str, _mtime: int, _size: int, width: int, height: int) -> Text | None:
    try:
        from PIL import Image  # imported here: the text views never need it

        with Image.open(path) as img:
            img = img.convert("RGB")
            img = img.resize(fit(img.size, width, height), Image.Resampling.LANCZOS)
    except (OSError, ValueError):
        return None  # missing, half-written or not an image: the panel says so
    w, h = img.size
    pixels = img.load()
    text = Text(no_wrap=True, end="")
    for y in range(0, h - 1, 2):
        if y:
            text.append("\n")
        for x in range(w):
            top, bottom = pixels[x, y], pixels[x, y + 1]
            text.append("▀", Style(color=_hex(top), bgcolor=_hex(bottom)))
    return text


def _hex(rgb: tuple[int, int, int]) -> str:
    return "#{:02x}{:02x}{:02x}".format(*rgb[:3])
