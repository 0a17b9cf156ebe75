"""RunState: everything the dashboard shows, folded from the events of events.jsonl.

`fold(state, event)` applies one typed event (trainer/events.py: what `parse_event`,
`load_events` and `ti_tui.tail.EventTail` give) and `fold_all(events)` folds a whole list.
No I/O happens here: the hosts (the Textual screen, the headless view, `ti-tui watch`) read
the file and own the clock. The state keeps the typed events it shows (the newest step, the
last checkpoint, the stopped event) rather than copies of their fields.

Cost: a run can last 100,000 steps and the UI folds every one of them, so `fold` is O(1) per
event. It updates the state in place and returns it (copying the histories per event would
make a fold O(n)). Chart histories are `Series` that thin themselves to a bounded length.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from trainer import plan, rate_schedule, schedules
from trainer.events import (CheckpointSaved, EmbeddingSaved, Error, Event, Phase, PreviewSaved,
                            RunStarted, Step, Stopped, StopReason, Warning, parse_event)

SERIES_CAP = 4096
"""Points a chart history keeps; charts downsample further to their width anyway."""

RATE_WINDOW = 20
"""Step events the rolling steps/s looks back over."""

LOSS_SMOOTHING = 0.95
"""Weight of the past in the smoothed loss (a debiased EMA, as TensorBoard smooths)."""


def _finite(value: float | None) -> float | None:
    """A number to show: None for missing, NaN or infinite values (NaN is written as null)."""
    return value if value is not None and math.isfinite(value) else None


def _latest(name: str, doc: str) -> property:
    """A read-only property for field `name` of the newest step event."""
    return property(lambda self: _finite(getattr(self.latest, name)) if self.latest else None,
                    doc=doc)


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
    """That phase's detail for people (the model path, the number of images)."""
    events: int = 0
    """Events folded so far: a version number the views use to skip redrawing."""
    ignored: int = 0
    """Events of an unknown type, ignored as the contract asks."""
    first_time: float | None = None
    """Time (Unix seconds) of the first event: the clock's start before run_started."""
    started_time: float | None = None
    """Time of run_started: elapsed time counts from here."""
    last_time: float | None = None
    """Time of the newest event: a finished run's clock stops here."""

    # --- facts from run_started ---------------------------------------------------------
    config: dict[str, Any] = field(default_factory=dict)
    """The run's settings as run_started gave them (TrainConfig field names)."""
    model: dict[str, Any] = field(default_factory=dict)
    """Model facts: name, path, family, parts, token_dim, prediction_type..."""
    dataset: dict[str, Any] = field(default_factory=dict)
    """Dataset facts: n_images, images_per_update, updates_per_epoch, epochs_total..."""
    device: str = ""
    """The trainer's torch device, e.g. "cpu", "cuda:0"."""
    precision: str = ""
    """--mixed_precision: no, fp16 or bf16."""
    num_processes: int = 1
    """Data-parallel processes training together."""
    cpu_threads: str = ""
    """The trainer's CPU threads in a few words, e.g. "up to 2 threads (2 cores / 1 process)",
    "1 thread, passive wait (--cpu_threads)"; empty when the trainer did not say (an older one)."""
    thread_ceiling: int = 0
    """The most CPU threads an adapting trainer runs (0: its count is fixed or unknown); each
    step event says how many it ran (`threads_now`)."""
    start_step: int = 0
    """Updates already done when the run started (a resumed checkpoint's step)."""
    max_steps: int = 0
    """The step the run ends at (set by end_reason's limit)."""
    base_lr: float | None = None
    """run_started's learning_rate: the first update's rate, after --scale_lr."""
    lr_scale: float = 1.0
    """The --scale_lr multiplier (batch x accumulation x processes, or 1)."""
    trigger: str = ""
    """The trigger as written in prompts, e.g. "<my-cat>"."""
    output_dir: str = ""
    """The run's output folder."""
    pid: int | None = None
    """The trainer's process id, None until run_started."""
    end_reason: StopReason | str = StopReason.MAX_STEPS
    """Which limit sets max_steps (run_started's end_reason)."""
    lr_schedule: rate_schedule.RateSchedule | None = None
    """The run's learning-rate schedule, read once from run_started's config (None when the
    config's strings cannot be read by this version): the rate of any step, the next change."""
    lr_piecewise: bool = False
    """True for an A1111 schedule string (its changes are worth showing), False for a rate."""

    # --- the latest step ------------------------------------------------------------------
    latest: Step | None = None
    """The newest step event as written; the properties below read its fields."""
    step: int = 0
    """Optimizer updates completed (the start step until the first step event)."""
    loss_smooth: float | None = None
    """Bias-corrected exponential moving average of the loss (weight LOSS_SMOOTHING)."""
    ldet_count: int = 0
    """L_det values so far, a resumed run's restored history included: the fill of the DVAR
    window."""
    converged_step: int | None = None
    """First step whose ratio fell below the threshold (sticky, as the stopper is)."""
    converged_ratio: float | None = None
    """The DVAR ratio at converged_step."""

    # --- histories for the charts ---------------------------------------------------------
    loss_hist: Series = field(default_factory=Series)
    """(step, training loss) of every finite loss, thinned to a bounded length."""
    smooth_hist: Series = field(default_factory=Series)
    """(step, loss_smooth) alongside loss_hist."""
    ldet_hist: Series = field(default_factory=Series)
    """(step, L_det) of every evaluation."""
    ratio_hist: Series = field(default_factory=Series)
    """(step, DVAR ratio) once the ratio exists."""
    recent: deque = field(default_factory=lambda: deque(maxlen=RATE_WINDOW))
    """(time, step) of the latest step events, for the rolling steps/s."""
    _ema: float = 0.0
    _ema_n: int = 0

    # --- files and messages ---------------------------------------------------------------
    last_checkpoint: CheckpointSaved | None = None
    """The newest checkpoint event."""
    last_embedding: EmbeddingSaved | None = None
    """The newest embedding event (snapshot or final)."""
    last_preview: PreviewSaved | None = None
    """The newest preview event."""
    warnings: deque = field(default_factory=lambda: deque(maxlen=50))
    """The latest warnings as one line each ("message (file)")."""
    warning_count: int = 0
    """Warnings so far (the deque keeps only the latest 50)."""
    error: Error | None = None
    """The last error event of this run (message, hint)."""
    stopped: Stopped | None = None
    """The stopped event (reason, step, files, ratio...), once the run has ended."""

    # --- the latest step's numbers (None before the first step; NaN reads as None) ----------
    loss = _latest("loss", "The training loss of the newest update.")
    lr = _latest("lr", "The learning rate the newest update used.")
    grad_norm = _latest("grad_norm", "The newest gradient norm, before clipping.")
    clip_value = _latest("clip_value", "The clip value of the newest update.")
    l_det = _latest("l_det", "The newest L_det value.")
    dvar_ratio = _latest("dvar_ratio", "The newest DVAR ratio (None until N + 1 values).")
    ema_pct = _latest("ema_pct", "Appendix-B EMA percentile diagnostic.")
    hall = _latest("hall", "Appendix-B Hall diagnostic.")
    trend = _latest("trend", "Appendix-B trend diagnostic.")
    images_per_s = _latest("images_per_s", "Images a second in the newest update.")
    memory_mb = _latest("memory_mb", "Peak memory in MiB.")
    threads_now = _latest("cpu_threads", "The CPU threads the newest update ran on.")

    @property
    def images_seen(self) -> int:
        """Images drawn so far, over all processes."""
        return self.latest.images_seen if self.latest else 0

    @property
    def epoch(self) -> float:
        """Passes over the images so far (a float)."""
        return _finite(self.latest.epoch) or 0.0 if self.latest else 0.0

    @property
    def run_epoch(self) -> float | None:
        """Epochs of --num_train_epochs so far: passes over the images / --repeats
        (trainer/plan.py run_epochs); None when the run did not say its repeats."""
        return plan.run_epochs(self.epoch, self.config.get("repeats"))

    @property
    def end_epoch(self) -> float | None:
        """Epochs of --num_train_epochs at the run's end step; None when not known."""
        per_update, n_images = self.dataset.get("images_per_update"), self.dataset.get("n_images")
        if not self.max_steps or not per_update:
            return None
        return plan.run_epochs(plan.epochs(self.max_steps, per_update, n_images),
                               self.config.get("repeats"))

    @property
    def skipped_total(self) -> int:
        """fp16 updates the scaler skipped so far."""
        return self.latest.skipped_total if self.latest else 0

    @property
    def stop_reason(self) -> StopReason | str | None:
        """Why the run ended (None while it runs)."""
        return self.stopped.reason if self.stopped else None

    # --- derived values -------------------------------------------------------------------
    @property
    def finished(self) -> bool:
        """True once the run's stopped event has arrived."""
        return self.stopped is not None

    @property
    def dvar_on(self) -> bool:
        """DVAR early stopping is on (--early_stopping dvar)."""
        return self.config.get("early_stopping", "dvar") == "dvar"

    @property
    def ldet_on(self) -> bool:
        """L_det is computed unless dvar_eval_every is 0 (it is also shown with DVAR off)."""
        return self.config.get("dvar_eval_every", 1) != 0

    @property
    def window(self) -> int | None:
        """DVAR's window N, in L_det evaluations."""
        return self.config.get("dvar_window")

    @property
    def threshold(self) -> float | None:
        """DVAR's threshold alpha: it stops when the ratio falls below it."""
        return self.config.get("dvar_threshold")

    @property
    def earliest_stop(self) -> int | None:
        """The first step DVAR can stop at (trainer/plan.py: (window + 1) x dvar_eval_every,
        spec A4/A5); None when L_det is off or the window unknown."""
        every = self.config.get("dvar_eval_every", 1)
        if not isinstance(self.window, int) or not isinstance(every, int):
            return None
        return plan.earliest_dvar_stop(self.window, every, self.start_step)

    @property
    def fraction(self) -> float:
        """Progress towards the end step, 0 to 1."""
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


def fold(state: RunState, event: Event | Mapping[str, Any] | None) -> RunState:
    """Apply one event to `state` (in place, O(1)) and return it.

    `event` is a typed event (trainer/events.py), or a raw JSON object that is parsed first.
    Events of unknown types (`Unknown`, or anything `parse_event` refused) are counted in
    `state.ignored` and change nothing else.
    """
    if event is not None and not isinstance(event, Event):
        event = parse_event(event)
    handler = _HANDLERS.get(type(event))
    if handler is None:
        state.ignored += 1
        return state
    state.events += 1
    when = _finite(event.time)
    if when is not None:
        state.first_time = when if state.first_time is None else state.first_time
        state.last_time = when if state.last_time is None else max(state.last_time, when)
    handler(state, event)
    return state


def fold_all(events: Iterable[Event | Mapping[str, Any]],
             state: RunState | None = None) -> RunState:
    """Fold every event of an iterable into `state` (a fresh RunState by default)."""
    state = state if state is not None else RunState()
    for event in events:
        fold(state, event)
    return state


def _phase(state: RunState, event: Phase) -> None:
    state.phase, state.phase_detail = event.name, event.detail
    if state.status == "waiting":
        state.status = "loading"


def _run_started(state: RunState, event: RunStarted) -> None:
    state.status = "training"
    state.started_time = _finite(event.time)
    state.config = dict(event.config)
    state.model, state.dataset = dict(event.model), dict(event.dataset)
    state.device, state.precision = event.device, event.precision
    state.num_processes = event.num_processes or 1
    state.cpu_threads = str(event.cpu_threads.get("summary") or "")
    ceiling = event.cpu_threads.get("threads")
    adapts = event.cpu_threads.get("adapts") is True
    state.thread_ceiling = ceiling if adapts and type(ceiling) is int and ceiling > 0 else 0
    state.start_step = state.step = event.start_step
    state.max_steps = event.max_steps or int(state.config.get("max_train_steps") or 0)
    state.base_lr, state.lr_scale = _finite(event.learning_rate), _finite(event.lr_scale) or 1.0
    state.trigger = event.trigger or str(state.config.get("placeholder_token", ""))
    state.output_dir, state.pid = event.output_dir, event.pid
    state.end_reason = event.end_reason
    state.lr_schedule, state.lr_piecewise = _lr_schedule(state)
    # A resumed run appends to the same file: its end starts afresh, and its DVAR window
    # goes on from the history its checkpoint restored.
    state.stopped = state.error = state.converged_step = state.converged_ratio = None
    state.latest = None
    state.ldet_count = event.ldet_history
    state.recent.clear()


def _lr_schedule(state: RunState) -> tuple[rate_schedule.RateSchedule | None, bool]:
    """The run's learning-rate schedule from its config (parsed once per run, never per
    redraw), and whether it is a piecewise string; (None, False) when it cannot be read."""
    config = state.config
    text = config.get("learning_rate")
    if not isinstance(text, str) or state.max_steps <= state.start_step:
        return None, False
    try:
        rates = rate_schedule.learning_rate_schedule(
            text, scheduler=str(config.get("lr_scheduler", "constant")),
            warmup_steps=int(config.get("lr_warmup_steps") or 0), max_steps=state.max_steps,
            num_cycles=float(config.get("lr_num_cycles") or 1.0),
            power=float(config.get("lr_power") or 1.0), cur_step=state.start_step,
            strict=bool(config.get("strict_schedule")), scale=state.lr_scale)
    except (schedules.ScheduleError, TypeError, ValueError):
        return None, False  # a newer trainer's string: the panel shows "-"
    return rates, schedules.is_piecewise(text)


def _step(state: RunState, event: Step) -> None:
    state.status = "training" if state.status in ("waiting", "loading") else state.status
    state.latest = event
    state.step = event.step
    when = _finite(event.time)
    if when is not None:
        state.recent.append((when, state.step))
    loss = state.loss
    if loss is not None:
        state._ema = LOSS_SMOOTHING * state._ema + (1 - LOSS_SMOOTHING) * loss
        state._ema_n += 1
        state.loss_smooth = state._ema / (1 - LOSS_SMOOTHING ** state._ema_n)
        state.loss_hist.append(state.step, loss)
        state.smooth_hist.append(state.step, state.loss_smooth)
    if state.l_det is not None:
        state.ldet_count += 1
        state.ldet_hist.append(state.step, state.l_det)
    ratio = state.dvar_ratio
    if ratio is not None:
        state.ratio_hist.append(state.step, ratio)
        if state.converged_step is None and state.threshold and ratio < state.threshold:
            state.converged_step, state.converged_ratio = state.step, ratio


def _checkpoint(state: RunState, event: CheckpointSaved) -> None:
    state.last_checkpoint = event


def _embedding(state: RunState, event: EmbeddingSaved) -> None:
    state.last_embedding = event


def _preview(state: RunState, event: PreviewSaved) -> None:
    state.last_preview = event


def _warning(state: RunState, event: Warning) -> None:
    state.warning_count += 1
    state.warnings.append(f"{event.message} ({event.file})" if event.file else event.message)


def _error(state: RunState, event: Error) -> None:
    state.error = event
    state.status = "failed"


def _stopped(state: RunState, event: Stopped) -> None:
    state.stopped = event
    failed = event.reason == StopReason.ERROR or state.error is not None
    state.status = "failed" if failed else "finished"
    if event.reason == StopReason.EARLY_STOP and state.converged_step is None:
        state.converged_step, state.converged_ratio = event.step, _finite(event.ratio)


_HANDLERS: dict[type[Event], Callable[[RunState, Any], None]] = {
    Phase: _phase,
    RunStarted: _run_started,
    Step: _step,
    CheckpointSaved: _checkpoint,
    EmbeddingSaved: _embedding,
    PreviewSaved: _preview,
    Warning: _warning,
    Error: _error,
    Stopped: _stopped,
}
"""What each event class does to the state; a class not listed is counted as ignored."""
