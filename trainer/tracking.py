"""L_det bookkeeping: the DVAR decision, the Appendix-B diagnostics and the history file.

The tracker is evaluated after an update (spec A4) when `dvar_eval_every` divides the step,
feeds the value to DVAR and to the three diagnostics, and remembers (step, l_det, ratio) for
dvar_history.csv. With `--early_stopping none` the same numbers are computed and shown, but
the loop ignores the decision.
"""

from __future__ import annotations

from collections.abc import Callable

from trainer.config import TrainConfig
from trainer.events import StopReason
from trainer.stopping import DVAR, EMAPercentile, Hall, Trend


class Tracker:
    """Feeds each due L_det value to DVAR and the Appendix-B diagnostics, and keeps the history.

    Due means after update k with k a multiple of `dvar_eval_every` (spec A4; 0 turns L_det
    off), so DVAR's window N counts evaluations: the earliest stop is update
    (N + 1) x dvar_eval_every (trainer/plan.py). The history is checkpointed and replayed on
    resume, so a resumed run's ratio continues where it stopped.
    """

    def __init__(self, config: TrainConfig):
        self.every = config.dvar_eval_every
        """Updates between two L_det evaluations (0: never)."""
        self.dvar = DVAR(config.dvar_window, config.dvar_threshold, config.dvar_ddof)
        self.ema = EMAPercentile(config.dvar_window)
        self.hall = Hall(config.dvar_window)
        self.trend = Trend(config.dvar_window)
        self.rows: list[tuple[int, float, float | None]] = []
        """(step, l_det, ratio) for every evaluation so far."""
        self._warned_constant = False

    @property
    def stopped(self) -> bool:
        """DVAR's sticky decision: the ratio fell below the threshold (spec A5)."""
        return self.dvar.stopped

    def evaluate(self, step: int, l_det: Callable[[], float]) -> dict:
        """Evaluate if due after update `step`: calls `l_det()` (a float, the mean-reduced
        float32 MSE of spec A3) and returns the step event's fields l_det, dvar_ratio,
        ema_pct, hall, trend; an empty dict when not due."""
        if self.every <= 0 or step % self.every:
            return {}
        value = l_det()
        self.dvar.update(value)
        ratio = self.dvar.ratio
        self.rows.append((step, value, ratio))
        return {"l_det": value, "dvar_ratio": ratio, "ema_pct": self.ema.update(value),
                "hall": self.hall.update(value), "trend": self.trend.update(value)}

    def constant_warning_due(self) -> bool:
        """True once, the first time DVAR's near-zero-variance guard holds."""
        if self.dvar.constant_warning and not self._warned_constant:
            self._warned_constant = True
            return True
        return False

    def stop_facts(self, reason: StopReason) -> dict:
        """DVAR's window, threshold, ddof and last ratio for the stopped event (spec A7):
        always for an early stop, and for any stop once L_det was evaluated."""
        facts = {"window": self.dvar.window, "threshold": self.dvar.threshold,
                 "ddof": self.dvar.ddof, "ratio": self.dvar.ratio}
        return facts if reason == StopReason.EARLY_STOP or self.rows else {}

    def state_dict(self) -> dict:
        """The history, as JSON-able lists, for a checkpoint."""
        return {"rows": [[s, v, r] for s, v, r in self.rows], "warned": self._warned_constant}

    def load_state_dict(self, state: dict) -> None:
        """Rebuild every statistic from the saved history, so a resumed run continues it."""
        self.rows = []
        for step, value, _ in state["rows"]:
            self.dvar.update(value)
            for metric in (self.ema, self.hall, self.trend):
                metric.update(value)
            self.rows.append((int(step), float(value), self.dvar.ratio))
        self._warned_constant = bool(state.get("warned", False))
