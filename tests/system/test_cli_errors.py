"""Bad input through the real command (issue 7): `ti-tui train ...` and `ti-tui train --config
run.toml` end with exit code 2 and one line on stderr naming the field or file, no traceback,
and write nothing at all: no output folder, no embedding, no run.toml.

Each case is a real subprocess (about 0.2 s for a value error, 2-3 s when the check needs the
tokenizer or torch), so this table is a representative subset; tests/test_bad_input_*.py cover
every case in-process.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from trainer import lock

from tests.helpers import link_model

TI_TUI = [sys.executable, "-m", "ti_tui.cli", "train"]


def snapshot(folder: Path) -> dict[Path, int]:
    """Every path under `folder`, with its mtime for files (a folder's changes with its
    entries, which the path set already shows)."""
    return {p: 0 if p.is_dir() else p.stat().st_mtime_ns for p in folder.rglob("*")}


class Case:
    """One row: how to break the run (extra flags, or a run.toml) and what the line says."""

    def __init__(self, name: str, words: tuple[str, ...], flags=(), toml: str | None = None,
                 setup=None):
        self.name, self.words, self.flags, self.toml, self.setup = (name, words, flags, toml,
                                                                     setup)


def _no_images(tmp: Path, ctx: dict) -> list[str]:
    folder = tmp / "docs"
    folder.mkdir()
    (folder / "notes.txt").write_text("no images here")
    return ["--train_data_dir", str(folder)]


def _broken_images(tmp: Path, ctx: dict) -> list[str]:
    folder = tmp / "broken"
    folder.mkdir()
    (folder / "empty.png").write_bytes(b"")
    (folder / "text.jpg").write_text("not a jpeg")
    return ["--train_data_dir", str(folder)]


def _model_root(tmp: Path, ctx: dict) -> list[str]:
    link_model(ctx["model"], tmp / "invokeai" / "models" / "sd-1" / "main" / "tiny-one")
    return ["--root", str(tmp / "invokeai"), "--model", "stable-diffusion-1.5"]


def _model_without_vae(tmp: Path, ctx: dict) -> list[str]:
    return ["--model", str(link_model(ctx["model"], tmp / "no-vae", skip=("vae",)))]


def _output_is_a_file(tmp: Path, ctx: dict) -> list[str]:
    (tmp / "taken").write_text("a file")
    return ["--output_dir", str(tmp / "taken")]


def _output_busy(tmp: Path, ctx: dict) -> list[str]:
    out = tmp / "busy"
    out.mkdir()
    (out / "events.jsonl").write_text('{"type": "step", "step": 7}\n')
    (out / "run.toml").write_text("# the running run's settings\n")
    ctx["lock"] = lock.RunLock.acquire(out)  # held by this (live) pytest process
    return ["--output_dir", str(out)]


def _output_holds_a_run(tmp: Path, ctx: dict) -> list[str]:
    from trainer.checkpoint_index import FILES

    out = tmp / "done"
    for step in (20, 40):
        (out / f"checkpoint-{step}").mkdir(parents=True)
        for name in FILES:
            (out / f"checkpoint-{step}" / name).write_text("a finished run's file")
    return ["--output_dir", str(out)]


CASES = [
    # values (refused while parsing: no torch import)
    Case("resolution", ("--resolution", "multiple of 8", "got 30"), ["--resolution", "30"]),
    Case("batch size", ("--train_batch_size", "at least 1"), ["--train_batch_size", "0"]),
    Case("steps not an integer", ("--max_train_steps", "whole number"),
         ["--max_train_steps", "1.5"]),
    Case("learning rate", ("--learning_rate", '"fast" is not a number'),
         ["--learning_rate", "fast"]),
    Case("dvar threshold", ("--dvar_threshold", "strictly between 0 and 1"),
         ["--dvar_threshold", "1.5"]),
    Case("scheduler", ("--lr_scheduler", "one of constant"), ["--lr_scheduler", "step"]),
    Case("device", ("Device (--device)", "auto, cpu, cuda or cuda:N", "'gpu'"),
         ["--device", "gpu"]),
    Case("trigger with a space", ("Trigger term 'my cat'", "try <my-cat>"),
         ["--placeholder_token", "my cat"]),
    Case("unknown flag", ("unrecognized arguments: --bogus", "--help"), ["--bogus", "1"]),
    Case("trigger that is the folder above", ("Trigger term '..'", "start or end with a dot"),
         ["--placeholder_token", ".."]),
    # paths, images, model, tokens, resume, device (refused by preflight)
    Case("data dir missing", ("Data directory", "nope", "does not exist"),
         setup=lambda tmp, ctx: ["--train_data_dir", str(tmp / "nope")]),
    Case("data dir without images", ("holds no images",), setup=_no_images),
    Case("only broken images", ("None of the 2 image files", "empty.png", "text.jpg"),
         setup=_broken_images),
    Case("model name not found", ('Model "stable-diffusion-1.5" was not found',
                                  "found: sd-1/main/tiny-one"), setup=_model_root),
    Case("model without vae", ("has no vae/ folder",), setup=_model_without_vae),
    Case("initializer of two tokens", ("Initializer 'teddy bear'", "'teddy', 'bear'"),
         ["--initializer_token", "teddy bear"]),
    Case("output dir is a file", ("Output directory", "taken", "is a file"),
         setup=_output_is_a_file),
    Case("busy output dir", (f"Another run (pid {os.getpid()})", "ti-tui watch"),
         setup=_output_busy),
    Case("resume from a missing named checkpoint", ("checkpoint-500", "does not exist"),
         ["--resume_from_checkpoint", "checkpoint-500"]),
    Case("output dir holds a finished run", ("already holds a run", "checkpoint-40, step 40",
                                              "--resume_from_checkpoint latest",
                                              "--output_dir"), setup=_output_holds_a_run),
    Case("fp16 on CPU", ("fp16 needs a CUDA GPU", "--mixed_precision no"),
         ["--device", "cpu", "--mixed_precision", "fp16"]),
    Case("vectors past CLIP's window", ("--num_vectors", "77-token window", "at most 66"),
         ["--num_vectors", "70", "--learnable_property", "style", "--initializer_token",
          "random"]),
    Case("output dir under /proc", ("Output directory (--output_dir)", "/proc refuses"),
         ["--output_dir", "/proc/ti-tui-out"]),
    # run.toml
    Case("run.toml value", ("Resolution (--resolution) must be a multiple of 8",),
         toml="[data]\nresolution = 30\n"),
    Case("run.toml path", ("Data directory", "missing-images", "does not exist"),
         toml='[data]\ntrain_data_dir = "{tmp}/missing-images"\n'),
    Case("run.toml unknown key", ("unknown setting 'batch_sise'",),
         toml="[training]\nbatch_sise = 4\n"),
    Case("run.toml not TOML", ("is not valid TOML", "fix or delete it"),
         toml="this is = = not toml\n"),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input_exits_2_with_one_line_and_writes_nothing(case, tiny_model_dir,
                                                            demo_images_dir, tmp_path):
    ctx: dict = {"model": tiny_model_dir}
    base = {"--model": str(tiny_model_dir), "--root": str(tmp_path / "root"),
            "--placeholder_token": "star", "--train_data_dir": str(demo_images_dir),
            "--output_dir": str(tmp_path / "out"), "--max_train_steps": "2",
            "--train_batch_size": "2", "--seed": "1"}
    extra = list(case.flags) + (case.setup(tmp_path, ctx) if case.setup else [])
    if case.toml is not None:
        (tmp_path / "run.toml").write_text(
            "\n".join(f'{k[2:]} = "{v}"' if not v.isdigit() else f"{k[2:]} = {v}"
                      for k, v in base.items()) + "\n" + case.toml.format(tmp=tmp_path))
        argv = ["--config", str(tmp_path / "run.toml")]
    else:
        # A flag given twice: the last one wins, so the case's flags override the base.
        argv = [x for pair in base.items() for x in pair] + extra
    before = snapshot(tmp_path)
    try:
        done = subprocess.run(TI_TUI + argv, capture_output=True, text=True, timeout=120,
                              check=False, cwd=tmp_path, stdin=subprocess.DEVNULL,
                              env=dict(os.environ, HF_HUB_OFFLINE="1", TERM="dumb"))
    finally:
        if "lock" in ctx:
            ctx["lock"].release()
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    line = lines[0]
    assert line.startswith("ti-tui: ") and line.endswith("."), line
    for word in case.words:
        assert word in line, f"{word!r} not in {line!r}"
    assert done.stdout.strip() == ""
    # Nothing written: no output folder, no embedding, no run.toml, no renamed events.jsonl
    # (the lock this test itself held and released aside).
    after = snapshot(tmp_path)
    held = {p for p in before if p.name == lock.LOCK_NAME}
    assert {p: t for p, t in after.items() if p not in held} == {
        p: t for p, t in before.items() if p not in held}, "a refused run must write nothing"
    assert not (tmp_path / "out").exists() and not (tmp_path / "root").exists()
