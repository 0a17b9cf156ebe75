"""`ti-tui train` and `ti-tui watch` as a user runs them: in tmux, and with the UI killed."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from trainer.event_file import read_events

pytestmark = pytest.mark.slow
TI_TUI = [sys.executable, "-m", "ti_tui.cli"]


def train_args(model, images, out: Path) -> list[str]:
    return ["train", "--model", str(model), "--root", str(out.parent / "root"),
            "--placeholder_token", "star", "--train_data_dir", str(images),
            "--output_dir", str(out), "--train_batch_size", "1", "--max_train_steps", "100000",
            "--learning_rate", "1e-3", "--early_stopping", "none", "--dvar_window", "50",
            "--save_steps", "0", "--checkpointing_steps", "0", "--seed", "0", "--device", "cpu"]


def wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


def events_of(out: Path) -> list[dict]:
    path = out / "events.jsonl"
    return list(read_events(path)) if path.exists() else []


def kill_trainer(out: Path) -> None:
    """The trainer outlives its UI by design; a failed test must not leave it running."""
    for event in events_of(out):
        if event["type"] == "run_started":
            try:
                os.killpg(event["pid"], signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass


def step_count(out: Path) -> int:
    return sum(1 for e in events_of(out) if e["type"] == "step")


@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")
def test_headless_train_in_tmux_shows_panels_and_stops_cleanly_on_ctrl_c(
        tiny_model_dir, demo_images_dir, tmp_path):
    out = tmp_path / "out"
    session = f"ti-tui-test-{os.getpid()}"
    command = " ".join([*TI_TUI, *train_args(tiny_model_dir, demo_images_dir, out)])
    env = f"HF_HUB_OFFLINE=1 TI_TUI_CACHE_DIR={os.environ['TI_TUI_CACHE_DIR']}"
    shell = f"cd {tmp_path} && env {env} {command}; echo EXIT=$?; sleep 60"
    subprocess.run(["tmux", "new-session", "-d", "-s", session, "-x", "100", "-y", "32", shell],
                   check=True)

    def screen() -> str:
        return subprocess.run(["tmux", "capture-pane", "-p", "-t", session],
                              capture_output=True, text=True).stdout

    def screen_with(*words: str) -> str:
        text = screen()
        return text if all(w in text for w in words) else ""

    try:
        wait_for(lambda: step_count(out) >= 3, 120, "the first steps")
        shown = wait_for(lambda: screen_with("Loss", "DVAR"), 30, "the panels")
        assert "step" in shown and "<star>" in shown
        subprocess.run(["tmux", "send-keys", "-t", session, "C-c"], check=True)
        final = wait_for(lambda: screen_with("EXIT="), 120, "the exit")
        assert "EXIT=0" in final
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True)
        kill_trainer(out)
    events = events_of(out)
    assert events[-1]["type"] == "stopped" and events[-1]["reason"] == "user"
    assert (out / "learned_embeds.safetensors").is_file()
    assert any(p.name.startswith("checkpoint-") for p in out.iterdir())


def test_trainer_survives_the_ui_and_watch_reattaches(tiny_model_dir, demo_images_dir,
                                                      tmp_path):
    out = tmp_path / "out"
    ui = subprocess.Popen([*TI_TUI, *train_args(tiny_model_dir, demo_images_dir, out)],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=tmp_path)
    try:
        wait_for(lambda: step_count(out) >= 2, 120, "the first steps")
        pid = next(e["pid"] for e in events_of(out) if e["type"] == "run_started")
        ui.kill()  # what a dropped SSH connection does to the foreground program
        ui.wait(10)
        seen = step_count(out)
        wait_for(lambda: step_count(out) > seen + 2, 60, "steps after the UI died")
        os.kill(pid, 0)  # still running
        watch = subprocess.Popen([*TI_TUI, "watch", str(out)], stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True)
        time.sleep(2)
        os.kill(pid, signal.SIGINT)  # a clean stop, as the dashboard's q / y would ask
        stdout, stderr = watch.communicate(timeout=120)
    finally:
        if ui.poll() is None:
            ui.kill()
        kill_trainer(out)
    assert watch.returncode == 0, stderr
    assert "\x1b[" not in stdout
    assert "stopped" in stdout.lower()
    assert events_of(out)[-1]["reason"] == "user"
    assert (out / "learned_embeds.bin").is_file()
