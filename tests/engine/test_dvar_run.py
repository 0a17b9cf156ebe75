"""DVAR inside real runs: the evaluation batch, the stop point, and what is saved."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

from trainer import train
from trainer.evaluation import build_eval_batch
from trainer.latents import LatentCache
from trainer.stopping import dvar_ratio

from tests.helpers import make_config


def test_eval_batch_follows_the_spec():
    n_images, templates, batch = 3, 27, 4
    cache = LatentCache(torch.randn(n_images, 2, 4, 8, 8), torch.ones(n_images, 2, 4, 8, 8), 0.5)
    captions = torch.arange(templates).unsqueeze(1).repeat(1, 77)
    before = torch.get_rng_state()
    first = build_eval_batch(cache, captions, batch, 1000, seed=5, device=torch.device("cpu"))
    assert torch.equal(torch.get_rng_state(), before), "must not touch the global RNG"
    assert first.image_indices == [0, 1, 2, 0]
    assert first.template_indices == [0, 1, 2, 3]
    assert len(set(first.timesteps.tolist())) == batch
    assert first.input_ids[:, 0].tolist() == [0, 1, 2, 3]
    again = build_eval_batch(cache, captions, batch, 1000, seed=5, device=torch.device("cpu"))
    for a, b in ((first.latents, again.latents), (first.noise, again.noise),
                 (first.timesteps, again.timesteps)):
        assert torch.equal(a, b)
    other = build_eval_batch(cache, captions, batch, 1000, seed=6, device=torch.device("cpu"))
    assert not torch.equal(first.noise, other.noise)


def test_evaluating_l_det_does_not_change_training(tiny_model_dir, demo_images_dir, tmp_path):
    runs = []
    for every in (0, 1):
        events: list = []
        config = make_config(tiny_model_dir, demo_images_dir, tmp_path / str(every),
                             max_train_steps=4, save_steps=0, checkpointing_steps=0,
                             dvar_eval_every=every)
        result = train(config, emit=events.append)
        runs.append(([e.loss for e in events if e.type == "step"], result.vectors))
    assert runs[0][0] == runs[1][0]
    assert torch.equal(runs[0][1], runs[1][1])


def test_mock_series_stops_at_window_plus_one(tiny_model_dir, demo_images_dir, tmp_path,
                                             monkeypatch):
    import trainer.loop as loop

    series = iter([100.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0])
    monkeypatch.setattr(loop._Loop, "_l_det", lambda self: next(series))
    config = make_config(tiny_model_dir, demo_images_dir, tmp_path, max_train_steps=20,
                         early_stopping="dvar", dvar_window=5, dvar_threshold=0.39,
                         save_steps=1, checkpointing_steps=0)
    events: list = []
    result = train(config, emit=events.append)
    steps = [e for e in events if e.type == "step"]
    assert [s.step for s in steps] == [1, 2, 3, 4, 5, 6], "exactly k = N + 1 updates"
    assert steps[4].dvar_ratio == pytest.approx(1.0) and steps[5].dvar_ratio == 0.0
    stopped = events[-1]
    assert (stopped.reason, stopped.step, stopped.window, stopped.threshold, stopped.ddof) == (
        "early_stop", 6, 5, 0.39, 0)
    assert stopped.ratio == 0.0
    final = load_file(str(config.output_path / "learned_embeds.safetensors"))["<star>"]
    snapshot = load_file(str(config.output_path / "embeddings" /
                              "learned_embeds-steps-6.safetensors"))["<star>"]
    assert torch.equal(final, result.vectors) and torch.equal(final, snapshot)


def test_real_run_stops_by_dvar_and_its_ratio_is_reproducible(tiny_model_dir, demo_images_dir,
                                                              tmp_path):
    # A high threshold so that the random-weight model, whose L_det barely moves, stops early.
    config = make_config(tiny_model_dir, demo_images_dir, tmp_path, max_train_steps=60,
                         early_stopping="dvar", dvar_window=8, dvar_threshold=0.9,
                         learning_rate="2e-2", save_steps=0, checkpointing_steps=0)
    events: list = []
    result = train(config, emit=events.append)
    assert result.reason == "early_stop" and 9 <= result.step < 60
    history = [e.l_det for e in events if e.type == "step"]
    logged = [e.dvar_ratio for e in events if e.type == "step"]
    for k in range(8, len(history) + 1):
        assert logged[k - 1] == pytest.approx(dvar_ratio(history[:k], 8), rel=1e-9)
    assert logged[-1] < 0.9 and all(r >= 0.9 for r in logged[8:-1])
    rows = (config.output_path / "dvar_history.csv").read_text().splitlines()[1:]
    assert [float(r.split(",")[1]) for r in rows] == history


def test_early_stopping_off_still_reports_the_ratio(tiny_model_dir, demo_images_dir, tmp_path):
    config = make_config(tiny_model_dir, demo_images_dir, tmp_path, max_train_steps=12,
                         early_stopping="none", dvar_window=4, dvar_threshold=0.99,
                         save_steps=0, checkpointing_steps=0, dvar_eval_every=2)
    events: list = []
    result = train(config, emit=events.append)
    assert result.reason == "max_steps" and result.step == 12
    evaluated = [e.step for e in events if e.type == "step" and e.l_det is not None]
    assert evaluated == [2, 4, 6, 8, 10, 12]
    assert any(e.dvar_ratio is not None for e in events if e.type == "step")


def test_a_run_resumed_after_dvar_stopped_it_says_so_before_it_starts(
        tiny_model_dir, demo_images_dir, tmp_path, monkeypatch):
    """Issue 16: resuming restores L_det's history, already below the threshold, so the run
    stops after one update (the spec's rule); the user is told first, with the flag that
    trains on, and that flag does train on."""
    import trainer.loop as loop

    monkeypatch.setattr(loop._Loop, "_l_det", lambda self: 100.0 if self.step == 1 else 1.0)
    config = make_config(tiny_model_dir, demo_images_dir, tmp_path, max_train_steps=20,
                         early_stopping="dvar", dvar_window=5, dvar_threshold=0.39,
                         save_steps=0, checkpointing_steps=0)
    assert train(config).reason == "early_stop"
    events: list = []
    resumed = train(config.replace(resume_from_checkpoint="latest"), emit=events.append)
    kinds = [e.type for e in events]
    warning = next(e for e in events if e.type == "warning" and "DVAR" in e.message)
    assert events.index(warning) < kinds.index("step"), "said before the first update"
    assert "--early_stopping none" in warning.message
    assert resumed.reason == "early_stop" and resumed.step == 7
    onward = train(config.replace(resume_from_checkpoint="latest", early_stopping="none",
                                  max_train_steps=9))
    assert onward.reason == "max_steps" and onward.step == 9


def test_l_det_from_the_kept_inputs_equals_the_plain_loss(tiny_model_dir, demo_images_dir,
                                                          tmp_path, monkeypatch):
    """The evaluation keeps its noised latents and target from the first call: every value is
    still exactly the diffusion loss of the fixed batch at the current embedding."""
    import trainer.loop as loop
    from trainer.objective import diffusion_loss

    pairs = []
    kept_inputs = []
    original = loop._Loop._l_det

    def both(self):
        fast = original(self)
        batch, components = self.session.eval_batch, self.session.components
        with torch.inference_mode():
            plain = diffusion_loss(unet=components.unet, conditioner=components.conditioner,
                                   scheduler=components.noise_scheduler, latents=batch.latents,
                                   noise=batch.noise, timesteps=batch.timesteps,
                                   input_ids=batch.input_ids, time_ids=batch.time_ids,
                                   autocast=self.session.autocast,
                                   unet_dtype=self.session.unet_dtype)
        pairs.append((fast, float(plain.item())))
        kept_inputs.append(batch.prepared[1].data_ptr())
        return fast

    monkeypatch.setattr(loop._Loop, "_l_det", both)
    train(make_config(tiny_model_dir, demo_images_dir, tmp_path, max_train_steps=3,
                      save_steps=0, checkpointing_steps=0))
    assert len(pairs) == 3 and all(fast == plain for fast, plain in pairs)
    assert len(set(v for v, _ in pairs)) == 3, "the embedding moved, so L_det moved"
    assert len(set(kept_inputs)) == 1, "made once, then reused"
