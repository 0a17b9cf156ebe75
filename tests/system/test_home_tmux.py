"""`ti-tui` with no arguments, launched from a shell-script menu in a real terminal (tmux on a
private server socket): the home screen lists the runs, a run opens, q quits, and the menu
goes on with the terminal restored (main screen, cursor shown, no mouse reporting, keys echo).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from tests.home_runs import build_root, release

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")

MENU = """#!/bin/sh
echo "MENU 1) Textual inversion training"
cd /
{ti_tui}
echo "MENU ti-tui exited $?"
printf 'MENU choice? '
read answer
echo "MENU got $answer"
sleep 60
"""


def chosen_run(screen: str) -> str:
    """The detail line under the list's rule: the folder of the run under the cursor."""
    lines = screen.splitlines()
    for i, line in enumerate(lines[:-1]):
        if line.startswith("─"):
            return lines[i + 1].strip()
    return ""


class Tmux:
    """One tmux server of our own (-L), so no test shares the user's server or another's."""

    def __init__(self) -> None:
        self.socket = f"ti-home-{uuid.uuid4().hex[:10]}"

    def __call__(self, *args: str) -> str:
        return subprocess.run(["tmux", "-L", self.socket, *args], check=True,
                              capture_output=True, text=True).stdout

    def screen(self) -> str:
        return self("capture-pane", "-p", "-t", "menu")

    def wait_for(self, text: str, timeout: float = 90) -> str:
        """Poll the pane until `text` shows (a condition, not a sleep); fail with the screen."""
        deadline = time.monotonic() + timeout
        screen = ""
        while time.monotonic() < deadline:
            screen = self.screen()
            if text in screen:
                return screen
            time.sleep(0.2)
        raise AssertionError(f"{text!r} did not appear; the screen was:\n{screen}")

    def wait_for_change(self, before: str, timeout: float = 30) -> str:
        """Poll until the chosen run (the folder on the detail line) differs from `before`'s."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            screen = self.screen()
            if chosen_run(screen) != chosen_run(before):
                return screen
            time.sleep(0.1)
        raise AssertionError(f"the cursor did not move:\n{before}")

    def flag(self, name: str) -> str:
        return self("display-message", "-p", "-t", "menu", f"#{{{name}}}").strip()

    def kill(self) -> None:
        subprocess.run(["tmux", "-L", self.socket, "kill-server"], capture_output=True,
                       check=False)


def test_menu_launches_home_opens_a_run_quits_and_goes_on(root):
    runs = build_root(root)
    tmux = Tmux()
    ti_tui = Path(sys.executable).with_name("ti-tui")
    menu = root / "menu.sh"
    # Under pytest, COLUMNS/LINES are in the environment; Textual would take them as the size.
    menu.write_text(MENU.format(ti_tui=f"env -u COLUMNS -u LINES HF_HUB_OFFLINE=1 "
                                       f"INVOKEAI_ROOT={root} {ti_tui}"))
    try:
        tmux("new-session", "-d", "-s", "menu", "-x", "100", "-y", "30",
             f"TERM=xterm-256color sh {menu}")
        screen = tmux.wait_for("DVAR stop @606")
        assert "MENU 1) Textual inversion training" not in screen  # the app owns the screen
        assert "running" in screen and "damaged" in screen and "not a run" in screen
        assert tmux.flag("alternate_on") == "1"
        # The rows are listed running first, then newest; walk down to "star" and open it.
        for _ in range(6):
            before = tmux.screen()
            if "finished: reached the step limit" in before:
                break
            tmux("send-keys", "-t", "menu", "Down")
            tmux.wait_for_change(before)  # one key at a time: the detail line follows it
        tmux.wait_for("finished: reached the step limit")
        tmux("send-keys", "-t", "menu", "Enter")
        tmux.wait_for("Training <star> has ended")
        tmux("send-keys", "-t", "menu", "Escape")
        tmux.wait_for("DVAR stop @606")
        tmux("send-keys", "-t", "menu", "q")
        screen = tmux.wait_for("MENU choice?")
        assert "MENU ti-tui exited 0" in screen
        assert tmux.flag("alternate_on") == "0"
        assert tmux.flag("cursor_flag") == "1"
        assert tmux.flag("mouse_any_flag") == "0" and tmux.flag("mouse_all_flag") == "0"
        tmux("send-keys", "-t", "menu", "-l", "hello")
        tmux("send-keys", "-t", "menu", "Enter")
        screen = tmux.wait_for("MENU got hello")
        assert "MENU choice? hello" in screen  # typed keys echo: the terminal is cooked again
        assert runs["cat"].is_dir()  # quitting the launcher leaves every run alone
    finally:
        tmux.kill()
        release(root)
