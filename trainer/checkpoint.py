"""Resumable checkpoints: `checkpoint-<completed updates>/`, complete or absent.

A checkpoint holds everything needed to continue bit for bit: the learned vectors, optimizer
and loss-scaler state, the data-order and noise generators, every global RNG, the counters,
the DVAR history and the config. It is written into a temporary folder that is renamed into
place (trainer.fsutil.atomic_dir), so `kill -9` at any moment leaves either the whole
checkpoint or none. Loading uses safetensors and `torch.load(weights_only=True)` only.
"""

from __future__ import annotations

import json
import random
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from trainer.fsutil import atomic_dir

CHECKPOINT_PATTERN = re.compile(r"^checkpoint-(\d+)$")
FILES = ("meta.json", "state.pt", "embedding.safetensors", "run.toml")


@dataclass
class Checkpoint:
    step: int
    vectors: torch.Tensor
    state: dict[str, Any]
    meta: dict[str, Any]
    path: Path


def is_complete(path: Path) -> bool:
    return path.is_dir() and all((path / name).is_file() for name in FILES)


def list_checkpoints(output_dir: Path) -> list[tuple[int, Path]]:
    """Complete checkpoints in `output_dir`, oldest first."""
    if not output_dir.is_dir():
        return []
    found = []
    for child in output_dir.iterdir():
        match = CHECKPOINT_PATTERN.match(child.name)
        if match and is_complete(child):
            found.append((int(match.group(1)), child))
    return sorted(found)


def latest_checkpoint(output_dir: Path) -> Path | None:
    found = list_checkpoints(output_dir)
    return found[-1][1] if found else None


def capture_rng() -> dict[str, Any]:
    """Every global random state, in a form weights_only loading accepts."""
    np_state = np.random.get_state()
    state = {
        "python": random.getstate(),
        "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)),
                  int(np_state[2]), int(np_state[3]), float(np_state[4])],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any]) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(output_dir: Path, step: int, vectors: torch.Tensor, state: dict[str, Any],
                    meta: dict[str, Any], config_toml: str,
                    total_limit: int | None = None) -> Path:
    """Write checkpoint-<step>/ atomically, then prune to the newest `total_limit`."""
    target = output_dir / f"checkpoint-{step}"
    with atomic_dir(target) as tmp:
        save_file({"vectors": vectors.detach().to("cpu", torch.float32).contiguous()},
                  str(tmp / "embedding.safetensors"))
        torch.save(state, tmp / "state.pt")
        (tmp / "run.toml").write_text(config_toml, encoding="utf-8")
        # meta.json last: its presence marks the folder as complete.
        (tmp / "meta.json").write_text(json.dumps(dict(meta, step=step), indent=2),
                                       encoding="utf-8")
    if total_limit:
        prune(output_dir, total_limit)
    return target


def prune(output_dir: Path, keep: int) -> list[Path]:
    """Delete all but the newest `keep` complete checkpoints; returns what was removed."""
    found = list_checkpoints(output_dir)
    removed = [path for _, path in found[:-keep]] if keep > 0 else []
    for path in removed:
        shutil.rmtree(path, ignore_errors=True)
    return removed


def load_checkpoint(path: Path) -> Checkpoint:
    """Read a checkpoint; raises ValueError with a short reason if any part is unreadable."""
    if not is_complete(path):
        raise ValueError("it is incomplete")
    try:
        meta = json.loads((path / "meta.json").read_text(encoding="utf-8"))
        vectors = load_file(str(path / "embedding.safetensors"))["vectors"]
        state = torch.load(path / "state.pt", map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any damage means "use an older one"
        raise ValueError(f"it is damaged ({type(exc).__name__}: {exc})") from None
    return Checkpoint(step=int(meta["step"]), vectors=vectors, state=state, meta=meta,
                      path=path)


def load_newest_usable(output_dir: Path, first_choice: Path,
                       warn) -> Checkpoint:
    """Load `first_choice`; if it is damaged, warn and fall back to older checkpoints."""
    match = CHECKPOINT_PATTERN.match(first_choice.name)
    newest = int(match.group(1)) if match else None
    older = [p for step, p in reversed(list_checkpoints(output_dir))
             if p != first_choice and (newest is None or step < newest)]
    candidates = [first_choice, *older]
    for path in candidates:
        try:
            return load_checkpoint(path)
        except ValueError as exc:
            warn(f"Checkpoint {path.name} was skipped: {exc}.", str(path))
    raise ValueError(f"no usable checkpoint in {output_dir}")
