"""Faults simulated in-process (issue 7): disk full and read-only folders while saving, NaN
losses, damaged checkpoints, pickles that would run code, and a second run into a busy folder.
Whatever happens, nothing is lost and no file is ever half written (tests/fault_helpers.py).
"""

from __future__ import annotations

import errno
import os
import pickle
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from trainer import fsutil, lock, train
from trainer.formats import load_embedding, save_embedding
from trainer.errors import ResumeError, UserError
from trainer.outputs import OutputError
from trainer.preflight import preflight

from tests.fault_helpers import assert_every_file_whole, events, temporaries
from tests.helpers import make_config

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
        "learned_embeds-steps-2.bin", "learned_embeds-steps-2.safetensors",
        "star-ti-steps-2.safetensors"]
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
    save_embedding(tmp_path, "<star>", {"text_encoder": old}, "sd1", step=2, model_name="m")
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}

    def read_only(src, dst):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS))

    monkeypatch.setattr(fsutil.os, "replace", read_only)
    with pytest.raises(OSError) as info:
        save_embedding(tmp_path, "<star>", {"text_encoder": torch.zeros(1, 32)}, "sd1", step=4,
                       model_name="m")
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


@pytest.fixture
def run_copy(finished_run, tmp_path):
    """A copy of the shared finished 4-step run (checkpoint-2 and checkpoint-4), resuming.

    Step 3 is past checkpoint-2 but before checkpoint-4: resuming from the wrong one fails.
    """
    return finished_run.copy(tmp_path, resume_from_checkpoint="latest", max_train_steps=3)


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
