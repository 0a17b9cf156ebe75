"""A bad output folder (issue 7): a file, not writable, or held by a live run; refused in one
sentence naming --output_dir, writing nothing; a stale lock is taken over
(tests/bad_input_helpers.py)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from trainer import lock
from trainer.errors import ConfigError, UserError
from trainer.preflight import preflight

from tests.bad_input_helpers import IS_ROOT, refused


# --- the output folder ----------------------------------------------------------------------


def test_output_dir_is_a_file(tiny_config, tmp_path):
    (tmp_path / "taken").write_text("x")
    refused(tiny_config(output_dir=str(tmp_path / "taken")), ConfigError, "output_dir", "is a file")


def test_output_dir_below_a_file(tiny_config, tmp_path):
    (tmp_path / "taken").write_text("x")
    refused(tiny_config(output_dir=str(tmp_path / "taken" / "run")), ConfigError, "output_dir",
            "cannot be created", "is a file")


def test_output_dir_not_writable_simulated(tiny_config, tmp_path, monkeypatch):
    # As root every folder is writable: simulate a read-only parent the way preflight sees it.
    parent = tmp_path / "readonly"
    parent.mkdir()
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode, **kw: False if Path(p) == parent
                        else real_access(p, mode, **kw))
    refused(tiny_config(output_dir=str(parent / "run")), ConfigError, "output_dir", "not writable",
            str(parent))


@pytest.mark.skipif(IS_ROOT, reason="root writes into a read-only folder anyway")
def test_output_dir_not_writable_for_real(tiny_config, tmp_path):
    parent = tmp_path / "readonly"
    parent.mkdir()
    parent.chmod(0o555)
    try:
        refused(tiny_config(output_dir=str(parent / "run")), ConfigError, "output_dir",
                "not writable")
    finally:
        parent.chmod(0o755)


# --- a folder another run is writing -----------------------------------------------------------


def test_output_dir_of_a_live_run_is_refused(tiny_config, tmp_path):
    config = tiny_config()
    config.output_path.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        owner = lock.Owner(holder.pid, lock.start_time(holder.pid), socket.gethostname())
        (config.output_path / lock.LOCK_NAME).write_text(owner.text())
        refused(config, UserError, "output_dir", f"pid {holder.pid}", "ti-tui watch")
    finally:
        holder.kill()
        holder.wait()
    preflight(config)  # its owner is gone: the lock is stale and no longer refuses


def test_stale_lock_with_a_reused_pid_is_not_respected(tiny_config):
    config = tiny_config()
    config.output_path.mkdir()
    parent = os.getppid()  # alive, but started long before this "lock" says
    stale = lock.Owner(parent, (lock.start_time(parent) or 0) - 3600, socket.gethostname())
    (config.output_path / lock.LOCK_NAME).write_text(stale.text())
    preflight(config)
    taken = lock.RunLock.acquire(config.output_path)
    assert lock.read_owner(taken.path) == os.getpid()
    taken.release()
    assert not taken.path.exists()
