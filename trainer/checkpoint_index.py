"""Which checkpoint folders exist and are complete: no torch, so the form can ask too.

A checkpoint is complete when all its files are present; trainer.checkpoint writes them into a
temporary folder renamed into place, so a complete folder is never half written.
"""

from __future__ import annotations

import re
from pathlib import Path

CHECKPOINT_PATTERN = re.compile(r"^checkpoint-(\d+)$")
FILES = ("meta.json", "state.pt", "embedding.safetensors", "run.toml")


def is_complete(path: Path) -> bool:
    """Whether `path` is a folder holding every checkpoint file in FILES."""
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
    """The complete checkpoint with the highest step in `output_dir`, or None."""
    found = list_checkpoints(output_dir)
    return found[-1][1] if found else None


def last_stop(output_dir: Path) -> tuple[str, int] | None:
    """(reason, step) of the last `stopped` event in output_dir/events.jsonl, or None (no
    event log, or the last run never recorded one: killed, or still running).

    The form and the demo ask it so that resuming a run DVAR already stopped is flagged
    before Start: its restored DVAR window would stop the run again after one update.
    """
    from trainer.event_file import read_events
    from trainer.events import EVENTS_FILE

    path = output_dir / EVENTS_FILE
    found = None
    try:
        for data in read_events(path):
            if data.get("type") == "run_started":
                found = None  # a newer run began: an older stop says nothing about it
            elif data.get("type") == "stopped":
                found = (str(data.get("reason")), int(data.get("step") or 0))
    except (OSError, ValueError):
        return None
    return found


def stopped_by_dvar(output_dir: Path) -> int | None:
    """The step at which DVAR stopped the run in output_dir, if its last run ended so."""
    stop = last_stop(output_dir)
    return stop[1] if stop is not None and stop[0] == "early_stop" else None
