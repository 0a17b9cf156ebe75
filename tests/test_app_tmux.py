"""The real app in a real terminal (tmux), for a few seconds: start, type, resize, quit.

Pilot tests drive Textual's headless driver; this one runs the app's own terminal driver with
TERM=screen and NO_COLOR, so escape-sequence parsing, resize signals and the exit path are the
real ones. Skipped when tmux is not installed.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")

SCRIPT = """
import sys
from pathlib import Path
from ti_tui.app import make_app

app = make_app(root=Path(sys.argv[1]))
app.run()
print("EXIT", app.return_value, app.return_code, flush=True)
"""


def tmux(*args: str) -> str:
    return subprocess.run(["tmux", *args], check=True, capture_output=True, text=True).stdout


def wait_for(session: str, text: str, timeout: float = 60) -> str:
    deadline = time.monotonic() + timeout
    screen = ""
    while time.monotonic() < deadline:
        screen = tmux("capture-pane", "-p", "-t", session)
        if text in screen:
            return screen
        time.sleep(0.2)
    raise AssertionError(f"{text!r} did not appear; the screen was:\n{screen}")


def test_real_app_in_tmux(tiny_model_dir):
    root = Path(tempfile.mkdtemp(prefix="ti-tmux-"))
    models = root / "models" / "sd-1" / "main"
    models.mkdir(parents=True)
    (models / "tiny").symlink_to(tiny_model_dir, target_is_directory=True)
    script = root / "launch.py"
    script.write_text(SCRIPT)
    session = f"ti-tui-test-{uuid.uuid4().hex[:8]}"
    # Under pytest, children inherit COLUMNS/LINES (put into the C environment by the test
    # run); Textual would then take them as the terminal size and never follow a resize.
    env = f"env -u COLUMNS -u LINES TERM=screen NO_COLOR=1 HF_HUB_OFFLINE=1 PYTHONPATH={Path.cwd()}"
    command = f"{env} {sys.executable} {script} {root}; sleep 30"
    tmux("new-session", "-d", "-s", session, "-x", "80", "-y", "24", command)
    try:
        screen = wait_for(session, "Trigger term")
        assert "sd-1/main/tiny" in screen and "Ctrl" not in screen.splitlines()[0]
        wait_for(session, "native 64 px")
        time.sleep(1.0)  # let the tokenizer thread finish its imports
        tmux("send-keys", "-t", session, "Tab")
        time.sleep(0.3)
        tmux("send-keys", "-t", session, "-l", "cat")
        screen = wait_for(session, "use <cat> in your prompts")
        assert f"{root}/text-inversion-output/cat" in screen
        tmux("resize-window", "-t", session, "-x", "70", "-y", "20")
        wait_for(session, "make the window at least 80x24")
        tmux("resize-window", "-t", session, "-x", "80", "-y", "24")
        wait_for(session, "use <cat> in your prompts")
        tmux("send-keys", "-t", session, "Escape")
        screen = wait_for(session, "EXIT quit 0")
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True,
                       check=False)
        shutil.rmtree(root, ignore_errors=True)
