"""The demo run's configuration: the built-in tiny model, its images, small CPU settings."""

from __future__ import annotations

from pathlib import Path

from trainer.config import TrainConfig
from trainer.demo import cache_root, demo_data_dir, demo_model_dir


def demo_config(root: str | None = None, max_train_steps: int = 300) -> TrainConfig:
    """A config that trains the demo embedding in well under a minute on two CPU cores."""
    demo_root = Path(root).expanduser() if root else cache_root() / "demo-root"
    return TrainConfig(
        model=str(demo_model_dir()), root=str(demo_root), placeholder_token="<demo-star>",
        initializer_token="star", train_data_dir=str(demo_data_dir()),
        output_dir=str(demo_root / "text-inversion-output" / "demo-star"), resolution=64,
        train_batch_size=2, gradient_accumulation_steps=1, max_train_steps=max_train_steps,
        learning_rate="5e-3", scale_lr=False, lr_warmup_steps=0, seed=0,
        dvar_window=50, dvar_threshold=0.39, save_steps=100, checkpointing_steps=100,
        validation_steps=50, log_every=10, copy_to_embeddings=False)
