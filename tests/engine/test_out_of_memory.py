"""Running out of memory (issue 15, extra kind b: advice names the setting that applies). It
ended as "Internal error: OutOfMemoryError" with a traceback and exit 1; now the last update's
embedding is saved and one sentence names the settings of this run that lower the memory
(trainer/memory_advice.py), exit 2, and a resume with the lower setting continues the run.
The failure is injected into the loss of the third update (no test machine has to run out).
"""

from __future__ import annotations

import pytest
import torch

from trainer import checkpoint, loop
from trainer.memory_advice import is_out_of_memory, out_of_memory_error

from tests.helpers import make_config


def _failing_at(call: int, monkeypatch, error: BaseException) -> None:
    real = loop.diffusion_loss
    calls = {"n": 0}

    def loss(**kwargs):
        calls["n"] += 1
        if calls["n"] == call:
            raise error
        return real(**kwargs)

    monkeypatch.setattr(loop, "diffusion_loss", loss)


def test_out_of_memory_saves_the_last_update_and_names_what_to_lower(
        tiny_model_dir, demo_images_dir, tmp_path, monkeypatch, capsys, keep_signal_handlers):
    from trainer.__main__ import run

    config = make_config(tiny_model_dir, demo_images_dir, tmp_path, max_train_steps=6,
                         save_steps=0, checkpointing_steps=0, train_batch_size=2,
                         dvar_eval_batch_size=3)
    _failing_at(3, monkeypatch, torch.OutOfMemoryError("CUDA out of memory. Tried to allocate "
                                                       "2.00 GiB"))
    assert run(config) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Traceback" not in err[0], err
    line = err[0]
    for words in ("ran out of memory after update 2", "--resume_from_checkpoint latest",
                  "lower --train_batch_size from 2", "keep 2 images per update",
                  "--gradient_checkpointing", "lower --dvar_eval_batch_size from 3"):
        assert words in line, line
    assert "--mixed_precision" not in line  # a CPU run: half precision is no advice there
    assert checkpoint.latest_checkpoint(config.output_path).name == "checkpoint-2"
    monkeypatch.undo()
    resumed = loop.train(config.replace(train_batch_size=1, gradient_accumulation_steps=2,
                                        resume_from_checkpoint="latest"))
    assert resumed.reason == "max_steps" and resumed.step == 6


def test_only_settings_that_would_help_are_named(tiny_config):
    lean = tiny_config(train_batch_size=1, gradient_checkpointing=True, dvar_eval_every=0)
    message = str(out_of_memory_error(lean, "cuda", step=None, saved=False, resolution=128))
    assert message == ("The GPU ran out of memory before the first update; use "
                       "--mixed_precision bf16 (or fp16).")
    leanest = lean.replace(mixed_precision="bf16")
    assert "every memory setting is already at its lowest" in str(
        out_of_memory_error(leanest, "cuda", step=None, saved=False, resolution=128))
    assert "lower --resolution from 1024" in str(
        out_of_memory_error(leanest, "cuda", step=None, saved=False, resolution=1024))


@pytest.mark.parametrize("error, expected", [
    (torch.OutOfMemoryError("CUDA out of memory"), True), (MemoryError(), True),
    (RuntimeError("[enforce fail at alloc_cpu.cpp:117] data. DefaultCPUAllocator: can't "
                  "allocate memory: you tried to allocate 123 bytes"), True),
    (RuntimeError("shape mismatch"), False), (ValueError("out of memory"), False)])
def test_out_of_memory_is_recognised_in_each_form(error, expected):
    assert is_out_of_memory(error) is expected


def test_an_ordinary_failure_is_still_an_internal_error(tiny_model_dir, demo_images_dir,
                                                        tmp_path, monkeypatch):
    _failing_at(1, monkeypatch, RuntimeError("shape mismatch"))
    with pytest.raises(RuntimeError, match="shape mismatch"):
        loop.train(make_config(tiny_model_dir, demo_images_dir, tmp_path, max_train_steps=2))
