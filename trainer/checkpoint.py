"""Resumable checkpoints: `checkpoint-<completed updates>/`, complete or absent.

A checkpoint holds everything needed to continue bit for bit: the learned vectors, optimizer
and loss-scaler state, the data-order and noise generators, every global RNG, the counters,
the DVAR history and the config. It is written into a temporary folder that is renamed into
place (trainer.fsutil.atomic_dir), so `kill -9` at any moment leaves either the whole
checkpoint or none. Loading uses safetensors and `torch.load(weights_only=True)` only.
"""

from __future__ import annotations

import io
import json
import os
import random
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file
from safetensors.torch import save as safetensors_bytes

from trainer import fsutil
from trainer.checkpoint_index import (  # noqa: F401 (re-exported)
    CHECKPOINT_PATTERN, FILES, is_complete, latest_checkpoint, list_checkpoints)
from trainer.errors import ResumeError

@dataclass
class Checkpoint:
    """One loaded `checkpoint-<step>/` folder (load_checkpoint builds it, finite and whole)."""

    step: int
    """Completed optimizer updates when it was written (the folder name's number)."""
    vectors: torch.Tensor
    """The learned rows, fp32 [num_vectors, width], on the CPU."""
    state: dict[str, Any]
    """state.pt: optimizer, loss scaler, generators, RNGs, counters and DVAR history."""
    meta: dict[str, Any]
    """meta.json: the step and the facts a resume checks against the current config."""
    path: Path
    """The checkpoint folder."""


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
    """Put back the Python, NumPy, torch and (when present and available) CUDA random states
    that capture_rng saved; a CUDA state is skipped on a machine without CUDA."""
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
    """Write checkpoint-<step>/ atomically, then prune to the newest `total_limit`.

    `vectors` [num_vectors, width] is stored as fp32 on the CPU; `state` is the loop's
    state_dict. OSError (full or read-only disk) propagates; nothing half-written remains."""
    target = output_dir / f"checkpoint-{step}"
    # Everything is serialised in memory first (a few KB) and written with plain file I/O, so
    # a full disk or a read-only folder is an OSError (trainer.outputs turns it into one
    # sentence), and the folder only gets its name once every file in it is whole.
    state_buffer = io.BytesIO()
    torch.save(state, state_buffer)
    parts = {
        "embedding.safetensors": safetensors_bytes(
            {"vectors": vectors.detach().to("cpu", torch.float32).contiguous()}),
        "state.pt": state_buffer.getvalue(),
        "run.toml": config_toml.encode("utf-8"),
        # meta.json last: within the temporary folder it marks the writing as finished.
        "meta.json": json.dumps(dict(meta, step=step), indent=2).encode("utf-8"),
    }
    with fsutil.atomic_dir(target) as tmp:
        for name, data in parts.items():
            fsutil.write_file_synced(tmp / name, data)
    if total_limit:
        prune(output_dir, total_limit)
    return target


def prune(output_dir: Path, keep: int) -> list[Path]:
    """Delete all but the newest `keep` complete checkpoints; returns what was removed."""
    found = list_checkpoints(output_dir)
    removed = [path for _, path in found[:-keep]] if keep > 0 else []
    for path in removed:
        # Renamed to a hidden temporary name first, so a kill during the deletion never
        # leaves a half-deleted folder under a checkpoint name (the next run removes it).
        trash = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=output_dir))
        try:
            os.replace(path, trash / path.name)
        except OSError:
            shutil.rmtree(trash, ignore_errors=True)
            continue
        shutil.rmtree(trash, ignore_errors=True)
    return removed


def load_checkpoint(path: Path) -> Checkpoint:
    """Read a checkpoint; raises ValueError with a short reason if any part is unreadable."""
    if not is_complete(path):
        raise ValueError("it is incomplete")
    try:
        meta = json.loads((path / "meta.json").read_text(encoding="utf-8"))
        vectors = load_file(str(path / "embedding.safetensors"))["vectors"]
        state = torch.load(path / "state.pt", map_location="cpu", weights_only=True)
        step = int(meta["step"])
    except Exception as exc:  # noqa: BLE001 - any damage means "use an older one"
        text = str(exc).strip()
        if "GLOBAL" in text or "Unsupported global" in text:
            raise ValueError("it contains pickled code, which ti-tui never runs") from None
        first = text.splitlines()[0][:120] if text else ""
        raise ValueError(f"it is damaged ({type(exc).__name__}{': ' + first if first else ''})"
                         ) from None
    if not torch.isfinite(vectors).all():
        raise ValueError("its embedding holds NaN or infinite values")
    return Checkpoint(step=step, vectors=vectors, state=state, meta=meta, path=path)


def read_meta(path: Path) -> dict[str, Any] | None:
    """A checkpoint's meta.json, or None when it is missing or unreadable."""
    try:
        meta = json.loads((path / "meta.json").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    return meta if isinstance(meta, dict) else None


def load_newest_usable(output_dir: Path, first_choice: Path,
                       warn) -> Checkpoint:
    """Load `first_choice`; if it is damaged, `warn(message, path)` and fall back to older
    checkpoints. ResumeError (field resume_from_checkpoint) when none is usable."""
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
    raise ResumeError(f"No usable checkpoint in {output_dir}: every checkpoint-* folder tried "
                      f"({', '.join(p.name for p in candidates)}) is damaged; drop "
                      "--resume_from_checkpoint to start fresh.", field="resume_from_checkpoint")
