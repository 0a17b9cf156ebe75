"""The dashboard's drawn panels: the loss chart, the DVAR ratio chart and the preview image.

Pure functions of a RunState like the text panels (ti_tui/text_panels.py), each returning a
Rich Panel exactly width x height cells. These are the costly ones: plotext charts and a
decoded PNG are most of a frame's cost (bench/ui_overhead.py), so ti_tui/panels.py declares
them `costly` and a live frame may reuse their last drawing for a second.
"""

from __future__ import annotations

from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.text import Text

from ti_tui.charts import Line, chart
from ti_tui.panel_format import boxed, legend, packed, short_float
from ti_tui.preview_art import half_blocks, resolve
from ti_tui.state import RunState
from ti_tui.text_panels import dvar_outlook


def loss_panel(state: RunState, width: int, height: int, now: float | None = None) -> Panel:
    """Training loss (raw, faint dots) with its smoothed line, and L_det on the right axis,
    over the steps of this run (from its start step when resumed)."""
    entries = [("⠂", "bright_black", f"loss {short_float(state.loss)}"),
               ("━", "cyan", f"smoothed {short_float(state.loss_smooth)}"),
               ("━", "magenta", f"L_det {short_float(state.l_det, 5)} (right)") if state.ldet_on
               else ("", "dim", "L_det off")]
    key = legend(entries, width - 4)
    lines = []
    if len(state.loss_hist):
        lines = [Line(state.loss_hist.xs, state.loss_hist.ys, "gray", scatter=True),
                 Line(state.smooth_hist.xs, state.smooth_hist.ys, "cyan")]
        if len(state.ldet_hist):
            lines.append(Line(state.ldet_hist.xs, state.ldet_hist.ys, "magenta", side="right"))
    body = chart(lines, width - 4, height - 2 - len(key),
                 xlim=(state.start_step, max(state.step, 1)))
    if not body.plain:
        body = Text("waiting for the first step…", "dim")
    return boxed(Group(*key, body), "Loss", width, height)


def dvar_status(state: RunState) -> tuple[str, str]:
    """(words, Rich style) for what DVAR is doing: collecting its window, still learning,
    converged, or off (and why)."""
    window, threshold = state.window or 0, state.threshold or 0.0
    if not state.config:
        return "waiting for the run to start", "dim"
    if not state.ldet_on:
        return "L_det off (dvar_eval_every = 0)", "dim"
    if state.converged_step is not None and state.dvar_on:
        return f"converged at step {state.converged_step:,}", "bold green"
    if not state.dvar_on:
        return "DVAR off: the run goes to its step limit", "dim"
    if state.ldet_count <= window and state.dvar_ratio is None:  # a ratio means it is full
        if state.finished:
            return f"window never filled ({min(state.ldet_count, window)}/{window})", "dim"
        return f"collecting window {min(state.ldet_count, window)}/{window}", "yellow"
    if state.dvar_ratio is None:
        return "ratio undefined: L_det is not moving", "red"
    return f"ratio {state.dvar_ratio:.2f} > {threshold:.2f}, still learning", "cyan"


def dvar_panel(state: RunState, width: int, height: int, now: float | None = None) -> Panel:
    """DVAR ratio over steps against its threshold, window fill, status and the paper's
    Appendix-B diagnostics (EMA percentile, Hall, trend); before the window is full, when
    DVAR can stop (text_panels.dvar_outlook)."""
    words, style = dvar_status(state)
    window, threshold = state.window or 0, state.threshold
    ratio = state.converged_ratio if state.converged_step is not None else state.dvar_ratio
    inner = max(1, width - 4)
    lines: list[RenderableType] = [Text(words, style, no_wrap=True, overflow="ellipsis")]
    fill = window if state.dvar_ratio is not None else min(state.ldet_count, window)
    ema = f"{state.ema_pct * 100:+.2f}%" if state.ema_pct is not None else "-"
    trend = f"{state.trend:+.1e}" if state.trend is not None else "-"
    lines += packed([("ratio", short_float(ratio, 3)), ("threshold", short_float(threshold, 3)),
                     ("window", f"{fill}/{window}"),
                     ("ema_pct", ema), ("hall", short_float(state.hall, 3)),
                     ("trend", trend)], inner)
    chart_rows = height - 2 - len(lines)
    if len(state.ratio_hist) and chart_rows >= 4:
        top = max(1.0, max(state.ratio_hist.ys))
        hline = (threshold, "red") if threshold else None
        ticks = sorted({0.0, round(top, 2), *([threshold] if threshold else [])})
        lines.append(chart([Line(state.ratio_hist.xs, state.ratio_hist.ys, "orange")],
                           inner, chart_rows, xlim=(state.start_step, max(state.step, 1)),
                           ylim=(0, top), hline=hline, yticks=ticks))
    elif chart_rows >= 1 and state.ldet_on and window and state.dvar_on:
        outlook = dvar_outlook(state)  # the progress panel's words: one sentence, one place
        start = "" if state.finished else f"The ratio chart starts after {window} L_det values. "
        lines.append(Text(f"{start}{outlook or ''}.", "dim", overflow="fold"))
    border = "green" if style == "bold green" else "blue"
    return boxed(Group(*lines), "DVAR", width, height, border)


def preview_panel(state: RunState, width: int, height: int, now: float | None = None) -> Panel:
    """The last preview image in coloured half-blocks (two pixels a cell), with its step and
    prompt; a red line when the file cannot be read."""
    preview = state.last_preview
    if not preview:
        return boxed(Text("no preview yet (press p)", "dim"), "Preview", width, height)
    path = resolve(preview.path, state.base_dir, state.output_dir)
    art = half_blocks(str(path), width - 4, height - 3)
    body = art if art is not None else Text(f"cannot read {path.name}", "red")
    return boxed(Group(Text(preview.prompt, "dim", no_wrap=True, overflow="ellipsis"), body),
                 f"Preview · step {preview.step}", width, height)
