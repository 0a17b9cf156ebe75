"""Show a preview PNG in any colour terminal: each cell paints two pixels with "▀".

The upper pixel is the foreground colour and the lower one the background, so a W x H cell
area holds a W x 2H picture. It works over SSH in every terminal with 256 colours or more
(Rich downgrades truecolour itself); no image protocol is needed.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

from rich.console import Console, ConsoleOptions, RenderResult
from rich.measure import Measurement
from rich.segment import Segment
from rich.style import Style


def resolve(path: str, base_dir: str, output_dir: str = "") -> Path:
    """Where a file named in an event lies on this machine. Relative paths, and paths under
    the run's output dir when that dir was moved or is mounted elsewhere, resolve against
    `base_dir` (the folder events.jsonl was read from)."""
    p = Path(path)
    base = Path(base_dir or ".")
    if not p.is_absolute():
        return base / p
    if not p.exists() and output_dir:
        try:
            return base / p.relative_to(output_dir)
        except ValueError:
            pass
    return p


def fit(size: tuple[int, int], width: int, height: int) -> tuple[int, int]:
    """Pixel size of an image of `size` scaled into width x (2*height) pixels, ratio kept."""
    w, h = size
    scale = min(width / w, (2 * height) / h)
    return max(1, int(w * scale)), max(2, int(h * scale) // 2 * 2)


class HalfBlocks:
    """A picture as rows of "▀" cells; renders straight to Segments (fast, ~1 ms)."""

    def __init__(self, rows: list[list[Style]]):
        self.rows = rows
        """One Style per cell: colour = upper pixel, bgcolor = lower pixel."""
        self.width = len(rows[0]) if rows else 0

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        for row in self.rows:
            yield from (Segment("▀", style) for style in row[: options.max_width])
            yield Segment.line()

    def __rich_measure__(self, console: Console, options: ConsoleOptions) -> Measurement:
        return Measurement(self.width, self.width)


def half_blocks(path: str, width: int, height: int) -> HalfBlocks | None:
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
def _render(path: str, _mtime: int, _size: int, width: int, height: int) -> HalfBlocks | None:
    try:
        from PIL import Image  # imported here: the text views never need it

        with Image.open(path) as img:
            img = img.convert("RGB")
            img = img.resize(fit(img.size, width, height), Image.Resampling.LANCZOS)
    except (OSError, ValueError):
        return None  # missing, half-written or not an image: the panel says so
    w, h = img.size
    pixels = img.load()
    return HalfBlocks([[Style(color=_hex(pixels[x, y]), bgcolor=_hex(pixels[x, y + 1]))
                        for x in range(w)] for y in range(0, h - 1, 2)])


def _hex(rgb: tuple[int, int, int]) -> str:
    return "#{:02x}{:02x}{:02x}".format(*rgb[:3])
