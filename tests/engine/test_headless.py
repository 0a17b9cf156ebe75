"""The headless views (ti_tui/headless.py): plain lines, the Live dashboard, `ti-tui watch`."""

from __future__ import annotations

import io
import os
import shutil
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
from rich.console import Console

from trainer.event_file import read_events
from ti_tui.headless import follow_run, run_watch
from ti_tui.runner import run_alive
from trainer.lock import LOCK_NAME, RunLock

DATA = Path(__file__).parents[1] / "data"
SAMPLE = DATA / "events_sample.jsonl"
KINDS = Counter(e["type"] for e in read_events(SAMPLE))


def plain_console(width: int = 100) -> Console:
    return Console(file=io.StringIO(), width=width)


def run_dir(tmp_path: Path, lines: int | None = None) -> Path:
    """An output folder holding the sample (its first `lines` lines) and its preview."""
    text = SAMPLE.read_text().splitlines(keepends=True)
    (tmp_path / "events.jsonl").write_text("".join(text[:lines] if lines else text))
    shutil.copytree(DATA / "previews", tmp_path / "previews")
    return tmp_path


class DeadHandle:
    """A trainer that has already exited."""

    def __init__(self, path: Path, code: int = 1):
        self.output_dir, self.events_path, self.code = path.parent, path, code
        self.stopped = False

    def request(self, action: str) -> None: ...
    def stop(self) -> None:
        self.stopped = True

    def is_alive(self) -> bool:
        return False

    def wait(self, timeout: float | None = None) -> int | None:
        return self.code


@pytest.mark.parametrize("log_every", [50, 100])
def test_plain_lines_one_per_log_every_steps_and_per_other_event(tmp_path, log_every):
    console = plain_console()
    state = follow_run(run_dir(tmp_path) / "events.jsonl", console=console, tty=False,
                       log_every=log_every)
    out = console.file.getvalue()
    lines = out.splitlines()
    assert "\x1b" not in out and state.finished
    step_lines = [line for line in lines if line.startswith("step ")]
    assert [int(line.split()[1].split("/")[0]) for line in step_lines] == \
        list(range(log_every, 438, log_every))
    others = sum(n for kind, n in KINDS.items() if kind not in ("step", "gpu_stats"))
    assert len(lines) == len(step_lines) + others
    assert lines[-1] == ("stopped at step 437: stopped early by DVAR (DVAR ratio 0.387 < 0.39 "
                         "after 437 updates)")
    assert "checkpoint at step 100: checkpoint-100" in lines
    assert any(line.startswith("warning: Skipped IMG_0042.heic") for line in lines)
    assert "window 50/282" in step_lines[0] or log_every == 100


def test_plain_lines_end_with_which_file_for_which_tool(tmp_path):
    """`ti-tui train > log` ends as the terminal summary does: the tool lines, read from the
    files in the folder (trainer/install_guide.py), after the stopped line."""
    out = run_dir(tmp_path)
    for name in ("my-cat.safetensors", "learned_embeds.safetensors", "learned_embeds.bin"):
        (out / name).write_bytes(b"\0" * 16)
    console = plain_console(300)
    follow_run(out / "events.jsonl", console=console, tty=False, log_every=100)
    lines = console.file.getvalue().splitlines()
    end = lines.index("stopped at step 437: stopped early by DVAR (DVAR ratio 0.387 < 0.39 "
                      "after 437 updates)")
    assert lines[end + 1] == "which file for which tool:"
    guide = lines[end + 2:]
    assert f"  A1111/Forge: {out / 'my-cat.safetensors'} (put it in the webui's embeddings/ " \
           "folder; prompt word my-cat)" in guide
    assert f"  diffusers: {out / 'learned_embeds.safetensors'} (pipe.load_textual_inversion)" \
        in guide
    assert all(line.startswith("  ") for line in guide) and len(guide) >= 5


def test_a_trainer_gone_without_a_stopped_event_ends_the_view(tmp_path):
    path = run_dir(tmp_path, lines=200) / "events.jsonl"
    console = plain_console()
    state = follow_run(path, console=console, tty=False, log_every=50,
                       handle=DeadHandle(path, code=-9))
    assert not state.finished and state.step > 100
    assert console.file.getvalue().splitlines()[-1] == \
        "the trainer exited without a stopped event (exit code -9)"


@pytest.mark.parametrize("code", [130, -2])
@pytest.mark.parametrize("saved", [True, False])
def test_a_second_ctrl_c_says_it_stopped_at_once_and_what_is_left(tmp_path, code, saved):
    """A second Ctrl-C ends the trainer at once (exit 130): say so and name the checkpoint
    left to resume from, not "exited without a stopped event"."""
    from trainer.checkpoint_index import FILES

    out = run_dir(tmp_path, lines=200)
    if saved:
        (out / "checkpoint-100").mkdir(exist_ok=True)
        for name in FILES:
            (out / "checkpoint-100" / name).write_text("x")
    console = plain_console(300)
    follow_run(out / "events.jsonl", console=console, tty=False, log_every=50,
               handle=DeadHandle(out / "events.jsonl", code=code))
    last = console.file.getvalue().splitlines()[-1]
    assert last.startswith("The second Ctrl-C stopped the trainer at once without saving; ")
    assert "without a stopped event" not in last
    if saved:
        assert f"{out / 'checkpoint-100'} is left" in last
        assert "--resume_from_checkpoint latest" in last
    else:
        assert "no checkpoint had been saved yet" in last


def test_the_live_dashboard_on_a_terminal(tmp_path):
    console = Console(file=io.StringIO(), width=100, height=30, force_terminal=True,
                      color_system="256")
    state = follow_run(run_dir(tmp_path) / "events.jsonl", console=console, tty=True,
                       log_every=50)
    out = console.file.getvalue()
    assert state.finished
    assert "DVAR" in out and "Loss" in out and "converged at step 437" in out
    assert "stopped: stopped early by DVAR" in out  # the summary printed after the view


def test_watch_a_finished_run_without_a_terminal(tmp_path):
    console = plain_console()
    assert run_watch(run_dir(tmp_path), console=console) == 0
    out = console.file.getvalue()
    assert "\x1b" not in out
    assert "stopped: stopped early by DVAR (DVAR ratio 0.387 < 0.39 after 437 updates)" in out
    assert "DVAR converged at step 437" in out
    assert "final files: /home/ada/invokeai/text-inversion-output/my-cat/learned_embeds" \
           ".safetensors" in out
    assert "last preview:" in out and "warnings: 2" in out


def test_watch_a_folder_with_no_run(tmp_path):
    console = plain_console(200)
    assert run_watch(tmp_path, console=console) == 2
    assert console.file.getvalue().strip() == (
        f"No run found in {tmp_path}: events.jsonl is missing. Pass the output folder of a run.")


def test_watch_a_dead_run_summarises_it(tmp_path):
    # No live run lock in the folder: the trainer is gone.
    console = plain_console()
    assert run_watch(run_dir(tmp_path, lines=300), console=console) == 0
    assert "the trainer is not running and wrote no stopped event" in console.file.getvalue()


def test_watch_follows_a_running_run_until_it_stops(tmp_path):
    lines = SAMPLE.read_text().splitlines(keepends=True)
    (tmp_path / "events.jsonl").write_text("".join(lines[:250]))
    lock = RunLock.acquire(tmp_path)  # this process holds the run: "alive"

    def finish() -> None:
        time.sleep(0.3)
        with open(tmp_path / "events.jsonl", "a") as fh:
            fh.write("".join(lines[250:]))

    writer = threading.Thread(target=finish)
    writer.start()
    console = plain_console()
    try:
        assert run_watch(tmp_path, console=console) == 0
    finally:
        writer.join()
        lock.release()
    assert console.file.getvalue().splitlines()[-1].startswith("stopped at step 437")


def test_run_alive_reads_the_run_lock_and_refuses_a_reused_pid(tmp_path):
    assert not run_alive(tmp_path)  # no lock: no run
    lock = RunLock.acquire(tmp_path)
    try:
        assert run_alive(tmp_path)
    finally:
        lock.release()
    # Our pid, but a start time a day off: the pid was reused, so this is not the run.
    (tmp_path / LOCK_NAME).write_text(f"{os.getpid()}\n{time.time() - 86400:.2f}\n\n")
    assert not run_alive(tmp_path)
    (tmp_path / LOCK_NAME).write_text("999999999\n\n\n")  # beyond any pid_max
    assert not run_alive(tmp_path)


def test_train_after_a_second_ctrl_c_prints_no_trainer_failed_line(tmp_path, monkeypatch,
                                                                   capsys):
    """`ti-tui train`: exit 130 after the second Ctrl-C is not a trainer failure; the view's
    line (what the Ctrl-C did, what is left) is the whole story."""
    import signal

    from ti_tui import cli, headless, runner
    from ti_tui.state import RunState

    class Handle:
        output_dir, events_path = tmp_path, tmp_path / "events.jsonl"

        def wait(self, timeout=None):
            return 130

    monkeypatch.setattr(runner, "start_run", lambda config: Handle())
    monkeypatch.setattr(headless, "follow_run", lambda *a, **k: RunState(base_dir=str(tmp_path)))
    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    try:
        code = cli.train_headless(type("Config", (), {"output_path": tmp_path,
                                                      "log_every": 50})())
    finally:
        signal.signal(signal.SIGINT, before[0])
        signal.signal(signal.SIGTERM, before[1])
    assert code == 130
    assert "trainer failed" not in capsys.readouterr().err
