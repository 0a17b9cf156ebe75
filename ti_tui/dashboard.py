"""The whole dashboard as one Rich renderable: the headless view's frame (ti_tui/headless.py).

`render_dashboard` draws the panels `ti_tui.panels.arrange` gives for the terminal's size
into a grid; `SlowPanels` lets a live frame reuse a costly panel's recent drawing, so the
text panels can redraw four times a second while the charts redraw once (docs/PERFORMANCE.md).
The Textual screen does not use this module: it draws each `PanelSpec` in its own widget.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from rich.console import RenderableType
from rich.table import Table

from ti_tui.panels import PanelSpec, arrange
from ti_tui.state import RunState


class SlowPanels:
    """Keeps the last drawing of each costly panel for its refresh time (or `every` seconds)
    so a live frame can reuse it.

    A finished run is always drawn afresh, so its last frame shows the final curves.
    """

    def __init__(self, every: float | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.every = every
        """Seconds a drawing is reused; None: each panel's own `refresh_s`."""
        self.clock = clock
        """Seconds on a monotonic clock (a test passes its own)."""
        self._kept: dict[str, tuple[float, int, int, RenderableType]] = {}

    def draw(self, spec: PanelSpec, state: RunState, width: int, height: int,
             now: float | None) -> RenderableType:
        """The panel `spec` at width x height cells: a kept drawing when a recent one of the
        same size exists, else a new one (kept if the panel is costly)."""
        if not spec.costly or state.finished:
            return spec.draw(state, width, height, now)
        clock = self.clock()
        kept = self._kept.get(spec.name)
        every = spec.refresh_s if self.every is None else self.every
        if kept and clock - kept[0] < every and kept[1:3] == (width, height):
            return kept[3]
        panel = spec.draw(state, width, height, now)
        self._kept[spec.name] = (clock, width, height, panel)
        return panel


def render_dashboard(state: RunState, width: int, height: int, now: float | None = None,
                     slow: SlowPanels | None = None) -> RenderableType:
    """All panels that fit in width x height cells, laid out by `arrange`.

    With `slow`, the charts and the preview of a recent frame are reused (a live view).
    """
    grid = Table.grid()
    grid.add_column()
    for row_height, row in arrange(width, height):
        line = Table.grid()
        for _spec, panel_width in row:
            line.add_column(width=panel_width)
        line.add_row(*(slow.draw(spec, state, w, row_height, now) if slow
                       else spec.draw(state, w, row_height, now) for spec, w in row))
        grid.add_row(line)
    return grid
