"""The dashboard panels: pure functions of a RunState that return Rich renderables.

Each `*_panel(state, width, height, now=None)` returns a Panel exactly width x height cells.
Every panel is declared once as a `PanelSpec` (its function, how often it is redrawn, whether
it is costly, the layout modes that show it), and `arrange` lays them out from one set of
numbers; the headless `rich.live.Live` view (`render_dashboard`) and the Textual screen
(ti_tui/screens/train.py: one widget per spec, sized by `row_heights` and `preview_width`)
both read them, so the two layouts cannot drift apart. `now` is the wall clock while a run is
going; a finished run's clocks stop at its last event, so a view of a finished run is the same
on every machine (the snapshot tests rely on it).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from ti_tui.charts import Line, bar, chart
from ti_tui.preview_art import half_blocks, resolve
from ti_tui.state import RunState
from trainer.events import Event, stop_words

TINY, COMPACT, MEDIUM, FULL = "tiny", "compact", "medium", "full"
CHARTS_MIN_HEIGHT = 12
"""Below this many rows the charts would get no line inside their borders: only progress
(issue 19; the 39x10 minimum of any screen is ti_tui/terminal.py)."""

TEXT_REFRESH_S = 0.25
"""Text panels (progress, schedule, files) are redrawn at most 4 times a second."""
CHART_REFRESH_S = 1.0
"""Charts and the preview at most once a second: plotext makes them most of a frame's cost,
and the trainer shares the CPU with the view (bench/ui_overhead.py)."""


def layout_mode(width: int, height: int) -> str:
    """Which panels fit: tiny (progress), compact (+ loss, DVAR), medium (+ header, schedule,
    files), full (+ preview)."""
    if height < CHARTS_MIN_HEIGHT:
        return TINY
    if width >= 140 and height >= 40:
        return FULL
    if width >= 100 and height >= 30:
        return MEDIUM
    return COMPACT


# --- formatting -----------------------------------------------------------------------------
def duration(seconds: float | None) -> str:
    """4:05, 1:02:03; '-' when unknown."""
    if seconds is None:
        return "-"
    s = int(round(seconds))
    h, rem = divmod(s, 3600)
    return f"{h}:{rem // 60:02d}:{rem % 60:02d}" if h else f"{rem // 60}:{rem % 60:02d}"


def short_float(value: float | None, digits: int = 4) -> str:
    """A float in few characters: 0.2134, 2.00e-03; '-' when unknown."""
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
    """One phrase for the panel titles: what the run is doing now."""
    if state.stopped:
        return stop_words(state.stopped.reason)
    if state.status == "failed":
        return "failed"
    if state.status == "loading":
        return f"{state.phase.replace('_', ' ')}: {state.phase_detail}".rstrip(": ")
    return "training" if state.status == "training" else "waiting for the trainer"


def _panel(body: RenderableType, title: str, width: int, height: int, style: str = "blue",
           subtitle: str | None = None) -> Panel:
    return Panel(body, title=title, title_align="left", subtitle=subtitle,
                 subtitle_align="right", width=width, height=height, border_style=style,
                 padding=(0, 1))


def _lines(lines: list[Text], height: int) -> Text:
    """Join as many lines as fit inside a panel of `height` rows."""
    kept = lines[: max(0, height - 2)]
    return Text("\n", no_wrap=True, overflow="ellipsis", end="").join(kept)


def _kv(*pairs: tuple[str, str], sep: str = "   ") -> Text:
    """'label value' pairs on one line, labels dim."""
    text = Text(no_wrap=True, overflow="ellipsis")
    for i, (label, value) in enumerate(pairs):
        if i:
            text.append(sep)
        if label:
            text.append(label + " ", "dim")
        text.append(value)
    return text


def _packed(pairs: list[tuple[str, str]], width: int) -> list[Text]:
    """'label value' pairs packed into as few lines of `width` cells as they fit in."""
    rows: list[list[tuple[str, str]]] = [[]]
    used = 0
    for label, value in pairs:
        size = len(label) + 1 + len(value) if label else len(value)
        if rows[-1] and used + 2 + size > width:
            rows.append([])
            used = 0
        used += size + (2 if rows[-1] else 0)
        rows[-1].append((label, value))
    return [_kv(*row, sep="  ") for row in rows]


FAMILY_LABELS = {"sd1": "SD 1.x", "sd2": "SD 2.x", "sdxl": "SDXL"}


def family_words(family: str | None, parts: dict[str, int] | None) -> str:
    """"SDXL, 768 + 1280-wide tokens": the model family (trainer/conditioner.py) and the width of
    the trained rows in each of its text encoders, for the form and the dashboard."""
    words = [FAMILY_LABELS.get(family or "", family or "")]
    if parts:
        words.append(" + ".join(str(w) for w in parts.values()) + "-wide tokens")
    return ", ".join(w for w in words if w)


# --- panels ---------------------------------------------------------------------------------
def header_panel(state: RunState, width: int, height: int, now: float | None = None) -> Panel:
    """Trigger, model, device and precision, processes and CPU threads, output dir."""
    model = state.model.get("path") or state.config.get("model") or "-"
    facts = [family_words(state.model.get("family"), state.model.get("parts")),
             state.model.get("prediction_type"), state.model.get("native_resolution")]
    if any(facts):
        model += f" ({', '.join(str(f) for f in facts if f)})"
    procs = f"{state.num_processes} process" + ("es" if state.num_processes != 1 else "")
    if state.cpu_threads:  # "2 threads, passive wait": the reason stays in the log line
        procs += f" x {state.cpu_threads.split(' (')[0]}"
    trigger = state.trigger or "-"
    lines = [
        _kv(("", trigger), ("model", model)),
        _kv(("device", state.device or "-"), ("precision", state.precision or "-"),
            ("", procs), ("output", state.output_dir or "-")),
    ]
    lines[0].stylize("bold", 0, len(trigger))
    if height < 4:
        lines = [Text("   ", end="").join(lines)]
    return _panel(_lines(lines, height), "ti-tui", width, height, subtitle=status_words(state))


def progress_panel(state: RunState, width: int, height: int, now: float | None = None) -> Panel:
    """Step / max, percent, epoch, a bar, elapsed, ETA, rates, and DVAR's earliest stop."""
    inner = max(1, width - 4)
    rate = state.steps_per_s
    steps = f"{state.step:,} / {state.max_steps:,}" if state.max_steps else f"{state.step:,}"
    lines: list[RenderableType] = _packed(
        [("step", steps), ("", f"{state.fraction * 100:.1f}%"), ("epoch", f"{state.epoch:.2f}")],
        inner)
    lines.append(bar(state.fraction, inner, "green" if state.finished else "cyan"))
    lines += _packed([("elapsed", duration(state.elapsed(now))),
                      ("ETA", duration(state.eta(now))),
                      ("", f"{rate:.2f} steps/s" if rate else "- steps/s"),
                      ("", f"{state.images_per_s:.1f} img/s" if state.images_per_s else "- img/s")],
                     inner)
    if state.error:
        lines.append(Text(f"error: {state.error.message}", "bold red", no_wrap=True,
                          overflow="ellipsis"))
    elif state.stopped:
        words = stop_words(state.stopped.reason)
        lines.append(Text(f"finished at step {state.stopped.step:,}: {words}", "bold green",
                          no_wrap=True, overflow="ellipsis"))
    elif state.status == "loading":
        lines.append(Text(status_words(state), "yellow", no_wrap=True, overflow="ellipsis"))
    elif state.dvar_on and state.earliest_stop:
        lines.append(_kv(("DVAR can stop from step", f"{state.earliest_stop:,}")))
    lines += _packed([("images", f"{state.images_seen:,}"), ("skipped", str(state.skipped_total)),
                      ("memory", f"{state.memory_mb / 1024:.1f} GB" if state.memory_mb else "-")],
                     inner)
    title = f"{state.trigger or 'run'} · {status_words(state)}"
    style = "red" if state.status == "failed" else "green" if state.finished else "blue"
    return _panel(Group(*lines[: max(0, height - 2)]), title, width, height, style)


def loss_panel(state: RunState, width: int, height: int, now: float | None = None) -> Panel:
    """Training loss (raw, faint) with its smoothed line, and L_det on the right axis."""
    entries = [("⠂", "bright_black", f"loss {short_float(state.loss)}"),
               ("━", "cyan", f"smoothed {short_float(state.loss_smooth)}"),
               ("━", "magenta", f"L_det {short_float(state.l_det, 5)} (right)") if state.ldet_on
               else ("", "dim", "L_det off")]
    legend = _legend(entries, width - 4)
    lines = []
    if len(state.loss_hist):
        lines = [Line(state.loss_hist.xs, state.loss_hist.ys, "gray", scatter=True),
                 Line(state.smooth_hist.xs, state.smooth_hist.ys, "cyan")]
        if len(state.ldet_hist):
            lines.append(Line(state.ldet_hist.xs, state.ldet_hist.ys, "magenta", side="right"))
    body = chart(lines, width - 4, height - 2 - len(legend),
                 xlim=(state.start_step, max(state.step, 1)))
    if not body.plain:
        body = Text("waiting for the first step…", "dim")
    return _panel(Group(*legend, body), "Loss", width, height)


def _legend(entries: list[tuple[str, str, str]], width: int) -> list[Text]:
    """Chart legend entries (mark, mark style, words) packed into lines of `width` cells."""
    lines = [Text(no_wrap=True, overflow="ellipsis")]
    for mark, style, words in entries:
        size = len(mark) + 1 + len(words)
        if lines[-1].cell_len and lines[-1].cell_len + 2 + size > width:
            lines.append(Text(no_wrap=True, overflow="ellipsis"))
        if lines[-1].cell_len:
            lines[-1].append("  ")
        lines[-1].append(f"{mark} " if mark else "", style).append(words, style if not mark else "")
    return lines


def dvar_status(state: RunState) -> tuple[str, str]:
    """(words, style) for what DVAR is doing: collecting, still learning, converged, off."""
    window, threshold = state.window or 0, state.threshold or 0.0
    if not state.config:
        return "waiting for the run to start", "dim"
    if not state.ldet_on:
        return "L_det off (dvar_eval_every = 0)", "dim"
    if state.converged_step is not None and state.dvar_on:
        return f"converged at step {state.converged_step:,}", "bold green"
    if not state.dvar_on:
        return "DVAR off: the run goes to its step limit", "dim"
    if state.ldet_count <= window:
        return f"collecting window {min(state.ldet_count, window)}/{window}", "yellow"
    if state.dvar_ratio is None:
        return "ratio undefined: L_det is not moving", "red"
    return f"ratio {state.dvar_ratio:.2f} > {threshold:.2f}, still learning", "cyan"


def dvar_panel(state: RunState, width: int, height: int, now: float | None = None) -> Panel:
    """DVAR ratio over steps against its threshold, window fill, status and diagnostics."""
    words, style = dvar_status(state)
    window, threshold = state.window or 0, state.threshold
    ratio = state.converged_ratio if state.converged_step is not None else state.dvar_ratio
    inner = max(1, width - 4)
    lines: list[RenderableType] = [Text(words, style, no_wrap=True, overflow="ellipsis")]
    ema = f"{state.ema_pct * 100:+.2f}%" if state.ema_pct is not None else "-"
    trend = f"{state.trend:+.1e}" if state.trend is not None else "-"
    lines += _packed([("ratio", short_float(ratio, 3)), ("threshold", short_float(threshold, 3)),
                      ("window", f"{min(state.ldet_count, window)}/{window}"),
                      ("ema_pct", ema), ("hall", short_float(state.hall, 3)),
                      ("trend", trend)], inner)
    chart_rows = height - 2 - len(lines)
    if len(state.ratio_hist) and chart_rows >= 4:
        top = max(1.0, max(state.ratio_hist.ys))
        hline = (threshold, "red") if threshold else None
        lines.append(chart([Line(state.ratio_hist.xs, state.ratio_hist.ys, "orange")],
                           inner, chart_rows, xlim=(state.start_step, max(state.step, 1)),
                           ylim=(0, top), hline=hline,
                           yticks=sorted({0.0, round(top, 2), *([threshold] if threshold else [])})))
    elif chart_rows >= 1 and state.ldet_on and window and state.dvar_on:
        lines.append(Text(f"The ratio chart starts after {window} L_det values; DVAR can "
                          f"stop from step {state.earliest_stop:,}.", "dim", overflow="fold"))
    border = "green" if style == "bold green" else "blue"
    return _panel(Group(*lines), "DVAR", width, height, border)


def schedule_panel(state: RunState, width: int, height: int, now: float | None = None) -> Panel:
    """Current LR and the next change of a piecewise schedule, clip value, grad norm, skips."""
    text = str(state.config.get("learning_rate", ""))
    mode = state.config.get("clip_grad_mode", "none")
    clip = "off" if mode in ("none", None) else f"{mode} {short_float(state.clip_value, 3)}"
    lines = _packed([("lr", short_float(state.lr if state.lr is not None else state.base_lr)),
                     ("schedule", text or "-"), ("next", _next_change(state)),
                     ("clip", clip), ("grad norm", short_float(state.grad_norm, 3)),
                     ("skipped fp16 updates", str(state.skipped_total))], width - 4)
    return _panel(_lines(lines, height), "Schedule", width, height)


def _next_change(state: RunState) -> str:
    """'1.00e-03 at step 600' from the run's schedule (read once, at run_started)."""
    scheduler = state.config.get("lr_scheduler", "constant")
    if state.lr_schedule is None:
        return "-"
    if not state.lr_piecewise:
        return "constant" if scheduler == "constant" else f"{scheduler} shape"
    change = state.lr_schedule.next_change(state.step)
    if change is None:
        return "none until the end"
    rate, at = change
    return f"{short_float(rate)} at step {at:,}"


def files_panel(state: RunState, width: int, height: int, now: float | None = None) -> Panel:
    """Last checkpoint, embedding snapshot and preview; final files; warnings and errors."""
    def at(saved: Event | None, path: str) -> str:
        return f"{short_path(state, path)} (step {saved.step})" if saved else "-"

    checkpoint, embedding = state.last_checkpoint, state.last_embedding
    preview = state.last_preview
    lines = [_kv(("checkpoint", at(checkpoint, checkpoint.path if checkpoint else ""))),
             _kv(("embedding ", at(embedding, embedding.paths[0]
                                   if embedding and embedding.paths else ""))),
             _kv(("preview   ", at(preview, preview.path if preview else "")))]
    if state.stopped and state.stopped.files:
        names = ", ".join(short_path(state, p) for p in state.stopped.files)
        lines.insert(0, Text(f"final: {names}", "bold green", no_wrap=True, overflow="ellipsis"))
    if state.error:
        hint = f" {state.error.hint}" if state.error.hint else ""
        lines.insert(0, Text(f"error: {state.error.message}{hint}", "bold red"))
    if state.warning_count:
        lines.append(Text(f"warnings ({state.warning_count}):", "yellow"))
        room = max(1, height - 2 - len(lines))
        lines += [Text(f"• {w}", "yellow") for w in list(state.warnings)[-room:]]
    return _panel(_lines(lines, height), "Files", width, height,
                  "red" if state.error else "blue")


def preview_panel(state: RunState, width: int, height: int, now: float | None = None) -> Panel:
    """The last preview image in coloured half-blocks, with its step and prompt."""
    preview = state.last_preview
    if not preview:
        return _panel(Text("no preview yet (press p)", "dim"), "Preview", width, height)
    path = resolve(preview.path, state.base_dir, state.output_dir)
    art = half_blocks(str(path), width - 4, height - 3)
    body = art if art is not None else Text(f"cannot read {path.name}", "red")
    return _panel(Group(Text(preview.prompt, "dim", no_wrap=True, overflow="ellipsis"), body),
                  f"Preview · step {preview.step}", width, height)


# --- the panels, declared once ---------------------------------------------------------------
@dataclass(frozen=True)
class PanelSpec:
    """One dashboard panel as both hosts use it: the Rich layout below (`render_dashboard`,
    the headless view) and the Textual screen (ti_tui/screens/train.py, one widget each)."""

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
"""Its words change with the status, rarely."""
PROGRESS = PanelSpec("progress", progress_panel, TEXT_REFRESH_S, ticks=True)
SCHEDULE = PanelSpec("schedule", schedule_panel, TEXT_REFRESH_S, modes=_ROOMY)
FILES = PanelSpec("files", files_panel, CHART_REFRESH_S, modes=_ROOMY)
"""Changes at a save or a warning."""
LOSS = PanelSpec("loss", loss_panel, CHART_REFRESH_S, costly=True, modes=_CHARTED)
DVAR = PanelSpec("dvar", dvar_panel, CHART_REFRESH_S, costly=True, modes=_CHARTED)
PREVIEW = PanelSpec("preview", preview_panel, CHART_REFRESH_S, costly=True,
                    modes=frozenset({FULL}))
ROWS: tuple[tuple[PanelSpec, ...], ...] = ((HEADER,), (PROGRESS, SCHEDULE, FILES),
                                            (LOSS, DVAR, PREVIEW))
"""The dashboard's rows, top to bottom: the last row takes the height that is left."""
PANELS: tuple[PanelSpec, ...] = tuple(spec for row in ROWS for spec in row)

HEADER_ROWS = 4
"""Trigger and model, device and output: two lines in a border."""
TOP_ROWS = {TINY: 6, COMPACT: 6, MEDIUM: 8, FULL: 8}
"""Progress, schedule and files: step, bar, clocks and rates, DVAR's earliest stop."""
PREVIEW_SHARE, PREVIEW_MAX_WIDTH = 4, 48
"""The preview takes a quarter of the width, at most 48 columns."""


def row_heights(mode: str) -> dict[tuple[PanelSpec, ...], int]:
    """The fixed height of each row but the last (which takes the rest), in `mode`."""
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


# --- the whole dashboard -------------------------------------------------------------------
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
        self._kept: dict[str, tuple[float, int, int, RenderableType]] = {}

    def draw(self, spec: PanelSpec, state: RunState, width: int, height: int,
             now: float | None) -> RenderableType:
        """The panel `spec` at this size: a kept drawing when a recent one fits."""
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
