"""Line charts (and the progress bar) for the dashboard, drawn by plotext, handed to Rich.

plotext draws braille lines with real axes and ticks, which beats hand-drawn characters. It
keeps one global figure, so every chart starts with `figure.clear()`, sets its own size and
theme, and runs under a lock (the Textual app and a headless view could render from two
threads). Its ANSI output becomes Rich Text via `Text.from_ansi`, so a colourless terminal
simply gets it without colours.

Points are downsampled to about two per column (a braille cell is two dots wide) before
plotting: a chart costs the same at step 100 as at step 100,000.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass

from rich.text import Text

_LOCK = threading.Lock()
_Y_LABEL_WIDTH = 7
"""Columns plotext needs, roughly, for one y axis with its tick labels."""


@dataclass(frozen=True)
class Line:
    """One series to draw."""

    xs: Sequence[float]
    """Positions on the x axis (steps)."""
    ys: Sequence[float]
    """Values, one per x."""
    color: str
    """A plotext colour name (gray, cyan, magenta+, ...)."""
    side: str = "left"
    """The y axis it is read against: "left" or "right" (plotext's yside)."""
    """Which y axis it is read against: left or right."""
    scatter: bool = False
    """Unconnected dots, sampled rather than averaged: a noisy raw series stays faint and
    keeps its spread, and lines drawn over it stay readable."""


def downsample(xs: Sequence[float], ys: Sequence[float], buckets: int,
               sample: bool = False) -> tuple[list[float], list[float]]:
    """At most `buckets` + 1 points: each bucket's mean (or, with `sample`, its middle point)."""
    n = len(xs)
    if n <= buckets or buckets <= 0:
        return list(xs), list(ys)
    out_x: list[float] = []
    out_y: list[float] = []
    for b in range(buckets):
        lo, hi = b * n // buckets, (b + 1) * n // buckets
        if hi <= lo:
            continue
        mid = (lo + hi - 1) // 2
        out_x.append(xs[mid])
        out_y.append(ys[mid] if sample else sum(ys[lo:hi]) / (hi - lo))
    # The newest point is the one people read (is the ratio under the threshold yet?): keep it.
    out_x.append(xs[-1])
    out_y.append(ys[-1])
    return out_x, out_y


def nice_ticks(lo: float, hi: float, count: int) -> list[float]:
    """About `count` round tick positions (1, 2 or 5 times a power of ten) within [lo, hi]."""
    span = hi - lo
    if span <= 0 or count < 1:
        return [lo]
    raw = span / count
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    first = math.ceil(lo / step) * step
    ticks = []
    value = first
    while value <= hi + step * 1e-9:
        ticks.append(round(value, 12))
        value += step
    return ticks


def _label(value: float) -> str:
    """Short tick text: 1200 -> '1.2k', 0.5 -> '0.5'."""
    if abs(value) >= 10000:
        return f"{value / 1000:.0f}k"
    if abs(value) >= 1000:
        return f"{value / 1000:.1f}k".replace(".0k", "k")
    return f"{value:g}"


def flat_range(ys: Sequence[float]) -> tuple[float, float, float] | None:
    """(low, value, high) around a series whose finite values are all equal (one point, or a
    flat line): 10% of the value either side (0.1 around zero), so the axis labels say the
    value. None when the values differ (plotext's own axis is right) or there are none."""
    finite = [y for y in ys if math.isfinite(y)]
    if not finite or max(finite) - min(finite) > 1e-12 * max(1.0, abs(finite[0])):
        return None
    value = finite[0]
    pad = abs(value) * 0.1 or 0.1
    return value - pad, value, value + pad


def chart(lines: Sequence[Line], width: int, height: int, *,
          xlim: tuple[float, float] | None = None,
          ylim: tuple[float | None, float | None] | None = None,
          hline: tuple[float, str] | None = None,
          yticks: Sequence[float] | None = None) -> Text:
    """A width x height chart of `lines` as Rich Text (an empty Text if it cannot fit).

    `hline` is (y, colour): a horizontal reference line on the left axis (a threshold);
    `yticks` pins the left axis labels (plotext's own land on the nearest row, off by a bit).
    """
    if width < 16 or height < 4 or not any(len(line.xs) for line in lines):
        return Text("")
    import plotext as plt  # imported here: `ti-tui watch` in plain-text mode never needs it

    right = any(line.side == "right" for line in lines)
    canvas_cols = max(4, width - _Y_LABEL_WIDTH * (2 if right else 1) - 2)
    all_x = [x for line in lines for x in line.xs]
    x0, x1 = xlim if xlim else (min(all_x), max(all_x))
    if x1 <= x0:
        x1 = x0 + 1
    with _LOCK:
        fig = plt.figure
        fig.clear()
        plt.terminal.limit(False, False)  # never clamp to the real terminal: we own the size
        fig.plot_size(width, height)
        fig.theme("simple")
        fig.legend(active=False)
        for line in lines:
            xs, ys = downsample(line.xs, line.ys, canvas_cols * 2, line.scatter)
            marker = plt.marker("braille", pixel=(line.color, None))
            signal = fig.signal(xs, ys, marker=marker, yside=line.side)
            fig.draw(signal if line.scatter else signal.lines())
        if hline is not None:
            xs = [x0, x1]
            marker = plt.marker("braille", pixel=(hline[1], None))
            fig.draw(fig.signal(xs, [hline[0]] * 2, marker=marker).lines())
        ticks = [t for t in nice_ticks(x0, x1, max(3, canvas_cols // 10)) if x0 <= t <= x1]
        fig.ruler("x").lim(x0, x1).ticks(ticks, [_label(t) for t in ticks])
        if ylim is not None:
            fig.ruler("y", "left").lim(*ylim)
        for side in ("left", "right"):
            # One point, or a series that never moves: plotext would draw a -1..1 axis around
            # it (seen on a resumed run's first update); frame the value itself instead.
            flat = None if side == "left" and ylim is not None else flat_range(
                [y for line in lines if line.side == side for y in line.ys])
            if flat is not None:
                fig.ruler("y", side).lim(flat[0], flat[2])
                if side == "right" or yticks is None:
                    fig.ruler("y", side).ticks(list(flat), [f"{t:.3g}" for t in flat])
        if yticks is not None:
            fig.ruler("y", "left").ticks(list(yticks), [_label(t) for t in yticks])
        ansi = fig.build().string()
    return Text.from_ansi(ansi.rstrip("\n"), no_wrap=True, end="")


def bar(fraction: float, width: int, style: str) -> Text:
    """A progress bar line: heavy rules, the done part coloured, half cells for precision."""
    halves = round(max(0.0, min(1.0, fraction)) * width * 2)
    full, half = divmod(halves, 2)
    text = Text("━" * full, style, no_wrap=True)
    if half:
        text.append("╸", style)
    text.append("━" * (width - full - half), "grey30")
    return text
