"""A finished run's curves for its summary: the loss (raw and smoothed) with L_det, and the
DVAR ratio against its threshold, drawn by the dashboard's own panels (ti_tui/chart_panels.py)
from the whole events.jsonl, folded once when the summary opens."""

from __future__ import annotations

from pathlib import Path

from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widget import Widget

from ti_tui.chart_panels import dvar_panel, loss_panel
from ti_tui.state import RunState, fold_all
from trainer.event_file import load_events
from trainer.events import EVENTS_FILE

CURVES_HEIGHT = 12
"""Rows of the two charts: enough for a readable curve at 80x24 with the page scrolling."""


def folded_run(folder: Path) -> RunState:
    """Every event of the run in `folder` folded into one RunState (an empty one if the run
    has no events file)."""
    state = RunState(base_dir=str(folder))
    path = Path(folder) / EVENTS_FILE
    if path.is_file():
        fold_all(load_events(path), state)
    return state


class _Chart(Widget):
    """One dashboard panel at this widget's size."""

    DEFAULT_CSS = "_Chart { width: 1fr; height: 100%; }"

    def __init__(self, state: RunState, panel) -> None:
        super().__init__()
        self.state, self.panel = state, panel

    def render(self):
        width, height = self.size
        return self.panel(self.state, width, height)  # no clock: the run has ended


class RunCurves(Horizontal):
    """Loss with L_det, and the DVAR ratio, side by side."""

    DEFAULT_CSS = f"RunCurves {{ height: {CURVES_HEIGHT}; }}"

    def __init__(self, folder: Path) -> None:
        super().__init__()
        self.state = folded_run(folder)
        # Inline, so a host screen's `Horizontal { height: auto }` cannot fold it to nothing.
        self.styles.height = CURVES_HEIGHT
        self.styles.padding = 0

    def compose(self) -> ComposeResult:
        yield _Chart(self.state, loss_panel)
        yield _Chart(self.state, dvar_panel)
