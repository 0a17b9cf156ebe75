"""DVAR early stopping (spec A5) and the Appendix-B diagnostics (spec A8)."""

from __future__ import annotations

import json
import math
import random

import pytest

from trainer.stopping import DVAR, DVAR_PRESETS, EMAPercentile, Hall, Trend, dvar_ratio

# N = 4: ddof 0 gives R_7 = 21/64 = 0.328125, ddof 1 gives R_7 = 0.375; R_8 = 0 for both.
STEP_SERIES = [0.0, 1.0, 0.0, 1.0, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5]


def feed(dvar: DVAR, values) -> DVAR:
    for value in values:
        dvar.update(value)
    return dvar


def decaying_then_flat(count: int, seed: int = 0) -> list[float]:
    rng = random.Random(seed)
    return [0.1 + 0.05 * math.exp(-j / 50) + rng.gauss(0, 1e-3) for j in range(count)]


# -- arguments --------------------------------------------------------------------------------

@pytest.mark.parametrize("window,threshold,ddof", [
    (1, 0.39, 0), (0, 0.39, 0), (2.5, 0.39, 0), (True, 0.39, 0), ("282", 0.39, 0),
    (282, 0.0, 0), (282, 1.0, 0), (282, 1.5, 0), (282, -0.1, 0), (282, math.nan, 0),
    (282, 0.39, 2), (282, 0.39, -1), (282, 0.39, True),
])
def test_invalid_arguments_raise_value_error(window, threshold, ddof):
    with pytest.raises(ValueError):
        DVAR(window, threshold, ddof)


def test_presets_cite_the_published_settings():
    assert DVAR_PRESETS["paper-v1"] == (282, 0.39)
    assert DVAR_PRESETS["ti-v2"] == (310, 0.15)
    for window, threshold in DVAR_PRESETS.values():
        DVAR(window, threshold)


# -- the decision -----------------------------------------------------------------------------

def test_ratio_is_undefined_before_n_and_exactly_one_at_n():
    dvar = DVAR(4, 0.99)
    for k, value in enumerate(STEP_SERIES[:4], start=1):
        assert dvar.update(value) is False
        assert dvar.ratio == (1.0 if k == 4 else None)
        assert dvar.window_fill == k
    assert dvar.count == 4


def test_earliest_stop_is_n_plus_one():
    dvar = DVAR(2, 0.5)
    assert dvar.update(0.0) is False
    assert dvar.update(1.0) is False  # k == N: ratio 1, never a stop
    assert dvar.ratio == 1.0
    assert dvar.update(1.0) is True  # window [1, 1] has variance 0
    assert dvar.ratio == 0.0
    assert dvar.stop_step == 3
    assert dvar.window_fill == 2


def test_hand_computed_ratio_and_strict_comparison():
    assert dvar_ratio(STEP_SERIES[:7], 4) == 0.328125
    assert feed(DVAR(4, 0.328125), STEP_SERIES).stop_step == 8  # R_7 == α is no stop
    assert feed(DVAR(4, 0.328126), STEP_SERIES).stop_step == 7


def test_stop_is_sticky():
    dvar = feed(DVAR(4, 0.35), STEP_SERIES[:7])
    assert dvar.stopped and dvar.stop_step == 7
    for value in (5.0, -5.0, 5.0, -5.0):
        assert dvar.update(value) is True
    assert dvar.ratio > 0.35
    assert dvar.stop_step == 7
    assert dvar.count == 11


def test_ddof_one_relation_and_one_step_shift():
    # TV-A5b: R_unbiased = R_biased · N(n−1)/((N−1)n), which can move the stop by one update.
    rng = random.Random(3)
    values = [rng.random() for _ in range(60)]
    window = 10
    for n in range(window + 1, 61, 7):
        biased, unbiased = dvar_ratio(values[:n], window, 0), dvar_ratio(values[:n], window, 1)
        assert unbiased == pytest.approx(biased * window * (n - 1) / ((window - 1) * n), rel=1e-12)
    assert dvar_ratio(STEP_SERIES[:7], 4, ddof=1) == 0.375
    assert feed(DVAR(4, 0.35, ddof=0), STEP_SERIES).stop_step == 7
    assert feed(DVAR(4, 0.35, ddof=1), STEP_SERIES).stop_step == 8


def test_nan_never_stops():
    dvar = DVAR(4, 0.35)
    feed(dvar, STEP_SERIES[:6] + [math.nan] + STEP_SERIES[6:] * 5)
    assert not dvar.stopped
    assert dvar.ratio is None
    assert dvar_ratio(STEP_SERIES[:6] + [math.nan, 0.5], 4) is None
    dvar = feed(DVAR(4, 0.35), [math.inf] + STEP_SERIES)
    assert not dvar.stopped


def test_constant_series_is_guarded_not_stopped():
    # TV-A3b: 0.3 is not representable; a naive ratio of a constant series can be 0.
    dvar = DVAR(282, 0.39)
    for k in range(1, 1001):
        dvar.update(0.3)
        assert dvar.constant_warning == (k >= 282)
    assert dvar.ratio is None
    assert not dvar.stopped
    assert dvar_ratio([0.3] * 1000, 282) is None
    # The guard looks at the whole history: a loss that moved and then went flat still stops.
    moved = feed(DVAR(3, 0.39), [0.1, 0.2, 0.1] + [0.3] * 500)
    assert not moved.constant_warning and moved.stop_step == 6


def test_ratio_is_affine_invariant():
    # TV-A4: the loss reduction (sum vs mean, any a·L + b) cannot change the decision.
    values = decaying_then_flat(600)
    base = feed(DVAR(282, 0.39), values)
    for a, b in ((2.0, 1.0), (-3.0, 0.5), (1e-3, 1.0), (4096.0, 0.0)):
        scaled = feed(DVAR(282, 0.39), [a * v + b for v in values])
        assert scaled.ratio == pytest.approx(base.ratio, rel=1e-9)
        assert scaled.stop_step == base.stop_step


def test_decaying_then_flat_stops_at_a_plausible_step():
    dvar = DVAR(282, 0.39)
    stop = None
    for value in decaying_then_flat(3000):
        if dvar.update(value):
            stop = dvar.stop_step
            break
    assert stop is not None and 283 <= stop <= 600
    assert dvar.ratio < 0.39
    assert dvar.ratio == pytest.approx(dvar_ratio(dvar.history, 282), rel=1e-9)


@pytest.mark.parametrize("ddof", [0, 1])
def test_running_ratio_matches_two_pass_recomputation(ddof):
    rng = random.Random(7)
    noise = [rng.gauss(0.15, 0.01) for _ in range(5000)]
    steep = [1e3 * math.exp(-j / 30) + 0.2 + rng.gauss(0, 1e-7) for j in range(1500)]
    for values in (noise, steep):
        dvar = DVAR(282, 0.01, ddof)
        for k, value in enumerate(values, start=1):
            dvar.update(value)
            if k % 50 == 0 or k in (281, 282, 283):
                expected = dvar_ratio(values[:k], 282, ddof)
                if expected is None:
                    assert dvar.ratio is None
                else:
                    assert dvar.ratio == pytest.approx(expected, rel=1e-9)


def test_state_dict_round_trip_continues_identically():
    values = decaying_then_flat(700, seed=5)
    original = feed(DVAR(282, 0.39, ddof=1), values[:400])
    state = json.loads(json.dumps(original.state_dict()))
    restored = DVAR.from_state(state)
    assert (restored.window, restored.threshold, restored.ddof) == (282, 0.39, 1)
    assert restored.history == original.history
    assert restored.ratio == original.ratio and restored.stop_step == original.stop_step
    for value in values[400:]:
        assert restored.update(value) == original.update(value)
        assert restored.ratio == original.ratio
    assert restored.stop_step == original.stop_step


def test_load_state_dict_re_decides_under_new_settings():
    state = feed(DVAR(4, 0.35), STEP_SERIES).state_dict()
    assert state["stop_step"] == 7
    other = DVAR(4, 0.328125)
    other.load_state_dict(state)
    assert other.stop_step == 8 and other.count == len(STEP_SERIES)


def test_dvar_ratio_helper():
    assert dvar_ratio([1.0, 2.0], 3) is None
    assert dvar_ratio([1.0, 2.0, 4.0], 3) == 1.0
    assert dvar_ratio([1.0, 2.0, 4.0], 2) == pytest.approx(1.0 / (14 / 9))


# -- Appendix B diagnostics (spec A8) ---------------------------------------------------------

def test_ema_percentile_hand_computed():
    # α = 0.5: EMA = 1, 2, 3.5 for h = 1, 3, 5.
    metric = EMAPercentile(1, alpha=0.5)
    assert [metric.update(h) for h in (1.0, 3.0, 5.0)] == [None, 1.0, 0.75]
    metric = EMAPercentile(2, alpha=0.5)
    assert [metric.update(h) for h in (1.0, 3.0, 5.0)] == [None, None, 2.5]
    assert metric.value == 2.5 and metric.count == 3


def test_ema_percentile_default_alpha_matches_a_direct_computation():
    values = decaying_then_flat(40)
    ema = [values[0]]
    for h in values[1:]:
        ema.append(0.1 * h + 0.9 * ema[-1])
    metric = EMAPercentile(5)
    results = [metric.update(h) for h in values]
    assert results[:5] == [None] * 5
    for t in range(5, 40):
        assert results[t] == pytest.approx((ema[t] - ema[t - 5]) / ema[t - 5], rel=1e-12)


def test_hall_hand_computed():
    metric = Hall(3)
    assert [metric.update(h) for h in (1.0, 2.0, 3.0, 6.0)] == [None, None, 1.0,
                                                                  pytest.approx(12 / 11)]


def test_trend_hand_computed():
    metric = Trend(3)
    assert [metric.update(h) for h in (1.0, 2.0, 3.0, 6.0)] == [None, None, 1.0, 2.0]
    assert Trend(2).update(1.0) is None


@pytest.mark.parametrize("make", [lambda: EMAPercentile(3, 0.2), lambda: Hall(3),
                                  lambda: Trend(3)])
def test_diagnostics_state_round_trip(make):
    values = decaying_then_flat(20, seed=2)
    metric = make()
    for value in values[:10]:
        metric.update(value)
    restored = type(metric).from_state(json.loads(json.dumps(metric.state_dict())))
    assert restored.value == metric.value and restored.count == metric.count
    for value in values[10:]:
        assert restored.update(value) == metric.update(value)


def test_diagnostics_reject_bad_arguments():
    for make in (lambda: Hall(0), lambda: Trend(1), lambda: EMAPercentile(0),
                 lambda: EMAPercentile(3, alpha=0.0), lambda: EMAPercentile(3, alpha=1.5),
                 lambda: Hall(2.0)):
        with pytest.raises(ValueError):
            make()
