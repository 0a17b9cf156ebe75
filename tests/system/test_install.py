"""install.sh for a user who never saw the repository: a fresh copy of the tracked files, a
HOME of its own, CPU torch; install, run from another folder, update, uninstall.

The full install is slow (a virtual environment with torch, diffusers and transformers): it
reuses pip's download cache of the real user (PIP_CACHE_DIR) and pip's configured sources
(here a local torch wheel), and runs in the slow layer. The refusals need no pip and are fast.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "install.sh"


def fresh_copy(target: Path) -> Path:
    """The files of this working tree that git does not ignore, as a user's download of the
    repository (in a clean clone: exactly the committed files)."""
    files = subprocess.run(["git", "ls-files", "-z", "--cached", "--others",
                            "--exclude-standard"], cwd=REPO, capture_output=True,
                           check=True).stdout.decode().split("\0")
    for name in filter(None, files):
        source = REPO / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    shutil.copy2(SCRIPT, target / "install.sh")  # also before it is committed
    return target


def user_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("VIRTUAL_ENV", "PYTHONPATH", "TI_TUI_", "INVOKEAI_"))}
    env.setdefault("PIP_CACHE_DIR", str(Path.home() / ".cache" / "pip"))
    env.update(HOME=str(home), PATH="/usr/local/bin:/usr/bin:/bin", XDG_DATA_HOME="")
    env.pop("XDG_DATA_HOME")
    return env


def run(args, home: Path, cwd: Path, timeout: float = 900) -> subprocess.CompletedProcess:
    return subprocess.run(args, cwd=cwd, env=user_env(home), capture_output=True, text=True,
                          timeout=timeout)


def explain(result: subprocess.CompletedProcess, home: Path) -> str:
    """The output of a failed step, with any crash log ti-tui wrote under HOME."""
    logs = sorted((home / ".local" / "state" / "ti-tui").glob("crash-*.log"))
    return "\n".join([result.stdout, result.stderr, *(p.read_text() for p in logs[-1:])])


def python_for_install() -> str:
    """A Python 3.11+ for the new environment: the one running the tests (its base)."""
    return str(Path(sys.base_prefix) / "bin" / f"python{sys.version_info[0]}."
               f"{sys.version_info[1]}")


@pytest.fixture
def user(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    return home, elsewhere


def test_refusals_are_one_sentence_and_exit_2(tmp_path, user):
    home, elsewhere = user
    bin_dir = home / ".local" / "bin"
    bin_dir.mkdir(parents=True)
    (bin_dir / "ti-tui").write_text("#!/bin/sh\necho another program\n")
    result = run(["bash", str(SCRIPT), "--torch", "cpu", "--python", python_for_install()],
                 home, elsewhere)
    assert result.returncode == 2
    assert result.stderr.strip() == (f"ti-tui install: {bin_dir / 'ti-tui'} exists and is not "
                                     "a link; move it away or pass --bin-dir.")
    assert not (home / ".local" / "share" / "ti-tui").exists()  # nothing was made
    assert (bin_dir / "ti-tui").read_text().endswith("another program\n")
    result = run(["bash", str(SCRIPT), "--torch", "gpu"], home, elsewhere)
    assert (result.returncode, result.stderr.strip()) == (
        2, "ti-tui install: --torch must be auto, cpu or cuda, not 'gpu'.")
    old = tmp_path / "python3.8"
    old.write_text("#!/bin/sh\nexit 1\n")
    old.chmod(0o755)
    result = run(["bash", str(SCRIPT), "--python", str(old)], home, elsewhere)
    assert result.returncode == 2 and "older than Python 3.11" in result.stderr
    result = run(["bash", str(SCRIPT), "--uninstall"], home, elsewhere)
    assert result.returncode == 0 and "nothing to remove" in result.stdout


@pytest.mark.slow
@pytest.mark.timeout(2400)
def test_install_run_update_uninstall(tmp_path, user):
    import torch

    home, elsewhere = user
    source = fresh_copy(tmp_path / "ti-tui")
    bin_dir = home / ".local" / "bin"
    bin_dir.mkdir(parents=True)
    (bin_dir / "other-tool").write_text("not ours\n")
    runs = home / "invokeai" / "text-inversion-output" / "cat"
    runs.mkdir(parents=True)
    (runs / "events.jsonl").write_text("")
    spec = f"torch=={torch.__version__.split('+')[0]}"  # the build pip's sources hold here
    command = ["bash", str(source / "install.sh"), "--torch", "cpu", "--torch-spec", spec,
               "--torch-index", "none", "--python", python_for_install()]

    result = run(command, home, elsewhere)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "torch: the cpu build (asked for)" in result.stdout
    venv = home / ".local" / "share" / "ti-tui" / "venv"
    link = bin_dir / "ti-tui"
    assert link.is_symlink() and Path(os.readlink(link)) == venv / "bin" / "ti-tui"
    assert f'export PATH="{bin_dir}:$PATH"' in result.stdout  # not on PATH: says the line

    shutil.rmtree(source)  # the install stands on its own, not on the downloaded copy
    shown = run([str(link), "--help"], home, elsewhere)
    assert shown.returncode == 0 and "the home screen" in shown.stdout, explain(shown, home)
    models = run([str(link), "models"], home, elsewhere)  # the root: ~/invokeai
    assert models.returncode == 0, explain(models, home)
    assert str(home / "invokeai") in models.stdout

    source = fresh_copy(tmp_path / "ti-tui")  # a newer download: run it again to update
    result = run(command[:1] + [str(source / "install.sh")] + command[2:], home, elsewhere)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"updating {venv}" in result.stdout

    result = run(["bash", str(source / "install.sh"), "--uninstall"], home, elsewhere)
    assert result.returncode == 0, result.stderr
    assert not link.exists() and not link.is_symlink() and not venv.exists()
    assert not (home / ".local" / "share" / "ti-tui").exists()
    assert (bin_dir / "other-tool").read_text() == "not ours\n"
    assert (runs / "events.jsonl").is_file()  # runs and roots are never touched
