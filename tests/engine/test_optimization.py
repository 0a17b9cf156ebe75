"""Learning rates, clipping, precision, accumulation and SAM in real tiny runs."""

from __future__ import annotations

import math

import pytest
import torch

from trainer import rate_schedule, schedules, train

from tests.helpers import make_config


def run(tiny_model_dir, demo_images_dir, tmp_path, **changes):
    values = dict(save_steps=0, checkpointing_steps=0, dvar_eval_every=0)
    values.update(changes)
    events: list = []
    result = train(make_config(tiny_model_dir, demo_images_dir, tmp_path, **values),
                   emit=events.append)
    return result, events


def steps_of(events):
    return [e for e in events if e.type == "step"]


def test_scale_lr_multiplies_by_batch_accumulation_processes(tiny_model_dir, demo_images_dir,
                                                             tmp_path):
    _, events = run(tiny_model_dir, demo_images_dir, tmp_path, max_train_steps=1,
                    scale_lr=True, train_batch_size=2, gradient_accumulation_steps=3,
                    learning_rate="1e-3")
    started = next(e for e in events if e.type == "run_started")
    assert started.lr_scale == 6.0 and started.learning_rate == pytest.approx(6e-3)
    assert steps_of(events)[0].lr == pytest.approx(6e-3)


def test_piecewise_schedule_drives_each_update_and_can_end_the_run(
        tiny_model_dir, demo_images_dir, tmp_path):
    text = "0.01:2, 0.002:4"
    result, events = run(tiny_model_dir, demo_images_dir, tmp_path, max_train_steps=10,
                         learning_rate=text)
    assert [s.lr for s in steps_of(events)] == schedules.lr_rates(text, 10)
    assert [s.lr for s in steps_of(events)] == [0.01, 0.01, 0.002, 0.002]
    assert result.reason == "schedule_end" and result.step == 4
    assert any(e.type == "warning" and "schedule ends at step 4" in e.message for e in events)


def test_hf_scheduler_with_warmup_matches_the_schedule_module(tiny_model_dir, demo_images_dir,
                                                              tmp_path):
    _, events = run(tiny_model_dir, demo_images_dir, tmp_path, max_train_steps=5,
                    learning_rate="1e-2", lr_scheduler="cosine", lr_warmup_steps=2)
    expected = rate_schedule.learning_rates("1e-2", scheduler="cosine", warmup_steps=2,
                                        max_steps=5)
    assert [s.lr for s in steps_of(events)] == pytest.approx(expected)
    assert expected[0] == 0.0 and expected[2] == pytest.approx(1e-2)


def test_clip_value_really_limits_the_update(tiny_model_dir, demo_images_dir, tmp_path):
    free, free_events = run(tiny_model_dir, demo_images_dir, tmp_path / "a", max_train_steps=1)
    clipped, events = run(tiny_model_dir, demo_images_dir, tmp_path / "b", max_train_steps=1,
                          clip_grad_mode="value", clip_grad_value="1e-12")
    start, _ = run(tiny_model_dir, demo_images_dir, tmp_path / "c", max_train_steps=1,
                   learning_rate="0")
    moved_free = (free.vectors - start.vectors).abs().max().item()
    moved_clipped = (clipped.vectors - start.vectors).abs().max().item()
    assert moved_clipped < moved_free / 100
    step = steps_of(events)[0]
    assert step.clip_value == 1e-12
    # The logged norm is taken before clipping, so both runs log the same one.
    assert step.grad_norm == pytest.approx(steps_of(free_events)[0].grad_norm)


def test_clip_schedule_holds_its_last_value(tiny_model_dir, demo_images_dir, tmp_path):
    _, events = run(tiny_model_dir, demo_images_dir, tmp_path, max_train_steps=4,
                    clip_grad_mode="norm", clip_grad_value="0.5:2, 0.1:3")
    assert [s.clip_value for s in steps_of(events)] == [0.5, 0.5, 0.1, 0.1]


def test_more_images_per_update_than_images_warns_without_clamping(
        tiny_model_dir, demo_images_dir, tmp_path):
    _, events = run(tiny_model_dir, demo_images_dir, tmp_path, max_train_steps=1,
                    train_batch_size=4, gradient_accumulation_steps=2)
    started = next(e for e in events if e.type == "run_started")
    assert started.dataset["images_per_update"] == 8
    assert any(e.type == "warning" and "8 images per update" in e.message for e in events)
    assert steps_of(events)[0].images_seen == 8 and steps_of(events)[0].micro_batches == 2


def test_full_cycle_flag(tiny_model_dir, demo_images_dir, tmp_path):
    _, events = run(tiny_model_dir, demo_images_dir, tmp_path, max_train_steps=1,
                    train_batch_size=3, gradient_accumulation_steps=2)
    started = next(e for e in events if e.type == "run_started")
    assert started.dataset["full_cycle"] is True and started.dataset["updates_per_epoch"] == 1.0


def test_epoch_limit_counts_repeats(tiny_model_dir, demo_images_dir, tmp_path):
    result, _ = run(tiny_model_dir, demo_images_dir, tmp_path, max_train_steps=100,
                    num_train_epochs=1, repeats=2, train_batch_size=3)
    # one invokeai-ti epoch = 2 passes over 6 images = 12 images = 4 updates of 3
    assert result.reason == "epochs" and result.step == 4


def test_sam_trains_and_differs_from_adamw(tiny_model_dir, demo_images_dir, tmp_path):
    adamw, _ = run(tiny_model_dir, demo_images_dir, tmp_path / "a", max_train_steps=2)
    sam, events = run(tiny_model_dir, demo_images_dir, tmp_path / "b", max_train_steps=2,
                      optimizer="sam", sam_rho=0.5)
    assert torch.isfinite(sam.vectors).all()
    assert not torch.equal(sam.vectors, adamw.vectors)
    assert all(math.isfinite(s.loss) for s in steps_of(events))


def test_fp16_unscales_before_clipping_and_counts_skipped_updates(
        tiny_model_dir, demo_images_dir, tmp_path, monkeypatch):
    """fp16 on the CPU (allowed here only for the test): the GradScaler path of the loop."""
    import trainer.loop as loop
    import trainer.preflight as preflight

    monkeypatch.setattr(preflight, "check_precision", lambda *args, **kwargs: None)
    reference, ref_events = run(tiny_model_dir, demo_images_dir, tmp_path / "a",
                                max_train_steps=1)
    original = loop.diffusion_loss
    calls = {"n": 0}

    def poisoned(**kwargs):
        calls["n"] += 1
        loss = original(**kwargs)
        return loss * float("inf") if calls["n"] == 2 else loss

    monkeypatch.setattr(loop, "diffusion_loss", poisoned)
    _, events = run(tiny_model_dir, demo_images_dir, tmp_path / "b", max_train_steps=3,
                    mixed_precision="fp16", clip_grad_mode="norm", clip_grad_value="100")
    steps = steps_of(events)
    assert [s.skipped for s in steps] == [False, True, False]
    assert steps[-1].skipped_total == 1
    # Unscaled: the logged norm is the true gradient's (the loss scale starts at 65536).
    assert steps[0].grad_norm == pytest.approx(steps_of(ref_events)[0].grad_norm, rel=0.2)


@pytest.mark.slow
def test_compile_trains_the_same_embedding_through_the_compiled_unet(
        tiny_model_dir, demo_images_dir, tmp_path, monkeypatch):
    """--compile: the training forward runs the torch.compile'd UNet (inductor, as a user gets
    it), L_det and the preview the plain one, and the result matches an uncompiled run."""
    import torch._dynamo

    plain, plain_events = run(tiny_model_dir, demo_images_dir, tmp_path / "a",
                              max_train_steps=2, dvar_eval_every=1)
    compiled = []
    real_compile = torch.compile

    def recording_compile(module, **kwargs):
        compiled.append(module)
        return real_compile(module, **kwargs)

    monkeypatch.setattr(torch, "compile", recording_compile)
    torch._dynamo.reset()
    torch._dynamo.utils.counters.clear()
    result, events = run(tiny_model_dir, demo_images_dir, tmp_path / "b", max_train_steps=2,
                         dvar_eval_every=1, compile=True, validation_steps=2,
                         num_validation_images=1)
    assert len(compiled) == 1 and type(compiled[0]).__name__ == "UNet2DConditionModel"
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] >= 1
    assert [e.step for e in events if e.type == "preview"] == [0, 2]
    assert torch.allclose(result.vectors, plain.vectors, atol=1e-4)
    assert [s.l_det for s in steps_of(events)] == pytest.approx(
        [s.l_det for s in steps_of(plain_events)], rel=1e-4)
    torch._dynamo.reset()
