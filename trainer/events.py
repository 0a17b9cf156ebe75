"""The events a run emits: the one interface between the trainer and anything that shows it.

`trainer.train(config, emit)` calls `emit(event)` with these frozen dataclasses; `python -m
trainer` writes each as one JSON line to OUTPUT_DIR/events.jsonl via `EventLog`. Every line has
`type`, `time` (unix seconds) and the schema `version`. Readers must ignore types and fields
they do not know, so new fields can be added without breaking an older dashboard.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

SCHEMA_VERSION = 1
EVENTS_FILE = "events.jsonl"


def _now() -> float:
    return time.time()


@dataclass(frozen=True)
class Event:
    type: ClassVar[str] = "event"
    time: float = field(default_factory=_now, kw_only=True)
    """Unix seconds when the event happened."""

    def to_dict(self) -> dict[str, Any]:
        data = {"type": self.type, "version": SCHEMA_VERSION}
        for f in dataclasses.fields(self):
            data[f.name] = _jsonable(getattr(self, f.name))
        return data


@dataclass(frozen=True)
class Phase(Event):
    """What the trainer is busy with before the first step (loading, caching latents...)."""

    type: ClassVar[str] = "phase"
    name: str
    detail: str = ""


@dataclass(frozen=True)
class RunStarted(Event):
    """Everything known once the model and data are loaded, before the first update."""

    type: ClassVar[str] = "run_started"
    config: dict[str, Any]
    model: dict[str, Any]
    """Facts about the model: path, token_dim, prediction_type, native_resolution..."""
    dataset: dict[str, Any]
    """n_images, images_per_update, updates_per_epoch, epochs_total, full_cycle, skipped..."""
    device: str
    precision: str
    num_processes: int
    start_step: int
    max_steps: int
    """The step the run will end at by its limits (the schedule may end it sooner)."""
    learning_rate: float
    """The rate of the first update, after --scale_lr."""
    lr_scale: float
    trigger: str
    tokens: list[str]
    output_dir: str
    pid: int = field(default_factory=os.getpid)


@dataclass(frozen=True)
class Step(Event):
    """One optimizer update finished."""

    type: ClassVar[str] = "step"
    step: int
    loss: float
    lr: float
    images_seen: int
    epoch: float
    micro_batches: int
    grad_norm: float | None = None
    clip_value: float | None = None
    skipped: bool = False
    """fp16 only: the scaler found inf/nan gradients and skipped this update."""
    skipped_total: int = 0
    l_det: float | None = None
    dvar_ratio: float | None = None
    ema_pct: float | None = None
    hall: float | None = None
    trend: float | None = None
    images_per_s: float | None = None
    step_seconds: float | None = None
    memory_mb: float | None = None


@dataclass(frozen=True)
class CheckpointSaved(Event):
    type: ClassVar[str] = "checkpoint"
    step: int
    path: str


@dataclass(frozen=True)
class EmbeddingSaved(Event):
    type: ClassVar[str] = "embedding_saved"
    step: int
    paths: list[str]
    final: bool = False


@dataclass(frozen=True)
class PreviewSaved(Event):
    type: ClassVar[str] = "preview"
    step: int
    path: str
    prompt: str


@dataclass(frozen=True)
class Warning(Event):  # noqa: A001 - the event type name from DESIGN.md
    type: ClassVar[str] = "warning"
    message: str
    file: str | None = None


@dataclass(frozen=True)
class Error(Event):
    type: ClassVar[str] = "error"
    message: str
    hint: str | None = None
    user_error: bool = True
    """True for a problem the user can fix (exit 2), False for an internal failure (exit 1)."""


@dataclass(frozen=True)
class Stopped(Event):
    """Always the last event of a run."""

    type: ClassVar[str] = "stopped"
    reason: str
    """max_steps | schedule_end | early_stop | user | error"""
    step: int
    files: list[str] = field(default_factory=list)
    ratio: float | None = None
    window: int | None = None
    threshold: float | None = None
    ddof: int | None = None
    message: str = ""


Emit = Callable[[Event], None]


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None if math.isnan(value) else (1e308 if value > 0 else -1e308)
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


class EventLog:
    """Appends events to events.jsonl, one line each, flushed per event.

    A line is written with a single write() call on a file opened in append mode, so a reader
    tailing the file sees whole lines, or at worst a partial last line it must skip.
    """

    def __init__(self, path: str | os.PathLike[str]):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        torn = _ends_mid_line(self.path)
        self._fh = open(self.path, "a", encoding="utf-8", buffering=1)
        if torn:
            # A run killed mid-line left a fragment; start our first event on a new line.
            self._fh.write("\n")

    def __call__(self, event: Event) -> None:
        self._fh.write(json.dumps(event.to_dict(), separators=(",", ":")) + "\n")
        self._fh.flush()

    def close(self) -> None:
        self._fh.close()


def _ends_mid_line(path: Path) -> bool:
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            if fh.tell() == 0:
                return False
            fh.seek(-1, os.SEEK_END)
            return fh.read(1) != b"\n"
    except FileNotFoundError:
        return False


def parse_event_line(line: str) -> dict[str, Any] | None:
    """One line of events.jsonl as a dict, or None if it is partial, blank or not an event."""
    line = line.strip()
    if not line:
        return None
    try:
        data = json.loads(line)
    except json.JSONDecodeError:
        return None
    return data if isinstance(data, dict) and isinstance(data.get("type"), str) else None


def read_events(path: str | os.PathLike[str]) -> Iterator[dict[str, Any]]:
    """Every complete event in an events.jsonl file (a partial last line is skipped)."""
    with open(path, encoding="utf-8", errors="replace") as fh:
        for line in fh:
            if line.endswith("\n"):
                event = parse_event_line(line)
                if event is not None:
                    yield event
