"""Shared by the fault tests (tests/*/test_faults*.py): checks that nothing is half written."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from trainer import checkpoint
from trainer.formats import load_embedding
from trainer.event_file import read_events


def events(config) -> list[dict]:
    path = config.output_path / "events.jsonl"
    return list(read_events(path)) if path.exists() else []


def temporaries(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.name.endswith(".tmp")]


def assert_every_file_whole(folder: Path) -> None:
    """Every embedding and checkpoint under `folder` (hidden temporaries aside) loads."""
    for path in folder.rglob("*"):
        if any(part.startswith(".") for part in path.relative_to(folder).parts):
            continue
        if path.is_dir() and path.name.startswith("checkpoint-"):
            loaded = checkpoint.load_checkpoint(path)
            assert torch.isfinite(loaded.vectors).all()
        elif path.suffix in (".safetensors", ".bin", ".pt") and "checkpoint-" not in str(path):
            _, vectors = load_embedding(path)
            assert torch.isfinite(vectors).all()
        elif path.suffix == ".jsonl":
            for line in path.read_text().splitlines():
                json.loads(line)
