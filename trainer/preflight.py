"""Every check that can fail before a single file is written or a weight is loaded.

`ti-tui train` and the form run `preflight(config)` before creating the output folder, so a
user error ends with one sentence and exit code 2 and leaves nothing behind. The trainer runs
it again (a run.toml may have been edited by hand). It reads configs, lists images and loads
the tokenizer (about a second), but never the model weights.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from trainer import checkpoint, data, embeddings, models
from trainer.config import TrainConfig
from trainer.errors import ConfigError, DataError, ResumeError


@dataclass
class Preflight:
    """What the checks found, reused by the trainer so nothing is looked up twice."""

    model_path: Path
    facts: models.ModelFacts
    images: list[Path]
    resolution: int
    resume_dir: Path | None
    tokenizer: object


def preflight(config: TrainConfig, *, check_device: bool = True) -> Preflight:
    if not config.placeholder_token:
        raise ConfigError("Trigger term (--placeholder_token) is required, e.g. "
                          "--placeholder_token '<my-cat>'.", field="placeholder_token")
    if not config.train_data_dir:
        raise ConfigError("Data directory (--train_data_dir) is required: the folder holding "
                          "your 3-20 training images.", field="train_data_dir")
    model_path = models.resolve_model(config.model, Path(config.root).expanduser())
    facts = models.check_model_folder(model_path)
    images = data.list_images(config.data_path)
    if not images:
        raise DataError(f"Data directory {config.data_path} holds no images (PNG, JPEG, "
                        "WebP, GIF or BMP); put 3-20 images of your concept in it.",
                        field="train_data_dir")
    check_output_dir(config.output_path)
    tokenizer = models.load_tokenizer(Path(config.tokenizer_name).expanduser()
                                      if config.tokenizer_name else model_path)
    embeddings.check_trigger(tokenizer, config.trigger)
    embeddings.initializer_ids(tokenizer, config.initializer_token, config.num_vectors,
                               config.seed or 0)
    resume_dir = find_resume(config)
    if config.initial_embedding:
        _, vectors = embeddings.load_embedding(config.initial_embedding)
        embeddings.check_dimension(vectors, facts.token_dim, config.initial_embedding)
        if vectors.shape[0] != config.num_vectors:
            raise ResumeError(f"{config.initial_embedding} holds {vectors.shape[0]} vectors but "
                              f"--num_vectors is {config.num_vectors}; set --num_vectors "
                              f"{vectors.shape[0]}.", field="initial_embedding")
    if check_device:
        check_precision(config.mixed_precision)
    resolution = config.resolution or facts.native_resolution
    return Preflight(model_path, facts, images, resolution, resume_dir, tokenizer)


def check_output_dir(path: Path) -> None:
    """The output folder must be a folder we can write, or creatable."""
    if path.exists() and not path.is_dir():
        raise ConfigError(f"Output directory {path} is a file; pass a folder path.",
                          field="output_dir")
    probe = path
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir() or not os.access(probe, os.W_OK | os.X_OK):
        raise ConfigError(f"Output directory {path} is not writable ({probe} refuses new "
                          "files); pick a folder you own.", field="output_dir")


def find_resume(config: TrainConfig) -> Path | None:
    """The checkpoint folder to resume from, or None for a fresh run."""
    wanted = config.resume_from_checkpoint
    if not wanted:
        return None
    if wanted == "latest":
        found = checkpoint.latest_checkpoint(config.output_path)
        if found is None:
            raise ResumeError(f"--resume_from_checkpoint latest found no complete checkpoint-* "
                              f"folder in {config.output_path}; drop the flag to start fresh.",
                              field="resume_from_checkpoint")
        return found
    path = Path(wanted).expanduser()
    if not path.is_absolute() and not path.exists():
        path = config.output_path / wanted
    if not checkpoint.is_complete(path):
        raise ResumeError(f"Checkpoint {path} does not exist or is incomplete; pass "
                          "'latest' or a checkpoint-N folder.", field="resume_from_checkpoint")
    return path


def check_precision(precision: str) -> None:
    """Refuse a precision this machine's device cannot run."""
    import torch

    if precision == "no":
        return
    if not torch.cuda.is_available():
        if precision == "fp16":
            raise ConfigError("Mixed precision fp16 needs a CUDA GPU and none was found; use "
                              "--mixed_precision no (or bf16, slow on most CPUs).",
                              field="mixed_precision")
        return
    if precision == "bf16" and not torch.cuda.is_bf16_supported():
        raise ConfigError("Mixed precision bf16 is not supported by this GPU; use "
                          "--mixed_precision fp16.", field="mixed_precision")
