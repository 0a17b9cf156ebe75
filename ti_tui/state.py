"""RunState: everything the dashboard shows, folded from the events of events.jsonl.

`fold(state, event)` applies one event dict (as `trainer.events.parse_event_line` returns it)
and `fold_all(events)` folds a whole list. No I/O happens here: the hosts (the Textual screen,
the headless view, `ti-tui watch`) read the file and own the clock.

Cost: a run can last 100,000 steps and the UI folds every one of them, so `fold` is O(1) per
event. It updates the state in place and returns it (copying the histories per event would
make a fold O(n)). Chart histories are `Series` that thin themselves to a bounded length.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

SERIES_CAP = 4096
"""Points a chart history keeps; charts downsample further to their width anyway."""

RATE_WINDOW = 20
"""Step events the rolling steps/s looks back over."""

LOSS_SMOOTHING = 0.95
"""Weight of the past in the smoothed loss (a debiased EMA, as TensorBoard smooths)."""


class Series:
    """An (x, y) history that keeps at most `cap` points by thinning itself.

    When full, every other point is dropped and only every `stride`-th later point is kept,
    so memory stays bounded and appends stay O(1) amortised while the shape survives.
    """

    def __init__(self, cap: int = SERIES_CAP):
        self.cap = cap
        self.xs: list[float] = []
        self.ys: list[float] = []
        self.stride = 1
        self._seen = 0

    def append(self, x: float, y: float) -> None:
        """Add a point (kept only if it falls on the current stride)."""
        self._seen += 1
        if (self._seen - 1) % self.stride:
            return
        self.xs.append(x)
        self.ys.append(y)
        if len(self.xs) > self.cap:
            self.xs, self.ys = self.xs[::2], self.ys[::2]
            self.stride *= 2

    def __len__(self) -> int:
        return len(self.xs)


@dataclass
class RunState:
    """A snapshot of one run as the dashboard sees it."""

    base_dir: str = ""
    """Folder that relative paths in events resolve against (the folder of events.jsonl)."""
    status: str = "waiting"
    """waiting (no event yet) | loading (phases) | training | finished | failed."""
    phase: str = ""
    """Name of the last phase event (loading_model, caching_latents, ...)."""
    phase_detail: str = ""
    events: int = 0
    """Events folded so far: a version number the views use to skip redrawing."""
    ignored: int = 0
    """Events of an unknown type, ignored as the contract asks."""
    first_time: float | None = None
    started_time: float | None = None
    """Time of run_started: elapsed time counts from here."""
    last_time: float | None = None
    """Time of the newest event: a finished run's clock stops here."""

    # --- facts from run_started ---------------------------------------------------------
    config: dict[str, Any] = field(default_factory=dict)
    model: dict[str, Any] = field(default_factory=dict)
    dataset: dict[str, Any] = field(default_factory=dict)
    device: str = ""
    precision: str = ""
    num_processes: int = 1
    start_step: int = 0
    max_steps: int = 0
    base_lr: float | None = None
    lr_scale: float = 1.0
    trigger: str = ""
    output_dir: str = ""
    pid: int | None = None

    # --- the latest step ------------------------------------------------------------------
    step: int = 0
    """Optimizer updates completed."""
    loss: float | None = None
    loss_smooth: float | None = None
    lr: float | None = None
    images_seen: int = 0
    epoch: float = 0.0
    grad_norm: float | None = None
    clip_value: float | None = None
    skipped_total: int = 0
    l_det: float | None = None
    dvar_ratio: float | None = None
    ema_pct: float | None = None
    hall: float | None = None
    trend: float | None = None
    images_per_s: float | None = None
    memory_mb: float | None = None
    ldet_count: int = 0
    """L_det values this run: the fill of the DVAR window."""
    converged_step: int | None = None
    """First step whose ratio fell below the threshold (sticky, as the stopper is)."""
    converged_ratio: float | None = None

    # --- histories for the charts ---------------------------------------------------------
    loss_hist: Series = field(default_factory=Series)
    smooth_hist: Series = field(default_factory=Series)
    ldet_hist: Series = field(default_factory=Series)
    ratio_hist: Series = field(default_factory=Series)
    recent: deque = field(default_factory=lambda: deque(maxlen=RATE_WINDOW))
    """(time, step) of the latest step events, for the rolling steps/s."""
    _ema: float = 0.0
    _ema_n: int = 0

    # --- files and messages ---------------------------------------------------------------
    last_checkpoint: dict[str, Any] | None = None
    last_embedding: dict[str, Any] | None = None
    last_preview: dict[str, Any] | None = None
    warnings: deque = field(default_factory=lambda: deque(maxlen=50))
    warning_count: int = 0
    error: dict[str, Any] | None = None
    stopped: dict[str, Any] | None = None
    """The stopped event (reason, step, files, ratio...), once the run has ended."""

    # --- derived values -------------------------------------------------------------------
    @property
    def finished(self) -> bool:
        return self.stopped is not None

    @property
    def dvar_on(self) -> bool:
        return self.config.get("early_stopping", "dvar") == "dvar"

    @property
    def ldet_on(self) -> bool:
        """L_det is computed unless dvar_eval_every is 0 (it is also shown with DVAR off)."""
        return self.config.get("dvar_eval_every", 1) != 0

    @property
    def window(self) -> int | None:
        return self.config.get("dvar_window")

    @property
    def threshold(self) -> float | None:
        return self.config.get("dvar_threshold")

    @property
    def earliest_stop(self) -> int | None:
        """The first step DVAR can stop at: the ratio needs window + 1 values (spec A5)."""
        if not self.window:
            return None
        return (self.window + 1) * max(1, int(self.config.get("dvar_eval_every", 1) or 1))

    @property
    def fraction(self) -> float:
        return min(1.0, self.step / self.max_steps) if self.max_steps else 0.0

    @property
    def steps_per_s(self) -> float | None:
        """Rolling rate over the last RATE_WINDOW step events (None until two arrive)."""
        if len(self.recent) < 2:
            return None
        (t0, s0), (t1, s1) = self.recent[0], self.recent[-1]
        return (s1 - s0) / (t1 - t0) if t1 > t0 and s1 > s0 else None

    def elapsed(self, now: float | None = None) -> float | None:
        """Seconds since run_started; `now` counts only while the run is going."""
        start = self.started_time if self.started_time is not None else self.first_time
        if start is None:
            return None
        end = self.last_time if (now is None or self.finished) else max(now, self.last_time or now)
        return max(0.0, (end or start) - start)

    def eta(self, now: float | None = None) -> float | None:
        """Seconds to max_steps at the recent rate, less the time since the last step."""
        rate = self.steps_per_s
        if self.finished or not rate or not self.max_steps:
            return None
        left = max(0, self.max_steps - self.step) / rate
        if now is not None and self.recent:
            left -= max(0.0, now - self.recent[-1][0])
        return max(0.0, left)


def fold(state: RunState, event: dict[str, Any]) -> RunState:
    """Apply one event to `state` (in place, O(1)) and return it; unknown types are counted."""
    handler = _HANDLERS.get(event.get("type"))
    if handler is None:
        state.ignored += 1
        return state
    state.events += 1
    t = _num(event.get("time"))
    if t is not None:
        state.first_time = t if state.first_time is None else state.first_time
        state.last_time = t if state.last_time is None else max(state.last_time, t)
    handler(state, event)
    return state


def fold_all(events, state: RunState | None = None) -> RunState:
    """Fold every event of an iterable into `state` (a fresh RunState by default)."""
    state = state if state is not None else RunState()
    for event in events:
        fold(state, event)
    return state


def _num(value: Any) -> float | None:
    """A JSON number as float; None for null, strings, bools (a writer may change a field)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def _phase(s: RunState, e: dict) -> None:
    s.phase, s.phase_detail = str(e.get("name", "")), str(e.get("detail", ""))
    if s.status == "waiting":
        s.status = "loading"


def _run_started(s: RunState, e: dict) -> None:
    s.status = "training"
    s.started_time = _num(e.get("time"))
    s.config = dict(e.get("config") or {})
    s.model, s.dataset = dict(e.get("model") or {}), dict(e.get("dataset") or {})
    s.device, s.precision = str(e.get("device", "")), str(e.get("precision", ""))
    s.num_processes = int(e.get("num_processes") or 1)
    s.start_step = s.step = int(e.get("start_step") or 0)
    s.max_steps = int(e.get("max_steps") or s.config.get("max_train_steps") or 0)
    s.base_lr, s.lr_scale = _num(e.get("learning_rate")), _num(e.get("lr_scale")) or 1.0
    s.trigger = str(e.get("trigger") or s.config.get("placeholder_token", ""))
    s.output_dir, s.pid = str(e.get("output_dir", "")), e.get("pid")
    # A resumed run appends to the same file: its end and its DVAR window start afresh.
    s.stopped = s.error = s.converged_step = s.converged_ratio = None
    s.ldet_count = 0
    s.recent.clear()


def _step(s: RunState, e: dict) -> None:
    s.status = "training" if s.status in ("waiting", "loading") else s.status
    s.step = int(e.get("step") or 0)
    s.loss, s.lr = _num(e.get("loss")), _num(e.get("lr"))
    s.images_seen = int(e.get("images_seen") or 0)
    s.epoch = _num(e.get("epoch")) or 0.0
    s.grad_norm, s.clip_value = _num(e.get("grad_norm")), _num(e.get("clip_value"))
    s.skipped_total = int(e.get("skipped_total") or 0)
    s.l_det, s.dvar_ratio = _num(e.get("l_det")), _num(e.get("dvar_ratio"))
    s.ema_pct, s.hall, s.trend = _num(e.get("ema_pct")), _num(e.get("hall")), _num(e.get("trend"))
    s.images_per_s, s.memory_mb = _num(e.get("images_per_s")), _num(e.get("memory_mb"))
    t = _num(e.get("time"))
    if t is not None:
        s.recent.append((t, s.step))
    if s.loss is not None:
        s._ema = LOSS_SMOOTHING * s._ema + (1 - LOSS_SMOOTHING) * s.loss
        s._ema_n += 1
        s.loss_smooth = s._ema / (1 - LOSS_SMOOTHING ** s._ema_n)
        s.loss_hist.append(s.step, s.loss)
        s.smooth_hist.append(s.step, s.loss_smooth)
    if s.l_det is not None:
        s.ldet_count += 1
        s.ldet_hist.append(s.step, s.l_det)
    if s.dvar_ratio is not None:
        s.ratio_hist.append(s.step, s.dvar_ratio)
        if s.converged_step is None and s.threshold and s.dvar_ratio < s.threshold:
            s.converged_step, s.converged_ratio = s.step, s.dvar_ratio


def _checkpoint(s: RunState, e: dict) -> None:
    s.last_checkpoint = {"step": e.get("step"), "path": str(e.get("path", ""))}


def _embedding(s: RunState, e: dict) -> None:
    s.last_embedding = {"step": e.get("step"), "paths": [str(p) for p in e.get("paths") or []],
                        "final": bool(e.get("final"))}


def _preview(s: RunState, e: dict) -> None:
    s.last_preview = {"step": e.get("step"), "path": str(e.get("path", "")),
                      "prompt": str(e.get("prompt", ""))}


def _warning(s: RunState, e: dict) -> None:
    s.warning_count += 1
    message = str(e.get("message", ""))
    s.warnings.append(f"{message} ({e['file']})" if e.get("file") else message)


def _error(s: RunState, e: dict) -> None:
    s.error = {"message": str(e.get("message", "")), "hint": e.get("hint")}
    s.status = "failed"


def _stopped(s: RunState, e: dict) -> None:
    s.stopped = {"reason": str(e.get("reason", "")), "step": e.get("step", s.step),
                 "files": [str(p) for p in e.get("files") or []], "ratio": _num(e.get("ratio")),
                 "window": e.get("window"), "threshold": _num(e.get("threshold")),
                 "message": str(e.get("message", ""))}
    s.status = "failed" if s.stopped["reason"] == "error" or s.error else "finished"
    if s.stopped["reason"] == "early_stop" and s.converged_step is None:
        s.converged_step, s.converged_ratio = s.stopped["step"], s.stopped["ratio"]


_HANDLERS = {
    "phase": _phase,
    "run_started": _run_started,
    "step": _step,
    "checkpoint": _checkpoint,
    "embedding_saved": _embedding,
    "preview": _preview,
    "warning": _warning,
    "error": _error,
    "stopped": _stopped,
}
