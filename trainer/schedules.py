"""Learning-rate and clip-value schedules, in pure Python (no torch, no numpy).

Two kinds of schedule meet here:

* **A1111 schedule strings** (spec Part B): ``"0.005:100, 1e-3:1000, 1e-5"`` means 0.005 until
  update 100, 1e-3 until update 1000, then 1e-5 until the end. `parse_schedule` reads them
  exactly as A1111's ``LearnScheduleIterator`` does (spec B1), `lr_rates` and `clip_values`
  replay A1111's runtime stepping (spec B2, B4). ``strict=True`` adds the rejections of spec B6.
* **HF learning-rate shapes** (``--lr_scheduler``): `hf_lr_factor` reproduces the multipliers of
  ``diffusers.optimization.get_scheduler`` when ``scheduler.step()`` runs once per update.

`learning_rate_schedule` combines the two into the `RateSchedule` the training loop uses: the
rate of every update this run does, from ``cur_step`` on, held as a few *segments* (runs of
one piece rate) and a pure per-step factor, never as a list per step, so a 10-million-step
run costs what a 10-step run costs. The loop writes ``schedule.rate_at(s)`` into the optimizer
before update ``s``, so a resumed run needs no scheduler state. `learning_rates` and
`clip_values` still expand a schedule into its per-update list, for tests and small runs.

Combination rule of `learning_rates` (``lr_text`` × ``--lr_scheduler``):

=====================  =====================================  ==============================
lr_text                scheduler                              rate of update s
=====================  =====================================  ==============================
plain number "5e-4"    any of `HF_SCHEDULERS`                 base × scale × hf_factor(s)
piecewise string       ``constant``                           piece(s) × scale (warmup ignored,
                                                              as HF's constant ignores it)
piecewise string       ``constant_with_warmup``               piece(s) × scale × warmup(s)
piecewise string       any other                              `ScheduleError`
=====================  =====================================  ==============================

A *piecewise* string is anything with a ``:`` or with more than one non-blank comma piece
(`is_piecewise`). Every run length follows A1111: a string whose last pair ends before
``max_steps`` ends training there (spec B2, B6); ``max_steps`` is always a hard cap.

Steps count optimizer updates everywhere (spec B5/B6); ``cur_step`` is the number of updates
already completed, ``max_steps`` the total.
"""

from __future__ import annotations

import bisect
import math
import re
from dataclasses import dataclass

__all__ = [
    "HF_SCHEDULERS",
    "RateSchedule",
    "ScheduleError",
    "clip_schedule",
    "clip_values",
    "hf_lr_factor",
    "hf_rates",
    "is_piecewise",
    "learning_rate_schedule",
    "learning_rates",
    "lr_rates",
    "lr_segments",
    "next_change",
    "parse_schedule",
    "schedule_end",
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

_EXAMPLE = ('write a single rate such as "0.005", or rate:step pairs such as '
            '"0.005:100, 1e-3:1000, 1e-5".')
_DIGITS = re.compile(r"[0-9]+")


class ScheduleError(ValueError):
    """A schedule string or scheduler choice that cannot be used.

    The message says what is wrong and shows a valid example. Malformed strings start with
    A1111's words "Invalid learning rate schedule" (spec B1, B6), for clip strings too.
    """


def _invalid(text: str, problem: str) -> ScheduleError:
    return ScheduleError(f'Invalid learning rate schedule "{text}": {problem}; {_EXAMPLE}')


def _pieces(text: str) -> list[str]:
    """The comma pieces that are not blank (A1111 skips whitespace-only pieces, spec B1)."""
    return [piece for piece in text.split(",") if piece.strip()]


def _rate(text: str, field: str) -> float:
    try:
        return float(field)  # float() also takes "inf", "nan", "-1": A1111-compatible (spec B1)
    except ValueError:
        raise _invalid(text, f'"{field.strip()}" is not a number') from None


def _end(text: str, field: str) -> int:
    try:
        return int(field)  # int(): spaces allowed, decimals and exponents not (spec B1)
    except ValueError:
        raise _invalid(text, f'"{field.strip()}" is not a whole step number') from None


def _check_strict(text: str) -> None:
    """Spec B6: refuse what A1111 would silently misread. Checks every piece, whatever cur_step."""
    pieces = _pieces(text)
    previous_end = None
    for i, piece in enumerate(pieces):
        last = i == len(pieces) - 1
        fields = piece.split(":")
        if len(fields) > 2:
            raise _invalid(text, f'"{piece.strip()}" has {len(fields)} fields; '
                                 f"each piece is a rate or a rate:step pair")
        following = "" if last else pieces[i + 1].split(":")[0].strip()
        if _DIGITS.fullmatch(following):
            if len(fields) == 1:
                raise _invalid(text, f'"{piece.strip()},{pieces[i + 1].strip()}" looks like a '
                                     f'decimal comma; write the rate with a point, like "0.005"')
            if len(following) == 3:
                raise _invalid(text, f'"{piece.strip()},{pieces[i + 1].strip()}" looks like a '
                                     f'thousands separator; write steps without one, like "1000"')
        rate = _rate(text, fields[0])
        if not (math.isfinite(rate) and rate > 0):
            raise _invalid(text, f'the rate "{fields[0].strip()}" must be a positive finite number')
        if len(fields) == 1:
            if not last:
                raise _invalid(text, f'the rate "{piece.strip()}" has no step, so it holds to the '
                                     f"end and must be the last piece")
            continue
        end = _end(text, fields[1])
        if end == 0 or end < -1:
            raise _invalid(text, f'the step "{fields[1].strip()}" must be a positive step number, '
                                 f"or -1 for until the end")
        if end == -1:
            if not last:
                raise _invalid(text, f'"{piece.strip()}" runs until the end, so it must be the '
                                     f"last piece")
            continue
        if previous_end is not None and end <= previous_end:
            raise _invalid(text, f"the steps must increase, but {end} comes after {previous_end}")
        previous_end = end


def parse_schedule(text: str, max_steps: int, cur_step: int = 0,
                   strict: bool = False) -> list[tuple[float, int]]:
    """Parse an A1111 schedule string into ``[(rate, end), ...]`` (spec B1, B6).

    Lax mode (the default) reads exactly what A1111 reads: comma pieces, blank ones skipped;
    ``rate:end`` appends ``(rate, min(end, max_steps))`` when ``end > cur_step`` and stops
    parsing if ``end > max_steps``; ``end == -1`` appends ``(rate, max_steps)`` and stops;
    other ends are skipped without reading their rate; a bare rate (or a piece with three or
    more fields) appends ``(first field, max_steps)`` and stops. ``strict`` first refuses the
    cases listed in spec B6. Raises `ScheduleError` when the string is malformed or leaves no
    pair (for instance ``"0.005:100"`` resumed at ``cur_step=200``).
    """
    if not isinstance(text, str):
        raise _invalid(str(text), "it is not text")
    if not _pieces(text):
        raise _invalid(text, "it is empty")
    if strict:
        _check_strict(text)
    pairs: list[tuple[float, int]] = []
    for piece in _pieces(text):
        fields = piece.split(":")
        if len(fields) != 2:
            pairs.append((_rate(text, fields[0]), max_steps))
            break
        end = _end(text, fields[1])
        if end > cur_step:
            pairs.append((_rate(text, fields[0]), min(end, max_steps)))
            if end > max_steps:
                break
        elif end == -1:
            pairs.append((_rate(text, fields[0]), max_steps))
            break
        # else: a pair that ended at or before cur_step; A1111 skips it without reading the rate.
    if not pairs:
        where = f"step {cur_step}, where this run resumes" if cur_step else "step 0"
        raise _invalid(text, f"every rate:step pair ends at or before {where}, so no rate is "
                             f"left; end it with a rate that has no step")
    return pairs


def lr_segments(text: str, max_steps: int, cur_step: int = 0, strict: bool = False,
                hold_last: bool = False) -> list[tuple[float, int, int]]:
    """The schedule as runs ``[(rate, first_update, stop_update), ...]`` from ``cur_step`` on.

    Replays A1111's runtime stepping (spec B2): the first pair is current at the start;
    before update ``s``, if ``s >= end`` of the current pair, advance exactly one pair; when
    none is left the schedule is finished. So a pair entered by a switch lasts at least one
    update even if its end has passed. ``hold_last`` keeps the last rate until ``max_steps``
    instead of finishing (the clip schedule, spec B4). Updates never reach ``max_steps``.
    """
    pairs = parse_schedule(text, max_steps, cur_step, strict)
    segments: list[tuple[float, int, int]] = []
    start = cur_step
    for i, (rate, end) in enumerate(pairs):
        if start >= max_steps:
            break
        # Pair 0 is checked at its first update; a later pair was entered by that update's
        # check, so its own check comes one update later (each switch consumes an update).
        stop = min(max(end, start if i == 0 else start + 1), max_steps)
        if stop > start:
            segments.append((rate, start, stop))
        start = stop
    if hold_last and segments and segments[-1][2] < max_steps:
        rate, first, _ = segments[-1]
        segments[-1] = (rate, first, max_steps)
    return segments


def _expand(segments: list[tuple[float, int, int]]) -> list[float]:
    rates: list[float] = []
    for rate, first, stop in segments:
        rates.extend([rate] * (stop - first))
    return rates


def lr_rates(text: str, max_steps: int, cur_step: int = 0, strict: bool = False) -> list[float]:
    """The rate of each update this run does, for updates ``cur_step, cur_step + 1, ...``.

    Shorter than ``max_steps - cur_step`` when the schedule ends first: A1111 ends training
    there (spec B2). Example: ``"0.005:100, 1e-3:1000"`` with max 5000 gives 1000 rates.
    """
    return _expand(lr_segments(text, max_steps, cur_step, strict))


def clip_values(text: str, max_steps: int, cur_step: int = 0, strict: bool = False) -> list[float]:
    """The clip value of each update from ``cur_step`` on; always ``max_steps - cur_step`` long.

    `clip_schedule` expanded: same parsing and stepping as `lr_rates`, but the last value is
    held when the pairs run out, since A1111 ignores the clip schedule's finished flag (B4).
    """
    return clip_schedule(text, max_steps, cur_step, strict).values()


def schedule_end(text: str, max_steps: int, cur_step: int = 0, strict: bool = False) -> int:
    """The update count at which the LR schedule ends training: ``cur_step + len(lr_rates)``."""
    segments = lr_segments(text, max_steps, cur_step, strict)
    return segments[-1][2] if segments else cur_step


def next_change(text: str, max_steps: int, step: int, cur_step: int = 0,
                strict: bool = False) -> tuple[float, int] | None:
    """The next rate change after update ``step`` (0-based), for the dashboard.

    Returns ``(new_rate, at_step)``: update ``at_step`` is the first one after ``step`` whose
    rate differs from the rate of update ``step``. None when the rate stays the same until
    the schedule ends, or when ``step`` is outside this run.
    """
    return RateSchedule(tuple(lr_segments(text, max_steps, cur_step, strict)),
                        cur_step).next_change(step)


def is_piecewise(text: str) -> bool:
    """True for a schedule string (a ``:`` or several pieces); False for a plain rate."""
    return ":" in text or len(_pieces(text)) > 1


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
