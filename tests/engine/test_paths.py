"""OS errors on user paths end in one sentence (issue 15, item 5).

Every path a user types (the fields of TrainConfig that hold paths, --config, `ti-tui watch
DIR`, `ti-tui models --root/--models_dir`) can be refused by the OS itself: a name over 255
bytes, a symbolic-link loop, a file where a folder should be, a folder that cannot be entered,
a pseudo file system such as /proc. Each ends in one sentence naming the field and exit code 2,
before anything is written; in-process here for every field, through the real command for
the cases a user meets on the command line.
"""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from pathlib import Path

import pytest

from trainer import paths
from trainer.errors import ConfigError
from trainer.preflight import preflight

from tests.helpers import make_config

LONG = "a" * 300
PATH_FIELDS = ("train_data_dir", "output_dir", "model", "model_config", "tokenizer_name",
               "initial_embedding", "resume_from_checkpoint", "root", "models_dir")


def _bad_paths(tmp_path: Path) -> dict[str, tuple[str, str]]:
    """kind: (a path the OS refuses, words the sentence must hold)."""
    loop = tmp_path / "loop"
    loop.symlink_to(loop)
    (tmp_path / "a-file").write_text("x")
    return {"too long": (str(tmp_path / LONG), "longer than the file system allows"),
            "too long nested": (str(tmp_path / LONG / "x"), "longer than the file system"),
            "link loop": (str(loop / "x"), "loop of symbolic links"),
            "file on the way": (str(tmp_path / "a-file" / "x"), "is a file")}


@pytest.mark.parametrize("kind", ["too long", "too long nested", "link loop", "file on the way"])
@pytest.mark.parametrize("field", PATH_FIELDS)
def test_every_path_field_refused_by_the_os_is_one_sentence_naming_it(
        field, kind, tiny_model_dir, demo_images_dir, tmp_path):
    bad, words = _bad_paths(tmp_path)[kind]
    if kind == "too long nested" and field != "output_dir":
        # A missing folder on the way is "does not exist" for inputs, said by their own check.
        bad = str(tmp_path / LONG)
    changes = {field: bad}
    model = changes.pop("model", tiny_model_dir)
    config = make_config(model, demo_images_dir, tmp_path, **changes)
    out_before = os.path.exists(config.output_path)
    with pytest.raises(ConfigError) as info:
        preflight(config)
    message = str(info.value)
    assert info.value.field == field, message
    assert "\n" not in message and message.endswith(".")
    assert f"(--{field})" in message and words in message
    if field != "output_dir":
        assert os.path.exists(config.output_path) == out_before  # nothing written


def test_an_output_dir_under_proc_is_refused_before_anything_is_written(tiny_model_dir,
                                                                        demo_images_dir,
                                                                        tmp_path):
    if not Path("/proc/self").exists():
        pytest.skip("no /proc here")
    config = make_config(tiny_model_dir, demo_images_dir, tmp_path, output_dir="/proc/ti-out")
    with pytest.raises(ConfigError) as info:
        preflight(config)
    assert info.value.field == "output_dir"
    assert "/proc refuses new folders" in str(info.value)
    assert not Path("/proc/ti-out").exists()


def test_a_folder_on_the_way_that_cannot_be_entered(tiny_model_dir, demo_images_dir, tmp_path,
                                                    monkeypatch):
    # Simulated: the tests run as root, for whom chmod 000 changes nothing.
    blocked = tmp_path / "blocked"
    real_stat = os.stat

    def stat(path, *args, **kwargs):
        if str(path).startswith(str(blocked)):
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real_stat(path, *args, **kwargs)

    monkeypatch.setattr(paths.os, "stat", stat)
    config = make_config(tiny_model_dir, demo_images_dir, tmp_path,
                         train_data_dir=str(blocked / "images"))
    with pytest.raises(ConfigError) as info:
        preflight(config)
    assert info.value.field == "train_data_dir" and "permission denied" in str(info.value)


def test_a_nul_character_in_a_path_is_refused():
    with pytest.raises(ConfigError) as info:
        paths.check_path("output_dir", "/tmp/a\0b")
    assert info.value.field == "output_dir" and "NUL" in str(info.value)


def test_a_path_that_only_does_not_exist_is_left_to_the_field_s_own_check(tmp_path):
    paths.check_path("train_data_dir", tmp_path / "missing" / "images")  # no error
    paths.check_creatable("output_dir", tmp_path / "new" / "out")
    assert not (tmp_path / "new").exists()  # the probe left nothing behind
    assert not list(tmp_path.glob(".ti-tui-probe-*"))


# --- the real command ----------------------------------------------------------------------

TI_TUI = [sys.executable, "-m", "ti_tui.cli"]


@pytest.mark.parametrize("case", ["output_dir long", "output_dir proc", "model long",
                                  "initial_embedding long", "config long", "watch long",
                                  "models root long"])
def test_the_command_ends_in_one_line_and_exit_2(case, tiny_model_dir, demo_images_dir,
                                                 tmp_path):
    base = ["train", "--model", str(tiny_model_dir), "--root", str(tmp_path / "root"),
            "--placeholder_token", "star", "--train_data_dir", str(demo_images_dir),
            "--output_dir", str(tmp_path / "out"), "--max_train_steps", "2"]
    long = str(tmp_path / LONG)
    argv, words = {
        "output_dir long": (base + ["--output_dir", long], "Output directory (--output_dir)"),
        "output_dir proc": (base + ["--output_dir", "/proc/ti-tui-out"],
                            "/proc refuses new folders"),
        "model long": (base + ["--model", long], "Model (--model)"),
        "initial_embedding long": (base + ["--initial_embedding", long + ".pt"],
                                   "Initial embedding (--initial_embedding)"),
        "config long": (["train", "--config", long], "Config file (--config)"),
        "watch long": (["watch", long], "ti-tui watch OUTPUT_DIR"),
        "models root long": (["models", "--root", long], "Root (--root)"),
    }[case]
    env = dict(os.environ, HF_HUB_OFFLINE="1", TI_TUI_LOG_DIR=str(tmp_path / "crash"))
    done = subprocess.run(TI_TUI + argv, capture_output=True, text=True, env=env,
                          timeout=300)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2, done.stdout + done.stderr
    assert len(lines) == 1 and lines[0].startswith("ti-tui: "), done.stderr
    assert words in lines[0] and "Traceback" not in done.stderr
    assert not (tmp_path / "out").exists() and not (tmp_path / "crash").exists()


# --- relative paths are the caller's, not the trainer's ------------------------------------


def test_relative_paths_are_made_absolute_against_the_caller_s_folder(tmp_path, monkeypatch):
    from trainer.config import TrainConfig

    (tmp_path / "imgs").mkdir()
    (tmp_path / "my-model").mkdir()
    monkeypatch.chdir(tmp_path)
    config = paths.absolute(TrainConfig(
        placeholder_token="star", train_data_dir="imgs", root="r", model="my-model",
        initial_embedding="e.pt", resume_from_checkpoint="latest", output_dir="out"))
    assert config.train_data_dir == str(tmp_path / "imgs")
    assert config.root == str(tmp_path / "r")
    assert config.initial_embedding == str(tmp_path / "e.pt")
    assert config.model == str(tmp_path / "my-model")  # a folder here: a path
    assert config.resume_from_checkpoint == "latest" and config.output_dir == "out"
    assert config.output_path == tmp_path / "r" / "out"
    named = paths.absolute(TrainConfig(placeholder_token="star", model="sd-1/main/x"))
    assert named.model == "sd-1/main/x"  # not here: a model name, looked up under the root


def test_a_relative_data_dir_trains_from_the_folder_it_was_typed_in(tiny_model_dir,
                                                                   demo_images_dir, tmp_path):
    import shutil

    shutil.copytree(demo_images_dir, tmp_path / "imgs")
    done = subprocess.run(
        TI_TUI + ["train", "--model", str(tiny_model_dir), "--root", "root",
                  "--placeholder_token", "star", "--train_data_dir", "imgs",
                  "--output_dir", str(tmp_path / "out"), "--max_train_steps", "1",
                  "--train_batch_size", "2", "--dvar_eval_every", "0", "--seed", "1"],
        capture_output=True, text=True, timeout=600, cwd=tmp_path,
        env=dict(os.environ, HF_HUB_OFFLINE="1"))
    assert done.returncode == 0, done.stdout + done.stderr
    assert (tmp_path / "out" / "learned_embeds.safetensors").is_file()
    run_toml = (tmp_path / "out" / "run.toml").read_text()
    assert f'train_data_dir = "{tmp_path / "imgs"}"' in run_toml
