"""A1111 schedule strings (spec Part B), HF scheduler shapes, and how they combine."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import pytest

from trainer.rate_schedule import (
    HF_SCHEDULERS,
    clip_values,
    hf_lr_factor,
    hf_rates,
    learning_rates,
    next_change,
)
from trainer.schedules import (
    ScheduleError,
    is_piecewise,
    lr_rates,
    parse_schedule,
    schedule_end,
)

SPEC_EXAMPLE = "0.005:100, 1e-3:1000, 1e-5"
ROOT = Path(__file__).resolve().parents[2]


def test_modules_import_without_torch_numpy_or_ui():
    code = ("import sys; import trainer.schedules, trainer.rate_schedule, trainer.stopping; "
            "bad = {'torch', 'numpy', 'textual', 'rich', 'ti_tui'} & set(sys.modules); "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)


# -- spec B1: parsing -------------------------------------------------------------------------

def test_bare_rate_is_constant_until_max_steps():
    assert parse_schedule("0.005", 50) == [(0.005, 50)]
    assert lr_rates("0.005", 50) == [0.005] * 50
    assert lr_rates(" 5e-4 ", 3, strict=True) == [5e-4] * 3


def test_spec_example():
    assert parse_schedule(SPEC_EXAMPLE, 5000) == [(0.005, 100), (1e-3, 1000), (1e-5, 5000)]
    rates = lr_rates(SPEC_EXAMPLE, 5000)
    assert len(rates) == 5000
    assert rates[:100] == [0.005] * 100
    assert rates[100:1000] == [1e-3] * 900
    assert rates[1000:] == [1e-5] * 4000


def test_end_minus_one_means_until_the_end_and_stops_parsing():
    text = "0.005:100, 1e-3:-1, 1e-5"
    assert parse_schedule(text, 500) == [(0.005, 100), (1e-3, 500)]
    assert lr_rates(text, 500)[100:] == [1e-3] * 400
    assert parse_schedule("0.005:-1", 70) == [(0.005, 70)]


def test_minus_one_as_a_bare_rate_is_a_negative_rate_in_lax_mode_only():
    assert lr_rates("-1", 2) == [-1.0, -1.0]
    with pytest.raises(ScheduleError, match="positive"):
        parse_schedule("-1", 2, strict=True)


def test_end_beyond_max_steps_clamps_and_stops_parsing():
    text = "0.005:100, 1e-3:1000, garbage"
    assert parse_schedule(text, 500) == [(0.005, 100), (1e-3, 500)]
    with pytest.raises(ScheduleError, match="garbage"):
        parse_schedule(text, 500, strict=True)
    # end == max_steps does not stop parsing; the later pair is entered but never reached.
    assert parse_schedule("0.005:500, 1e-3:600", 500) == [(0.005, 500), (1e-3, 500)]
    assert lr_rates("0.005:500, 1e-3:600", 500) == [0.005] * 500


def test_schedule_ending_early_ends_training():
    rates = lr_rates("0.005:100, 1e-3:1000", 5000)
    assert len(rates) == 1000
    assert schedule_end("0.005:100, 1e-3:1000", 5000) == 1000
    assert schedule_end(SPEC_EXAMPLE, 5000) == 5000


def test_non_monotonic_ends_switch_one_pair_per_update():
    text = "0.005:100, 1e-3:50, 1e-4"
    assert parse_schedule(text, 300) == [(0.005, 100), (1e-3, 50), (1e-4, 300)]
    rates = lr_rates(text, 300)
    assert len(rates) == 300
    assert rates[99:102] == [0.005, 1e-3, 1e-4]
    assert rates.count(1e-3) == 1
    with pytest.raises(ScheduleError, match="increase"):
        parse_schedule(text, 300, strict=True)


def test_three_fields_read_as_constant_in_lax_mode_refused_in_strict():
    assert parse_schedule("0.005:100:200, 1e-3", 400) == [(0.005, 400)]
    with pytest.raises(ScheduleError, match="3 fields"):
        parse_schedule("0.005:100:200", 400, strict=True)


def test_decimal_comma_is_constant_zero_in_lax_mode_refused_in_strict():
    # TV-B3: "0,005" splits into "0" and "005": a constant rate of 0.0, no error.
    assert parse_schedule("0,005", 100) == [(0.0, 100)]
    assert lr_rates("0,005", 4) == [0.0] * 4
    for text in ("0,005", "1e-3:100, 0,5"):
        with pytest.raises(ScheduleError, match="decimal comma"):
            parse_schedule(text, 100, strict=True)


def test_thousands_separator_refused_in_strict():
    assert parse_schedule("0.005:1,000", 5000) == [(0.005, 1), (0.0, 5000)]
    with pytest.raises(ScheduleError, match="thousands"):
        parse_schedule("0.005:1,000", 5000, strict=True)


def test_blank_pieces_and_trailing_commas_are_skipped():
    expected = parse_schedule(SPEC_EXAMPLE, 5000)
    for text in ("0.005:100, , 1e-3:1000,1e-5,", ",0.005:100,1e-3:1000,  ,1e-5, ,"):
        assert parse_schedule(text, 5000) == expected
        assert parse_schedule(text, 5000, strict=True) == expected


def test_ends_must_be_whole_numbers():
    for text, bad in (("0.005:100.0", "100.0"), ("0.005:1e3", "1e3"), ("0.005:abc", "abc")):
        with pytest.raises(ScheduleError, match=f'"{bad}" is not a whole step number'):
            parse_schedule(text, 5000)
    assert parse_schedule("0.005: 100 ,1e-5", 5000) == [(0.005, 100), (1e-5, 5000)]


def test_pairs_ending_at_or_before_zero_are_skipped_in_lax_mode():
    assert parse_schedule("0.005:0, 1e-3:-5, 1e-4", 10) == [(1e-4, 10)]
    for text in ("0.005:0, 1e-4", "0.005:-5, 1e-4"):
        with pytest.raises(ScheduleError, match="positive step"):
            parse_schedule(text, 10, strict=True)
    with pytest.raises(ScheduleError):
        parse_schedule("0.005:0", 10)


def test_strict_requires_bare_rate_and_minus_one_to_be_last():
    assert parse_schedule("0.005, 1e-3:100", 500) == [(0.005, 500)]
    with pytest.raises(ScheduleError, match="last piece"):
        parse_schedule("0.005, 1e-3:100", 500, strict=True)
    with pytest.raises(ScheduleError, match="last piece"):
        parse_schedule("0.005:-1, 1e-3", 500, strict=True)


def test_strict_accepts_good_strings():
    assert parse_schedule(SPEC_EXAMPLE, 5000, strict=True) == parse_schedule(SPEC_EXAMPLE, 5000)
    assert parse_schedule("0.005:100, 1e-3:-1", 500, strict=True) == [(0.005, 100), (1e-3, 500)]
    assert parse_schedule("0.005:100, 1e-3:1000", 5000, strict=True) == [(0.005, 100), (1e-3, 1000)]


# -- spec B3: resumption ----------------------------------------------------------------------

def test_resume_drops_pairs_ending_at_or_before_cur_step():
    assert parse_schedule(SPEC_EXAMPLE, 5000, cur_step=100) == [(1e-3, 1000), (1e-5, 5000)]
    assert parse_schedule(SPEC_EXAMPLE, 5000, cur_step=99) == [(0.005, 100), (1e-3, 1000),
                                                                  (1e-5, 5000)]
    rates = lr_rates(SPEC_EXAMPLE, 5000, cur_step=99)
    assert len(rates) == 4901
    assert rates[:2] == [0.005, 1e-3]
    resumed = lr_rates(SPEC_EXAMPLE, 5000, cur_step=100)
    assert resumed == lr_rates(SPEC_EXAMPLE, 5000)[100:]
    assert schedule_end("0.005:100, 1e-3:1000", 5000, cur_step=200) == 1000


def test_resume_past_every_pair_is_an_error():
    for strict in (False, True):
        with pytest.raises(ScheduleError, match="step 200"):
            parse_schedule("0.005:100", 1000, cur_step=200, strict=strict)


def test_garbage_rate_in_a_skipped_pair_is_only_caught_in_strict_mode():
    assert parse_schedule("abc:100, 1e-3", 1000, cur_step=200) == [(1e-3, 1000)]
    with pytest.raises(ScheduleError, match='"abc" is not a number'):
        parse_schedule("abc:100, 1e-3", 1000)
    with pytest.raises(ScheduleError, match='"abc" is not a number'):
        parse_schedule("abc:100, 1e-3", 1000, cur_step=200, strict=True)
    with pytest.raises(ScheduleError, match="positive"):
        parse_schedule("-0.005:100, 1e-3", 1000, cur_step=200, strict=True)


def test_resume_at_or_after_max_steps_runs_nothing():
    assert lr_rates("0.005", 100, cur_step=100) == []
    assert clip_values("0.1", 100, cur_step=100) == []
    assert schedule_end("0.005", 100, cur_step=100) == 100


# -- spec B4: clip schedule -------------------------------------------------------------------

def test_clip_values_hold_the_last_value():
    assert clip_values("0.1:100", 300) == [0.1] * 300
    values = clip_values("0.1:100, 0.05:200", 300)
    assert values == [0.1] * 100 + [0.05] * 200
    assert len(lr_rates("0.1:100, 0.05:200", 300)) == 200
    assert clip_values("0.1:100, 0.05:200", 300, cur_step=150) == [0.05] * 150
    assert len(clip_values("0.1:100, 0.05:200, 0.01:250", 300, cur_step=7)) == 293


# -- non-finite and malformed -----------------------------------------------------------------

def test_inf_and_nan_accepted_lax_refused_strict():
    assert lr_rates("inf", 2) == [math.inf, math.inf]
    assert all(math.isnan(rate) for rate in lr_rates("nan", 2))
    for text in ("inf", "nan", "0", "1e-3:100, nan", "-0.005"):
        with pytest.raises(ScheduleError, match="positive finite"):
            parse_schedule(text, 200, strict=True)


@pytest.mark.parametrize("text", ["", "   ", ",", " , ,"])
def test_empty_string_is_an_error(text):
    for strict in (False, True):
        with pytest.raises(ScheduleError, match="empty"):
            parse_schedule(text, 100, strict=strict)


def test_error_message_names_the_problem_and_shows_an_example():
    with pytest.raises(ScheduleError) as info:
        parse_schedule("0.005:abc", 100)
    message = str(info.value)
    assert message.startswith('Invalid learning rate schedule "0.005:abc"')
    assert '"abc" is not a whole step number' in message
    assert '"0.005:100, 1e-3:1000, 1e-5"' in message
    assert isinstance(info.value, ValueError)
    with pytest.raises(ScheduleError, match="Invalid learning rate schedule"):
        clip_values("x", 100)


# -- helpers for the dashboard ----------------------------------------------------------------

def test_is_piecewise():
    assert not is_piecewise("5e-4")
    assert not is_piecewise(" 5e-4, ")
    assert is_piecewise("5e-4:100")
    assert is_piecewise("5e-4:-1")
    assert is_piecewise("0,005")
    assert is_piecewise(SPEC_EXAMPLE)


def test_next_change():
    assert next_change(SPEC_EXAMPLE, 5000, 0) == (1e-3, 100)
    assert next_change(SPEC_EXAMPLE, 5000, 99) == (1e-3, 100)
    assert next_change(SPEC_EXAMPLE, 5000, 100) == (1e-5, 1000)
    assert next_change(SPEC_EXAMPLE, 5000, 1000) is None
    assert next_change("0.005", 5000, 3) is None
    assert next_change("0.005:100, 0.005:200, 1e-4", 500, 10) == (1e-4, 200)
    assert next_change("0.005:100, 1e-3:50, 1e-4", 300, 99) == (1e-3, 100)
    assert next_change("0.005:100, 1e-3:50, 1e-4", 300, 100) == (1e-4, 101)
    assert next_change(SPEC_EXAMPLE, 5000, 5000) is None
    assert next_change(SPEC_EXAMPLE, 5000, 150, cur_step=120) == (1e-5, 1000)


# -- HF scheduler shapes against diffusers ----------------------------------------------------

def _diffusers_rates(name, base, warmup, total, steps, num_cycles=1, power=1.0):
    torch = pytest.importorskip("torch")
    optimization = pytest.importorskip("diffusers.optimization")
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=base)
    scheduler = optimization.get_scheduler(name, optimizer, num_warmup_steps=warmup,
                                           num_training_steps=total, num_cycles=num_cycles,
                                           power=power)
    rates = []
    for _ in range(steps):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()  # once after each optimizer update, as the diffusers example does
    return rates


@pytest.mark.parametrize("name", HF_SCHEDULERS)
@pytest.mark.parametrize("warmup,num_cycles,power", [(10, 1, 1.0), (0, 3, 2.0), (7, 2, 0.5)])
def test_hf_factors_match_diffusers(name, warmup, num_cycles, power):
    base, total = 5e-3, 50
    expected = _diffusers_rates(name, base, warmup, total, 56, num_cycles, power)
    ours = hf_rates(base, name, warmup_steps=warmup, total_steps=total, num_cycles=num_cycles,
                    power=power, stop=56)
    assert ours == pytest.approx(expected, rel=1e-12, abs=1e-20)
    for step in (0, warmup, 25, 49):
        factor = hf_lr_factor(name, step, warmup_steps=warmup, total_steps=total,
                              num_cycles=num_cycles, power=power, base_lr=base)
        assert base * factor == pytest.approx(expected[step], rel=1e-12, abs=1e-20)


@pytest.mark.parametrize("name", HF_SCHEDULERS)
def test_learning_rates_plain_number_matches_diffusers_and_resumes(name):
    expected = _diffusers_rates(name, 2e-3, 10, 60, 60, num_cycles=2, power=2.0)
    full = learning_rates("5e-4", scheduler=name, warmup_steps=10, max_steps=60,
                          num_cycles=2, power=2.0, scale=4.0)
    assert full == pytest.approx(expected, rel=1e-12, abs=1e-20)
    resumed = learning_rates("5e-4", scheduler=name, warmup_steps=10, max_steps=60,
                             num_cycles=2, power=2.0, scale=4.0, cur_step=23)
    assert resumed == full[23:]


def test_cosine_is_a_half_cosine_whatever_num_cycles_as_in_get_scheduler():
    kwargs = dict(warmup_steps=0, total_steps=100, power=1.0)
    assert hf_lr_factor("cosine", 50, num_cycles=3, **kwargs) == pytest.approx(0.5)
    assert hf_lr_factor("cosine_with_restarts", 50, num_cycles=2, **kwargs) == pytest.approx(1.0)


def test_polynomial_needs_a_rate_above_its_end_rate():
    with pytest.raises(ScheduleError, match="base_lr"):
        hf_lr_factor("polynomial", 3, warmup_steps=0, total_steps=10)
    with pytest.raises(ScheduleError, match="1e-7"):
        learning_rates("1e-8", scheduler="polynomial", warmup_steps=0, max_steps=10)


# -- combination rules ------------------------------------------------------------------------

def test_piecewise_with_constant_ignores_warmup_and_scales():
    rates = learning_rates(SPEC_EXAMPLE, scheduler="constant", warmup_steps=500,
                           max_steps=2000, scale=2.0)
    assert rates == [2 * rate for rate in lr_rates(SPEC_EXAMPLE, 2000)]


def test_piecewise_with_constant_with_warmup_multiplies_the_warmup():
    text = "0.004:10, 1e-3:20"
    rates = learning_rates(text, scheduler="constant_with_warmup", warmup_steps=4, max_steps=100)
    assert len(rates) == 20  # the string still ends training early
    assert rates[:5] == pytest.approx([0.0, 0.001, 0.002, 0.003, 0.004])
    assert rates[5:] == pytest.approx([0.004] * 5 + [1e-3] * 10)
    resumed = learning_rates(text, scheduler="constant_with_warmup", warmup_steps=4,
                             max_steps=100, cur_step=2)
    assert resumed == rates[2:]


@pytest.mark.parametrize("name", ["linear", "cosine", "cosine_with_restarts", "polynomial"])
def test_piecewise_with_a_decaying_scheduler_is_refused(name):
    with pytest.raises(ScheduleError) as info:
        learning_rates(SPEC_EXAMPLE, scheduler=name, warmup_steps=0, max_steps=2000)
    message = str(info.value)
    assert f"cannot be combined with --lr_scheduler {name}" in message
    assert "--lr_scheduler constant" in message


def test_plain_number_combines_with_any_scheduler():
    rates = learning_rates("1e-3", scheduler="linear", warmup_steps=0, max_steps=4)
    assert rates == pytest.approx([1e-3, 7.5e-4, 5e-4, 2.5e-4])
    assert learning_rates("1e-3", scheduler="constant", warmup_steps=9, max_steps=3) == [1e-3] * 3


def test_unknown_scheduler_lists_the_choices():
    with pytest.raises(ScheduleError) as info:
        learning_rates("1e-3", scheduler="cosine_annealing", warmup_steps=0, max_steps=10)
    assert all(name in str(info.value) for name in HF_SCHEDULERS)


def test_learning_rates_strict_passes_through():
    with pytest.raises(ScheduleError, match="3 fields"):
        learning_rates("0.005:1:2", scheduler="constant", warmup_steps=0, max_steps=10,
                       strict=True)
    assert learning_rates("0.005:1:2", scheduler="constant", warmup_steps=0,
                          max_steps=3) == [0.005] * 3
