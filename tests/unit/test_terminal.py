"""ti_tui/terminal.py, exits.py and input_guard.py without a terminal: the size rule, the one
live-screen test, exit codes for signals and crashes, the crash log, the lenient decoder.

The same behaviour in a real terminal is tests/system/test_app_tmux.py.
"""

from __future__ import annotations

import os
import pty
import signal
import sys

import pytest

from ti_tui import exits, input_guard, terminal


# --- the size rule -------------------------------------------------------------------------------
@pytest.mark.parametrize("size", [(80, 23), (80, 20), (60, 20), (39, 10), (39, 11)])
def test_common_ssh_and_split_sizes_are_not_too_small(size):
    assert not terminal.too_small(*size)


@pytest.mark.parametrize("size", [(38, 23), (80, 9), (30, 8)])
def test_below_the_minimum_is_too_small(size):
    assert terminal.too_small(*size)


def test_the_notice_names_the_minimum_and_the_size():
    assert terminal.too_small_words(30, 8) == "make the window at least 39x10 (now 30x8)"


# --- the one live-screen test ---------------------------------------------------------------------
class FakeTTY:
    def __init__(self, fd: int | None, tty: bool = True) -> None:
        self.fd, self.tty = fd, tty

    def isatty(self) -> bool:
        return self.tty

    def fileno(self) -> int:
        if self.fd is None:
            raise OSError("no descriptor")
        return self.fd


@pytest.fixture
def pty_fd():
    """A real pseudo-terminal of 80x23 (an 80x24 window under tmux)."""
    import fcntl
    import struct
    import termios

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 23, 80, 0, 0))
    yield slave
    os.close(master)
    os.close(slave)


def set_size(fd: int, width: int, height: int) -> None:
    import fcntl
    import struct
    import termios

    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", height, width, 0, 0))


def test_a_terminal_of_80x23_can_draw(pty_fd):
    tty = FakeTTY(pty_fd)
    assert terminal.live_screen_problem(interactive=True, env={"TERM": "screen"},
                                        streams=(tty, tty)) is None


@pytest.mark.parametrize("term", ["dumb", "unknown", "", "DUMB"])
def test_dumb_terminals_cannot_draw(pty_fd, term):
    tty = FakeTTY(pty_fd)
    problem = terminal.live_screen_problem(interactive=False, env={"TERM": term},
                                           streams=(tty,))
    assert problem is not None and "TERM=" in problem


def test_a_pipe_cannot_draw(pty_fd):
    problem = terminal.live_screen_problem(
        interactive=True, env={"TERM": "xterm"}, streams=(FakeTTY(pty_fd), FakeTTY(None, False)))
    assert problem == "standard error is not a terminal"
    problem = terminal.live_screen_problem(interactive=False, env={"TERM": "xterm"},
                                           streams=(FakeTTY(None, False),))
    assert problem == "standard output is not a terminal"


def test_a_tiny_terminal_or_one_without_a_size_cannot_draw(pty_fd):
    tty = FakeTTY(pty_fd)
    set_size(pty_fd, 30, 8)
    problem = terminal.live_screen_problem(interactive=False, env={"TERM": "xterm"},
                                           streams=(tty,))
    assert problem is not None and "30x8" in problem and "39x10" in problem
    set_size(pty_fd, 0, 0)  # serial consoles report 0x0
    assert "size" in terminal.live_screen_problem(interactive=False, env={"TERM": "xterm"},
                                                  streams=(tty,))


def test_entry_points_share_the_one_test():
    """No module decides "is this a terminal?" by itself: isatty, TERM and the terminal size
    are read only in ti_tui/terminal.py (Rich's Console.is_terminal for a console a caller
    passes in is the only other door)."""
    import pathlib
    import re

    package = pathlib.Path(terminal.__file__).parent
    pattern = re.compile(r"isatty\(|get_terminal_size|environ(\.get)?\(?\[?\"TERM\"")
    offenders = [str(p.relative_to(package)) for p in package.rglob("*.py")
                 if p.name != "terminal.py" and pattern.search(p.read_text())]
    assert offenders == []


# --- exit codes ----------------------------------------------------------------------------------
def test_signal_exit_codes_follow_the_shell_convention():
    assert exits.signal_exit_code(signal.SIGTERM) == 143
    assert exits.signal_exit_code(signal.SIGHUP) == 129
    assert exits.signal_exit_code(signal.SIGQUIT) == 131
    assert exits.signal_exit_code(signal.SIGINT) == 130


def test_leave_on_signals_raises_in_the_main_thread_and_restores_handlers():
    before = signal.getsignal(signal.SIGHUP)
    with pytest.raises(exits.Signalled) as caught:
        with exits.leave_on_signals((signal.SIGHUP,)):
            os.kill(os.getpid(), signal.SIGHUP)  # its handler runs before the next bytecode
            raise AssertionError("the signal did not raise Signalled")
    assert caught.value.exit_code == 129
    assert signal.getsignal(signal.SIGHUP) is before


def test_a_signal_under_a_cleanup_error_still_exits_with_its_code(capsys):
    """A hang-up can make the Live view's last write fail: the exit code stays 129."""
    try:
        try:
            raise exits.Signalled(signal.SIGHUP)
        except exits.Signalled:
            raise OSError(5, "Input/output error")
    except OSError as exc:
        assert exits.exit_code_for(exc) == 129
    assert "SIGHUP" in capsys.readouterr().err


def test_a_crash_exits_1_with_one_line_and_the_traceback_in_a_log(tmp_path, monkeypatch,
                                                                  capsys):
    monkeypatch.setenv("TI_TUI_LOG_DIR", str(tmp_path / "logs"))
    try:
        raise RuntimeError("boom")
    except RuntimeError as exc:
        assert exits.exit_code_for(exc) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "RuntimeError: boom" in err[0]
    logs = list((tmp_path / "logs").glob("crash-*.log"))
    assert len(logs) == 1 and str(logs[0]) in err[0]
    text = logs[0].read_text()
    assert "Traceback (most recent call last)" in text and 'raise RuntimeError("boom")' in text


def test_crash_log_default_is_the_user_state_folder(monkeypatch, tmp_path):
    monkeypatch.delenv("TI_TUI_LOG_DIR", raising=False)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    if sys.platform.startswith("linux"):
        assert exits.crash_log_dir() == tmp_path / "ti-tui"


# --- input that is not UTF-8 ----------------------------------------------------------------------
def test_the_lenient_decoder_replaces_each_bad_byte():
    decode = input_guard.lenient_incremental_decoder("utf-8")().decode
    assert decode(b"a\xe9b") == "a\ufffdb"
    # An X10 mouse report at column 100 keeps its three characters after ESC [ M.
    assert decode(b"\x1b[M \x84!") == "\x1b[M \ufffd!"
    # A split multi-byte character still decodes whole.
    assert decode(b"\xc3") == "" and decode(b"\xa9") == "é"


def test_install_patches_the_textual_drivers():
    patched = input_guard.install()
    from textual.drivers import linux_driver

    assert "textual.drivers.linux_driver" in patched
    assert linux_driver.getincrementaldecoder("utf-8")().decode(b"\xe9", final=True) == "\ufffd"


def test_a_hung_up_terminal_becomes_sighup_once(monkeypatch):
    """Textual reads b"" for ever from a terminal that is gone; the decoder says SIGHUP."""
    sent = []
    monkeypatch.setattr(input_guard.os, "kill", lambda pid, sig: sent.append((pid, sig)))
    monkeypatch.setattr(input_guard, "EMPTY_READ_PAUSE_S", 0)
    decode = input_guard.lenient_incremental_decoder("utf-8")().decode
    assert decode(b"x") == "x" and sent == []
    assert decode(b"") == "" and decode(b"") == ""
    assert sent == [(os.getpid(), signal.SIGHUP)]


def test_a_broken_pipe_is_not_a_crash(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TI_TUI_LOG_DIR", str(tmp_path / "logs"))
    monkeypatch.setattr(exits.os, "dup2", lambda *a: None)
    assert exits.exit_code_for(BrokenPipeError(32, "Broken pipe")) == 141
    assert not (tmp_path / "logs").exists()
