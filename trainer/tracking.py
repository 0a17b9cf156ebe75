"""L_det bookkeeping: the DVAR decision, the Appendix-B diagnostics and the history file.

The tracker is evaluated after an update (spec A4) when `dvar_eval_every` divides the step,
feeds the value to DVAR and to the three diagnostics, and remembers (step, l_det, ratio) for
dvar_history.csv. With `--early_stopping none` the same numbers are computed and shown, but
the loop ignores the decision.
"""

from __future__ import annotations

from collections.abc import Callable

from trainer.config import TrainConfig
from trainer.stopping import DVAR, EMAPercentile, Hall, Trend


class Tracker:
    def __init__(self, config: TrainConfig):
        self.every = config.dvar_eval_every
        self.dvar = DVAR(config.dvar_window, config.dvar_threshold, config.dvar_ddof)
        self.ema = EMAPercentile(config.dvar_window)
        self.hall = Hall(config.dvar_window)
        self.trend = Trend(config.dvar_window)
        self.rows: list[tuple[int, float, float | None]] = []
        """(step, l_det, ratio) for every evaluation so far."""
        self._warned_constant = False

    @property
    def stopped(self) -> bool:
        return self.dvar.stopped

    def evaluate(self, step: int, l_det: Callable[[], float]) -> dict:
        """Evaluate if due; returns the step event's DVAR fields (empty when not due)."""
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

    def stop_facts(self, reason: str) -> dict:
        facts = {"window": self.dvar.window, "threshold": self.dvar.threshold,
                 "ddof": self.dvar.ddof, "ratio": self.dvar.ratio}
        return facts if reason == "early_stop" or self.rows else {}

    def state_dict(self) -> dict:
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
