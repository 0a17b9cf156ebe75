"""A full disk loses nothing and says so (issue 15, item 6).

Whichever write meets the full (or read-only) disk first (the run lock, an events.jsonl
append, a snapshot, a checkpoint, a preview, dvar_history.csv, the final embedding), the run
ends with exit code 2 and one sentence naming the file and what to do, never a traceback; the
last complete checkpoint and embedding stay whole, and once space is back a resume works.

Two ways: an injected ENOSPC/EROFS at each kind of write (runs anywhere), and a real 24 KB
tmpfs under the output folder (needs mount rights, as root in CI; skipped otherwise).
"""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from pathlib import Path

import pytest

from trainer import checkpoint, fsutil, lock
from trainer import event_file as events_module
from trainer.formats import load_embedding
from trainer.fsutil import RESERVE_NAME

from tests.fault_helpers import assert_every_file_whole, events, temporaries
from tests.helpers import make_config


class FullDisk:
    """From the write `trigger(kind, path)` picks on, every write fails with `code`.

    Releasing the run's reserve file gives back `credit` bytes, as deleting it would on a real
    disk, so the error and stopped events can still be appended.
    """

    def __init__(self, monkeypatch, trigger, code=errno.ENOSPC, credit=4096):
        self.trigger, self.code, self.credit = trigger, code, 0
        self.full = False
        self.kinds: list[str] = []
        real_write = fsutil.write_file_synced
        real_append = events_module.EventLog._append
        real_lock = lock._create_with_content
        real_save = fsutil.atomic_save
        real_release = fsutil.release_reserve

        def write(path, data):
            self._check("file", path, len(data))
            real_write(path, data)

        def append(log, line):
            self._check("event", log.path, len(line), line)
            real_append(log, line)

        def create_lock(path, text):
            self._check("lock", path, len(text))
            return real_lock(path, text)

        def save(target, writer):
            self._check("image", target, 0)
            real_save(target, writer)

        def release():
            freed = real_release()
            if freed and self.full:
                self.credit = credit
            return freed

        monkeypatch.setattr(fsutil, "write_file_synced", write)
        monkeypatch.setattr(events_module.EventLog, "_append", append)
        monkeypatch.setattr(lock, "_create_with_content", create_lock)
        monkeypatch.setattr("trainer.preview.atomic_save", save)
        monkeypatch.setattr(fsutil, "release_reserve", release)

    def _check(self, kind: str, path, size: int, line: bytes = b"") -> None:
        self.kinds.append(kind)
        if not self.full and self.trigger(kind, str(path), line):
            self.full = True
        if not self.full:
            return
        if self.credit >= size and kind == "event":
            self.credit -= size
            return
        raise OSError(self.code, os.strerror(self.code), str(path))


CASES = {
    # name: (which write fills the disk, whether a checkpoint exists by then)
    "lock": (lambda kind, path, line: kind == "lock", False),
    "first event": (lambda kind, path, line: kind == "event", False),
    "step event": (lambda kind, path, line: b'"step":5,' in line and b'"type":"step"' in line,
                   True),
    "snapshot": (lambda kind, path, line: "steps-4" in path, True),
    "checkpoint": (lambda kind, path, line: ".checkpoint-4." in path, True),
    "first checkpoint": (lambda kind, path, line: ".checkpoint-2." in path, False),
    "preview": (lambda kind, path, line: kind == "image" and "step-3" in path, True),
    "dvar history": (lambda kind, path, line: "dvar_history" in path, True),
    "final embedding": (lambda kind, path, line: "embeddings" not in path
                        and "learned_embeds" in path, True),
}


def _run(config, capsys) -> tuple[int, str]:
    from trainer.__main__ import run

    code = run(config)
    return code, capsys.readouterr().err


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EROFS], ids=["full", "read-only"])
@pytest.mark.parametrize("case", CASES)
def test_a_full_disk_at_any_write_stops_cleanly_and_resume_works(
        case, code, tiny_model_dir, demo_images_dir, tmp_path, monkeypatch, capsys,
        keep_signal_handlers):
    if code == errno.EROFS and case not in ("step event", "checkpoint", "preview", "lock"):
        pytest.skip("read-only is checked on a few writes; the path is the same")
    trigger, has_checkpoint = CASES[case]
    config = make_config(tiny_model_dir, demo_images_dir, tmp_path, max_train_steps=6,
                         save_steps=2, checkpointing_steps=2, validation_steps=3,
                         dvar_eval_every=1)
    out = config.output_path
    disk = FullDisk(monkeypatch, trigger, code)
    rc, err = _run(config, capsys)
    assert disk.full, f"the {case} write never happened: {sorted(set(disk.kinds))}"
    lines = err.strip().splitlines()
    assert rc == 2 and len(lines) == 1, err
    assert "Traceback" not in err
    assert lines[0].startswith("ti-tui: Could not write ") and os.strerror(code) in lines[0]
    # The advice names the fix that applies to this errno.
    assert ("free some space" if code == errno.ENOSPC else "remount the disk read-write") \
        in lines[0]
    latest = checkpoint.latest_checkpoint(out)
    assert (latest is not None) == has_checkpoint
    if has_checkpoint:
        assert "--resume_from_checkpoint latest" in lines[0]
        assert checkpoint.load_checkpoint(latest).step >= 2
    else:
        assert "no checkpoint was saved yet" in lines[0] and "start the run again" in lines[0]
    recorded = events(config)
    if recorded:  # the reserve gave room to say why the run stopped
        assert [e["type"] for e in recorded[-2:]] == ["error", "stopped"]
        assert recorded[-1]["reason"] == "error"
        assert recorded[-2]["message"] == lines[0].removeprefix("ti-tui: ")
    assert temporaries(out) == []
    assert not (out / lock.LOCK_NAME).exists() and not (out / RESERVE_NAME).exists()
    assert_every_file_whole(out)
    # Space is back: the documented recovery works.
    monkeypatch.undo()
    again = config.replace(resume_from_checkpoint="latest") if has_checkpoint else config
    rc, err = _run(again, capsys)
    assert rc == 0, err
    assert events(config)[-1]["type"] == "stopped" and events(config)[-1]["step"] == 6
    _, vectors = load_embedding(out / "learned_embeds.safetensors")
    assert vectors.isfinite().all()


def test_the_courtesy_copy_to_the_root_failing_is_only_a_warning(tiny_model_dir,
                                                                   demo_images_dir, tmp_path,
                                                                   monkeypatch):
    from trainer import train
    from trainer.outputs import Outputs

    config = make_config(tiny_model_dir, demo_images_dir, tmp_path, max_train_steps=2,
                         save_steps=0, checkpointing_steps=0, dvar_eval_every=0)
    target = tmp_path / "root" / "embeddings" / "star-ti" / "learned_embeds.bin"

    def copy(self):
        real_write = fsutil.atomic_write_bytes
        try:
            import trainer.outputs as outputs_module

            def full(path, data):
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

            outputs_module.atomic_write_bytes = full
            return real_copy(self)
        finally:
            outputs_module.atomic_write_bytes = real_write

    real_copy = Outputs._copy_to_root
    monkeypatch.setattr(Outputs, "_copy_to_root", copy)
    (tmp_path / "root" / "embeddings").mkdir(parents=True)
    (tmp_path / "root" / "invokeai.init").write_text("")  # an InvokeAI 2.3 root gets the copy
    sink: list = []
    result = train(config, emit=sink.append)
    assert result.reason == "max_steps"
    warnings = [e.message for e in sink if e.type == "warning" and "Could not copy" in e.message]
    if warnings:  # only roots that get a copy (InvokeAI 2.3/3.x) reach the write
        assert "No space left on device" in warnings[0] and not target.exists()


def test_trainer_log_on_a_full_disk_loses_lines_not_the_run():
    class Full:
        def write(self, text):
            raise OSError(errno.ENOSPC, "No space left on device")

        def flush(self):
            raise OSError(errno.ENOSPC, "No space left on device")

    stream = fsutil.TolerantStream(Full())
    assert stream.write("progress\n") == len("progress\n")
    stream.flush()


def test_a_library_reporting_a_full_disk_as_its_own_type_is_understood():
    class SafetensorError(Exception):
        pass

    found = fsutil.as_os_error(SafetensorError(
        'Error while serializing: I/O error: No space left on device (os error 28) at "x"'))
    assert found is not None and found.errno == errno.ENOSPC
    assert fsutil.as_os_error(ValueError("shape mismatch")) is None


# --- a real 24 KB file system --------------------------------------------------------------


@pytest.fixture
def tiny_tmpfs(tmp_path):
    mount = tmp_path / "small"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24k", "tmpfs", str(mount)],
                          capture_output=True)
    if done.returncode != 0:
        pytest.skip("mounting a tmpfs is not permitted here (needs root)")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], capture_output=True)


def test_a_24k_output_disk_ends_in_one_sentence_then_resumes_once_space_is_back(
        tiny_tmpfs, tiny_model_dir, demo_images_dir, tmp_path):
    out = tiny_tmpfs / "out"
    flags = ["--model", str(tiny_model_dir), "--root", str(tmp_path / "root"),
             "--placeholder_token", "star", "--train_data_dir", str(demo_images_dir),
             "--output_dir", str(out), "--max_train_steps", "8", "--train_batch_size", "2",
             "--seed", "1", "--checkpointing_steps", "2", "--save_steps", "2",
             "--dvar_window", "4", "--learning_rate", "5e-3", "--no_scale_lr"]
    command = [sys.executable, "-m", "ti_tui.cli", "train", *flags]
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    said = [line for line in (done.stdout + done.stderr).splitlines()
            if "No space left on device" in line or "without being able to write" in line]
    assert said, done.stdout + done.stderr
    assert_every_file_whole(out)
    assert temporaries(out) == []
    subprocess.run(["mount", "-o", "remount,size=64m", str(tiny_tmpfs)], check=True)
    resume = ["--resume_from_checkpoint", "latest"] if checkpoint.latest_checkpoint(out) else []
    done = subprocess.run(command + resume, capture_output=True, text=True, env=env,
                          timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    _, vectors = load_embedding(out / "learned_embeds.safetensors")
    assert vectors.isfinite().all()
    assert Path(out / "checkpoint-8").is_dir()
