"""The dashboard without Textual: `ti-tui train` in a plain terminal, and `ti-tui watch`.

On a terminal the dashboard (ti_tui/dashboard.py, the panels of ti_tui/panels.py) is drawn
full-screen with `rich.live.Live`; when stdout is not a terminal (a log file, a pipe, CI) each
event becomes one plain line, steps only every `log_every`, and no escape code is ever
written; either way the run's end lists which file each tool takes (`guide_lines`).
"""

from __future__ import annotations

import os
import time
from contextlib import nullcontext
from pathlib import Path

from rich.console import Console, Group
from rich.live import Live
from rich.text import Text

from trainer.event_file import load_events
from trainer.events import (EVENTS_FILE, CheckpointSaved, EmbeddingSaved, Error, Event, Phase,
                            PreviewSaved, RunStarted, Step, Stopped, Warning, stop_words)
from trainer.install_guide import tool_lines
from ti_tui.dashboard import SlowPanels, render_dashboard
from ti_tui.panel_format import duration, short_float, short_path
from ti_tui.panels import TEXT_REFRESH_S
from ti_tui.runner import RunHandle, run_alive, watch_hint
from ti_tui.state import RunState, fold, fold_all
from ti_tui.tail import EventTail

REFRESH_S = TEXT_REFRESH_S
"""At most 4 redraws a second, however fast steps come (charts once a second)."""
CLOCK_S = 1.0
"""Redraw at least this often while waiting, so elapsed time keeps moving."""
DRAW_SHARE = 25
"""A frame that took t seconds waits DRAW_SHARE * t before the next, so drawing takes at most
~4% of a core even on a huge terminal: the trainer is using the cores."""


def event_line(event: Event, state: RunState, log_every: int) -> str | None:
    """One plain line for an event already folded into `state`; None to print nothing
    (steps off the log_every grid, unknown types)."""
    if isinstance(event, Step):
        if state.step % max(1, log_every):
            return None
        rate = state.steps_per_s
        total = f"/{state.max_steps}" if state.max_steps else ""
        parts = [f"step {state.step}{total}", f"loss {short_float(state.loss)}",
                 f"smoothed {short_float(state.loss_smooth)}"]
        if state.l_det is not None:
            parts.append(f"L_det {short_float(state.l_det, 5)}")
        if state.dvar_on and state.ldet_on and state.window:
            parts.append(f"ratio {short_float(state.dvar_ratio, 3)}"
                         if state.ldet_count > state.window
                         else f"window {state.ldet_count}/{state.window}")
        parts += [f"lr {short_float(state.lr)}", f"{rate:.2f} steps/s" if rate else "- steps/s",
                  f"ETA {duration(state.eta())}"]
        if state.thread_ceiling and state.threads_now and state.threads_now < state.thread_ceiling:
            # other processes use the cores: say why the rate dropped (trainer/core_share.py)
            parts.append(f"CPU {state.threads_now:.0f} of {state.thread_ceiling} threads")
        return "  ".join(parts)
    if isinstance(event, Phase):
        return f"{state.phase.replace('_', ' ')}: {state.phase_detail}".rstrip(": ")
    if isinstance(event, RunStarted):
        return (f"run started: {state.trigger} on {state.config.get('model', '-')}, "
                f"{state.device}, precision {state.precision}, {state.num_processes} process(es), "
                + (f"CPU {state.cpu_threads}, " if state.cpu_threads else "")
                + f"steps {state.start_step}->{state.max_steps}, output {state.output_dir}")
    if isinstance(event, CheckpointSaved):
        return f"checkpoint at step {event.step}: {short_path(state, event.path)}"
    if isinstance(event, EmbeddingSaved):
        paths = ", ".join(short_path(state, p) for p in event.paths)
        final = "final embedding" if event.final else "embedding"
        return f"{final} at step {event.step}: {paths}"
    if isinstance(event, PreviewSaved):
        return f"preview at step {event.step}: {short_path(state, event.path)} ({event.prompt})"
    if isinstance(event, Warning):
        return f"warning: {state.warnings[-1]}"
    if isinstance(event, Error):
        return f"error: {event.message}" + (f" {event.hint}" if event.hint else "")
    if isinstance(event, Stopped):
        return f"stopped at step {event.step}: {_reason(event)}"
    return None


def _reason(stopped: Stopped) -> str:
    """Why the run stopped, in words, with the trainer's own message when it gave one."""
    words = stop_words(stopped.reason)
    return f"{words} ({stopped.message})" if stopped.message else words


def summary_lines(state: RunState, exit_note: str = "") -> list[str]:
    """A finished (or abandoned) run in a few plain lines: why it stopped and its files."""
    lines = [f"run {state.trigger or '?'} in {state.output_dir or state.base_dir}",
             f"step {state.step}/{state.max_steps} after {duration(state.elapsed())}; "
             f"loss {short_float(state.loss)} (smoothed {short_float(state.loss_smooth)}), "
             f"L_det {short_float(state.l_det, 5)}"]
    if state.stopped:
        lines.append(f"stopped: {_reason(state.stopped)}")
    elif exit_note:
        lines.append(exit_note)
    if state.converged_step is not None:
        lines.append(f"DVAR converged at step {state.converged_step} (ratio "
                     f"{short_float(state.converged_ratio, 3)} < "
                     f"{short_float(state.threshold, 3)}, "
                     f"window {state.window})")
    if state.error:
        lines.append(f"error: {state.error.message}"
                     + (f" {state.error.hint}" if state.error.hint else ""))
    if state.stopped and state.stopped.files:
        lines.append("final files: " + ", ".join(state.stopped.files))
        lines += guide_lines(state)
    for label, saved in (("last checkpoint", state.last_checkpoint),
                         ("last preview", state.last_preview)):
        if saved:
            lines.append(f"{label}: {saved.path} (step {saved.step})")
    if state.warning_count:
        lines.append(f"warnings: {state.warning_count} (last: {state.warnings[-1]})")
    return lines


def guide_lines(state: RunState) -> list[str]:
    """"Which file for which tool" for an ended run that saved its final files, as plain lines
    (trainer/install_guide.py `tool_lines`, the summary screen's source too); [] otherwise.

    The files are looked for where events.jsonl is (`base_dir`), so a run folder that was
    moved or is watched under --runs still gets its lines; else in run_started's output_dir.
    """
    folder = state.base_dir or state.output_dir
    if not (state.stopped and state.stopped.files and folder):
        return []
    guide = tool_lines(folder, state.trigger, state.config.get("root"),
                       int(state.config.get("num_vectors") or 1))
    return ["which file for which tool:"] + [f"  {line}" for line in guide] if guide else []


FORCED_CODES = (130, -2)
"""A trainer's exit code after a second SIGINT: it exits at once (130), or the signal ended it
before its handler was installed (-2, Popen's -SIGINT). Only a second Ctrl-C sends it."""


def forced_stop_note(output_dir: Path) -> str:
    """What a second Ctrl-C did (the trainer ended at once, nothing saved) and what is left:
    the newest complete checkpoint on disk, to resume from, or nothing."""
    from trainer.checkpoint_index import latest_checkpoint

    try:
        latest = latest_checkpoint(output_dir)
    except OSError:
        latest = None
    left = (f"{latest} is left: continue with --resume_from_checkpoint latest"
            if latest is not None else "no checkpoint had been saved yet, so start it again")
    return f"The second Ctrl-C stopped the trainer at once without saving; {left}."


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
                alive = handle.is_alive() if handle is not None else run_alive(path.parent)
                if not alive:
                    for event in tail.read_new():  # what it wrote while exiting
                        fold(state, event)
                    if not state.finished:
                        code = handle.wait(0) if handle is not None else None
                        exit_note = (forced_stop_note(path.parent) if code in FORCED_CODES
                                     else "the trainer exited without a stopped event"
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
    else:
        # The plain view's last lines say which file each tool takes, as the summary does.
        for line in ([exit_note] if exit_note else []) + guide_lines(state):
            console.print(line, markup=False, highlight=False, soft_wrap=True)
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
    if console is None:
        from ti_tui.terminal import can_draw_live

        console = Console()
        tty = can_draw_live(interactive=False)  # the one test every entry point uses
    else:
        tty = console.is_terminal
    state = fold_all(load_events(path), RunState(base_dir=str(path.parent)))
    if state.finished or not run_alive(path.parent):
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
