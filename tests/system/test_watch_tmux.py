"""`ti-tui watch OUTPUT_DIR` of a running run, in a real terminal (tmux, private socket): the
live screen with its keys, not a view that only Ctrl-C could leave.

F1 lists the keys, d leaves with the run going on (exit 0, how to come back, the terminal
restored), and q, which quits most viewers, asks whether to stop the run with Enter keeping
it and d leaving. Without a keyboard (stdin not a terminal) or for an ended run, the Rich view
or the summary lines stay. Every wait polls the screen for a condition
(tests/system/test_app_tmux.py).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.system.test_app_tmux import DATA, RESTORED, Terminal, flat

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")


@pytest.fixture
def term(tmp_path):
    terminal = Terminal(tmp_path)
    yield terminal
    terminal.close()


@pytest.fixture
def running(tmp_path):
    """A run folder whose lock this test process holds: a run in progress at step 200."""
    from trainer.lock import RunLock

    run = tmp_path / "run"
    run.mkdir()
    lines = (DATA / "events_sample.jsonl").read_text().splitlines(keepends=True)
    (run / "events.jsonl").write_text("".join(lines[:200]))  # no stopped event yet
    lock = RunLock.acquire(run)
    yield run
    lock.release()


def live(screen: str) -> bool:
    return "Loss" in screen and "d Detach" in screen


def test_watch_has_keys_f1_and_d_leaves(term, running):
    term.start("cli", "watch", str(running))
    term.wait_for(live, "the live screen")
    term.keys("F1")
    term.wait_for("Keys: the live training screen", "the keys page")
    term.keys("Escape")
    term.wait_for(live, "the live screen again")
    term.keys("d")
    screen = term.wait_for("EXIT=0")
    assert flat(f"ti-tui watch {running}") in flat(screen)
    assert term.modes() == RESTORED
    assert not (running / "control").exists()  # nothing was asked of the trainer


def test_q_asks_enter_keeps_and_d_leaves(term, running):
    term.start("cli", "watch", str(running))
    term.wait_for(live, "the live screen")
    term.keys("q")
    term.wait_for("press d to leave", "the stop question")
    term.keys("Enter")  # the default answer keeps the run
    term.wait_for(lambda s: live(s) and "Stop training?" not in s, "back on the live screen")
    assert not (running / "control").exists()
    term.keys("q")
    term.wait_for("press d to leave", "the stop question again")
    term.keys("d")
    screen = term.wait_for("EXIT=0")
    assert flat(f"ti-tui watch {running}") in flat(screen)
    assert term.modes() == RESTORED
    assert not (running / "control").exists()


@pytest.mark.parametrize("problem, out_problem, alive, expected", [
    (None, None, True, "live"),                                # a terminal with a keyboard
    ("standard input is not a terminal", None, True, "rich"),  # `ti-tui watch DIR < /dev/null`
    (None, "standard output is not a terminal", True, "rich"),  # `ti-tui watch DIR > log`
    (None, None, False, "rich"),                               # an ended run: its summary
])
def test_the_live_screen_only_where_keys_can_be_read(running, monkeypatch, problem,
                                                     out_problem, alive, expected):
    from ti_tui import cli, headless, runner, terminal

    chosen = []
    monkeypatch.setattr(terminal, "live_screen_problem",
                        lambda interactive, env=None: problem if interactive else out_problem)
    monkeypatch.setattr(runner, "run_alive", lambda folder: alive)
    monkeypatch.setattr(cli, "_watch_live", lambda folder: chosen.append("live") or 0)
    monkeypatch.setattr(headless, "run_watch", lambda folder: chosen.append("rich") or 0)
    assert cli.main(["watch", str(running)]) == 0
    assert chosen == [expected]
