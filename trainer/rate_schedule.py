"""The rate of every update of a run: an A1111 string or a plain rate, shaped by an HF scheduler.

Two kinds of schedule meet here:

* **A1111 schedule strings** (spec Part B, trainer/schedules.py): runs of one rate until an
  update, read exactly as A1111 reads them;
* **HF learning-rate shapes** (``--lr_scheduler``): `hf_lr_factor` reproduces the multipliers
  of ``diffusers.optimization.get_scheduler`` when ``scheduler.step()`` runs once per update.

`learning_rate_schedule` combines the two into the `RateSchedule` the training loop uses: the
rate of every update this run does, from ``cur_step`` on, held as a few *segments* (runs of
one piece rate) and a pure per-step factor, never as a list per step, so a 10-million-step
run costs what a 10-step run costs. The loop writes ``schedule.rate_at(s)`` into the optimizer
before update ``s``, so a resumed run needs no scheduler state. `learning_rates` and
`clip_values` still expand a schedule into its per-update list, for tests and small runs
(A1111 holds the last clip value when its pairs run out: spec B4).

Combination rule (``lr_text`` × ``--lr_scheduler``):

=====================  =====================================  ==============================
lr_text                scheduler                              rate of update s
=====================  =====================================  ==============================
plain number "5e-4"    any of `HF_SCHEDULERS`                 base × scale × hf_factor(s)
piecewise string       ``constant``                           piece(s) × scale (warmup ignored,
                                                              as HF's constant ignores it)
piecewise string       ``constant_with_warmup``               piece(s) × scale × warmup(s)
piecewise string       any other                              `ScheduleError`
=====================  =====================================  ==============================
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass

from trainer.schedules import ScheduleError, is_piecewise, lr_segments

__all__ = [
    "HF_SCHEDULERS",
    "RateSchedule",
    "clip_schedule",
    "clip_values",
    "hf_lr_factor",
    "hf_rates",
    "learning_rate_schedule",
    "learning_rates",
    "next_change",
]


HF_SCHEDULERS = (
    "constant",
    "constant_with_warmup",
    "linear",
    "cosine",
    "cosine_with_restarts",
    "polynomial",
)
"""The ``--lr_scheduler`` names, as diffusers spells them (its ``piecewise_constant`` is left out:
A1111 schedule strings cover that need with a different grammar)."""

PIECEWISE_SCHEDULERS = ("constant", "constant_with_warmup")
"""The schedulers a piecewise learning-rate string may be combined with."""

POLYNOMIAL_LR_END = 1e-7
"""diffusers' default absolute end rate of the polynomial schedule."""


def hf_lr_factor(name: str, step: int, *, warmup_steps: int, total_steps: int,
                 num_cycles: float = 1.0, power: float = 1.0,
                 base_lr: float | None = None) -> float:
    """The multiplier of HF scheduler ``name`` for update ``step`` (0-based).

    Reproduces ``diffusers.optimization.get_scheduler`` (the same lambdas as transformers)
    when ``scheduler.step()`` is called once after every optimizer update, so update ``s``
    runs at ``base_lr * lambda(s)``. As in ``get_scheduler``:

    * ``constant`` ignores the warmup;
    * ``cosine`` is always a half cosine (``get_scheduler`` never passes ``num_cycles`` on,
      so diffusers' default 0.5 applies); ``num_cycles`` only shapes ``cosine_with_restarts``;
    * ``polynomial`` decays to the absolute rate 1e-7, so its factor needs ``base_lr``
      (the optimizer's initial rate), which must exceed 1e-7.

    ScheduleError for an unknown `name`, and for ``polynomial`` without a `base_lr` above 1e-7.
    """
    if name not in HF_SCHEDULERS:
        raise _unknown_scheduler(name)
    if name == "constant":
        return 1.0
    if step < warmup_steps:
        return float(step) / float(max(1, warmup_steps))
    if name == "constant_with_warmup":
        return 1.0
    # Operation order below mirrors diffusers so the floats agree bit for bit.
    if name == "linear":
        return max(0.0, float(total_steps - step) / float(max(1, total_steps - warmup_steps)))
    progress = float(step - warmup_steps) / float(max(1, total_steps - warmup_steps))
    if name == "cosine":
        return max(0.0, 0.5 * (1.0 + math.cos(math.pi * 0.5 * 2.0 * progress)))
    if name == "cosine_with_restarts":
        if progress >= 1.0:
            return 0.0
        return max(0.0, 0.5 * (1.0 + math.cos(math.pi * ((float(num_cycles) * progress) % 1.0))))
    # polynomial
    if base_lr is None:
        raise ScheduleError("The polynomial schedule decays to the absolute rate 1e-7, so its "
                            "factor needs base_lr, e.g. hf_lr_factor(..., base_lr=5e-4).")
    if not base_lr > POLYNOMIAL_LR_END:
        raise ScheduleError(f"The polynomial schedule decays to 1e-7, so the learning rate must "
                            f"be larger than that; got {base_lr}. Use a rate such as 5e-4.")
    decay_steps = total_steps - warmup_steps
    if step > total_steps or decay_steps <= 0:  # diffusers would divide by zero on the latter
        return POLYNOMIAL_LR_END / base_lr
    pct_remaining = 1 - (step - warmup_steps) / decay_steps
    decay = (base_lr - POLYNOMIAL_LR_END) * pct_remaining**power + POLYNOMIAL_LR_END
    return decay / base_lr


def hf_rates(base_lr: float, name: str, *, warmup_steps: int, total_steps: int,
             num_cycles: float = 1.0, power: float = 1.0, start: int = 0,
             stop: int | None = None) -> list[float]:
    """Absolute rates ``base_lr * hf_lr_factor(name, s)`` for updates ``start .. stop - 1``."""
    stop = total_steps if stop is None else stop
    return [base_lr * hf_lr_factor(name, s, warmup_steps=warmup_steps, total_steps=total_steps,
                                   num_cycles=num_cycles, power=power, base_lr=base_lr)
            for s in range(start, stop)]


def _unknown_scheduler(name: str) -> ScheduleError:
    return ScheduleError(f'Unknown learning-rate scheduler "{name}"; choose one of '
                         f"{', '.join(HF_SCHEDULERS)}.")


@dataclass(frozen=True)
class RateSchedule:
    """The rate of every update of a run, from a few segments: O(pieces) memory, O(log pieces)
    per look-up, whatever the run's length.

    ``segments`` are ``(piece_rate, first_update, stop_update)`` as `lr_segments` gives them
    (contiguous, from ``start``). The rate of update ``s`` is ``piece(s) × scale`` for the
    ``constant`` shape, else ``piece(s) × scale × hf_lr_factor(shape, s, ...)`` with the scaled
    piece as the polynomial's base rate, the same operations in the same order as diffusers,
    so each float equals the old per-update list's bit for bit.
    """

    segments: tuple[tuple[float, int, int], ...]
    """(piece_rate, first_update, stop_update), unscaled, contiguous from `start`."""
    start: int
    """The first update this run does (``cur_step``)."""
    shape: str = "constant"
    """The HF shape (`HF_SCHEDULERS`) applied on top of the pieces."""
    scale: float = 1.0
    """--scale_lr's multiplier."""
    warmup_steps: int = 0
    """--lr_warmup_steps (ignored by the plain ``constant`` shape)."""
    total_steps: int = 0
    """The step count the HF shape spans (the run's end by its step and epoch limits)."""
    num_cycles: float = 1.0
    """--lr_num_cycles: hard restarts of ``cosine_with_restarts`` (hf_lr_factor)."""
    power: float = 1.0
    """--lr_power: the exponent of the ``polynomial`` shape's decay (hf_lr_factor)."""

    @property
    def end(self) -> int:
        """One past the last update with a rate: where this schedule ends training."""
        return self.segments[-1][2] if self.segments else self.start

    def __len__(self) -> int:
        return self.end - self.start

    def _piece(self, step: int) -> float:
        if not self.start <= step < self.end:
            raise IndexError(f"update {step} is outside this schedule ({self.start} to "
                             f"{self.end - 1})")
        index = bisect.bisect_right([first for _, first, _ in self.segments], step) - 1
        return self.segments[index][0]

    def rate_at(self, step: int) -> float:
        """The rate of update ``step`` (0-based). Raises IndexError outside start..end - 1,
        and ScheduleError for a polynomial shape on a rate of 1e-7 or less."""
        scaled = self._piece(step) * self.scale
        if self.shape == "constant":
            return scaled
        return scaled * hf_lr_factor(self.shape, step, warmup_steps=self.warmup_steps,
                                     total_steps=self.total_steps, num_cycles=self.num_cycles,
                                     power=self.power, base_lr=scaled)

    def values(self) -> list[float]:
        """Every rate, update ``start`` first (a list per update: for tests and short runs)."""
        return [self.rate_at(s) for s in range(self.start, self.end)]

    def next_change(self, step: int) -> tuple[float, int] | None:
        """``(rate, at)``: the first later update where the piece rate changes, with the rate
        it runs at; None when the piece holds until the end or ``step`` is outside the run.
        (An HF shape's own per-update decay is not a "change" here: the dashboard names it.)"""
        current = None
        for rate, first, stop in self.segments:
            if current is None:
                if first <= step < stop:
                    current = rate
            elif rate != current:
                return self.rate_at(first), first
        return None

    def first_unusable_rate(self) -> float | None:
        """A piece rate that is negative or not finite, scaled; None when all are usable.

        The shapes' factors lie in [0, 1], so checking the pieces checks every update."""
        for rate, _, _ in self.segments:
            scaled = rate * self.scale
            if not math.isfinite(scaled) or scaled < 0:
                return scaled
        return None


def learning_rate_schedule(lr_text: str, *, scheduler: str, warmup_steps: int, max_steps: int,
                           num_cycles: float = 1.0, power: float = 1.0, cur_step: int = 0,
                           strict: bool = False, scale: float = 1.0) -> RateSchedule:
    """The learning rate of each update this run does, from ``cur_step`` on (module table).

    ``scale`` multiplies every rate (``--scale_lr``); like diffusers, the HF shape is applied
    to the scaled rate. The schedule ends early when a piecewise string ends early (spec B2).
    Raises ScheduleError for a malformed string, an unknown scheduler, a negative warmup, a
    piecewise string with a decaying shape, or a polynomial shape on a rate of 1e-7 or less.
    """
    if scheduler not in HF_SCHEDULERS:
        raise _unknown_scheduler(scheduler)
    if warmup_steps < 0:
        raise ScheduleError(f"Warmup steps must be 0 or more; got {warmup_steps}.")
    segments = lr_segments(lr_text, max_steps, cur_step, strict)
    if scheduler not in PIECEWISE_SCHEDULERS and is_piecewise(lr_text):
        raise ScheduleError(
            f"A learning-rate schedule string cannot be combined with --lr_scheduler "
            f"{scheduler}; use a plain number with {scheduler} (like \"5e-4\"), or "
            f"--lr_scheduler constant with the string.")
    schedule = RateSchedule(tuple(segments), cur_step, shape=scheduler, scale=scale,
                            warmup_steps=warmup_steps, total_steps=max_steps,
                            num_cycles=num_cycles, power=power)
    if scheduler == "polynomial" and max(cur_step, warmup_steps) < schedule.end:
        schedule.rate_at(max(cur_step, warmup_steps))  # the base-rate check of hf_lr_factor
    return schedule


def clip_schedule(text: str, max_steps: int, cur_step: int = 0,
                  strict: bool = False) -> RateSchedule:
    """The clip value of each update from ``cur_step`` to ``max_steps``: the last value holds
    when the pairs run out, since A1111 ignores the clip schedule's finished flag (spec B4)."""
    return RateSchedule(tuple(lr_segments(text, max_steps, cur_step, strict, hold_last=True)),
                        cur_step)


def learning_rates(lr_text: str, *, scheduler: str, warmup_steps: int, max_steps: int,
                   num_cycles: float = 1.0, power: float = 1.0, cur_step: int = 0,
                   strict: bool = False, scale: float = 1.0) -> list[float]:
    """`learning_rate_schedule` expanded: the rate of each update from ``cur_step`` on."""
    return learning_rate_schedule(lr_text, scheduler=scheduler, warmup_steps=warmup_steps,
                                  max_steps=max_steps, num_cycles=num_cycles, power=power,
                                  cur_step=cur_step, strict=strict, scale=scale).values()


def clip_values(text: str, max_steps: int, cur_step: int = 0, strict: bool = False) -> list[float]:
    """The clip value of each update from ``cur_step`` on; always ``max_steps - cur_step`` long.

    `clip_schedule` expanded: same parsing and stepping as `lr_rates`, but the last value is
    held when the pairs run out, since A1111 ignores the clip schedule's finished flag (B4).
    """
    return clip_schedule(text, max_steps, cur_step, strict).values()


def next_change(text: str, max_steps: int, step: int, cur_step: int = 0,
                strict: bool = False) -> tuple[float, int] | None:
    """The next rate change after update ``step`` (0-based), for the dashboard.

    Returns ``(new_rate, at_step)``: update ``at_step`` is the first one after ``step`` whose
    rate differs from the rate of update ``step``. None when the rate stays the same until
    the schedule ends, or when ``step`` is outside this run.
    """
    return RateSchedule(tuple(lr_segments(text, max_steps, cur_step, strict)),
                        cur_step).next_change(step)
