"""A run with DVAR on at a slow rate says so before its first update (trainer/setup.py)."""

from __future__ import annotations

from trainer import train

from tests.helpers import make_config


def test_a_slow_rate_run_with_dvar_is_warned_before_it_trains(tiny_model_dir, demo_images_dir,
                                                               tmp_path):
    config = make_config(tiny_model_dir, demo_images_dir, tmp_path, max_train_steps=4,
                         learning_rate="5e-4", early_stopping="dvar", dvar_window=2,
                         dvar_threshold=0.01, save_steps=0, checkpointing_steps=0)
    events: list = []
    train(config, emit=events.append)
    kinds = [e.type for e in events]
    warning = next(e for e in events if e.type == "warning" and e.message.startswith("DVAR:"))
    assert kinds.index("warning") <= events.index(warning) < kinds.index("step")
    assert "0.0005" in warning.message
    fast: list = []
    train(config.replace(learning_rate="5e-3", output_dir=str(tmp_path / "fast")),
          emit=fast.append)
    assert not any(e.type == "warning" and e.message.startswith("DVAR:") for e in fast)
