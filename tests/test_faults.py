"""Faults (issue 7): whatever happens, nothing is lost and no file is ever half written.

Signals and `kill -9` are tested on the real trainer process (`python -m trainer run.toml`);
to hit the exact moment a file is being written, a tiny wrapper script (written below) slows
one write down: it writes half the bytes, drops a marker file, and sleeps, so the test can
signal or kill it right there. Disk full, NaN losses, damaged checkpoints, malicious pickles
and a second run into a busy folder are simulated in-process.
"""

from __future__ import annotations

import errno
import json
import os
import pickle
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from trainer import checkpoint, fsutil, lock, train
from trainer.embeddings import load_embedding, save_embedding
from trainer.errors import ResumeError, UserError
from trainer.events import read_events
from trainer.outputs import OutputError
from trainer.preflight import preflight

from .helpers import make_config


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


def events(config) -> list[dict]:
    path = config.output_path / "events.jsonl"
    return list(read_events(path)) if path.exists() else []


def steps_done(config) -> int:
    return sum(1 for e in events(config) if e["type"] == "step")


def temporaries(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.name.endswith(".tmp")]


def assert_every_file_whole(folder: Path) -> None:
    """Every embedding and checkpoint under `folder` (hidden temporaries aside) loads."""
    for path in folder.rglob("*"):
        if any(part.startswith(".") for part in path.relative_to(folder).parts):
            continue
        if path.is_dir() and path.name.startswith("checkpoint-"):
            loaded = checkpoint.load_checkpoint(path)
            assert torch.isfinite(loaded.vectors).all()
        elif path.suffix in (".safetensors", ".bin", ".pt") and "checkpoint-" not in str(path):
            _, vectors = load_embedding(path)
            assert torch.isfinite(vectors).all()
        elif path.suffix == ".jsonl":
            for line in path.read_text().splitlines():
                json.loads(line)


@pytest.fixture
def keep_signal_handlers():
    """trainer.__main__.run installs SIGINT/SIGTERM handlers: put pytest's back after."""
    saved = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    yield
    for signum, handler in saved.items():
        signal.signal(signum, handler)


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


# --- disk full, read-only ----------------------------------------------------------------------


def test_disk_full_while_saving_keeps_the_previous_files(tiny_model_dir, demo_images_dir,
                                                          tmp_path, monkeypatch):
    config = make_config(tiny_model_dir, demo_images_dir, tmp_path, max_train_steps=6,
                         save_steps=2, checkpointing_steps=2, dvar_eval_every=0)
    out = config.output_path
    real_write = fsutil.write_file_synced

    def full_disk(path, data):
        if "steps-4" in str(path) or ".checkpoint-4." in str(path):
            with open(path, "wb") as fh:
                fh.write(data[: len(data) // 3])
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_write(path, data)

    monkeypatch.setattr(fsutil, "write_file_synced", full_disk)
    sink: list = []
    with pytest.raises(OutputError) as info:
        train(config, emit=sink.append)
    message = str(info.value)
    assert "\n" not in message and "No space left on device" in message
    assert message.startswith(f"Could not write {out / 'embeddings'} (No space left")
    assert "previous checkpoint and embedding are intact" in message
    assert "--resume_from_checkpoint latest" in message
    error, stopped = sink[-2], sink[-1]
    assert error.type == "error" and error.user_error and stopped.reason == "error"
    assert stopped.step == 4
    # Step 2's files are whole; nothing of step 4 exists, not even a temporary.
    assert sorted(p.name for p in out.glob("checkpoint-*")) == ["checkpoint-2"]
    assert sorted(p.name for p in (out / "embeddings").iterdir()) == [
        "learned_embeds-steps-2.bin", "learned_embeds-steps-2.safetensors"]
    assert temporaries(out) == [] and not (out / lock.LOCK_NAME).exists()
    assert_every_file_whole(out)
    # Space freed: resume latest goes on from step 2.
    monkeypatch.setattr(fsutil, "write_file_synced", real_write)
    resumed: list = []
    result = train(config.replace(resume_from_checkpoint="latest"), emit=resumed.append)
    assert next(e for e in resumed if e.type == "run_started").start_step == 2
    assert result.step == 6


def test_read_only_folder_while_replacing_an_embedding_keeps_the_old_one(tmp_path,
                                                                         monkeypatch):
    old = torch.full((1, 32), 0.5)
    save_embedding(tmp_path, "<star>", old, step=2, model_name="m")
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}

    def read_only(src, dst):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS))

    monkeypatch.setattr(fsutil.os, "replace", read_only)
    with pytest.raises(OSError) as info:
        save_embedding(tmp_path, "<star>", torch.zeros(1, 32), step=4, model_name="m")
    monkeypatch.undo()
    assert info.value.errno == errno.EROFS
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before
    assert torch.equal(load_embedding(tmp_path / "learned_embeds.safetensors")[1], old)


# --- NaN ---------------------------------------------------------------------------------------


def test_nan_loss_skips_updates_then_stops_keeping_the_last_finite_embedding(
        tiny_model_dir, demo_images_dir, tmp_path, monkeypatch, keep_signal_handlers):
    import trainer.loop
    from trainer.__main__ import run

    real_loss = trainer.loop.diffusion_loss
    calls = {"n": 0}

    def loss_goes_nan(**kwargs):
        calls["n"] += 1
        loss = real_loss(**kwargs)
        return loss * float("nan") if calls["n"] > 3 else loss

    straight = train(make_config(tiny_model_dir, demo_images_dir, tmp_path / "straight",
                                 max_train_steps=3, save_steps=0, checkpointing_steps=0,
                                 dvar_eval_every=0, early_stopping="none"))
    monkeypatch.setattr(trainer.loop, "diffusion_loss", loss_goes_nan)
    config = make_config(tiny_model_dir, demo_images_dir, tmp_path, max_train_steps=50,
                         save_steps=5, checkpointing_steps=5, dvar_eval_every=0,
                         early_stopping="none")
    assert run(config) == 2  # the exit code of `python -m trainer`: a user-fixable stop
    log = events(config)
    steps = [e for e in log if e["type"] == "step"]
    assert [e["skipped"] for e in steps] == [False] * 3 + [True] * 10
    error = next(e for e in log if e["type"] == "error")
    assert "NaN or infinite for 10 updates in a row" in error["message"] and error["hint"]
    assert log[-1]["type"] == "stopped" and log[-1]["reason"] == "error"
    assert log[-1]["step"] == 13
    out = config.output_path
    _, final = load_embedding(out / "learned_embeds.safetensors")
    assert torch.equal(final, straight.vectors)  # the embedding after the last finite update
    assert_every_file_whole(out)  # every snapshot and checkpoint finite, none NaN


# --- damaged checkpoints -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def checkpointed_run(tiny_model_dir, demo_images_dir, tmp_path_factory):
    """A finished 4-step run with checkpoint-2 and checkpoint-4 (copied per test)."""
    tmp = tmp_path_factory.mktemp("checkpointed")
    config = make_config(tiny_model_dir, demo_images_dir, tmp, max_train_steps=4,
                         save_steps=0, checkpointing_steps=2, dvar_eval_every=0)
    train(config)
    return config


@pytest.fixture
def run_copy(checkpointed_run, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(checkpointed_run.output_path, out)
    # Step 3 is past checkpoint-2 but before checkpoint-4: resuming from the wrong one fails.
    return checkpointed_run.replace(output_dir=str(out), resume_from_checkpoint="latest",
                                    max_train_steps=3)


@pytest.mark.parametrize("damage", ["state.pt", "meta.json"])
def test_damaged_checkpoint_is_skipped_with_a_warning(run_copy, damage):
    target = run_copy.output_path / "checkpoint-4" / damage
    target.write_bytes(target.read_bytes()[:40])  # truncated
    sink: list = []
    result = train(run_copy, emit=sink.append)
    warning = next(e for e in sink if e.type == "warning" and "checkpoint-4" in e.message)
    assert warning.message.startswith("Checkpoint checkpoint-4 was skipped: it is damaged")
    assert "\n" not in warning.message and warning.file.endswith("checkpoint-4")
    assert next(e for e in sink if e.type == "run_started").start_step == 2
    assert result.step == 3


def test_every_checkpoint_damaged_is_one_clear_error(run_copy):
    for step in (2, 4):
        (run_copy.output_path / f"checkpoint-{step}" / "state.pt").write_bytes(b"junk")
    with pytest.raises(ResumeError) as info:
        train(run_copy)
    message = str(info.value)
    assert "\n" not in message and "No usable checkpoint" in message
    assert "checkpoint-4, checkpoint-2" in message and "drop --resume_from_checkpoint" in message


def test_a_half_deleted_checkpoint_folder_is_not_resumed_from(run_copy):
    (run_copy.output_path / "checkpoint-4" / "state.pt").unlink()
    assert preflight(run_copy).resume_dir.name == "checkpoint-2"


# --- pickles that would run code ---------------------------------------------------------------


class _CreatesAFile:
    path = ""

    def __reduce__(self):
        return (os.system, (f"touch {self.path}",))


def evil_files(tmp_path: Path) -> tuple[Path, list[Path]]:
    marker = tmp_path / "PWNED"
    _CreatesAFile.path = str(marker)
    raw = tmp_path / "evil.bin"
    raw.write_bytes(pickle.dumps({"<star>": _CreatesAFile()}, protocol=2))
    zipped = tmp_path / "evil.pt"
    torch.save({"string_to_param": {"*": _CreatesAFile()}}, zipped)
    return marker, [raw, zipped]


def test_an_initial_embedding_pickle_with_code_is_refused(tiny_model_dir, demo_images_dir,
                                                          tmp_path):
    marker, files = evil_files(tmp_path)
    for path in files:
        config = make_config(tiny_model_dir, demo_images_dir, tmp_path,
                             initial_embedding=str(path))
        with pytest.raises(ResumeError) as info:
            preflight(config)
        message = str(info.value)
        assert message == (f"Cannot load {path}: it contains pickled code, which ti-tui never "
                           "runs; use a .safetensors file or one saved as plain tensors.")
        assert info.value.field == "initial_embedding"
    assert not marker.exists()


def test_a_checkpoint_holding_a_pickle_with_code_is_skipped(run_copy, tmp_path):
    marker, (_, zipped) = evil_files(tmp_path)
    shutil.copy(zipped, run_copy.output_path / "checkpoint-4" / "state.pt")
    sink: list = []
    train(run_copy, emit=sink.append)
    assert not marker.exists()
    warning = next(e for e in sink if e.type == "warning" and "checkpoint-4" in e.message)
    assert warning.message == ("Checkpoint checkpoint-4 was skipped: it contains pickled code, "
                               "which ti-tui never runs.")
    assert next(e for e in sink if e.type == "run_started").start_step == 2


# --- a second run into a busy folder -----------------------------------------------------------


def test_a_second_trainer_into_a_busy_folder_touches_nothing(run_copy, keep_signal_handlers,
                                                             capsys):
    from trainer.__main__ import run

    out = run_copy.output_path
    (out / "events.jsonl").write_text('{"type": "step", "step": 1}\n')
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        owner = lock.Owner(holder.pid, lock.start_time(holder.pid), socket.gethostname())
        (out / lock.LOCK_NAME).write_text(owner.text())
        before = {p: p.stat().st_mtime_ns for p in out.rglob("*")}
        assert run(run_copy) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith(f"ti-tui: Another run (pid {holder.pid})") and "\n" not in err
        assert {p: p.stat().st_mtime_ns for p in out.rglob("*")} == before
        with pytest.raises(UserError, match="still training"):
            lock.RunLock.acquire(out)
    finally:
        holder.kill()
        holder.wait()
    taken = lock.RunLock.acquire(out)  # its owner is gone: stale, taken over
    taken.release()
