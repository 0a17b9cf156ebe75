"""The line of derived facts under the setup form, and the arithmetic behind it.

`derive_facts` is a pure function of the form's raw values (strings while the user types) and
the number of images found; it never raises, so a half-typed number just shows as "?".
`DerivedLine` renders it. One step is one optimizer update (DESIGN.md), so "images per update"
is batch x accumulation x processes, and epochs are a float.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from textual.widgets import Static

from trainer import schedules
from trainer.config import epoch_limit_steps


def _int(value: Any) -> int | None:
    try:
        number = int(str(value).strip())
    except (TypeError, ValueError):
        return None
    return number if number > 0 else None


def _bool(value: Any) -> bool:
    return value if isinstance(value, bool) else str(value).strip().lower() in ("1", "true", "yes", "on")


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
    batch: int | None
    accumulation: int | None
    processes: int | None
    base_lr: float | None
    """The first rate of the learning-rate text, before scaling."""
    lr_scale: float | None
    steps: int | None
    """The step the run ends at: max steps, or sooner when the schedule or epochs end it."""
    limited_by: str
    """"max steps", "schedule" or "epochs": what sets `steps`."""
    dvar_window: int | None
    """None when DVAR early stopping is off."""

    @property
    def images_per_update(self) -> int | None:
        if None in (self.batch, self.accumulation, self.processes):
            return None
        return self.batch * self.accumulation * self.processes

    @property
    def effective_lr(self) -> float | None:
        if self.base_lr is None or self.lr_scale is None:
            return None
        return self.base_lr * self.lr_scale

    @property
    def epochs(self) -> float | None:
        """Passes over the images: steps x images per update / images."""
        if not self.n_images or self.steps is None or self.images_per_update is None:
            return None
        return self.steps * self.images_per_update / self.n_images

    @property
    def full_cycle(self) -> bool:
        """Every update sees each image exactly once."""
        return bool(self.n_images) and self.n_images == self.images_per_update

    @property
    def earliest_stop(self) -> int | None:
        """DVAR needs a full window of L_det values before it can compare: window + 1."""
        return None if self.dvar_window is None else self.dvar_window + 1


def derive_facts(values: Mapping[str, Any], n_images: int | None) -> DerivedFacts:
    """Facts from raw form values (TrainConfig field names -> strings, bools or numbers)."""
    batch = _int(values.get("train_batch_size"))
    accumulation = _int(values.get("gradient_accumulation_steps"))
    processes = _int(values.get("num_processes"))
    max_steps = _int(values.get("max_train_steps"))
    lr_text = str(values.get("learning_rate", "")).strip()
    base_lr = None
    steps, limited_by = max_steps, "max steps"
    if lr_text and max_steps:
        try:
            base_lr = schedules.parse_schedule(lr_text, max_steps)[0][0]
            end = schedules.schedule_end(lr_text, max_steps)
            if end < max_steps:
                steps, limited_by = end, "schedule"
        except schedules.ScheduleError:
            base_lr = None
    ipu = batch * accumulation * processes if None not in (batch, accumulation, processes) else None
    epochs, repeats = _int(values.get("num_train_epochs")), _int(values.get("repeats", 100))
    if steps and n_images and ipu and epochs and repeats:
        # invokeai-ti's epoch is `repeats` passes over the images; --num_train_epochs caps it.
        cap = epoch_limit_steps(epochs, repeats, n_images, ipu)
        if cap < steps:
            steps, limited_by = cap, "epochs"
    if _bool(values.get("scale_lr", True)):
        lr_scale = float(ipu) if ipu is not None else None
    else:
        lr_scale = 1.0
    dvar = str(values.get("early_stopping", "dvar")) == "dvar"
    return DerivedFacts(n_images=n_images, batch=batch, accumulation=accumulation,
                        processes=processes, base_lr=base_lr, lr_scale=lr_scale, steps=steps,
                        limited_by=limited_by,
                        dvar_window=_int(values.get("dvar_window")) if dvar else None)


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
    epochs = facts.epochs
    steps = _q(facts.steps) + (f" ({facts.limited_by})" if facts.limited_by != "max steps" else "")
    parts.append(f"{steps} steps = {epochs:.1f} epochs" if epochs is not None else f"{steps} steps")
    if facts.full_cycle:
        parts.append("full-cycle")
    if facts.earliest_stop is not None:
        parts.append(f"DVAR can stop from step {facts.earliest_stop}")
    else:
        parts.append("no early stopping")
    return " · ".join(parts)


class DerivedLine(Static):
    """The derived facts, refreshed by the form on every change."""

    DEFAULT_CSS = """
    DerivedLine { height: auto; padding: 0 1; color: $text-accent; }
    """

    def show(self, values: Mapping[str, Any], n_images: int | None) -> DerivedFacts:
        facts = derive_facts(values, n_images)
        self.update(describe_facts(facts))
        return facts
