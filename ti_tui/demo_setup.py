"""The demo run: the shipped toy model learns a shape that no word reaches any more.

The toy model (assets/toy-model, trained by tools/train_toy_model.py) knows a small world of
coloured shapes; the rows of the words "star", "heart" and "moon" were erased after training,
so "a photo of a green star" no longer draws one. Textual inversion on five images of green
stars finds the shape again: the previews turn into green stars within ~100 updates, and DVAR
(the paper's 282 / 0.39) stops the run long before its 1000-step limit. See docs/RESULTS.md.
"""

from __future__ import annotations

from pathlib import Path

from trainer import checkpoint_index, formats
from trainer.config import TrainConfig
from trainer.events import StopReason
from trainer.assets import cache_root
from trainer.toy.world import toy_concept_images, toy_model_dir

DEMO_CONCEPT = "green-star"


def demo_data_dir() -> Path:
    """Five 32 px images of the demo concept, written once into the cache."""
    folder = cache_root() / f"demo-{DEMO_CONCEPT}-images-v1"
    toy_concept_images(folder, DEMO_CONCEPT, 5)
    return folder


def demo_output_dir(parent: Path) -> tuple[Path, bool]:
    """The folder this demo run trains into, and whether it resumes the run there.

    The first of green-star, green-star-2, ... that holds no run (no checkpoint and no
    embedding), or a run that can go on (its user stopped it, or it never recorded a stop).
    A run that ended by itself is kept: DVAR (or the step limit) would stop a resumed one
    again after one update, and a fresh run may not overwrite it (trainer/preflight.py
    refuses that).
    """
    number = 1
    while True:
        folder = parent / (DEMO_CONCEPT if number == 1 else f"{DEMO_CONCEPT}-{number}")
        if checkpoint_index.latest_checkpoint(folder) is None:
            # A run whose checkpoints were deleted still holds its embedding: not fresh.
            if not formats.earlier_embeddings(folder, f"<{DEMO_CONCEPT}>"):
                return folder, False
            number += 1
            continue
        stop = checkpoint_index.last_stop(folder)
        if stop is None or stop[0] in (StopReason.USER, StopReason.ERROR):
            return folder, True
        number += 1


def demo_config(root: str | None = None, max_train_steps: int = 1000) -> TrainConfig:
    """A config that shows real learning and a DVAR stop in about a minute and a half on CPU."""
    demo_root = Path(root).expanduser() if root else cache_root() / "demo-root"
    output, resume = demo_output_dir(demo_root / "text-inversion-output")
    return TrainConfig(
        model=str(toy_model_dir()), root=str(demo_root),
        placeholder_token=f"<{DEMO_CONCEPT}>", initializer_token="*",
        train_data_dir=str(demo_data_dir()),
        output_dir=str(output), resume_from_checkpoint="latest" if resume else None,
        resolution=32,
        train_batch_size=4, gradient_accumulation_steps=1, max_train_steps=max_train_steps,
        learning_rate="2e-3", scale_lr=False, lr_scheduler="constant", lr_warmup_steps=0,
        seed=0, dvar_window=282, dvar_threshold=0.39, save_steps=100, checkpointing_steps=100,
        validation_steps=25, num_validation_images=4, validation_guidance=4.0, log_every=25,
        copy_to_embeddings=False)
