"""The small commands: help, models, and the trainer module's exit codes."""

from __future__ import annotations

import os
import subprocess
import sys

from ti_tui.cli import main


def test_help_lists_the_commands(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for command in ("ti-tui demo", "ti-tui train", "ti-tui models", "ti-tui watch"):
        assert command in out


def test_train_help_lists_flag_groups(capsys):
    assert main(["train", "--help"]) == 0
    out = capsys.readouterr().out
    assert "Early stopping (DVAR)" in out and "--trigger_term" in out and "--no_scale_lr" in out


def test_models_lists_what_is_under_the_root(tiny_model_dir, tmp_path, capsys):
    root = tmp_path / "root"
    (root / "models" / "sd-1" / "main").mkdir(parents=True)
    os.symlink(tiny_model_dir, root / "models" / "sd-1" / "main" / "tiny")
    assert main(["models", "--root", str(root)]) == 0
    assert "sd-1/main/tiny" in capsys.readouterr().out


def test_models_says_where_it_looked_when_empty(tmp_path, capsys):
    assert main(["models", "--root", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    # Every place searched is named, and the way out: --models_dir for A1111/ComfyUI folders.
    assert "No models found" in out and f"looked in {tmp_path}" in out
    assert "--models_dir" in out


def test_train_user_error_is_one_line_and_exit_2(tmp_path, capsys):
    code = main(["train", "--placeholder_token", "star", "--model", str(tmp_path / "nope"),
                 "--train_data_dir", str(tmp_path), "--root", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "nope" in err and "Traceback" not in err


def test_python_m_trainer_reports_a_bad_run_toml(tmp_path):
    bad = tmp_path / "run.toml"
    bad.write_text("[training]\ntrain_batch_size = 0\n")
    done = subprocess.run([sys.executable, "-m", "trainer", str(bad)], capture_output=True,
                          text=True)
    assert done.returncode == 2
    assert "Batch size (--train_batch_size) must be at least 1" in done.stderr
    assert "Traceback" not in done.stderr
