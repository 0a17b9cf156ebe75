"""The dashboard without Textual: `ti-tui train` in a plain terminal, and `ti-tui watch`.

On a terminal the panels of ti_tui/panels.py are drawn full-screen with `rich.live.Live`;
when stdout is not a terminal (a log file, a pipe, CI) each event becomes one plain line,
steps only every `log_every`, and no escape code is ever written.
"""

from __future__ import annotations

import os
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Any, Protocol

from rich.console import Console, Group
from rich.live import Live
from rich.text import Text

from trainer.events import EVENTS_FILE, read_events
from ti_tui.panels import (REASONS, TEXT_REFRESH_S, SlowPanels, duration, num,
                           render_dashboard, short_path)
from ti_tui.state import RunState, fold, fold_all
from ti_tui.tail import EventTail

REFRESH_S = TEXT_REFRESH_S
"""At most 4 redraws a second, however fast steps come (charts once a second)."""
CLOCK_S = 1.0
"""Redraw at least this often while waiting, so elapsed time keeps moving."""
DRAW_SHARE = 25
"""A frame that took t seconds waits DRAW_SHARE * t before the next, so drawing takes at most
~4% of a core even on a huge terminal: the trainer is using the cores."""


class RunHandle(Protocol):
    """What the runner (ti_tui/runner.py) gives a view of a trainer it started."""

    output_dir: Path
    events_path: Path

    def request(self, action: str) -> None: ...
    def stop(self) -> None: ...
    def is_alive(self) -> bool: ...
    def wait(self, timeout: float | None = None) -> int | None: ...


def pid_alive(pid: Any) -> bool:
    """Whether process `pid` runs on this machine; True when unknown (keep waiting)."""
    if not isinstance(pid, int) or pid <= 0:
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True  # it exists but belongs to someone else
    return True


def watch_hint(output_dir: str | os.PathLike[str]) -> str:
    """The line that tells people how to come back to a run they left."""
    return f"The run goes on. Come back with: ti-tui watch {output_dir}"


def event_line(event: dict[str, Any], state: RunState, log_every: int) -> str | None:
    """One plain line for an event already folded into `state`; None to print nothing
    (steps off the log_every grid, unknown types)."""
    kind = event.get("type")
    if kind == "step":
        if state.step % max(1, log_every):
            return None
        rate = state.steps_per_s
        total = f"/{state.max_steps}" if state.max_steps else ""
        parts = [f"step {state.step}{total}", f"loss {num(state.loss)}",
                 f"smoothed {num(state.loss_smooth)}"]
        if state.l_det is not None:
            parts.append(f"L_det {num(state.l_det, 5)}")
        if state.dvar_on and state.ldet_on and state.window:
            parts.append(f"ratio {num(state.dvar_ratio, 3)}" if state.ldet_count > state.window
                         else f"window {state.ldet_count}/{state.window}")
        parts += [f"lr {num(state.lr)}", f"{rate:.2f} steps/s" if rate else "- steps/s",
                  f"ETA {duration(state.eta())}"]
        return "  ".join(parts)
    if kind == "phase":
        return f"{state.phase.replace('_', ' ')}: {state.phase_detail}".rstrip(": ")
    if kind == "run_started":
        return (f"run started: {state.trigger} on {state.config.get('model', '-')}, "
                f"{state.device}, precision {state.precision}, {state.num_processes} process(es), "
                f"steps {state.start_step}->{state.max_steps}, output {state.output_dir}")
    if kind == "checkpoint":
        return f"checkpoint at step {event.get('step')}: {short_path(state, str(event.get('path')))}"
    if kind == "embedding_saved":
        paths = ", ".join(short_path(state, str(p)) for p in event.get("paths") or [])
        final = "final embedding" if event.get("final") else "embedding"
        return f"{final} at step {event.get('step')}: {paths}"
    if kind == "preview":
        return (f"preview at step {event.get('step')}: "
                f"{short_path(state, str(event.get('path')))} ({event.get('prompt', '')})")
    if kind == "warning":
        return f"warning: {state.warnings[-1]}"
    if kind == "error":
        hint = f" {state.error['hint']}" if state.error and state.error.get("hint") else ""
        return f"error: {event.get('message', '')}{hint}"
    if kind == "stopped" and state.stopped:
        return f"stopped at step {state.stopped['step']}: {_reason(state)}"
    return None


def _reason(state: RunState) -> str:
    stop = state.stopped or {}
    words = REASONS.get(stop.get("reason", ""), stop.get("reason", "?"))
    return f"{words} ({stop['message']})" if stop.get("message") else words


def summary_lines(state: RunState, exit_note: str = "") -> list[str]:
    """A finished (or abandoned) run in a few plain lines: why it stopped and its files."""
    lines = [f"run {state.trigger or '?'} in {state.output_dir or state.base_dir}",
             f"step {state.step}/{state.max_steps} after {duration(state.elapsed())}; "
             f"loss {num(state.loss)} (smoothed {num(state.loss_smooth)}), "
             f"L_det {num(state.l_det, 5)}"]
    if state.stopped:
        lines.append(f"stopped: {_reason(state)}")
    elif exit_note:
        lines.append(exit_note)
    if state.converged_step is not None:
        lines.append(f"DVAR converged at step {state.converged_step} (ratio "
                     f"{num(state.converged_ratio, 3)} < {num(state.threshold, 3)}, "
                     f"window {state.window})")
    if state.error:
        lines.append(f"error: {state.error['message']}"
                     + (f" {state.error['hint']}" if state.error.get("hint") else ""))
    if state.stopped and state.stopped["files"]:
        lines.append("final files: " + ", ".join(state.stopped["files"]))
    for label, note, key in (("last checkpoint", state.last_checkpoint, "path"),
                             ("last preview", state.last_preview, "path")):
        if note:
            lines.append(f"{label}: {note[key]} (step {note['step']})")
    if state.warning_count:
        lines.append(f"warnings: {state.warning_count} (last: {state.warnings[-1]})")
    return lines


def follow_run(events_path: str | os.PathLike[str], *, console: Console,
               handle: RunHandle | None = None, tty: bool, log_every: int,
               poll: float = 0.1) -> RunState:
    """Show a run until its `stopped` event arrives or its process is gone; return the state.

    With `tty` the dashboard is drawn full-screen (at most 4 times a second, charts once) and
    a summary printed after; without it, plain lines. Ctrl-C asks `handle` to stop the trainer (it
    saves and exits; the view waits for that); a second Ctrl-C, or one with no handle,
    raises KeyboardInterrupt to the caller.
    """
    path = Path(events_path)
    state = RunState(base_dir=str(path.parent))
    tail = EventTail(path)
    stop_asked = False
    exit_note = ""
    live = Live(console=console, auto_refresh=False, screen=True) if tty else None
    last_draw, gap = 0.0, REFRESH_S
    slow = SlowPanels()
    keys = ("Ctrl-C: stop the run (it saves first)" if handle is not None
            else "Ctrl-C: leave this view; the run goes on")
    with live if live is not None else nullcontext():
        while True:
            try:
                new = tail.read_new()
                for event in new:
                    fold(state, event)
                    line = None if tty else event_line(event, state, log_every)
                    if line is not None:
                        console.print(line, markup=False, highlight=False, soft_wrap=True)
                clock = time.monotonic()
                if live is not None and clock - last_draw >= (gap if new else max(gap, CLOCK_S)):
                    view = render_dashboard(state, console.width, console.height - 1,
                                            now=time.time(), slow=slow)
                    live.update(Group(view, Text(keys, "dim", end="")), refresh=True)
                    last_draw = time.monotonic()
                    gap = max(REFRESH_S, (last_draw - clock) * DRAW_SHARE)
                if state.finished:
                    break
                if new or tail.pending:
                    continue
                alive = handle.is_alive() if handle is not None else pid_alive(state.pid)
                if not alive:
                    for event in tail.read_new():  # what it wrote while exiting
                        fold(state, event)
                    if not state.finished:
                        code = handle.wait(0) if handle is not None else None
                        exit_note = ("the trainer exited without a stopped event"
                                     + (f" (exit code {code})" if code is not None else ""))
                    break
                time.sleep(poll)
            except KeyboardInterrupt:
                if handle is None or stop_asked:
                    raise
                handle.stop()
                stop_asked = True
                if not tty:
                    console.print("stopping: the trainer finishes this step, saves and exits",
                                  markup=False, highlight=False)
    if tty:
        for line in summary_lines(state, exit_note):
            console.print(line, markup=False, highlight=False, soft_wrap=True)
    elif exit_note:
        console.print(exit_note, markup=False, highlight=False)
    return state


def run_watch(output_dir: str | os.PathLike[str], *, console: Console | None = None) -> int:
    """`ti-tui watch OUTPUT_DIR`: follow a running run, or summarise a finished one.

    Returns the exit code: 0, or 2 (after one clear line) when the folder holds no run.
    """
    path = Path(output_dir) / EVENTS_FILE
    if not path.is_file():
        (console or Console(stderr=True)).print(
            f"No run found in {output_dir}: {EVENTS_FILE} is missing. Pass the output folder "
            "of a run.", markup=False, highlight=False, soft_wrap=True)
        return 2
    console = console or Console()
    tty = console.is_terminal
    state = fold_all(read_events(path), RunState(base_dir=str(path.parent)))
    if state.finished or not pid_alive(state.pid):
        note = "" if state.finished else "the trainer is not running and wrote no stopped event"
        if tty:
            console.print(render_dashboard(state, console.width, max(24, console.height - 1)))
        for line in summary_lines(state, note):
            console.print(line, markup=False, highlight=False, soft_wrap=True)
        return 0
    try:
        follow_run(path, console=console, tty=tty,
                   log_every=int(state.config.get("log_every") or 10))
    except KeyboardInterrupt:
        console.print(watch_hint(output_dir), markup=False, highlight=False, soft_wrap=True)
    return 0
