"""The words and lines the dashboard panels are made of.

Plain formatters (a duration, a short float, a path inside the run, what the run is doing
now, the model family) that the panels, the headless lines, the home screen and the form
share, and the Rich building blocks every panel uses: a bordered box of an exact size,
'label value' pairs packed into lines, a chart legend. One place, so every view writes a
number or a status the same way.
"""

from __future__ import annotations

from pathlib import Path

from rich.console import RenderableType
from rich.panel import Panel
from rich.text import Text

from ti_tui.state import RunState
from trainer.events import stop_words

FAMILY_LABELS = {"sd1": "SD 1.x", "sd2": "SD 2.x", "sdxl": "SDXL"}
"""Display names of the model families (trainer/conditioner.py's family keys)."""


# --- plain words ----------------------------------------------------------------------------
def duration(seconds: float | None) -> str:
    """Seconds as a clock, 4:05 or 1:02:03 (rounded to the second); '-' when unknown."""
    if seconds is None:
        return "-"
    total = int(round(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def short_float(value: float | None, digits: int = 4) -> str:
    """A float in few characters: 0.2134, 2.00e-03 (`digits` significant digits, or
    decimals below 1); scientific below 0.01 and from 100,000; '-' when unknown."""
    if value is None:
        return "-"
    if value != 0 and (abs(value) < 1e-2 or abs(value) >= 1e5):
        return f"{value:.2e}"
    return f"{value:.{digits}g}" if abs(value) >= 1 else f"{value:.{digits}f}"


def short_path(state: RunState, path: str) -> str:
    """`path` relative to the run's output dir when it lies inside it, else as given."""
    if state.output_dir:
        try:
            return str(Path(path).relative_to(state.output_dir))
        except ValueError:
            pass
    return path


def status_words(state: RunState) -> str:
    """One phrase for the panel titles: what the run is doing now ("training", "loading
    model: unet", or why it stopped in `StopReason`'s words)."""
    if state.stopped:
        return stop_words(state.stopped.reason)
    if state.status == "failed":
        return "failed"
    if state.status == "loading":
        return f"{state.phase.replace('_', ' ')}: {state.phase_detail}".rstrip(": ")
    return "training" if state.status == "training" else "waiting for the trainer"


def family_words(family: str | None, parts: dict[str, int] | None) -> str:
    """"SDXL, 768 + 1280-wide tokens": the model family (trainer/conditioner.py) and the width of
    the trained rows in each of its text encoders, for the form and the dashboard."""
    words = [FAMILY_LABELS.get(family or "", family or "")]
    if parts:
        words.append(" + ".join(str(w) for w in parts.values()) + "-wide tokens")
    return ", ".join(w for w in words if w)


# --- Rich building blocks -------------------------------------------------------------------
def boxed(body: RenderableType, title: str, width: int, height: int, style: str = "blue",
          subtitle: str | None = None) -> Panel:
    """`body` in a border of exactly width x height cells, the title at the top left, the
    subtitle at the bottom right, one column of padding on each side (so the inside is
    width - 4 columns by height - 2 rows)."""
    return Panel(body, title=title, title_align="left", subtitle=subtitle,
                 subtitle_align="right", width=width, height=height, border_style=style,
                 padding=(0, 1))


def fit_lines(lines: list[Text], height: int) -> Text:
    """The first lines that fit inside a box of `height` rows, joined; none wraps (a long
    line ends in an ellipsis instead of pushing the others out)."""
    kept = lines[: max(0, height - 2)]
    return Text("\n", no_wrap=True, overflow="ellipsis", end="").join(kept)


def label_values(*pairs: tuple[str, str], sep: str = "   ") -> Text:
    """'label value' pairs on one line, labels dim; an empty label shows the value alone."""
    text = Text(no_wrap=True, overflow="ellipsis")
    for i, (label, value) in enumerate(pairs):
        if i:
            text.append(sep)
        if label:
            text.append(label + " ", "dim")
        text.append(value)
    return text


def packed(pairs: list[tuple[str, str]], width: int) -> list[Text]:
    """'label value' pairs packed, in order, into as few lines of `width` cells as they fit
    in (two spaces between pairs); a pair wider than `width` gets a line of its own."""
    rows: list[list[tuple[str, str]]] = [[]]
    used = 0
    for label, value in pairs:
        size = len(label) + 1 + len(value) if label else len(value)
        if rows[-1] and used + 2 + size > width:
            rows.append([])
            used = 0
        used += size + (2 if rows[-1] else 0)
        rows[-1].append((label, value))
    return [label_values(*row, sep="  ") for row in rows]


def legend(entries: list[tuple[str, str, str]], width: int) -> list[Text]:
    """Chart legend entries (mark, mark style, words) packed into lines of `width` cells; an
    entry without a mark is written in its style (e.g. a dim "L_det off")."""
    lines = [Text(no_wrap=True, overflow="ellipsis")]
    for mark, style, words in entries:
        size = len(mark) + 1 + len(words)
        if lines[-1].cell_len and lines[-1].cell_len + 2 + size > width:
            lines.append(Text(no_wrap=True, overflow="ellipsis"))
        if lines[-1].cell_len:
            lines[-1].append("  ")
        lines[-1].append(f"{mark} " if mark else "", style).append(words, style if not mark else "")
    return lines
