"""The dashboard's panels, declared once, and the one layout both hosts use.

Every panel is a `PanelSpec`: its drawing function (ti_tui/text_panels.py,
ti_tui/chart_panels.py), how often it is redrawn, whether it is costly, and the layout modes
that show it. `arrange` lays them out from one set of numbers. The headless `rich.live.Live`
view (ti_tui/dashboard.py's `render_dashboard`) and the Textual screen (ti_tui/screens/train.py:
one widget per spec, sized by `row_heights` and `preview_width`) both read these, so the two
layouts cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from rich.panel import Panel

from ti_tui.chart_panels import dvar_panel, loss_panel, preview_panel
from ti_tui.state import RunState
from ti_tui.text_panels import files_panel, header_panel, progress_panel, schedule_panel

TINY, COMPACT, MEDIUM, FULL = "tiny", "compact", "medium", "full"
"""The layout modes, smallest first (`layout_mode`)."""
CHARTS_MIN_HEIGHT = 12
"""Below this many rows the charts would get no line inside their borders: only progress
(issue 19; the 39x10 minimum of any screen is ti_tui/terminal.py)."""

TEXT_REFRESH_S = 0.25
"""Text panels (progress, schedule) are redrawn at most 4 times a second."""
CHART_REFRESH_S = 1.0
"""Charts and the preview at most once a second: plotext makes them most of a frame's cost,
and the trainer shares the CPU with the view (bench/ui_overhead.py)."""


def layout_mode(width: int, height: int) -> str:
    """Which panels fit in width x height cells: tiny (progress), compact (+ loss, DVAR),
    medium (+ header, schedule, files), full (+ preview)."""
    if height < CHARTS_MIN_HEIGHT:
        return TINY
    if width >= 140 and height >= 40:
        return FULL
    if width >= 100 and height >= 30:
        return MEDIUM
    return COMPACT


@dataclass(frozen=True)
class PanelSpec:
    """One dashboard panel as both hosts use it: the Rich layout (`render_dashboard`, the
    headless view) and the Textual screen (ti_tui/screens/train.py, one widget each)."""

    name: str
    """Its key ("header", "progress", "loss"...): the Rich layout keeps each panel's last
    drawing under it."""
    draw: Callable[[RunState, int, int, float | None], Panel]
    """The pure function that draws it at a size (cells) and a wall clock."""
    refresh_s: float
    """Seconds between redraws at most while a run goes on."""
    costly: bool = False
    """A plotext chart or an image: a live frame reuses its last drawing within refresh_s."""
    ticks: bool = False
    """Redrawn every second while running, for clocks that move without events."""
    modes: frozenset[str] = frozenset({TINY, COMPACT, MEDIUM, FULL})
    """The layout modes (`layout_mode`) that show it."""


_ROOMY = frozenset({MEDIUM, FULL})
_CHARTED = frozenset({COMPACT, MEDIUM, FULL})
HEADER = PanelSpec("header", header_panel, CHART_REFRESH_S, modes=_ROOMY)
"""Trigger, model, device, output: its words change with the status, rarely."""
PROGRESS = PanelSpec("progress", progress_panel, TEXT_REFRESH_S, ticks=True)
"""Step, bar, clocks and rates: shown in every mode, the clocks tick without events."""
SCHEDULE = PanelSpec("schedule", schedule_panel, TEXT_REFRESH_S, modes=_ROOMY)
"""Learning rate and its next change, clipping, grad norm."""
FILES = PanelSpec("files", files_panel, CHART_REFRESH_S, modes=_ROOMY)
"""Saved files, warnings, the error: changes at a save or a warning."""
LOSS = PanelSpec("loss", loss_panel, CHART_REFRESH_S, costly=True, modes=_CHARTED)
"""The loss and L_det chart."""
DVAR = PanelSpec("dvar", dvar_panel, CHART_REFRESH_S, costly=True, modes=_CHARTED)
"""The DVAR ratio chart and its diagnostics."""
PREVIEW = PanelSpec("preview", preview_panel, CHART_REFRESH_S, costly=True,
                    modes=frozenset({FULL}))
"""The last preview image, only where there is room for it."""
ROWS: tuple[tuple[PanelSpec, ...], ...] = ((HEADER,), (PROGRESS, SCHEDULE, FILES),
                                            (LOSS, DVAR, PREVIEW))
"""The dashboard's rows, top to bottom: the last row takes the height that is left."""
PANELS: tuple[PanelSpec, ...] = tuple(spec for row in ROWS for spec in row)
"""Every panel, row by row."""

HEADER_ROWS = 4
"""Trigger and model, device and output: two lines in a border."""
TOP_ROWS = {TINY: 6, COMPACT: 6, MEDIUM: 8, FULL: 8}
"""Progress, schedule and files: step, bar, clocks and rates, DVAR's earliest stop."""
PREVIEW_SHARE, PREVIEW_MAX_WIDTH = 4, 48
"""The preview takes a quarter of the width, at most 48 columns."""


def row_heights(mode: str) -> dict[tuple[PanelSpec, ...], int]:
    """The fixed height in rows of each row but the last (which takes the rest), in `mode`."""
    return {ROWS[0]: HEADER_ROWS if mode in HEADER.modes else 0, ROWS[1]: TOP_ROWS[mode]}


def preview_width(width: int, mode: str) -> int:
    """Columns of the preview panel in `mode` (0 when the mode does not show it)."""
    return min(width // PREVIEW_SHARE, PREVIEW_MAX_WIDTH) if mode in PREVIEW.modes else 0


def arrange(width: int, height: int) -> list[tuple[int, list[tuple[PanelSpec, int]]]]:
    """The panels that fit in width x height cells: [(row height, [(panel, width), ...])].

    Rows with nothing shown are left out. In a row, the preview has `preview_width` and the
    others share the rest evenly (the first takes the odd columns).
    """
    mode = layout_mode(width, height)
    fixed = row_heights(mode)
    rows = []
    for row in ROWS:
        shown = [spec for spec in row if mode in spec.modes]
        if not shown:
            continue
        free = width - sum(preview_width(width, mode) for spec in shown if spec is PREVIEW)
        sharing = [spec for spec in shown if spec is not PREVIEW]
        share = free // len(sharing)
        widths = [preview_width(width, mode) if spec is PREVIEW else share for spec in shown]
        widths[0] += free - share * len(sharing)
        rows.append((fixed.get(row, 0), list(zip(shown, widths))))
    rows[-1] = (height - sum(h for h, _ in rows[:-1]), rows[-1][1])
    return rows
