"""A user path naming a device or a pipe (issue 15 kind 5, OS errors on user paths: found
trying what users type). `--config /dev/zero` read until memory ran out, a FIFO as --config
waited for ever, `--initial_embedding /dev/zero` said the file "does not exist (did you mean
/dev/zero?)", and a model file passed as --config by a tab-completion slip was read whole.
Each is now one sentence naming the field; an image-named pipe is skipped, named as a pipe.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from trainer import data
from trainer.config import MAX_CONFIG_BYTES, TrainConfig
from trainer.errors import ConfigError, ModelError, ResumeError
from trainer.formats import load_embedding
from trainer.paths import special_kind

from tests.bad_input_helpers import one_sentence, refused

DEV_ZERO = Path("/dev/zero")
needs_dev = pytest.mark.skipif(not DEV_ZERO.exists() or not hasattr(os, "mkfifo"),
                               reason="needs /dev/zero and mkfifo (POSIX)")


@pytest.fixture
def fifo(tmp_path) -> Path:
    path = tmp_path / "run.toml"
    os.mkfifo(path)
    return path


@needs_dev
def test_devices_and_pipes_are_told_apart_from_files(fifo, tmp_path):
    assert special_kind(DEV_ZERO) == "a device"
    assert special_kind(fifo) == "a pipe"
    (tmp_path / "plain").write_text("x")
    assert special_kind(tmp_path / "plain") is None and special_kind(tmp_path) is None
    assert special_kind(tmp_path / "missing") is None


@needs_dev
@pytest.mark.parametrize("which", ["device", "pipe"])
def test_config_from_a_device_or_pipe_is_refused_unread(which, fifo):
    path = DEV_ZERO if which == "device" else fifo
    with pytest.raises(ConfigError) as info:
        TrainConfig.from_toml(path)
    assert info.value.field == "config"
    one_sentence(info.value, f"Config file {path} is a {which}, not a file")


def test_a_config_far_larger_than_any_run_toml_is_refused_unread(tmp_path):
    big = tmp_path / "model.safetensors"
    with open(big, "wb") as f:
        f.truncate(MAX_CONFIG_BYTES + 1)
    with pytest.raises(ConfigError) as info:
        TrainConfig.from_toml(big)
    one_sentence(info.value, str(big), "far more than any run.toml")


@needs_dev
def test_an_initial_embedding_that_is_a_device(tiny_config):
    with pytest.raises(ResumeError) as info:
        load_embedding(DEV_ZERO)
    assert "does not exist" not in str(info.value)
    one_sentence(info.value, "/dev/zero is a device, not a file")
    refused(tiny_config(initial_embedding=str(DEV_ZERO)), ResumeError, "initial_embedding",
            "is a device")


@needs_dev
def test_a_model_that_is_a_device(tiny_config):
    refused(tiny_config(model=str(DEV_ZERO)), ModelError, "model", "/dev/zero is a device")


@needs_dev
def test_an_image_named_pipe_is_skipped_as_a_pipe(tmp_path):
    os.mkfifo(tmp_path / "cat.png")
    with pytest.raises(ValueError, match="it is a pipe, not an image file"):
        data.open_rgb(tmp_path / "cat.png")


@needs_dev
def test_the_command_with_a_pipe_as_config_ends_in_one_line(fifo, tmp_path):
    done = subprocess.run([sys.executable, "-m", "ti_tui.cli", "train", "--config", str(fifo)],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path,
                          stdin=subprocess.DEVNULL, env=dict(os.environ, HF_HUB_OFFLINE="1"))
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().splitlines() == [
        f"ti-tui: Config file {fifo} is a pipe, not a file; pass the run.toml of an earlier "
        "run."]
