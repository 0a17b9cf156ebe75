"""When DVAR's stop can be trusted, and which published setting to use at a learning rate.

DVAR stops when the deterministic loss L_det has stopped moving relative to its own noise
(DVAR paper, "Is This Loss Informative?", section 4; specs/dvar-and-schedules.md). At a slow
learning rate L_det moves little per update while the embedding is still far from done, so the
ratio falls under the threshold as soon as the window fills, and the run stops at DVAR's floor
(window + 1 updates) whatever the embedding has learned.

Measured in the toy world (docs/RESULTS.md "DVAR at the rates people use", bench/dvar_outcome.py:
6 concepts, 5 images, batch 4, constant rate as used, a 2000-update baseline scored every 50
updates on 32 generated images; the DVAR settings replayed on its L_det history), `MEASURED`:
- 5e-3: the later setting (310 / 0.15) met this project's goal, 6.2x fewer updates than the
  baseline at 0.97 of its best score; the paper's (282 / 0.39) 6.9x at 0.91.
- 2e-3: neither did; 310 / 0.15 kept 0.84 at 3.8x fewer, 282 / 0.39 0.70 at 5.8x.
- 5e-4: neither did; both stopped within 50 updates of their floor (0.68-0.72 kept), while
  the slowest concepts needed 1350-1900 updates.
So below DVAR_MIN_RATE per update the form and the trainer warn; at or above it the form
recommends the setting that kept more of the best score at the nearest measured rate. These
are this project's readings of its own bench, not the paper's.
"""

from __future__ import annotations

import math

DVAR_MIN_RATE = 2e-3
"""The learning rate per update (after --scale_lr) below which DVAR stopped slower concepts
long before they were learned (toy-world measurements above)."""

MEASURED: dict[float, dict[tuple[int, float], tuple[float, float]]] = {
    5e-4: {(282, 0.39): (6.5, 0.68), (310, 0.15): (5.1, 0.72)},
    2e-3: {(282, 0.39): (5.8, 0.70), (310, 0.15): (3.8, 0.84)},
    5e-3: {(282, 0.39): (6.9, 0.91), (310, 0.15): (6.2, 0.97)},
}
"""bench/dvar_outcome.py's grid (docs/RESULTS.md): learning rate per update -> (window,
threshold) -> (updates saved, x fewer than the 2000-update baseline; mean score kept, x of the
baseline's best), over six toy-world concepts."""


def slow_rate_advice(rate: float, earliest_stop: int | None, end_step: int) -> str | None:
    """The warning for a run DVAR may stop too early, or None.

    `rate`: the learning rate of the update at `earliest_stop` (scaled, as the optimizer
    uses it); `earliest_stop`: the first step DVAR can stop at (trainer/plan.py), None when
    DVAR is off; `end_step`: the step the run ends at. Nothing is said when DVAR is off, when
    it cannot stop before the end anyway, or when the rate is at least DVAR_MIN_RATE.
    """
    if earliest_stop is None or earliest_stop >= end_step or rate >= DVAR_MIN_RATE:
        return None
    return (f"at a learning rate of {rate:g} per update DVAR tends to stop before slower "
            f"concepts are learned (measured below {DVAR_MIN_RATE:g}, docs/RESULTS.md); raise "
            "the rate (or turn --scale_lr on) or train a fixed number of steps with "
            "--early_stopping none.")


def rate_at_earliest_stop(plan) -> float | None:
    """The learning rate of the update that ends at a trainer.plan.RunPlan's earliest DVAR
    stop (what DVAR's decision sees), or None when DVAR is off or cannot stop before the end."""
    stop = plan.earliest_stop
    if stop is None or stop >= plan.end_step:
        return None
    try:
        return plan.rate_at(stop - 1)
    except IndexError:
        return None


def advice_for_plan(plan) -> str | None:
    """`slow_rate_advice` for a trainer.plan.RunPlan: the rate at its earliest DVAR stop."""
    rate = rate_at_earliest_stop(plan)
    return None if rate is None else slow_rate_advice(rate, plan.earliest_stop, plan.end_step)


def recommended_setting(rate: float) -> tuple[float, tuple[int, float]]:
    """The measured rate nearest to `rate` (on a log scale) and the published (window,
    threshold) that kept the most of the best score there (`MEASURED`)."""
    nearest = min(MEASURED, key=lambda measured: abs(math.log(rate / measured)))
    table = MEASURED[nearest]
    return nearest, max(table, key=lambda setting: table[setting][1])


def preset_advice(rate: float, window: int, threshold: float) -> str | None:
    """The recommendation for a run at `rate` per update (after --scale_lr) with DVAR
    (`window`, `threshold`), or None when it already uses the recommended setting or the
    rate is below DVAR_MIN_RATE (the warning of `slow_rate_advice` speaks there)."""
    if not rate >= DVAR_MIN_RATE:
        return None
    nearest, (best_window, best_threshold) = recommended_setting(rate)
    if (window, threshold) == (best_window, best_threshold):
        return None
    saved, kept = MEASURED[nearest][(best_window, best_threshold)]
    others = "".join(f", {w} / {t:g} kept {k:.2f} with {x:.1f}x fewer"
                     for (w, t), (x, k) in MEASURED[nearest].items()
                     if (w, t) != (best_window, best_threshold))
    return (f"measured at {nearest:g} per update (docs/RESULTS.md), DVAR {best_window} / "
            f"{best_threshold:g} kept {kept:.2f} of the best score with {saved:.1f}x fewer "
            f"updates{others}: set DVAR window {best_window} and threshold {best_threshold:g} "
            f"(--dvar_window {best_window} --dvar_threshold {best_threshold:g}).")


def preset_for_plan(plan, window: int, threshold: float) -> str | None:
    """`preset_advice` for a trainer.plan.RunPlan at the rate of its earliest DVAR stop."""
    rate = rate_at_earliest_stop(plan)
    return None if rate is None else preset_advice(rate, window, threshold)


def help_text() -> str:
    """The --early_stopping help's words on which setting to use (from `MEASURED`)."""
    rate = max(MEASURED)
    _, (window, threshold) = recommended_setting(rate)
    saved, kept = MEASURED[rate][(window, threshold)]
    return (f"DVAR suits learning rates of {DVAR_MIN_RATE:g} or more per update (after "
            "--scale_lr): below that it stopped slower concepts long before they were learned, "
            f"so use none and a step count there; at {rate:g} the setting --dvar_window "
            f"{window} --dvar_threshold {threshold:g} kept {kept:.2f} of the best score with "
            f"{saved:.1f}x fewer updates (docs/RESULTS.md).")

