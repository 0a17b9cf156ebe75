"""`python -m trainer OUTPUT_DIR/run.toml`: run the trainer as its own process.

This is what the UI starts (with setsid, so a dropped SSH connection does not kill it), and
what `accelerate launch -m trainer run.toml` runs in every process. Events go to
OUTPUT_DIR/events.jsonl. SIGINT/SIGTERM ask for a clean stop (finish the step, save a
checkpoint and the embedding); a second signal exits at once, after deleting the temporary
file being written, if any: every file is written to a temporary name and renamed, so nothing
half-written is left behind under a real name.
Exit codes: 0 finished (early or user stop included), 2 user error (a bad value, path or
image, a full disk, a loss that stayed NaN), 1 internal failure, 130 a second signal.
"""

from __future__ import annotations

import os
import signal
import sys
import traceback

from trainer.errors import UserError

SECOND_SIGNAL_EXIT = 130

_early_signal = False
"""Set by a signal that arrives before the run's Control exists (while importing)."""


def main(argv: list[str] | None = None) -> int:
    """`python -m trainer [run.toml | flags]`: parse the settings and train; with --start FD,
    the UI's start protocol (trainer/start.py). Returns the exit code: 0 done, 2 a user
    error (one sentence on stderr), 1 an internal error (traceback in the log); a second
    signal exits with 130 at once."""
    _install_early_handlers()
    from trainer.fsutil import TolerantStream

    # stdout/stderr are OUTPUT_DIR/trainer.log: a full disk there must not crash the run.
    sys.stdout, sys.stderr = TolerantStream(sys.stdout), TolerantStream(sys.stderr)
    from trainer.flags import parse_config

    argv = sys.argv[1:] if argv is None else argv
    from trainer.start import START_FLAG, serve

    if argv[:1] == [START_FLAG]:
        # Started by the UI (trainer/start.py): this process checks, writes, then trains.
        return serve(argv[1:], plan_threads=_plan_threads_before_torch, run=run)
    if argv and not argv[0].startswith("-"):
        argv = ["--config", *argv]  # the usual form: python -m trainer run.toml
    try:
        config = parse_config(argv, prog="python -m trainer")
        _plan_threads_before_torch(config)  # refuses an OMP_* value it cannot use
    except UserError as exc:
        print(f"ti-tui: {exc}", file=sys.stderr)
        return 2
    return run(config)


def _plan_threads_before_torch(config) -> None:
    """Put the CPU thread plan into this process's environment while torch is not loaded yet.

    The runner already did this for the processes it starts; this covers `python -m trainer
    run.toml` started by hand (and every process of a hand-made `accelerate launch`). libgomp
    reads these variables only when `import torch` loads it, so nothing above imports torch.
    """
    from trainer import threads

    if "torch" in sys.modules:
        return  # too late for the environment; trainer.loop.train still sets the count
    threads.set_before_torch(threads.plan_threads(config.cpu_threads,
                                                  threads.local_processes()))


def run(config, checked=None) -> int:
    """Train `config`; `checked` is its Preflight when this process already ran the checks."""
    from trainer import lock
    from trainer.control import CONTROL_DIR, Control
    from trainer.event_file import EventLog
    from trainer.events import EVENTS_FILE, Error, StopReason
    from trainer.preflight import is_main_process

    control = Control(config.output_path / CONTROL_DIR)
    _install_signal_handlers(control)
    if _early_signal:
        control.request_stop()
    if is_main_process():
        try:
            # Before the first event: a refused second trainer must not write into the
            # events.jsonl of the run that holds the folder.
            lock.check_free(config.output_path)
        except UserError as exc:
            print(f"ti-tui: {exc}", file=sys.stderr)
            return 2
    log = None
    log_unwritable = False
    user_error = False

    def emit(event) -> None:
        nonlocal log, log_unwritable, user_error
        if isinstance(event, Error) and event.user_error:
            user_error = True
        if log is None:
            if log_unwritable:
                return  # already reported as the run's error: reporting must not fail again
            try:
                log = EventLog(config.output_path / EVENTS_FILE)
            except UserError:
                log_unwritable = True
                raise
        log(event)

    try:
        from trainer.loop import train

        result = train(config, emit=emit, control=control, checked=checked)
    except UserError as exc:
        print(f"ti-tui: {exc}", file=sys.stderr)
        return 2
    except Exception:  # noqa: BLE001 - an internal failure: the traceback is for the log
        traceback.print_exc()
        return 1
    finally:
        if log is not None:
            log.close()
    if result.reason == StopReason.ERROR:
        # A stop on purpose with a user error (e.g. the loss stayed NaN): its error event
        # said what to do, and the last good embedding was saved.
        return 2 if user_error else 1
    return 0


def _exit_now() -> None:
    """Leave at once: delete the temporary being written (never a half file), then _exit."""
    from trainer import fsutil

    fsutil.discard_in_flight()
    os._exit(SECOND_SIGNAL_EXIT)


def _install_early_handlers() -> None:
    """Until the run's Control exists, a signal only asks for a stop; a second one exits."""

    def handler(signum, frame) -> None:
        global _early_signal
        if _early_signal:
            _exit_now()
        _early_signal = True

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)


def _install_signal_handlers(control) -> None:
    def handler(signum, frame) -> None:
        if control.stop_requested:
            _exit_now()  # second signal
        control.request_stop()

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)


if __name__ == "__main__":
    sys.exit(main())
