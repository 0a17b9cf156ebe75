"""A1111 schedule strings for learning rates and clip values, in pure Python (no torch).

``"0.005:100, 1e-3:1000, 1e-5"`` means 0.005 until update 100, 1e-3 until update 1000, then
1e-5 until the end. `parse_schedule` reads a string exactly as A1111's
``LearnScheduleIterator`` does (spec Part B, B1); `lr_segments` gives its runs of one rate
(what trainer/rate_schedule.py builds a run's `RateSchedule` from), and `lr_rates` replays
A1111's runtime stepping per update (spec B2), for tests and small runs. ``strict=True`` adds the rejections of spec B6.

A *piecewise* string is anything with a ``:`` or with more than one non-blank comma piece
(`is_piecewise`). Every run length follows A1111: a string whose last pair ends before
``max_steps`` ends training there (spec B2, B6); ``max_steps`` is always a hard cap.

Steps count optimizer updates everywhere (spec B5/B6); ``cur_step`` is the number of updates
already completed, ``max_steps`` the total.
"""

from __future__ import annotations

import math
import re

__all__ = [
    "ScheduleError",
    "is_piecewise",
    "lr_rates",
    "lr_segments",
    "parse_schedule",
    "schedule_end",
]

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


def schedule_end(text: str, max_steps: int, cur_step: int = 0, strict: bool = False) -> int:
    """The update count at which the LR schedule ends training: ``cur_step + len(lr_rates)``."""
    segments = lr_segments(text, max_steps, cur_step, strict)
    return segments[-1][2] if segments else cur_step


def is_piecewise(text: str) -> bool:
    """True for a schedule string (a ``:`` or several pieces); False for a plain rate."""
    return ":" in text or len(_pieces(text)) > 1


