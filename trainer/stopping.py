"""Early-stopping criteria on the deterministic loss L_det, in pure Python (no torch, no numpy).

`DVAR` is the stopper (spec Part A, A5): it stops once the variance of the last N values of
L_det falls below a fraction α of the variance of the whole history. `EMAPercentile`, `Hall`
and `Trend` are the paper's Appendix-B diagnostics (spec A8); they report a number each update
and never stop anything. `dvar_ratio` recomputes a ratio from a logged series (two-pass,
`math.fsum`), for tests and the dashboard.

Counting: the loop calls ``update(l_det)`` once per optimizer update, after the step (spec A4),
so after k calls exactly k updates are done and ``stop_step == k`` means "save θ_k and stop".
"""

from __future__ import annotations

import math
from collections import deque

__all__ = ["DVAR", "DVAR_PRESETS", "EMAPercentile", "Hall", "Trend", "dvar_ratio"]

DVAR_PRESETS: dict[str, tuple[int, float]] = {
    # Voronov et al., "Is This Loss Informative?" arXiv 2302.04841 v1 §3.3, also the
    # yandex-research/DVAR first-commit README (--early_stop_patience 282 --early_stop_eps 0.39).
    "paper-v1": (282, 0.39),
    # yandex-research/DVAR README at HEAD, textual-inversion setting of the later paper version
    # ("Faster Text-to-Image Customization by Tracking Objective Dynamics").
    "ti-v2": (310, 0.15),
}
"""Named ``(window, threshold)`` settings (spec A6). Our default is ``paper-v1``."""

_GUARD_REL = 1e-12  # spec A5: below this relative spread, L_det is treated as constant


def _variance(values, ddof: int) -> float:
    """Two-pass variance with exactly rounded sums."""
    n = len(values)
    mean = math.fsum(values) / n
    return math.fsum((v - mean) ** 2 for v in values) / (n - ddof)


def _is_constant(variance: float, mean: float) -> bool:
    """Spec A5 guard: a variance this small is rounding noise of a constant series (TV-A3b)."""
    return variance <= (_GUARD_REL * max(abs(mean), 1e-30)) ** 2


def dvar_ratio(values: list[float], window: int, ddof: int = 0) -> float | None:
    """Var(last ``window`` values) / Var(all values), or None where undefined.

    Undefined means fewer than ``window`` values, a non-finite value, or a history so flat
    that the spec A5 guard applies. With exactly ``window`` values the ratio is 1.0.
    """
    values = [float(v) for v in values]
    if len(values) < window or not all(math.isfinite(v) for v in values):
        return None
    total = _variance(values, ddof)
    if _is_constant(total, math.fsum(values) / len(values)):
        return None
    return _variance(values[-window:], ddof) / total


def _check_window(window, minimum: int) -> None:
    if isinstance(window, bool) or not isinstance(window, int) or window < minimum:
        raise ValueError(f"window must be a whole number of at least {minimum}; got {window!r}")


class DVAR:
    """DVAR early stopping: stop at the first k ≥ N+1 with R_k < α (spec A5).

    R_k = Var_ddof(h_{k-N+1..k}) / Var_ddof(h_{1..k}) in float64. Each `update` is O(1)
    (amortised): Welford's algorithm for the whole history and a sliding Welford window,
    re-summed exactly now and then so that rounding cannot build up. Both run on shifted
    values, so rounding is relative to the spread of L_det, not to its level. Accuracy
    against a two-pass `math.fsum` recomputation is about 1e-12 relative.
    """

    def __init__(self, window: int, threshold: float, ddof: int = 0):
        _check_window(window, 2)
        if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) \
                or not 0.0 < threshold < 1.0:
            # α ≥ 1 would stop at once in the reference code; α ≤ 0 never stops (spec A5).
            raise ValueError(f"threshold must lie strictly between 0 and 1; got {threshold!r}")
        if isinstance(ddof, bool) or ddof not in (0, 1):
            raise ValueError(f"ddof must be 0 or 1; got {ddof!r}")
        self.window = window
        """N: how many of the latest values form the window."""
        self.threshold = float(threshold)
        """α: the stop fires when the ratio is strictly below it."""
        self.ddof = ddof
        """0 as numpy (the published code, default), 1 as torch.var (the paper's Fig. 11)."""
        self._reset()

    def _reset(self) -> None:
        self._history: list[float] = []
        # Welford states run on shifted values v - shift, so that rounding is relative to
        # the spread of L_det rather than to its level (a flat loss is ~0.1 ± 1e-4).
        self._shift = 0.0  # whole history: shifted by h_1
        self._mean = 0.0  # mean of the shifted history
        self._m2 = 0.0
        self._w_shift = 0.0  # window: shifted by its exact mean at the last re-sum
        self._w_mean = 0.0
        self._w_m2 = 0.0
        self._w_m2_at_sum = 0.0  # window M2 when it was last re-summed exactly
        self._slides = 0  # window slides since then
        self._nonfinite = False
        self._ratio: float | None = None
        self._stop_step: int | None = None
        self._constant_warning = False

    # -- reading ------------------------------------------------------------------------

    @property
    def ratio(self) -> float | None:
        """The latest ratio: None while undefined (fewer than N values, a non-finite value in
        the history, or the near-constant guard); exactly 1.0 at k == N."""
        return self._ratio

    @property
    def stopped(self) -> bool:
        """True from the update at which DVAR fired; sticky."""
        return self._stop_step is not None

    @property
    def stop_step(self) -> int | None:
        """k, the number of updates done when DVAR fired, or None."""
        return self._stop_step

    @property
    def count(self) -> int:
        """How many values have been seen."""
        return len(self._history)

    @property
    def window_fill(self) -> int:
        """min(count, window), for a progress bar while the window fills."""
        return min(len(self._history), self.window)

    @property
    def history(self) -> list[float]:
        """Every value seen, oldest first. Read-only: do not modify the list."""
        return self._history

    @property
    def constant_warning(self) -> bool:
        """True once the near-constant guard has applied with at least N values (sticky): L_det
        is not moving, which usually means a zero learning rate or a frozen embedding."""
        return self._constant_warning

    # -- updating -----------------------------------------------------------------------

    def update(self, value: float) -> bool:
        """Record the L_det after one more update; return True if stopped (now or before)."""
        x = float(value)
        self._history.append(x)
        k = len(self._history)
        if not math.isfinite(x):
            # numpy's var stays NaN from here on, so the ratio is undefined forever (spec A5).
            self._nonfinite = True
        if self._nonfinite:
            self._ratio = None
            return self.stopped
        if k == 1:
            self._shift = x
        xs = x - self._shift
        delta = xs - self._mean
        self._mean += delta / k
        self._m2 += delta * (xs - self._mean)
        if k <= self.window:
            self._w_shift, self._w_mean, self._w_m2 = self._shift, self._mean, self._m2
            self._w_m2_at_sum = self._w_m2
        else:
            self._slide(x, self._history[k - self.window - 1])
        self._ratio = self._compute_ratio(k)
        if self._stop_step is None and k > self.window and self._ratio is not None \
                and self._ratio < self.threshold:
            self._stop_step = k
        return self.stopped

    def _slide(self, new: float, old: float) -> None:
        """Replace ``old`` by ``new`` in the window's Welford state."""
        n = self.window
        new, old = new - self._w_shift, old - self._w_shift
        old_mean = self._w_mean
        self._w_mean = old_mean + (new - old) / n
        self._w_m2 = max(0.0, self._w_m2 + (new - old) * (new - self._w_mean + old - old_mean))
        self._slides += 1
        # Rounding error is relative to the M2 the window had; re-sum once per window length,
        # and as soon as M2 has shrunk a thousandfold (a loss flattening after a steep start).
        if self._slides >= n or self._w_m2 < 1e-3 * self._w_m2_at_sum:
            values = self._history[-n:]
            self._w_shift = math.fsum(values) / n
            self._w_mean = math.fsum(v - self._w_shift for v in values) / n
            self._w_m2 = math.fsum((v - self._w_shift - self._w_mean) ** 2 for v in values)
            self._w_m2_at_sum = self._w_m2
            self._slides = 0

    def _compute_ratio(self, k: int) -> float | None:
        if k < self.window:
            return None
        total = self._m2 / (k - self.ddof)
        if _is_constant(total, self._shift + self._mean):
            self._constant_warning = True
            return None
        if k == self.window:
            return 1.0  # the window is the whole history (spec A5)
        return (self._w_m2 / (self.window - self.ddof)) / total

    # -- checkpoints --------------------------------------------------------------------

    def state_dict(self) -> dict:
        """Plain data (JSON- and safetensors-metadata-friendly) that `from_state` restores."""
        return {
            "version": 1,
            "window": self.window,
            "threshold": self.threshold,
            "ddof": self.ddof,
            "history": list(self._history),
            "stop_step": self._stop_step,
        }

    def load_state_dict(self, state: dict) -> None:
        """Replay ``state["history"]`` under this object's window, threshold and ddof.

        With the same settings the result equals the saved stopper exactly, since the replay
        repeats the same float operations; with new settings the stop is re-decided.
        """
        self._reset()
        for value in state["history"]:
            self.update(value)

    @classmethod
    def from_state(cls, state: dict) -> "DVAR":
        """A DVAR with the saved settings and history."""
        dvar = cls(int(state["window"]), float(state["threshold"]), int(state.get("ddof", 0)))
        dvar.load_state_dict(state)
        return dvar

    def __repr__(self) -> str:
        return (f"DVAR(window={self.window}, threshold={self.threshold}, ddof={self.ddof}, "
                f"count={self.count}, ratio={self._ratio}, stop_step={self._stop_step})")


class _WindowMetric:
    """Shared plumbing of the Appendix-B diagnostics: a bounded deque and a latest value."""

    _minimum_window = 1

    def __init__(self, window: int):
        _check_window(window, self._minimum_window)
        self.window = window
        """n: how many of the latest values the metric looks at."""
        self._values: deque[float] = deque(maxlen=window)
        self.count = 0
        """How many values have been seen."""
        self.value: float | None = None
        """The latest metric value, or None while undefined."""

    def update(self, value: float) -> float | None:
        """Record one L_det value; return the metric (None while undefined)."""
        self._values.append(float(value))
        self.count += 1
        self.value = self._compute() if len(self._values) == self.window else None
        return self.value

    def _compute(self) -> float | None:
        raise NotImplementedError

    def state_dict(self) -> dict:
        """Plain data that `from_state` restores exactly."""
        return {"window": self.window, "values": list(self._values), "count": self.count,
                "value": self.value}

    def load_state_dict(self, state: dict) -> None:
        """Restore the window, count and latest value."""
        self._values = deque((float(v) for v in state["values"]), maxlen=self.window)
        self.count = int(state["count"])
        self.value = state["value"]

    @classmethod
    def from_state(cls, state: dict):
        """A metric with the saved settings and window."""
        metric = cls(int(state["window"]))
        metric.load_state_dict(state)
        return metric


class Hall(_WindowMetric):
    """Hall criterion (spec A8): (max − min) / mean of the last n values, once n exist."""

    def _compute(self) -> float | None:
        mean = math.fsum(self._values) / self.window
        if mean == 0.0:
            return None
        return (max(self._values) - min(self._values)) / mean


class Trend(_WindowMetric):
    """Trend (spec A8): OLS slope of the last n values against x = 0..n−1, in loss per update."""

    _minimum_window = 2

    def _compute(self) -> float | None:
        n = self.window
        x_mean = (n - 1) / 2
        # Σ(x − x̄)(w − w̄) = Σ(x − x̄)·w because Σ(x − x̄) = 0; Σ(x − x̄)² = n(n² − 1)/12.
        covariance = math.fsum((x - x_mean) * w for x, w in enumerate(self._values))
        return covariance / (n * (n * n - 1) / 12)


class EMAPercentile(_WindowMetric):
    """EMA percentile (spec A8): P_t = (EMA_t − EMA_{t−n}) / EMA_{t−n}, defined for t ≥ n.

    EMA_0 = h_1 and EMA_j = α·h_{j+1} + (1 − α)·EMA_{j−1} (pandas ``adjust=False``), t being
    the 0-based index of the newest value: the first number comes with the (n+1)-th update.
    """

    def __init__(self, window: int, alpha: float = 0.1):
        if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) \
                or not 0.0 < alpha <= 1.0:
            raise ValueError(f"alpha must lie in (0, 1]; got {alpha!r}")
        super().__init__(window)
        self.alpha = float(alpha)
        """The EMA smoothing factor (the paper's 0.1)."""
        self._values = deque(maxlen=window + 1)  # here: EMA_{t−n} .. EMA_t

    def update(self, value: float) -> float | None:
        """Record one L_det value; return P_t (None while t < n)."""
        h = float(value)
        ema = h if not self._values else self.alpha * h + (1 - self.alpha) * self._values[-1]
        self._values.append(ema)
        self.count += 1
        self.value = self._compute() if len(self._values) == self.window + 1 else None
        return self.value

    def _compute(self) -> float | None:
        past = self._values[0]
        if past == 0.0:
            return None
        return (self._values[-1] - past) / past

    def state_dict(self) -> dict:
        """Plain data that `from_state` restores exactly (the last n+1 EMA values)."""
        return {**super().state_dict(), "alpha": self.alpha}

    def load_state_dict(self, state: dict) -> None:
        """Restore the EMA values, count and latest value."""
        self._values = deque((float(v) for v in state["values"]), maxlen=self.window + 1)
        self.count = int(state["count"])
        self.value = state["value"]

    @classmethod
    def from_state(cls, state: dict) -> "EMAPercentile":
        """A metric with the saved window, alpha and EMA values."""
        metric = cls(int(state["window"]), float(state["alpha"]))
        metric.load_state_dict(state)
        return metric
