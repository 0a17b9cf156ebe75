"""The dashboard's text panels: header, progress, schedule and files.

Each `*_panel(state, width, height, now=None)` is a pure function of a RunState that returns
a Rich Panel exactly width x height cells (ti_tui/panels.py declares how often each is
redrawn and which layouts show it). `now` is the wall clock while a run is going; a finished
run's clocks stop at its last event, so a finished run looks the same on every machine (the
snapshot tests rely on it).
"""

from __future__ import annotations

from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.text import Text

from ti_tui.charts import bar
from ti_tui.panel_format import (boxed, duration, family_words, fit_lines, label_values,
                                 packed, short_float, short_path, status_words)
from ti_tui.state import RunState
from trainer import plan
from trainer.events import Event, StopReason, stop_reason, stop_words


def header_panel(state: RunState, width: int, height: int, now: float | None = None) -> Panel:
    """Trigger, model (family, prediction type, native resolution), device and precision,
    processes and CPU threads, output dir; the run's status in the subtitle. Below 4 rows the
    two lines become one."""
    model = state.model.get("path") or state.config.get("model") or "-"
    facts = [family_words(state.model.get("family"), state.model.get("parts")),
             state.model.get("prediction_type"), state.model.get("native_resolution")]
    if any(facts):
        model += f" ({', '.join(str(f) for f in facts if f)})"
    procs = f"{state.num_processes} process" + ("es" if state.num_processes != 1 else "")
    if state.thread_ceiling and state.threads_now:  # "1 of 2 threads": others use the cores
        procs += f" x {state.threads_now:.0f} of {state.thread_ceiling} threads"
    elif state.cpu_threads:  # "up to 2 threads": the reason stays in the log line
        procs += f" x {state.cpu_threads.split(' (')[0]}"
    trigger = state.trigger or "-"
    lines = [
        label_values(("", trigger), ("model", model)),
        label_values(("device", state.device or "-"), ("precision", state.precision or "-"),
                     ("", procs), ("output", state.output_dir or "-")),
    ]
    lines[0].stylize("bold", 0, len(trigger))
    if height < 4:
        lines = [Text("   ", end="").join(lines)]
    return boxed(fit_lines(lines, height), "ti-tui", width, height, subtitle=status_words(state))


def step_lines(state: RunState, width: int) -> list[Text]:
    """The progress panel's first line(s): step / end step (the limit that sets it), percent,
    and the epoch in --num_train_epochs' unit, now / at the end step, with the repeats:
    "step 150 / 1,000 (max steps)  15.0%  epoch 1.20 / 8.00  (100 repeats)". invokeai-ti and
    diffusers count an epoch as one pass over the images repeated --repeats times, so epoch
    1.20 is 120 passes. Where that takes more lines than the bare "step 150 / 1,000  15.0%
    epoch 1.20", the extras go (repeats first, the step limit's name last) so the stop reason
    at the bottom stays in a small terminal; a limit other than the step limit always shows.
    Passes over the images when the run gave no repeats."""
    steps = f"{state.step:,} / {state.max_steps:,}" if state.max_steps else f"{state.step:,}"
    reason = stop_reason(state.end_reason)
    limit = f" ({plan.LIMIT_WORDS.get(reason, reason)})" if state.max_steps and state.config \
        else ""
    percent = ("", f"{state.fraction * 100:.1f}%")
    epoch, end, repeats = state.run_epoch, state.end_epoch, state.config.get("repeats")
    if epoch is None:
        return packed([("step", steps + limit), percent, ("passes", f"{state.epoch:.2f}")],
                      width)
    now = ("epoch", f"{epoch:.2f}")
    whole = ("epoch", f"{epoch:.2f} / {end:.2f}") if end is not None else now
    extra = [("", f"({repeats} repeats)")] if repeats != 1 else []
    must = limit if reason != StopReason.MAX_STEPS else ""
    choices = [[("step", steps + limit), percent, whole, *extra],
               [("step", steps + limit), percent, whole],
               [("step", steps + limit), percent, now],
               [("step", steps + must), percent, now]]
    room = len(packed([("step", steps), percent, now], width))
    for pairs in choices:
        lines = packed(pairs, width)
        if len(lines) <= room:
            return lines
    return lines


def dvar_outlook(state: RunState) -> str | None:
    """One line on when DVAR can stop this run, while it runs: from which step; that it
    cannot before the run's end (its window fills too late, trainer/plan.py dvar_can_stop);
    or, once the window is full, the ratio against the threshold it must fall below. A run
    that ended before its window filled says so. None when DVAR or L_det is off."""
    earliest = state.earliest_stop
    if not state.dvar_on or earliest is None:
        return None
    window, threshold = state.window or 0, state.threshold or 0.0
    full = state.dvar_ratio is not None or (window and state.ldet_count > window)
    if state.finished and not full:  # "can stop from step 283" after a stop at 11 misleads
        return (f"The run ended before DVAR's window filled ({min(state.ldet_count, window)} "
                f"of {window} L_det values)")
    if not plan.dvar_can_stop(earliest, state.max_steps):
        return (f"DVAR cannot stop this run before its end (step {state.max_steps:,}; its "
                f"first possible stop is step {earliest:,})")
    # A ratio is the proof the window is full, even where the count is short: `ti-tui watch`
    # of a resumed run, or a log whose start was cut, kept saying "can stop from step 363".
    if full:
        if state.dvar_ratio is None:
            return "DVAR ratio undefined: L_det is not moving"
        return f"DVAR ratio {state.dvar_ratio:.2f}, stops below {threshold:.2f}"
    return f"DVAR can stop from step {earliest:,}"


def progress_panel(state: RunState, width: int, height: int, now: float | None = None) -> Panel:
    """Step / max, percent, epoch, a bar, elapsed, ETA, rates (steps and images a second),
    then why it stopped, the loading phase or DVAR's earliest stop, and images seen, skipped
    updates and memory."""
    inner = max(1, width - 4)
    rate = state.steps_per_s
    lines: list[RenderableType] = step_lines(state, inner)
    lines.append(bar(state.fraction, inner, "green" if state.finished else "cyan"))
    lines += packed([("elapsed", duration(state.elapsed(now))),
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
    elif (outlook := dvar_outlook(state)) is not None:
        lines.append(Text(outlook, no_wrap=True, overflow="ellipsis"))
    lines += packed([("images", f"{state.images_seen:,}"), ("skipped", str(state.skipped_total)),
                     ("memory", f"{state.memory_mb / 1024:.1f} GB" if state.memory_mb else "-")],
                    inner)
    title = f"{state.trigger or 'run'} · {status_words(state)}"
    style = "red" if state.status == "failed" else "green" if state.finished else "blue"
    return boxed(Group(*lines[: max(0, height - 2)]), title, width, height, style)


def schedule_panel(state: RunState, width: int, height: int, now: float | None = None) -> Panel:
    """Current LR and the next change of a piecewise schedule, clip value, grad norm, skipped
    fp16 updates."""
    text = str(state.config.get("learning_rate", ""))
    mode = state.config.get("clip_grad_mode", "none")
    clip = "off" if mode in ("none", None) else f"{mode} {short_float(state.clip_value, 3)}"
    lines = packed([("lr", short_float(state.lr if state.lr is not None else state.base_lr)),
                    ("schedule", text or "-"), ("next", next_change_words(state)),
                    ("clip", clip), ("grad norm", short_float(state.grad_norm, 3)),
                    ("skipped fp16 updates", str(state.skipped_total))], width - 4)
    return boxed(fit_lines(lines, height), "Schedule", width, height)


def next_change_words(state: RunState) -> str:
    """'1.00e-03 at step 600': the next change of a piecewise rate after the current step, from
    the run's schedule (trainer/rate_schedule.py's RateSchedule, read once at run_started, scaled as
    the run uses it); a shaped scheduler's name, "constant", or '-' before the run starts."""
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
    """Last checkpoint, embedding snapshot and preview (paths inside the output dir, with their
    step); the final files; the error and its hint; the newest warnings that fit."""
    def at(saved: Event | None, path: str) -> str:
        return f"{short_path(state, path)} (step {saved.step})" if saved else "-"

    checkpoint, embedding = state.last_checkpoint, state.last_embedding
    preview = state.last_preview
    lines = [label_values(("checkpoint", at(checkpoint, checkpoint.path if checkpoint else ""))),
             label_values(("embedding ", at(embedding, embedding.paths[0]
                                            if embedding and embedding.paths else ""))),
             label_values(("preview   ", at(preview, preview.path if preview else "")))]
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
    return boxed(fit_lines(lines, height), "Files", width, height,
                 "red" if state.error else "blue")
