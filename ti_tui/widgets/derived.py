"""The line of derived facts under the setup form, and the arithmetic behind it.

`derive_facts` is a pure function of the form's raw values (strings while the user types) and
the number of images found; it never raises, so a half-typed number just shows as "?".
`DerivedLine` renders it. Every number comes from the fact functions of trainer/plan.py, the
ones the trainer plans its run with, so the form says what the run will do: images per update
(batch x accumulation x processes: one step is one optimizer update, DESIGN.md), the
--scale_lr multiplier, the end step and the limit that sets it, and DVAR's earliest stop. When
the embedding's file will not be named after the trigger (a trigger that is an everyday word
is saved as <word>-ti, trainer/formats.py), the line names the file.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from textual.widgets import Static

from trainer import formats, plan, rate_schedule, schedules
from trainer.config import wrap_trigger
from trainer.errors import ConfigError
from trainer.events import StopReason
from trainer.names import check_trigger_text

LIMIT_LABELS = plan.LIMIT_WORDS
"""The form field each run limit comes from, as the derived line names it (trainer/plan.py)."""


def _int(value: Any) -> int | None:
    """A positive whole number typed in the form, else None (empty, half-typed, 0)."""
    try:
        number = int(str(value).strip())
    except (TypeError, ValueError):
        return None
    return number if number > 0 else None


def _bool(value: Any) -> bool:
    """A checkbox value, or its text ("true", "yes", "on", "1")."""
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() in ("1", "true", "yes", "on")


def format_rate(rate: float) -> str:
    """5e-4 style for small rates (how people write them), plain digits otherwise."""
    if rate == 0 or 1e-2 <= abs(rate) < 1e3:
        return f"{rate:.3g}"
    mantissa, exponent = f"{rate:.2e}".split("e")
    mantissa = mantissa.rstrip("0").rstrip(".")
    return f"{mantissa}e{int(exponent)}"


@dataclass(frozen=True)
class DerivedFacts:
    """What the current settings imply; None where a value is missing or half-typed."""

    n_images: int | None
    """Images found in the data folder."""
    batch: int | None
    """--train_batch_size, per process."""
    accumulation: int | None
    """--gradient_accumulation_steps."""
    processes: int | None
    """--num_processes."""
    images_per_update: int | None
    """batch x accumulation x processes (trainer/plan.py)."""
    base_lr: float | None
    """The first rate of the learning-rate text, before scaling."""
    lr_scale: float | None
    """The factor --scale_lr multiplies the rate by (1.0 when off; trainer/plan.py)."""
    steps: int | None
    """The step the run ends at: max steps, or sooner when the schedule or epochs end it."""
    limit: StopReason
    """Which limit sets `steps`."""
    earliest_stop: int | None
    """The first step DVAR can stop at; None when DVAR (or L_det) is off."""
    repeats: int | None = None
    """--repeats: passes over the images in one epoch (trainer/plan.py run_epochs)."""
    file_name: str | None = None
    """The embedding's own file (formats' `standalone`) when its name is not the trigger's,
    e.g. "cat-ti.safetensors" for <cat>; None when it is, or the trigger is not usable."""

    @property
    def limited_by(self) -> str:
        """"max steps", "schedule" or "epochs": the field whose limit sets `steps`."""
        return LIMIT_LABELS.get(self.limit, str(self.limit))

    @property
    def effective_lr(self) -> float | None:
        """The first rate after --scale_lr: what the first update uses (before warmup)."""
        if self.base_lr is None or self.lr_scale is None:
            return None
        return self.base_lr * self.lr_scale

    @property
    def epochs(self) -> float | None:
        """Epochs of --num_train_epochs by the end step: passes over the images (steps x
        images per update / images) over --repeats."""
        if self.steps is None or self.images_per_update is None:
            return None
        return plan.run_epochs(plan.epochs(self.steps, self.images_per_update, self.n_images),
                               self.repeats)

    @property
    def full_cycle(self) -> bool:
        """Every update sees each image exactly once."""
        return plan.is_full_cycle(self.n_images, self.images_per_update)


def _eval_every(value: Any) -> int:
    """--dvar_eval_every as typed: 0 turns L_det off; anything unreadable counts as 1."""
    try:
        return max(0, int(str(value).strip()))
    except (TypeError, ValueError):
        return 1


def renamed_file(trigger_text: str) -> str | None:
    """The file name the standalone embedding gets for the trigger typed as `trigger_text`
    when that name is not the trigger's own ("cat" -> "cat-ti.safetensors": A1111/Forge and
    ComfyUI take the file name as the prompt word, trainer/formats.py standalone_stem); None
    when the names agree, or the trigger is empty or refused (its row says why)."""
    trigger = wrap_trigger(trigger_text)
    try:
        check_trigger_text(trigger)
    except ConfigError:
        return None
    if not trigger or formats.standalone_stem(trigger) == trigger.strip("<>"):
        return None
    return formats.FORMATS["standalone"].file_name(trigger)


def derive_facts(values: Mapping[str, Any], n_images: int | None) -> DerivedFacts:
    """Facts from raw form values (TrainConfig field names -> strings, bools or numbers)."""
    batch = _int(values.get("train_batch_size"))
    accumulation = _int(values.get("gradient_accumulation_steps"))
    processes = _int(values.get("num_processes"))
    max_steps = _int(values.get("max_train_steps"))
    per_update = (plan.images_per_update(batch, accumulation, processes)
                  if None not in (batch, accumulation, processes) else None)
    steps, limit = max_steps, StopReason.MAX_STEPS
    repeats = _int(values.get("repeats", 100))
    if max_steps and per_update:
        steps, limit = plan.run_limit(max_steps, _int(values.get("num_train_epochs")),
                                      repeats, n_images, per_update)
    lr_text = str(values.get("learning_rate", "")).strip()
    base_lr = None
    if lr_text and steps:
        try:
            # The pieces only (no HF shape): the line shows the rate as typed, then scaled.
            rates = rate_schedule.learning_rate_schedule(lr_text, scheduler="constant",
                                                     warmup_steps=0, max_steps=steps)
        except schedules.ScheduleError:
            rates = None
        if rates is not None and rates.segments:
            base_lr = rates.segments[0][0]
            steps, limit = plan.schedule_limit(steps, limit, rates)
    scale_lr = _bool(values.get("scale_lr", True))
    lr_scale = plan.lr_scale(scale_lr, per_update) if per_update or not scale_lr else None
    earliest = None
    if str(values.get("early_stopping", "dvar")) == "dvar":
        window = _int(values.get("dvar_window"))
        earliest = plan.earliest_dvar_stop(window, _eval_every(values.get("dvar_eval_every", 1)))
    return DerivedFacts(n_images=n_images, batch=batch, accumulation=accumulation,
                        processes=processes, images_per_update=per_update, base_lr=base_lr,
                        lr_scale=lr_scale, steps=steps, limit=limit, earliest_stop=earliest,
                        repeats=repeats,
                        file_name=renamed_file(str(values.get("placeholder_token") or "")))


def _q(value: Any) -> str:
    return "?" if value is None else str(value)


def describe_facts(facts: DerivedFacts) -> str:
    """The derived line as plain text (parts joined by " · ")."""
    parts = [f"{_q(facts.n_images)} images" if facts.n_images != 1 else "1 image"]
    parts.append(f"batch {_q(facts.batch)}×{_q(facts.accumulation)}×{_q(facts.processes)} = "
                 f"{_q(facts.images_per_update)} images/update")
    if facts.effective_lr is not None and facts.lr_scale not in (None, 1.0):
        parts.append(f"lr {format_rate(facts.base_lr)}×{facts.lr_scale:g} = "
                     f"{format_rate(facts.effective_lr)}")
    elif facts.base_lr is not None:
        parts.append(f"lr {format_rate(facts.base_lr)}")
    else:
        parts.append("lr ?")
    # Which limit ends the run, always: "1000 steps (max steps) = 8.0 epochs of 100 repeats"
    # reads right beside "Number of epochs 100", which then is not the limit.
    epochs = facts.epochs
    steps = f"{_q(facts.steps)} steps ({facts.limited_by})"
    parts.append(f"{steps} = {epochs:.1f} epochs of {facts.repeats} repeats"
                 if epochs is not None else steps)
    if facts.full_cycle:
        parts.append("full-cycle")
    if facts.earliest_stop is None:
        parts.append("no early stopping")
    elif plan.dvar_can_stop(facts.earliest_stop, facts.steps):
        parts.append(f"DVAR can stop from step {facts.earliest_stop}")
    else:  # its window fills after the run's end: say so before Start, not at step 250
        parts.append(f"DVAR cannot stop this run before its end (earliest step "
                     f"{facts.earliest_stop})")
    if facts.file_name is not None:
        parts.append(f"saved as {facts.file_name}")
    return " · ".join(parts)


class DerivedLine(Static):
    """The derived facts, refreshed by the form on every change."""

    DEFAULT_CSS = """
    DerivedLine { height: auto; padding: 0 1; color: $text-accent; }
    """

    def show(self, values: Mapping[str, Any], n_images: int | None) -> DerivedFacts:
        """Recompute the facts from `values` and show them; returns the facts."""
        facts = derive_facts(values, n_images)
        self.update(describe_facts(facts))
        return facts
