"""The members of issue 15's kinds found after the first sweep, met as a user meets them: the
real `ti-tui train` command ends with exit code 2, one line on stderr naming the field or
setting that applies, no traceback, and nothing written (tests/system/test_cli_errors.py's
rules, whose helpers this reuses)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.system.test_cli_errors import TI_TUI, snapshot


def _finished_without_checkpoints(tmp: Path, env: dict) -> list[str]:
    out = tmp / "out"
    out.mkdir()
    (out / "my-star.safetensors").write_bytes(b"an earlier run's embedding")
    return []


def _default_folder_is_a_file(tmp: Path, env: dict) -> list[str]:
    taken = tmp / "root" / "text-inversion-output" / "my-star"
    taken.parent.mkdir(parents=True)
    taken.write_text("a file where the run's folder would go")
    return ["--output_dir", ""]


def _device_from_environment(tmp: Path, env: dict) -> list[str]:
    env["TI_TUI_DEVICE"] = "gpu"
    return []


def _config_is_a_device(tmp: Path, env: dict) -> list[str]:
    return ["--config", "/dev/zero"]


CASES = {
    "earlier embedding": (_finished_without_checkpoints,
                          ("already holds an embedding a new run would replace",
                           "(my-star.safetensors)", "--initial_embedding")),
    "default output folder": (_default_folder_is_a_file,
                              ("The default output folder for <my-star>", "--root",
                               "pass --output_dir to choose another")),
    "DVAR batch past the noise schedule": (lambda tmp, env: ["--dvar_eval_batch_size", "1001"],
                                           ("--dvar_eval_batch_size", "1000 noise timesteps")),
    "device from the environment": (_device_from_environment,
                                    ("Device (--device, or $TI_TUI_DEVICE, its default)", "'gpu'")),
    "config that is a device": (_config_is_a_device, ("Config file /dev/zero is a device",)),
    "Adam beta of 1": (lambda tmp, env: ["--adam_beta2", "1"],
                       ("Adam beta2 (--adam_beta2) must be below 1",)),
}


@pytest.mark.parametrize("name", CASES)
def test_each_new_member_ends_in_one_line_naming_the_setting(name, tiny_model_dir,
                                                             demo_images_dir, tmp_path):
    if name == "config that is a device" and not Path("/dev/zero").exists():
        pytest.skip("needs /dev/zero")
    setup, words = CASES[name]
    env = dict(os.environ, HF_HUB_OFFLINE="1", TERM="dumb")
    base = ["--model", str(tiny_model_dir), "--root", str(tmp_path / "root"),
            "--placeholder_token", "my-star", "--train_data_dir", str(demo_images_dir),
            "--output_dir", str(tmp_path / "out"), "--max_train_steps", "2",
            "--train_batch_size", "2", "--seed", "1"]
    extra = setup(tmp_path, env)
    before = snapshot(tmp_path)
    done = subprocess.run(TI_TUI + base + extra, capture_output=True, text=True, timeout=120,
                          check=False, cwd=tmp_path, stdin=subprocess.DEVNULL, env=env)
    assert done.returncode == 2, done.stdout + done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    assert lines[0].startswith("ti-tui: ") and lines[0].endswith("."), lines[0]
    for word in words:
        assert word in lines[0], f"{word!r} not in {lines[0]!r}"
    assert snapshot(tmp_path) == before, "a refused run must write nothing"
