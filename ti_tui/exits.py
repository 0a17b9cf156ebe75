"""How ti-tui ends, for every entry point: exit codes, signals and crashes in one place.

Exit codes (`ti-tui`, `--gui`, `demo`, `train`, `watch`, `models`):

    0        done: finished, stopped early or by the user, quit, or left with the run going on
    1        a crash of ti-tui (traceback in a crash log, one line on screen), or the trainer
             failed (its traceback is in OUTPUT_DIR/trainer.log)
    2        a user error: one sentence on stderr naming what to fix
    128 + N  ended by signal N, after restoring the terminal: 129 SIGHUP, 130 SIGINT,
             131 SIGQUIT, 143 SIGTERM (the shells' convention, so `$?` reads the same as
             for a program killed by the signal)

A signal never stops the trainer by itself (it runs in its own session), except where the
signal is the way a user asks for a stop: Ctrl-C and SIGTERM on headless `ti-tui train`
(README, "Over SSH").

The Textual app runs through `run_app`: SIGTERM, SIGHUP, SIGQUIT and SIGINT become an ordinary
`App.exit` (so Textual leaves the alternate screen, turns mouse tracking off and shows the
cursor again), and an exception anywhere in the app is written to a crash log and exits 1.
The plain and Rich views use `leave_on_signals`, which turns those signals into `Signalled`,
unwinding `with Live(...)` blocks (which restore the terminal) up to `cli.main`.
"""

from __future__ import annotations

import asyncio
import errno
import io
import os
import signal
import sys
import threading
import time
import traceback
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

OK, CRASH, USER_ERROR = 0, 1, 2
SIGNAL_BASE = 128
LEAVE_SIGNALS = (signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT)
"""Signals that end a view cleanly (systemctl stop, docker stop, a closed window, Ctrl-\\)."""
APP_SIGNALS = (*LEAVE_SIGNALS, signal.SIGINT)
"""The Textual app reads Ctrl-C as a key, so SIGINT can only come from `kill`: same as TERM."""
EXIT_GRACE_S = 20.0
"""After a signal, how long the app may take to close before the process exits anyway (a
terminal that is gone can make the last writes hang). Generous: on a loaded machine a normal
close takes seconds."""


def signal_exit_code(signum: int) -> int:
    """128 + the signal number: 143 for SIGTERM."""
    return SIGNAL_BASE + int(signum)


def signal_name(signum: int) -> str:
    """"SIGTERM" for 15; "signal N" for a number the platform does not name."""
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


class Signalled(BaseException):
    """A leave signal arrived (raised by `leave_on_signals` handlers in the main thread).

    A BaseException, like KeyboardInterrupt, so `except Exception` blocks do not swallow it.
    """

    def __init__(self, signum: int) -> None:
        super().__init__(signal_name(signum))
        self.signum = int(signum)

    @property
    def exit_code(self) -> int:
        """128 + the signal number."""
        return signal_exit_code(self.signum)


def signalled_in(exc: BaseException | None) -> Signalled | None:
    """The Signalled behind `exc`, if it is one or was being handled when `exc` was raised
    (a dead terminal can make the Live view's clean-up raise OSError over it)."""
    seen = 0
    while exc is not None and seen < 20:
        if isinstance(exc, Signalled):
            return exc
        exc, seen = exc.__context__, seen + 1
    return None


@contextmanager
def leave_on_signals(signals: Sequence[int] = LEAVE_SIGNALS) -> Iterator[None]:
    """Within the block, each of `signals` raises Signalled in the main thread; the previous
    handlers come back afterwards. Only for code that runs on the main thread."""
    def raise_signalled(signum: int, _frame: Any) -> None:
        raise Signalled(signum)

    previous = {sig: signal.signal(sig, raise_signalled) for sig in signals}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


# --- crashes ----------------------------------------------------------------------------------

def crash_log_dir() -> Path:
    """$TI_TUI_LOG_DIR, else the user state folder: ~/.local/state/ti-tui on Linux
    (platformdirs.user_state_dir, which follows $XDG_STATE_HOME)."""
    override = os.environ.get("TI_TUI_LOG_DIR")
    if override:
        return Path(override).expanduser()
    import platformdirs

    return Path(platformdirs.user_state_dir("ti-tui"))


def write_crash_log(text: str) -> Path | None:
    """Write `text` to crash-<time>-<pid>.log in crash_log_dir(); None when it cannot."""
    from trainer.fsutil import atomic_write_text

    path = crash_log_dir() / f"crash-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.log"
    header = (f"ti-tui crash, {time.strftime('%Y-%m-%d %H:%M:%S %z')}\n"
              f"command: {' '.join(sys.argv)}\npython {sys.version.split()[0]}\n\n")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, header + text)
    except OSError:
        return None
    return path


def report_crash(text: str, summary: str | None = None) -> int:
    """Log a crash's traceback `text`, say one line on stderr, and return CRASH (1).

    `summary`: the line's gist (default: the last line of `text`, "Error: message")."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    gist = summary or (lines[-1] if lines else "unknown error")
    path = write_crash_log(text)
    where = f"the traceback is in {path}" if path else "the crash log could not be written"
    _say(f"ti-tui: internal error ({gist}); {where}. Please report it.")
    return CRASH


def _terminal_alive() -> bool:
    """Whether the controlling terminal still answers (False after it hung up)."""
    try:
        fd = os.open("/dev/tty", os.O_RDWR | os.O_NOCTTY)
    except OSError:
        return False
    os.close(fd)
    return True


def _say(line: str) -> None:
    """One line on stderr; nothing when the terminal is gone."""
    try:
        print(line, file=sys.stderr, flush=True)
    except (OSError, ValueError):
        pass


def exit_code_for(exc: BaseException) -> int:
    """The exit code for an exception that reached `cli.main` (after UserError): 128+N for a
    signal (even one buried under a clean-up error), 130 for Ctrl-C, else a logged crash."""
    signalled = signalled_in(exc)
    if signalled is not None:
        _say(f"ti-tui: ended by {signal_name(signalled.signum)}.")
        return signalled.exit_code
    if isinstance(exc, KeyboardInterrupt):
        return signal_exit_code(signal.SIGINT)
    if isinstance(exc, BrokenPipeError):  # `ti-tui train ... | head`: the reader left
        try:  # no "Exception ignored" when Python flushes stdout at exit
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except (OSError, ValueError):
            pass
        return signal_exit_code(signal.SIGPIPE)
    if isinstance(exc, OSError) and exc.errno == errno.EIO and not _terminal_alive():
        return signal_exit_code(signal.SIGHUP)  # the terminal is gone: a hang-up
    return report_crash("".join(traceback.format_exception(exc)))


# --- the Textual app --------------------------------------------------------------------------

class _AppWatch:
    """What happened to one app run: the signal that ended it, its crash."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.signum: int | None = None
        self.crash_text: list[str] = []
        self.crashed = False
        self._timer: threading.Timer | None = None
        # Textual (8.2.8, app.py) routes every unhandled exception through
        # _handle_exception (message handlers, workers) or panic (its input thread), then
        # prints the traceback after leaving the screen with _print_error_renderables. We
        # take the exception for the log and print one line instead.
        handle_exception, panic = app._handle_exception, app.panic
        print_errors = app._print_error_renderables

        def on_exception(error: Exception) -> None:
            self.crashed = True
            self.crash_text.append("".join(traceback.format_exception(error)))
            handle_exception(error)

        def on_panic(*renderables: Any) -> None:
            self.crashed = True
            self.crash_text.append(_plain(renderables))
            panic(*renderables)

        def on_print_errors() -> None:
            if self.crashed:
                app._exit_renderables.clear()
            else:
                print_errors()  # exit messages, such as how to come back to a run

        app._handle_exception = on_exception
        app.panic = on_panic
        app._print_error_renderables = on_print_errors

    def on_signal(self, signum: int) -> None:
        if self.signum is not None:
            os._exit(signal_exit_code(self.signum))  # asked twice: do not wait any longer
        self.signum = signum
        code = signal_exit_code(signum)
        leave = getattr(self.app, "leave_on_signal", None)
        if callable(leave):
            leave(signum, code)
        else:
            self.app.exit(return_code=code)
        self._timer = threading.Timer(EXIT_GRACE_S, os._exit, (code,))
        self._timer.daemon = True
        self._timer.start()

    def done(self) -> None:
        """The app ended on its own: cancel the forced exit armed by a leave signal."""
        if self._timer is not None:
            self._timer.cancel()


def _plain(renderables: Sequence[Any]) -> str:
    """Rich renderables (a panic's pre-rendered traceback) as plain text for the log."""
    from rich.console import Console

    buffer = io.StringIO()
    console = Console(file=buffer, width=120, color_system=None, force_terminal=False)
    for renderable in renderables:
        console.print(renderable)
    return buffer.getvalue()


def run_app(app: Any) -> int:
    """Run a Textual app in this terminal and return the exit code (see the module doc).

    The app may define `leave_on_signal(signum, exit_code)` to choose its result and exit
    message (e.g. how to come back to a run left going); by default it just exits.
    """
    from ti_tui import input_guard, resize_guard

    input_guard.install()
    resize_guard.install()
    watch = _AppWatch(app)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        for sig in APP_SIGNALS:
            loop.add_signal_handler(sig, watch.on_signal, sig)
        try:
            await app.run_async()
        finally:
            for sig in APP_SIGNALS:
                loop.remove_signal_handler(sig)

    try:
        asyncio.run(main())
    finally:
        watch.done()
    if watch.crashed:
        text = "\n".join(watch.crash_text)
        return report_crash(text)
    if watch.signum is not None:
        _say(f"ti-tui: ended by {signal_name(watch.signum)}.")
        return signal_exit_code(watch.signum)
    return app.return_code or OK
