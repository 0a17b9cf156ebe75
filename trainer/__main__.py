"""`python -m trainer OUTPUT_DIR/run.toml`: run the trainer as its own process.

This is what the UI starts (with setsid, so a dropped SSH connection does not kill it), and
what `accelerate launch -m trainer run.toml` runs in every process. Events go to
OUTPUT_DIR/events.jsonl. SIGINT/SIGTERM ask for a clean stop (finish the step, save a
checkpoint and the embedding); a second signal exits at once, and since every file is written
to a temporary name first, nothing half-written is left behind.
Exit codes: 0 finished (early or user stop included), 2 user error, 1 internal failure.
"""

from __future__ import annotations

import os
import signal
import sys
import traceback

from trainer.errors import UserError


def main(argv: list[str] | None = None) -> int:
    from trainer.flags import parse_config

    argv = sys.argv[1:] if argv is None else argv
    if argv and not argv[0].startswith("-"):
        argv = ["--config", *argv]  # the usual form: python -m trainer run.toml
    try:
        config = parse_config(argv, prog="python -m trainer")
    except UserError as exc:
        print(f"ti-tui: {exc}", file=sys.stderr)
        return 2
    return run(config)


def run(config) -> int:
    from trainer.control import CONTROL_DIR, Control
    from trainer.events import EVENTS_FILE, EventLog

    control = Control(config.output_path / CONTROL_DIR)
    _install_signal_handlers(control)
    log = None

    def emit(event) -> None:
        nonlocal log
        if log is None:
            log = EventLog(config.output_path / EVENTS_FILE)
        log(event)

    try:
        from trainer.loop import train

        result = train(config, emit=emit, control=control)
    except UserError as exc:
        print(f"ti-tui: {exc}", file=sys.stderr)
        return 2
    except Exception:  # noqa: BLE001 - an internal failure: the traceback is for the log
        traceback.print_exc()
        return 1
    finally:
        if log is not None:
            log.close()
    return 1 if result.reason == "error" else 0


def _install_signal_handlers(control) -> None:
    def handler(signum, frame) -> None:
        if control.stop_requested:
            # Second signal: leave now. Files are renamed into place whole, so none is torn.
            os._exit(130)
        control.request_stop()

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)


if __name__ == "__main__":
    sys.exit(main())
