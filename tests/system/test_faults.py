"""Faults (issue 7): whatever happens, nothing is lost and no file is ever half written.

Signals and `kill -9` are tested on the real trainer process (`python -m trainer run.toml`);
to hit the exact moment a file is being written, a tiny wrapper script (written below) slows
one write down: it writes half the bytes, drops a marker file, and sleeps, so the test can
signal or kill it right there. Faults simulated in-process are in test_faults_in_process.py.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from trainer import checkpoint, lock, train

from tests.fault_helpers import assert_every_file_whole, events, temporaries
from tests.helpers import make_config


# --- helpers -----------------------------------------------------------------------------------

SLOW_WRITE_WRAPPER = '''
"""`python -m trainer`, except that the first write whose path contains $TI_PAUSE_MATCH
stops half way: half the bytes are written, $TI_PAUSE_MARKER is created, and it sleeps."""
import os, sys, time
from pathlib import Path

from trainer import fsutil

_write = fsutil.write_file_synced
MATCH, MARKER = os.environ["TI_PAUSE_MATCH"], Path(os.environ["TI_PAUSE_MARKER"])


def slow_write(path, data):
    if MATCH in str(path) and not MARKER.exists():
        with open(path, "wb") as fh:
            fh.write(data[: len(data) // 2])
            fh.flush()
            MARKER.write_text(str(path))
            time.sleep(120)
            fh.write(data[len(data) // 2:])
        return
    _write(path, data)


fsutil.write_file_synced = slow_write
from trainer.__main__ import main  # noqa: E402

sys.exit(main(sys.argv[1:]))
'''


def long_config(model, images, tmp_path, **changes):
    """A run that would go on for a long time: the test ends it."""
    values = {"max_train_steps": 100_000, "save_steps": 0, "checkpointing_steps": 0,
              "dvar_eval_every": 0, "early_stopping": "none", **changes}
    config = make_config(model, images, tmp_path, **values)
    config.output_path.mkdir(parents=True)
    (config.output_path / "run.toml").write_text(config.to_toml())
    return config


def start(config, tmp_path, *, pause_match: str | None = None) -> subprocess.Popen:
    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONUNBUFFERED="1",
               OMP_NUM_THREADS="1")  # tiny model: one thread is as fast, and immune to a busy CPU
    if pause_match is None:
        command = [sys.executable, "-m", "trainer", str(config.output_path / "run.toml")]
    else:
        wrapper = tmp_path / "slow_trainer.py"
        wrapper.write_text(SLOW_WRITE_WRAPPER)
        env.update(TI_PAUSE_MATCH=pause_match, TI_PAUSE_MARKER=str(tmp_path / "paused"))
        command = [sys.executable, str(wrapper), str(config.output_path / "run.toml")]
    log = open(tmp_path / "trainer.log", "wb")  # noqa: SIM115 - closed with the process
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env,
                               stdin=subprocess.DEVNULL)
    log.close()
    return process


@pytest.fixture
def processes():
    """Every trainer a test starts is gone when the test ends, pass or fail."""
    started: list[subprocess.Popen] = []
    yield started
    for process in started:
        if process.poll() is None:
            process.kill()
            process.wait()


def wait_for(predicate, what: str, process: subprocess.Popen | None = None,
             timeout: float = 90.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        if process is not None and process.poll() is not None:
            raise AssertionError(f"the trainer exited ({process.returncode}) before {what}")
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def steps_done(config) -> int:
    return sum(1 for e in events(config) if e["type"] == "step")


# --- signals -------------------------------------------------------------------------------------


def test_sigterm_finishes_the_update_saves_and_exits_0(tiny_model_dir, demo_images_dir,
                                                        tmp_path, processes):
    config = long_config(tiny_model_dir, demo_images_dir, tmp_path)
    process = start(config, tmp_path)
    processes.append(process)
    wait_for(lambda: steps_done(config) >= 1, "the first step", process)
    process.send_signal(signal.SIGTERM)
    assert process.wait(60) == 0, (tmp_path / "trainer.log").read_text()
    stopped = events(config)[-1]
    assert stopped["type"] == "stopped" and stopped["reason"] == "user"
    step = stopped["step"]
    assert step == steps_done(config) >= 1
    out = config.output_path
    assert checkpoint.load_checkpoint(out / f"checkpoint-{step}").step == step
    for name in ("learned_embeds.safetensors", "learned_embeds.bin"):
        assert str(out / name) in stopped["files"]
    assert_every_file_whole(out)
    assert temporaries(out) == [] and not (out / lock.LOCK_NAME).exists()


def test_sigint_while_the_model_loads_stops_before_any_update(tiny_model_dir, demo_images_dir,
                                                               tmp_path, processes):
    config = long_config(tiny_model_dir, demo_images_dir, tmp_path)
    process = start(config, tmp_path)
    processes.append(process)
    wait_for(lambda: any(e["type"] == "phase" for e in events(config)), "loading", process)
    process.send_signal(signal.SIGINT)
    assert process.wait(60) == 0, (tmp_path / "trainer.log").read_text()
    stopped = events(config)[-1]
    assert stopped["type"] == "stopped" and stopped["reason"] == "user"
    assert stopped["step"] == 0 and steps_done(config) == 0
    assert_every_file_whole(config.output_path)


def test_second_signal_exits_at_once_leaving_no_half_file(tiny_model_dir, demo_images_dir,
                                                          tmp_path, processes):
    config = long_config(tiny_model_dir, demo_images_dir, tmp_path, checkpointing_steps=1)
    out = config.output_path
    # The final save (after the first signal) stalls half way through its first file.
    process = start(config, tmp_path, pause_match=f"{out}/.learned_embeds.safetensors.")
    processes.append(process)
    wait_for(lambda: steps_done(config) >= 1, "the first step", process)
    process.send_signal(signal.SIGINT)
    half = Path(wait_for(lambda: (tmp_path / "paused").exists()
                         and (tmp_path / "paused").read_text(), "the final save", process))
    assert half.exists() and half.name.endswith(".tmp")  # half written, under a temporary name
    sent = time.monotonic()
    process.send_signal(signal.SIGINT)
    assert process.wait(30) == 130
    assert time.monotonic() - sent < 10  # at once, not after the 120 s the write would take
    assert not half.exists() and temporaries(out) == []
    assert not (out / "learned_embeds.safetensors").exists()  # absent, never half
    assert_every_file_whole(out)
    # The killed run's lock is stale; resuming continues from its newest checkpoint.
    newest = checkpoint.latest_checkpoint(out)
    resumed: list = []
    result = train(config.replace(resume_from_checkpoint="latest",
                                  max_train_steps=checkpoint.load_checkpoint(newest).step + 1),
                   emit=resumed.append)
    assert next(e for e in resumed if e.type == "run_started").start_step == int(
        newest.name.split("-")[1])
    assert result.reason == "max_steps" and (out / "learned_embeds.safetensors").is_file()


def test_kill_9_during_a_checkpoint_write_then_resume_latest(tiny_model_dir, demo_images_dir,
                                                             tmp_path, processes):
    config = long_config(tiny_model_dir, demo_images_dir, tmp_path, checkpointing_steps=2,
                         save_steps=2)
    out = config.output_path
    process = start(config, tmp_path, pause_match=f"{out}/.checkpoint-4.")
    processes.append(process)
    half = Path(wait_for(lambda: (tmp_path / "paused").exists()
                         and (tmp_path / "paused").read_text(), "checkpoint-4", process))
    process.kill()
    process.wait(30)
    # On disk: checkpoint-2 whole, no checkpoint-4 at all (its pieces only in a hidden
    # temporary folder), every visible file complete, and the dead run's lock.
    assert half.parent.name.startswith(".checkpoint-4.") and half.exists()
    assert sorted(p.name for p in out.glob("checkpoint-*")) == ["checkpoint-2"]
    assert_every_file_whole(out)
    assert lock.read_owner(out / lock.LOCK_NAME) == process.pid
    # --resume_from_checkpoint latest: from checkpoint-2, the lock taken over, debris removed.
    resumed: list = []
    result = train(config.replace(resume_from_checkpoint="latest", max_train_steps=3),
                   emit=resumed.append)
    assert next(e for e in resumed if e.type == "run_started").start_step == 2
    assert result.step == 3 and result.reason == "max_steps"
    assert temporaries(out) == [] and not half.parent.exists()
    assert not (out / lock.LOCK_NAME).exists()
    assert_every_file_whole(out)
