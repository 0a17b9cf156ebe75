"""A signal while ti-tui asks an unknown terminal what images it can show (ti_tui/preview_art.py)
must leave the terminal as it found it.

While textual-image waits for the terminal's answer, standard input is in cbreak mode (no echo,
no line editing). SIGTERM, SIGHUP or SIGQUIT arriving then used to kill the process by their
default action, leaving the shell without echo. Now they unwind the query, the modes come
back, and the exit code is 128 + N, as for every other exit by signal (issue 19, case 2).

The program runs on a pseudo-terminal that never answers (tmux would answer the queries). To
hold the query open until the test has seen it, the launcher makes textual-image wait for the
answer without its 0.1 s limit; the wait is then bounded by preview_art.DETECT_LIMIT_S, raised
so that only the signal ends it. Every wait polls for a condition, with a deadline.
"""

from __future__ import annotations

import fcntl
import os
import select
import signal
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import pytest

DEADLINE_S = 90.0

LAUNCHER = """
import sys
import textual_image._posix as posix
from ti_tui import preview_art
from ti_tui.cli import main

preview_art.DETECT_LIMIT_S = 600.0
wait = posix.read
posix.read = lambda fd, length, timeout=None: wait(fd, length, None)  # never time out
sys.exit(main(sys.argv[1:]))
"""


def cooked(fd: int) -> bool:
    """Whether the terminal echoes and edits lines (the modes a shell leaves it in)."""
    lflag = termios.tcgetattr(fd)[3]
    return bool(lflag & termios.ECHO) and bool(lflag & termios.ICANON)


def drain(master: int) -> bytes:
    """Read what the program wrote so far (so it never blocks on a full terminal buffer)."""
    out = b""
    while select.select([master], [], [], 0)[0]:
        try:
            chunk = os.read(master, 4096)
        except OSError:
            break
        if not chunk:
            break
        out += chunk
    return out


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT])
def test_a_signal_during_the_terminal_query_restores_the_terminal(tmp_path, signum):
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 23, 80, 0, 0))
    assert cooked(slave)
    launcher = tmp_path / "launch.py"
    launcher.write_text(LAUNCHER)
    env = {k: v for k, v in os.environ.items()
           if k not in ("TMUX", "STY", "COLUMNS", "LINES", "NO_COLOR", "TI_TUI_PREVIEW")}
    env.update(TERM="xterm-256color", HF_HUB_OFFLINE="1", PYTHONPATH=str(Path.cwd()),
               XDG_STATE_HOME=str(tmp_path / "state"), XDG_CONFIG_HOME=str(tmp_path / "cfg"))
    proc = subprocess.Popen([sys.executable, str(launcher), "--gui", "--root",
                             str(tmp_path / "root"), "--preview", "sixel"],
                            stdin=slave, stdout=slave, stderr=slave, env=env,
                            start_new_session=True)
    try:
        written = b""
        deadline = time.monotonic() + DEADLINE_S
        while cooked(slave) and proc.poll() is None and time.monotonic() < deadline:
            written += drain(master)
            time.sleep(0.02)  # a poll interval: the condition is the terminal's modes
        assert not cooked(slave), f"the query never started: {proc.poll()} {written!r}"
        os.kill(proc.pid, signum)
        proc.wait(timeout=DEADLINE_S)
        written += drain(master)
        assert proc.returncode == 128 + signum, written
        assert cooked(slave)  # echo and line editing are back
        assert f"ended by {signal.Signals(signum).name}".encode() in written
        assert b"Traceback" not in written
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
        os.close(slave)
