"""The events a run emits: the one interface between the trainer and anything that shows it.

`trainer.train(config, emit)` calls `emit(event)` with these frozen dataclasses; `python -m
trainer` writes each as one JSON line to OUTPUT_DIR/events.jsonl via `trainer.event_file.EventLog`. Every line has
`type`, `time` (unix seconds) and the schema `version`.

The same classes are read back: `parse_event` turns a line (or its JSON object) into the typed
event, and `trainer.event_file.load_events` / `ti_tui.tail.EventTail` yield typed events, so the writer and every
reader (RunState, the headless lines, the summary screen) share one schema. As DESIGN.md's
contract asks, readers ignore fields they do not know, tolerate a newer `version`, and turn an
unknown `type` into an `Unknown` event that views skip. Why a run ended is a `StopReason`,
with its words for people in one place.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import Enum, StrEnum
from pathlib import Path
from typing import Any, ClassVar


SCHEMA_VERSION = 1
"""The `version` every written line carries; readers accept any version (newer fields are
ignored), so it only tells a person which trainer wrote a file."""
EVENTS_FILE = "events.jsonl"


class StopReason(StrEnum):
    """Why a run ended: the `reason` of its `Stopped` event, and the limit that sets a run's end.

    A StrEnum, so it is written to JSON and formatted as its plain value. `words` is the
    short phrase the dashboard and the plain lines show, `sentence` the clause the summary
    screen completes ("Stopped at step 120: <sentence>."). A reason a newer trainer invents
    is kept as a plain string by `parse_event`; `stop_words` and `stop_sentence` fall back to
    it readably.
    """

    MAX_STEPS = "max_steps"
    EPOCHS = "epochs"
    """--num_train_epochs came before --max_train_steps (trainer/plan.py)."""
    SCHEDULE_END = "schedule_end"
    """An A1111 learning-rate string ended before the step limit (spec B2)."""
    EARLY_STOP = "early_stop"
    """DVAR's ratio fell below its threshold (spec A5)."""
    USER = "user"
    """A stop request: SIGINT/SIGTERM, q in the dashboard, Ctrl-C in `ti-tui train`."""
    ERROR = "error"
    """A user error or an internal failure; an `Error` event says which."""

    @property
    def words(self) -> str:
        """The short phrase for panel titles and plain lines, e.g. "reached the epoch limit"."""
        return _WORDS[self][0]

    @property
    def sentence(self) -> str:
        """The summary screen's clause, e.g. "it reached the epoch limit"."""
        return _WORDS[self][1]


_WORDS: dict[StopReason, tuple[str, str]] = {
    StopReason.MAX_STEPS: ("reached the step limit", "it reached the step limit"),
    StopReason.EPOCHS: ("reached the epoch limit", "it reached the epoch limit"),
    StopReason.SCHEDULE_END: ("the LR schedule ended", "the learning-rate schedule ended"),
    StopReason.EARLY_STOP: ("stopped early by DVAR", "DVAR early stopping: the loss had settled"),
    StopReason.USER: ("stopped by you", "you stopped it"),
    StopReason.ERROR: ("failed", "it failed"),
}


def stop_reason(value: Any) -> StopReason | str:
    """`value` as a StopReason when it names one, else the text as given (a newer reason)."""
    try:
        return StopReason(value)
    except ValueError:
        return str(value)


def stop_words(reason: StopReason | str | None) -> str:
    """The dashboard's phrase for a stop reason; an unknown reason shows as its own words."""
    known = stop_reason(reason) if reason is not None else ""
    return known.words if isinstance(known, StopReason) else str(known).replace("_", " ")


def stop_sentence(reason: StopReason | str | None) -> str:
    """The summary screen's clause for a stop reason; an unknown one shows as its own words."""
    known = stop_reason(reason) if reason is not None else ""
    return known.sentence if isinstance(known, StopReason) else str(known).replace("_", " ")


def _now() -> float:
    return time.time()


@dataclass(frozen=True)
class Event:
    """The base of every event: its `type` name (a class attribute) and its `time`."""

    type: ClassVar[str] = "event"
    time: float = field(default_factory=_now, kw_only=True)
    """Unix seconds when the event happened."""

    def to_dict(self) -> dict[str, Any]:
        """The JSON object written to events.jsonl: type, version and every field."""
        data = {"type": self.type, "version": SCHEMA_VERSION}
        for f in dataclasses.fields(self):
            data[f.name] = _jsonable(getattr(self, f.name))
        return data


@dataclass(frozen=True)
class Phase(Event):
    """What the trainer is busy with before the first step (loading, caching latents...)."""

    type: ClassVar[str] = "phase"
    name: str
    """What the trainer is doing, e.g. "loading model", "caching latents"."""
    detail: str = ""
    """A detail for people: the model path, the number of images."""


@dataclass(frozen=True)
class RunStarted(Event):
    """Everything known once the model and data are loaded, before the first update."""

    type: ClassVar[str] = "run_started"
    config: dict[str, Any]
    """The run's TrainConfig as plain values (hub_token left out), with the seed used."""
    model: dict[str, Any]
    """Facts about the model: path, token_dim, prediction_type, native_resolution..."""
    dataset: dict[str, Any]
    """n_images, images_per_update, updates_per_epoch, epochs_total, full_cycle, skipped..."""
    device: str
    """The torch device of this process, e.g. "cpu", "cuda:0"."""
    precision: str
    """--mixed_precision: no, fp16 or bf16."""
    num_processes: int
    """Data-parallel processes training together (1 without `accelerate launch`)."""
    start_step: int
    """Updates already done (a resumed run's checkpoint step; 0 for a fresh run)."""
    max_steps: int
    """The step the run ends at: the earliest of its step limit, its epoch limit and the end
    of its learning-rate schedule (trainer/plan.py)."""
    learning_rate: float
    """The rate of the first update, after --scale_lr."""
    lr_scale: float
    """The --scale_lr multiplier (batch x accumulation x processes, or 1)."""
    trigger: str
    """The placeholder token as written in prompts, e.g. "<my-cat>"."""
    tokens: list[str]
    """The tokens added to the tokenizer (one per vector)."""
    output_dir: str
    """The run's output folder, absolute."""
    pid: int = field(default_factory=os.getpid)
    """The trainer's process id, so `ti-tui watch` can tell whether it still runs."""
    end_reason: StopReason | str = StopReason.MAX_STEPS
    """Which limit sets `max_steps`: max_steps, epochs or schedule_end."""
    ldet_history: int = 0
    """L_det values a resumed run's checkpoint already holds: DVAR's window keeps filling
    from there (0 for a fresh run)."""
    cpu_threads: dict[str, Any] = field(default_factory=dict)
    """This process's CPU thread plan (trainer/threads.py ThreadPlan.as_dict): threads,
    wait_policy, cores, processes, source, summary; and torch_threads, what torch uses."""
    latent_cache_memory_mb: float | None = None
    """On CUDA, the peak GPU memory (MiB, max_memory_allocated) while the latents were cached;
    the steps' own peak is each `step`'s memory_mb. None on the CPU."""


@dataclass(frozen=True)
class Step(Event):
    """One optimizer update finished."""

    type: ClassVar[str] = "step"
    step: int
    """Updates completed, this one included."""
    loss: float
    """The update's training loss (mean over its micro-batches and processes); NaN is
    written as null and read back as NaN."""
    lr: float
    """The learning rate this update used."""
    images_seen: int
    """Images drawn so far, over all processes."""
    epoch: float
    """Passes over the images so far (images_seen / n_images)."""
    micro_batches: int
    """Forward/backward passes so far, over all processes."""
    grad_norm: float | None = None
    """L2 norm of the trained rows' gradient before clipping."""
    clip_value: float | None = None
    """The clip schedule's value for this update; None when clipping is off."""
    skipped: bool = False
    """fp16 only: the scaler found inf/nan gradients and skipped this update."""
    skipped_total: int = 0
    """Updates skipped so far (an fp16 overflow, or a NaN/inf loss or gradient)."""
    l_det: float | None = None
    """The deterministic loss L_det after this update (spec A3, A4); None when not due."""
    dvar_ratio: float | None = None
    """DVAR's Var(last N) / Var(all) (spec A5); None until N + 1 values exist."""
    ema_pct: float | None = None
    """Appendix-B diagnostic: EMA percentile change over the window (spec A8)."""
    hall: float | None = None
    """Appendix-B diagnostic: (max - min) / mean over the window (spec A8)."""
    trend: float | None = None
    """Appendix-B diagnostic: OLS slope over the window, loss per evaluation (spec A8)."""
    images_per_s: float | None = None
    """Images per update (all processes) over this update's wall seconds."""
    step_seconds: float | None = None
    """Wall seconds this update took, evaluation included."""
    memory_mb: float | None = None
    """Peak CUDA memory, or the process's resident memory on CPU, in MiB."""
    cpu_threads: int | None = None
    """The CPU threads this update ran on (torch.get_num_threads()): fewer than run_started's
    plan while other processes used the cores (trainer/core_share.py)."""


@dataclass(frozen=True)
class CheckpointSaved(Event):
    """A `checkpoint-<step>/` folder was written (atomically) for resuming."""

    type: ClassVar[str] = "checkpoint"
    step: int
    """Completed updates the checkpoint holds."""
    path: str
    """The checkpoint folder."""


@dataclass(frozen=True)
class EmbeddingSaved(Event):
    """Embedding files were written: a periodic snapshot, or the run's final files."""

    type: ClassVar[str] = "embedding_saved"
    step: int
    """Completed updates the embedding holds."""
    paths: list[str]
    """Every file written, one per format (trainer/formats.py)."""
    final: bool = False
    """True for the run's final files, False for a periodic snapshot (--save_steps)."""


@dataclass(frozen=True)
class PreviewSaved(Event):
    """A preview image was rendered with the embedding of `step`."""

    type: ClassVar[str] = "preview"
    step: int
    """Completed updates when it was rendered (0: before the first update)."""
    path: str
    """The PNG: previews/step-<step>.png, the images side by side."""
    prompt: str
    """The prompt as a user would type it (the trigger, not its vector tokens)."""


@dataclass(frozen=True)
class Warning(Event):  # noqa: A001 - the event type name from DESIGN.md
    """Something the user should know that does not stop the run (a skipped image...)."""

    type: ClassVar[str] = "warning"
    message: str
    """One or two sentences: what happened and what it means for the run."""
    file: str | None = None
    """The file the warning is about, if any."""


@dataclass(frozen=True)
class Error(Event):
    """What went wrong, in one sentence, with what to do; a `Stopped` event follows."""

    type: ClassVar[str] = "error"
    message: str
    """What went wrong and what to do, in one sentence."""
    hint: str | None = None
    """Extra advice (what to change, where the traceback is), if any."""
    user_error: bool = True
    """True for a problem the user can fix (exit 2), False for an internal failure (exit 1)."""


@dataclass(frozen=True)
class Stopped(Event):
    """Always the last event of a run: why it ended, at which step, and its final files."""

    type: ClassVar[str] = "stopped"
    reason: StopReason | str
    """A `StopReason` (max_steps, epochs, schedule_end, early_stop, user, error); read back
    as a plain string when a newer trainer wrote a reason this reader does not know."""
    step: int
    """Completed updates when the run ended."""
    files: list[str] = field(default_factory=list)
    """Every file the final save wrote (empty when nothing could be saved)."""
    ratio: float | None = None
    """DVAR's last ratio (the one below the threshold for early_stop)."""
    window: int | None = None
    """DVAR's window N (spec A5), given once L_det was evaluated."""
    threshold: float | None = None
    """DVAR's ratio threshold; early_stop means the ratio fell below it."""
    ddof: int | None = None
    """Delta degrees of freedom of DVAR's variances: 0 as the DVAR code, 1 as the paper's
    Fig. 3 in PyTorch (spec A5)."""
    message: str = ""
    """The error's text for an error stop; otherwise empty."""


@dataclass(frozen=True)
class Unknown(Event):
    """A line of a type this reader does not know (a newer trainer's): kept so a reader can
    count it, never shown. Never written."""

    type: ClassVar[str] = "unknown"
    name: str
    """The line's own `type`."""
    data: dict[str, Any] = field(default_factory=dict)
    """The whole JSON object as read."""


Emit = Callable[[Event], None]

EVENT_TYPES: dict[str, type[Event]] = {cls.type: cls for cls in (
    Phase, RunStarted, Step, CheckpointSaved, EmbeddingSaved, PreviewSaved, Warning, Error,
    Stopped)}
"""Every event class by its `type` name: the one table `parse_event` reads lines with."""


def _jsonable(value: Any) -> Any:
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, float) and not math.isfinite(value):
        return None if math.isnan(value) else (1e308 if value > 0 else -1e308)
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


def parse_event_line(line: str) -> dict[str, Any] | None:
    """One line of events.jsonl as its raw JSON object, or None if it is partial, blank or
    not an event (no string `type`). `parse_event` gives the typed event."""
    line = line.strip()
    if not line:
        return None
    try:
        data = json.loads(line)
    except json.JSONDecodeError:
        return None
    return data if isinstance(data, dict) and isinstance(data.get("type"), str) else None


class _Unusable(ValueError):
    """A field's value cannot stand for its declared type."""


def parse_event(line_or_dict: str | Mapping[str, Any]) -> Event | None:
    """The typed event of one events.jsonl line (or of its already-decoded JSON object).

    Fields this reader does not know are ignored and `version` is not checked, so a newer
    trainer's file still reads. A `type` not in `EVENT_TYPES` gives an `Unknown` event.
    Returns None for a blank, partial or non-JSON line, an object without a string `type`, a
    missing `time` or required field, or a value that cannot be its field's type (a string
    where a step number belongs). JSON null in a required float field reads as NaN, since
    `EventLog` writes NaN as null. Never raises.
    """
    data = parse_event_line(line_or_dict) if isinstance(line_or_dict, str) else line_or_dict
    if not isinstance(data, Mapping) or not isinstance(data.get("type"), str):
        return None
    cls = EVENT_TYPES.get(data["type"])
    try:
        when = _coerce("float", data.get("time"), required=True)
        if cls is None:
            return Unknown(name=data["type"], data=dict(data), time=when)
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            if f.name == "time":
                continue
            required = (f.default is dataclasses.MISSING
                        and f.default_factory is dataclasses.MISSING)
            if f.name not in data:
                if required:
                    return None
                continue
            values[f.name] = _coerce(f.type, data[f.name], required=required)
        return cls(**values, time=when)
    except (_Unusable, TypeError):
        return None


def _coerce(annotation: str, value: Any, *, required: bool) -> Any:
    """`value` as the type `annotation` names (this module's annotations are strings).

    Optional fields (`X | None`) take a value of the wrong kind as None, as older readers
    did; a required field with one raises `_Unusable`.
    """
    optional = annotation.endswith("| None")
    kind = annotation.removesuffix("| None").strip()
    if value is None:
        if optional:
            return None
        if kind == "float":
            return math.nan  # EventLog writes NaN as null
        if kind.startswith(("list", "dict")) and not required:
            return [] if kind.startswith("list") else {}
        raise _Unusable(annotation)
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind == "float":
        if number:
            return float(value)
    elif kind == "int":
        if number and float(value).is_integer():
            return int(value)
    elif kind == "bool":
        if isinstance(value, bool) or value in (0, 1):
            return bool(value)
    elif kind == "str":
        if isinstance(value, (str, int, float)):
            return str(value)
    elif kind.startswith("list"):
        if isinstance(value, list):
            return [str(item) for item in value]
    elif kind.startswith("dict"):
        if isinstance(value, dict):
            return dict(value)
    elif kind == "StopReason | str":
        return stop_reason(value)
    if optional:
        return None
    raise _Unusable(annotation)
