"""Small shared helpers for tests that run the real trainer on the tiny model."""

from __future__ import annotations

import shutil
from pathlib import Path

from trainer.config import TrainConfig


def make_config(model, images, tmp_path, **changes) -> TrainConfig:
    """A fast tiny-model run: 8 updates of batch 2, DVAR evaluated but not stopping, on the CPU
    whatever the machine has (tests that exercise CUDA pass device="cuda" and are marked gpu)."""
    values = dict(model=str(model), root=str(tmp_path / "root"), placeholder_token="star",
                  device="cpu",
                  train_data_dir=str(images), output_dir=str(tmp_path / "out"),
                  train_batch_size=2, max_train_steps=8, learning_rate="5e-3", scale_lr=False,
                  seed=1, dvar_window=4, dvar_threshold=0.05, save_steps=4,
                  checkpointing_steps=4, early_stopping="none")
    values.update(changes)
    return TrainConfig(**values)


def fill_invokeai_root(root: Path, model_dir: Path, images_dir: Path, word: str) -> Path:
    """Make `root` an InvokeAI root: the model linked as models/sd-1/main/tiny and the images
    copied to text-inversion-training-data/<word>; invokeai.yaml makes it a 3.x root (one
    that gets the ROOT/embeddings copy, install_guide.is_invokeai_legacy_root)."""
    models = root / "models" / "sd-1" / "main"
    models.mkdir(parents=True)
    (root / "invokeai.yaml").write_text("InvokeAI:\n  Paths: {}\n")
    (models / "tiny").symlink_to(model_dir, target_is_directory=True)
    shutil.copytree(images_dir, root / "text-inversion-training-data" / word)
    return root


def link_model(src: Path, dst: Path, *, skip: tuple[str, ...] = ()) -> Path:
    """A model folder at `dst` whose parts are symlinks into `src`, minus the `skip` ones.

    Cheap, and lets a test break one part without touching the shared session model.
    """
    dst.mkdir(parents=True)
    for child in src.iterdir():
        if child.name not in skip:
            (dst / child.name).symlink_to(child)
    return dst
