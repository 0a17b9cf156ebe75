"""The demo run: the shipped toy model learns a shape that no word reaches any more.

The toy model (assets/toy-model, trained by tools/train_toy_model.py) knows a small world of
coloured shapes; the rows of the words "star", "heart" and "moon" were erased after training,
so "a photo of a green star" no longer draws one. Textual inversion on five images of green
stars finds the shape again: the previews turn into green stars within ~100 updates, and DVAR
(the paper's 282 / 0.39) stops the run long before its 1000-step limit. See docs/RESULTS.md.
"""

from __future__ import annotations

from pathlib import Path

from trainer.config import TrainConfig
from trainer.assets import cache_root
from trainer.toy.world import toy_concept_images, toy_model_dir

DEMO_CONCEPT = "green-star"


def demo_data_dir() -> Path:
    """Five 32 px images of the demo concept, written once into the cache."""
    folder = cache_root() / f"demo-{DEMO_CONCEPT}-images-v1"
    toy_concept_images(folder, DEMO_CONCEPT, 5)
    return folder


def demo_config(root: str | None = None, max_train_steps: int = 1000) -> TrainConfig:
    """A config that shows real learning and a DVAR stop in about a minute and a half on CPU."""
    demo_root = Path(root).expanduser() if root else cache_root() / "demo-root"
    return TrainConfig(
        model=str(toy_model_dir()), root=str(demo_root),
        placeholder_token=f"<{DEMO_CONCEPT}>", initializer_token="*",
        train_data_dir=str(demo_data_dir()),
        output_dir=str(demo_root / "text-inversion-output" / DEMO_CONCEPT), resolution=32,
        train_batch_size=4, gradient_accumulation_steps=1, max_train_steps=max_train_steps,
        learning_rate="2e-3", scale_lr=False, lr_scheduler="constant", lr_warmup_steps=0,
        seed=0, dvar_window=282, dvar_threshold=0.39, save_steps=100, checkpointing_steps=100,
        validation_steps=25, num_validation_images=4, validation_guidance=4.0, log_every=25,
        copy_to_embeddings=False)
