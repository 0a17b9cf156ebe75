"""Small shared helpers for tests that run the real trainer on the tiny model."""

from __future__ import annotations

from trainer.config import TrainConfig


def make_config(model, images, tmp_path, **changes) -> TrainConfig:
    """A fast tiny-model run: 8 updates of batch 2, DVAR evaluated but not stopping."""
    values = dict(model=str(model), root=str(tmp_path / "root"), placeholder_token="star",
                  train_data_dir=str(images), output_dir=str(tmp_path / "out"),
                  train_batch_size=2, max_train_steps=8, learning_rate="5e-3", scale_lr=False,
                  seed=1, dvar_window=4, dvar_threshold=0.05, save_steps=4,
                  checkpointing_steps=4, early_stopping="none")
    values.update(changes)
    return TrainConfig(**values)
