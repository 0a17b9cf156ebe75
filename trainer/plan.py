"""The run plan: every number a run's settings imply, worked out once, in one place.

A `RunPlan` says how many images one update sees, the --scale_lr multiplier, where the run
ends and which limit sets that end, the learning rate and clip value of any update and the next
change of rate, and the first step DVAR can stop at. The trainer's setup builds one
(`make_plan`) and the loop reads its rates; the form's derived-facts line, RunState and the
panels call the same fact functions below with what they know, so no two places can disagree.

Rules, with their sources:

* One step is one optimizer update (DESIGN.md, spec B5/B6), so images per update is
  batch x accumulation x processes, and epochs are a float.
* --scale_lr multiplies the rate by images per update (diffusers' textual_inversion.py
  ``args.learning_rate * gradient_accumulation_steps * train_batch_size * num_processes``).
* An invokeai-ti epoch is `repeats` passes over the images, so --num_train_epochs E ends the
  run after ceil(E x repeats x images / images per update) updates, if that comes first.
* An A1111 schedule string that ends before the step limit ends training there (spec B2).
* DVAR's ratio needs N + 1 L_det values (spec A5), one every `dvar_eval_every` updates (A4),
  so the earliest stop is update (N + 1) x dvar_eval_every of the whole run; a run that ends
  at or before it cannot be stopped by DVAR (`dvar_can_stop`).
* Epochs shown to a user are --num_train_epochs' epochs (`run_epochs`): passes / repeats.

Pure Python (no torch): the UI imports it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from trainer.events import StopReason
from trainer.rate_schedule import RateSchedule, clip_schedule, learning_rate_schedule

if TYPE_CHECKING:
    from trainer.config import TrainConfig

__all__ = ["LIMIT_WORDS", "RunPlan", "dvar_can_stop", "earliest_dvar_stop", "epoch_limit_steps",
           "epochs", "images_per_update", "is_full_cycle", "lr_scale", "make_plan", "run_epochs",
           "run_limit", "schedule_limit"]


LIMIT_WORDS = {StopReason.MAX_STEPS: "max steps", StopReason.SCHEDULE_END: "schedule",
               StopReason.EPOCHS: "epochs"}
"""The limit that sets a run's end, named by the setting it comes from (the form's derived
line and the live progress panel both say it)."""


def images_per_update(train_batch_size: int, gradient_accumulation_steps: int,
                      num_processes: int) -> int:
    """Images one optimizer update sees: batch x accumulation x processes (nothing clamped,
    unlike A1111's dataset clamps of spec B5)."""
    return train_batch_size * gradient_accumulation_steps * num_processes


def lr_scale(scale_lr: bool, per_update: int) -> float:
    """--scale_lr's multiplier: the images per update, or 1 when it is off (diffusers' rule)."""
    return float(per_update) if scale_lr else 1.0


def epoch_limit_steps(num_train_epochs: int, repeats: int, n_images: int,
                      per_update: int) -> int:
    """Updates until --num_train_epochs ends a run: an invokeai-ti epoch is `repeats` passes."""
    return math.ceil(num_train_epochs * repeats * n_images / per_update)


def epochs(steps: int, per_update: int, n_images: int | None) -> float | None:
    """Passes over the images after `steps` updates (a float); None without images."""
    return steps * per_update / n_images if n_images else None


def run_epochs(passes: float | None, repeats: int | None) -> float | None:
    """Passes over the images as epochs of --num_train_epochs: one epoch is `repeats` passes
    (invokeai-ti's dataset repeats each image `repeats` times and diffusers'
    textual_inversion.py counts an epoch as one pass over that dataset). None when unknown."""
    if passes is None or not repeats:
        return None
    return passes / repeats


def dvar_can_stop(earliest_stop: int | None, end_step: int | None) -> bool:
    """DVAR can end this run early: its earliest stop comes before the run's own end (a run
    of 250 steps never reaches a stop at 283, so DVAR cannot stop it)."""
    return earliest_stop is not None and (not end_step or earliest_stop < end_step)


def is_full_cycle(n_images: int | None, per_update: int | None) -> bool:
    """Every update sees each image exactly once (n_images == images per update)."""
    return bool(n_images) and n_images == per_update


def run_limit(max_train_steps: int, num_train_epochs: int | None, repeats: int | None,
              n_images: int | None, per_update: int) -> tuple[int, StopReason]:
    """(end step, the limit that sets it) by the step and epoch limits alone: the epoch limit
    when it comes first (and the images are known), else the step limit."""
    if num_train_epochs and repeats and n_images and per_update:
        epoch_steps = epoch_limit_steps(num_train_epochs, repeats, n_images, per_update)
        if epoch_steps < max_train_steps:
            return epoch_steps, StopReason.EPOCHS
    return max_train_steps, StopReason.MAX_STEPS


def schedule_limit(limit_end: int, limit: StopReason,
                   rates: RateSchedule) -> tuple[int, StopReason]:
    """(end step, limit) once the learning-rate schedule is known: an A1111 string whose
    last pair ends before `limit_end` ends training there (spec B2)."""
    if rates.start < limit_end and rates.end < limit_end:
        return rates.end, StopReason.SCHEDULE_END
    return limit_end, limit


def earliest_dvar_stop(window: int, eval_every: int, start_step: int = 0) -> int | None:
    """The first update DVAR can stop after: the (N + 1)-th L_det value, one every
    `eval_every` updates, counted over the whole run (a resumed run keeps its history).

    A resumed run past that point can stop at its next evaluation. None when L_det is off
    (`eval_every` 0) or the window is unknown.
    """
    if not window or not eval_every or eval_every < 0:
        return None
    first = (window + 1) * eval_every
    if start_step >= first:
        first = (start_step // eval_every + 1) * eval_every
    return first


@dataclass(frozen=True)
class RunPlan:
    """What a run will do, from its settings, its images and its process count."""

    images_per_update: int
    """batch x gradient accumulation x processes: images one update learns from."""
    lr_scale: float
    """The --scale_lr multiplier: images_per_update when on, 1.0 when off (diffusers
    textual_inversion.py --scale_lr)."""
    start_step: int
    """Updates already done (a resumed run's checkpoint step)."""
    end_step: int
    """The step the run ends at: the earliest of the step limit, the epoch limit and the end
    of the learning-rate schedule."""
    limit: StopReason
    """Which of those sets `end_step`: MAX_STEPS, EPOCHS or SCHEDULE_END."""
    limit_end: int
    """The end by the step and epoch limits alone (the span of an HF shape)."""
    learning_rates: RateSchedule
    """The rate of every update of this run, scaled, as segments (never a list per step)."""
    clip_values: RateSchedule | None
    """None when clipping is off."""
    earliest_stop: int | None
    """The first step DVAR can stop at; None when DVAR is off."""
    n_images: int | None = None
    """Training images the plan was made for; None when not known yet (no epoch limit)."""

    def rate_at(self, step: int) -> float:
        """The learning rate of update `step` (IndexError outside this run)."""
        return self.learning_rates.rate_at(step)

    def clip_at(self, step: int) -> float | None:
        """The clip value of update `step`; None when clipping is off."""
        return self.clip_values.rate_at(step) if self.clip_values is not None else None

    def next_change(self, step: int) -> tuple[float, int] | None:
        """(rate, at): the next change of the schedule's piece rate after update `step`."""
        return self.learning_rates.next_change(step)

    @property
    def epochs_total(self) -> float | None:
        """Passes over the images by the end step (a float)."""
        return epochs(self.end_step, self.images_per_update, self.n_images)

    @property
    def updates_per_epoch(self) -> float | None:
        """Updates per pass over the images (a float); None without images."""
        return self.n_images / self.images_per_update if self.n_images else None

    @property
    def full_cycle(self) -> bool:
        """Every update sees each image exactly once (n_images == images per update)."""
        return is_full_cycle(self.n_images, self.images_per_update)


def make_plan(config: TrainConfig, *, n_images: int | None, num_processes: int | None = None,
              start_step: int = 0) -> RunPlan:
    """The plan of `config` over `n_images` images (None: not known yet, so no epoch limit)
    with `num_processes` processes (default: the config's) from update `start_step` on.

    Raises `trainer.schedules.ScheduleError` for a learning-rate or clip string that cannot
    be used (TrainConfig validation words it for the user). A `start_step` at or past the
    end gives an empty schedule; setup refuses that resume with its own message.
    """
    processes = num_processes if num_processes is not None else config.num_processes
    per_update = images_per_update(config.train_batch_size, config.gradient_accumulation_steps,
                                   processes)
    scale = lr_scale(config.scale_lr, per_update)
    limit_end, limit = run_limit(config.max_train_steps, config.num_train_epochs,
                                 config.repeats, n_images, per_update)
    if start_step >= limit_end:  # nothing left to train: no string to read
        rates = RateSchedule((), start_step, scale=scale)
    else:
        rates = learning_rate_schedule(
            config.learning_rate, scheduler=config.lr_scheduler,
            warmup_steps=config.lr_warmup_steps, max_steps=limit_end,
            num_cycles=config.lr_num_cycles, power=config.lr_power, cur_step=start_step,
            strict=config.strict_schedule, scale=scale)
    end, limit = schedule_limit(limit_end, limit, rates)
    clips = None
    if config.clip_grad_mode != "none" and start_step < end:
        clips = clip_schedule(config.clip_grad_value, end, start_step,
                              strict=config.strict_schedule)
    earliest = None
    if config.early_stopping == "dvar":
        earliest = earliest_dvar_stop(config.dvar_window, config.dvar_eval_every, start_step)
    return RunPlan(images_per_update=per_update, lr_scale=scale, start_step=start_step,
                   end_step=end, limit=limit, limit_end=limit_end, learning_rates=rates,
                   clip_values=clips, earliest_stop=earliest, n_images=n_images)
