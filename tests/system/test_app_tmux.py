"""The real program in a real terminal: tmux, on a private server socket per test.

Pilot tests drive Textual's headless driver; these run ti-tui's own entry (`cli.main`, or
`exits.run_app` for the app with a recorded run instead of a trainer) under tmux with
TERM=screen and NO_COLOR, so the terminal driver, escape-sequence parsing, resize, signals
and the exit path are the real ones (issue 19). Every wait polls the screen until a
condition holds or a deadline passes. Skipped when tmux is not installed.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")

DATA = Path(__file__).parents[1] / "data"
DEADLINE_S = 90.0
"""How long a condition may take to appear (the app starts in a few seconds; a loaded CI
machine can be much slower). A deadline only catches hangs; nothing here is timed."""

LAUNCHER = """
import os, sys
from pathlib import Path

mode, pid_file, *args = sys.argv[1:]
Path(pid_file).write_text(str(os.getpid()))
if mode == "cli":
    from ti_tui.cli import main
    sys.exit(main(args))
if mode == "crash":  # any exception in the app, here one in the form's Start
    from ti_tui.cli import main
    from ti_tui.screens.form import TrainingForm

    def start(self):
        raise RuntimeError("boom from the test")

    TrainingForm.action_start = start
    sys.exit(main(args))
# mode == "recorded": the app, with a runner that replays the first N lines of a recorded
# run instead of starting a trainer; the run is "alive" while OUT/alive exists.
from ti_tui import exits
from ti_tui.app import make_app
from trainer.config import TrainConfig

model, images, out, sample, lines = args
out = Path(out)


class RecordedRun:
    def __init__(self, folder):
        self.output_dir, self.events_path = folder, folder / "events.jsonl"

    def request(self, action):
        (self.output_dir / f"asked-{action}").touch()

    def stop(self):
        (self.output_dir / "asked-stop").touch()

    def is_alive(self):
        return (self.output_dir / "alive").exists()

    def wait(self, timeout=None):
        return None if self.is_alive() else 0


def runner(config):
    folder = config.output_path
    folder.mkdir(parents=True, exist_ok=True)
    recorded = Path(sample).read_text().splitlines(keepends=True)
    (folder / "events.jsonl").write_text("".join(recorded[:int(lines)]))
    return RecordedRun(folder)


config = TrainConfig(model=model, root=str(out.parent), placeholder_token="star",
                     train_data_dir=images, output_dir=str(out), device="cpu")
app = make_app(root=out.parent, defaults=config, runner=runner, restore=False)
sys.exit(exits.run_app(app))
"""


SESSION_LEADER = """
import signal, subprocess, sys

# Like a launcher or shell that does not pass SIGHUP on: the terminal closes under the app.
signal.signal(signal.SIGHUP, lambda *_: None)
code = subprocess.call(sys.argv[2:])
open(sys.argv[1], "w").write(str(code))
"""


class Terminal:
    """One tmux server (private socket) running one command in an 80x23 (or other) window."""

    def __init__(self, tmp: Path) -> None:
        self.socket = f"ti-tui-test-{uuid.uuid4().hex[:10]}"
        self.tmp = tmp
        self.pid_file = tmp / "app.pid"
        self.launcher = tmp / "launch.py"
        self.launcher.write_text(LAUNCHER)
        self.state = tmp / "state"
        """XDG_STATE_HOME of the app: where crash logs go."""

    def tmux(self, *args: str) -> str:
        return subprocess.run(["tmux", "-L", self.socket, *args], check=True,
                              capture_output=True, text=True).stdout

    def start(self, mode: str, *args: str, size: tuple[int, int] = (80, 23),
              env: str = "", leader_records: Path | None = None) -> None:
        """Run the launcher in `mode`; then the shell says EXIT=<code> and stays. With
        `leader_records`, the pane's process is instead a session leader that ignores
        SIGHUP and writes the app's exit code to that file."""
        # Under pytest, children inherit COLUMNS/LINES; Textual would take them for the size
        # and never follow a resize.
        app = (f"{sys.executable} {self.launcher} {mode} {self.pid_file} "
               + " ".join(f"'{a}'" for a in args))
        if leader_records is not None:
            leader = self.tmp / "leader.py"
            leader.write_text(SESSION_LEADER)
            app = f"{sys.executable} {leader} {leader_records} {app}"
        command = (f"env -u COLUMNS -u LINES TERM=screen NO_COLOR=1 HF_HUB_OFFLINE=1 "
                   f"XDG_STATE_HOME={self.state} PYTHONPATH={Path.cwd()} {env} {app}"
                   + ("" if leader_records else "; echo EXIT=$?; exec sleep 600"))
        width, height = size
        self.tmux("new-session", "-d", "-s", "main", "-x", str(width), "-y", str(height),
                  "-c", str(Path.cwd()), command)

    def screen(self) -> str:
        return self.tmux("capture-pane", "-p", "-t", "main")

    def wait_for(self, condition: str | Callable[[str], bool], what: str = "") -> str:
        test = (lambda s: condition in s) if isinstance(condition, str) else condition
        deadline = time.monotonic() + DEADLINE_S
        screen = ""
        while time.monotonic() < deadline:
            screen = self.screen()
            if test(screen):
                return screen
            time.sleep(0.1)  # a poll interval, not a wait for something to happen
        raise AssertionError(f"{what or condition!r} did not appear; the screen was:\n{screen}")

    def resize(self, width: int, height: int) -> None:
        self.tmux("resize-window", "-t", "main", "-x", str(width), "-y", str(height))

    def keys(self, *keys: str, literal: bool = False, hex_bytes: bool = False) -> None:
        flags = ["-l"] if literal else ["-H"] if hex_bytes else []
        self.tmux("send-keys", "-t", "main", *flags, *keys)

    def modes(self) -> str:
        """The pane's alternate screen, any-mouse tracking and cursor visibility flags."""
        return self.tmux("display", "-p", "-t", "main",
                         "#{alternate_on} #{mouse_any_flag} #{cursor_flag}").strip()

    def app_pid(self) -> int:
        deadline = time.monotonic() + DEADLINE_S
        while time.monotonic() < deadline:
            text = self.pid_file.read_text().strip() if self.pid_file.exists() else ""
            if text:
                return int(text)
            time.sleep(0.1)
        raise AssertionError("the app never wrote its pid")

    def close(self) -> None:
        subprocess.run(["tmux", "-L", self.socket, "kill-server"], capture_output=True,
                       check=False)


@pytest.fixture
def term(tmp_path):
    terminal = Terminal(tmp_path)
    yield terminal
    terminal.close()


def flat(screen: str) -> str:
    """The screen without whitespace: long lines wrap at any column (paths, at spaces)."""
    return "".join(screen.split())


RESTORED = "0 0 1"
"""modes() once the terminal is given back: main screen, no mouse tracking, cursor shown."""


def form_up(screen: str) -> bool:
    """The form is drawn, down to its key line, and no notice covers it."""
    return "Trigger term" in screen and "^s Start" in screen and "make the window" not in screen


def focus_trigger(term: Terminal) -> None:
    """Tab until the hint line names the trigger field."""
    for _ in range(6):
        if "Trigger term (--placeholder_token)" in term.screen():
            return
        term.keys("Tab")
        try:
            term.wait_for(lambda s: "(--" in s, "a field's help line")
        except AssertionError:
            pass
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and "(--placeholder_token)" not in term.screen():
            time.sleep(0.1)
    term.wait_for("Trigger term (--placeholder_token)")


# --- case 1: an 80x24 window under tmux (80x23) and smaller -------------------------------------
def test_form_live_screen_and_summary_work_at_80x23_and_degrade_below(term, tiny_model_dir,
                                                                       demo_images_dir):
    out = term.tmp / "root" / "text-inversion-output" / "star"
    term.start("recorded", str(tiny_model_dir), str(demo_images_dir), str(out),
               str(DATA / "events_sample.jsonl"), "100000")
    # The form at 80x23: fields, not the notice.
    term.wait_for(form_up, "the form at 80x23")
    # A tmux split (60 columns): labels stack over their controls, still no notice.
    term.resize(60, 20)
    term.wait_for(lambda s: "Trigger term" in [line.strip() for line in s.splitlines()],
                  "stacked labels at 60x20")
    # Below 39x10 nothing useful fits: only there the notice.
    term.resize(30, 8)
    term.wait_for("make the window at least 39x10", "the notice at 30x8")
    term.wait_for("(now 30x8)")
    term.resize(80, 23)
    term.wait_for(form_up, "the form back at 80x23")
    # The live screen at 80x23, then 39x10 (half of a split window).
    term.keys("C-s")
    screen = term.wait_for(lambda s: "Loss" in s and "DVAR" in s and "Press q" in s,
                           "the live screen of the recorded run")
    assert "make the window" not in screen
    term.resize(39, 10)
    screen = term.wait_for(lambda s: "step" in s and "━" in s, "the progress panel at 39x10")
    assert "make the window" not in screen
    # The summary at 80x23 and at 39x10.
    term.resize(80, 23)
    term.wait_for("Press q")
    term.keys("q")
    term.wait_for("Training <star> has ended")
    term.resize(39, 10)
    screen = term.wait_for(lambda s: "has ended" in s and "make the window" not in s,
                           "the summary at 39x10")
    term.keys("Escape")
    term.wait_for("EXIT=0")
    assert term.modes() == RESTORED


# --- case 2: signals --------------------------------------------------------------------------
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT,
                                    signal.SIGINT])
def test_a_signal_on_the_form_restores_the_terminal(term, root, signum):
    term.start("cli", "--gui", "--root", str(root))
    term.wait_for(form_up, "the form")
    assert term.modes() == "1 1 0"  # the app holds the screen, the mouse, the cursor
    os.kill(term.app_pid(), signum)
    screen = term.wait_for(f"EXIT={128 + signum}", f"exit code {128 + signum}")
    assert f"ended by {signal.Signals(signum).name}" in screen
    assert term.modes() == RESTORED


def test_term_on_the_live_screen_leaves_the_run_going(term, tiny_model_dir, demo_images_dir):
    out = term.tmp / "root" / "text-inversion-output" / "star"
    out.mkdir(parents=True)
    (out / "alive").touch()
    term.start("recorded", str(tiny_model_dir), str(demo_images_dir), str(out),
               str(DATA / "events_sample.jsonl"), "200")
    term.wait_for(form_up, "the form")
    term.keys("C-s")
    term.wait_for(lambda s: "Loss" in s and "DVAR" in s, "the live screen")
    os.kill(term.app_pid(), signal.SIGTERM)
    screen = term.wait_for("EXIT=143")
    assert flat(f"ti-tui watch {out}") in flat(screen)
    assert term.modes() == RESTORED
    assert not (out / "asked-stop").exists()  # the trainer was not asked to stop


def test_a_closed_window_ends_the_app_with_129(term, root):
    """The window goes away and nobody sends SIGHUP (the session leader ignores it): the app
    must notice the terminal is gone and exit, not run on for ever."""
    recorded = term.tmp / "exit-code"
    term.start("cli", "--gui", "--root", str(root), leader_records=recorded)
    term.wait_for(form_up, "the form")
    term.tmux("kill-session", "-t", "main")
    deadline = time.monotonic() + DEADLINE_S
    while not (recorded.exists() and recorded.read_text()) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert recorded.exists() and recorded.read_text() == "129"


def test_term_on_the_watch_view_restores_the_terminal(term, tmp_path):
    from trainer.lock import RunLock

    run = tmp_path / "run"
    run.mkdir()
    lines = (DATA / "events_sample.jsonl").read_text().splitlines(keepends=True)
    (run / "events.jsonl").write_text("".join(lines[:200]))  # no stopped event yet
    lock = RunLock.acquire(run)  # this test process is the "trainer"
    try:
        term.start("cli", "watch", str(run))
        term.wait_for(lambda s: "Loss" in s and "Detach" in s, "the live screen")
        assert term.modes().startswith("1")  # the full-screen view is up
        os.kill(term.app_pid(), signal.SIGTERM)
        screen = term.wait_for("EXIT=143")
        assert flat(f"ti-tui watch {run}") in flat(screen)
        assert term.modes() == RESTORED
    finally:
        lock.release()


def test_hup_on_headless_train_leaves_the_trainer_training(term, tiny_model_dir,
                                                           demo_images_dir):
    """`ti-tui train` on a terminal draws Rich's full-screen view; SIGHUP leaves it (terminal
    restored, exit 129, how to come back) while the trainer, in its own session, goes on."""
    from ti_tui.runner import run_alive
    from trainer.lock import LOCK_NAME, read_lock

    out = term.tmp / "out"
    term.start("cli", "train", "--model", str(tiny_model_dir), "--train_data_dir",
               str(demo_images_dir), "--output_dir", str(out), "--placeholder_token", "star",
               "--max_train_steps", "100000", "--train_batch_size", "1", "--device", "cpu")
    try:
        term.wait_for(lambda s: "Ctrl-C" in s and "Loss" in s, "the Rich live view")
        assert term.modes().startswith("1")
        os.kill(term.app_pid(), signal.SIGHUP)
        screen = term.wait_for("EXIT=129")
        assert flat(f"ti-tui watch {out}") in flat(screen)
        assert term.modes() == RESTORED
        assert run_alive(out)  # still training
    finally:
        owner = read_lock(out / LOCK_NAME)
        if owner is not None and owner.is_running():
            try:  # the test's own trainer (a session of its own): end it now
                os.killpg(owner.pid, signal.SIGKILL)
            except ProcessLookupError:
                os.kill(owner.pid, signal.SIGKILL)


# --- case 3: input that is not UTF-8, and crashes ----------------------------------------------
def test_stray_bytes_never_end_the_form(term, root):
    term.start("cli", "--gui", "--root", str(root))
    term.wait_for(form_up, "the form")
    focus_trigger(term)
    term.keys("End")
    term.keys("a", literal=True)
    term.keys("e9", hex_bytes=True)  # "é" from a Latin-1 terminal
    term.keys("b", literal=True)
    term.keys("1b", "5b", "4d", "20", "e4", "30", hex_bytes=True)  # X10 click at column 196
    term.keys("c", literal=True)
    term.wait_for("a\ufffdbc", "the typed characters, the bad byte replaced")
    term.keys("Escape")
    term.wait_for("EXIT=0")
    assert term.modes() == RESTORED


def test_a_crash_exits_1_with_one_line_and_a_log(term, root):
    term.start("crash", "--gui", "--root", str(root))
    term.wait_for(form_up, "the form")
    term.keys("C-s")
    screen = term.wait_for("EXIT=1")
    assert term.modes() == RESTORED
    assert flat("internal error (RuntimeError: boom from the test)") in flat(screen)
    assert "Traceback" not in screen and "╭" not in screen  # one line, not the traceback
    logs = list((term.state / "ti-tui").glob("crash-*.log"))
    assert len(logs) == 1
    assert "boom from the test" in logs[0].read_text()
    assert "Traceback (most recent call last)" in logs[0].read_text()


# --- the held-back case: one live-screen test for every entry point ------------------------------
def test_watch_falls_back_to_plain_lines_where_no_screen_fits(term, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "events.jsonl").write_text((DATA / "events_sample.jsonl").read_text())
    term.start("cli", "watch", str(run), size=(30, 8))
    screen = term.wait_for("EXIT=0")
    assert "╭" not in screen  # no panels squeezed into 30x8: plain summary lines


def test_a_dumb_terminal_gets_one_sentence_from_the_form(term, root):
    term.start("cli", "--gui", "--root", str(root), env="TERM=dumb")
    screen = term.wait_for("EXIT=2")
    assert flat("the form needs a terminal it can draw on (TERM=dumb") in flat(screen)
