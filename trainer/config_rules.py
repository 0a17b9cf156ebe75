"""TrainConfig's value checks that span fields, as a table of rules.

A field's own type, choices and limits come from its metadata (`trainer.fields.coerce`). The
checks that need more than that (a trigger that can name files, a resolution that is a
multiple of 8, a device that fits the process count, a learning-rate schedule that fits the
scheduler and the step limit...) are the `RULES` below. Each rule names the field it reports
and the fields it reads, and sees only those, so the reads cannot be incomplete.

`TrainConfig.__post_init__` runs the whole table and raises the first problem; the setup form
(ti_tui/screens/form.py) runs only the rules that read the field the user just edited. Both
use the same functions, so both say the same words.

No rule reads a field another rule reports: each rule's verdict depends on its reads alone,
so checking one rule again never changes another's (tests/ui/test_form_field_checks.py).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from trainer import names, rate_schedule, schedules
from trainer.devices import check_device_text, default_device
from trainer.errors import ConfigError

__all__ = ["RULES", "Rule", "normal_device", "problems", "raise_first", "rules_reading"]


@dataclass(frozen=True)
class Rule:
    """One check of typed TrainConfig values: `check` gets a mapping of the `reads` fields
    (already coerced to their types) and returns one sentence for the user, or None."""

    field: str
    """The TrainConfig field the problem is reported on (the form shows it under that row)."""
    reads: tuple[str, ...]
    """Every field `check` looks at; the form checks the rule again when one of them changes."""
    check: Callable[[Mapping[str, Any]], str | None]

    def problem(self, values: Mapping[str, Any]) -> str | None:
        """The rule's sentence for `values` (a mapping with at least `reads`), or None.

        Raises KeyError when `values` lacks a field the rule reads."""
        return self.check({name: values[name] for name in self.reads})


def normal_device(text: str) -> str:
    """--device as TrainConfig keeps it: lower case, blank meaning the default (auto, or
    $TI_TUI_DEVICE)."""
    return text.strip().lower() or default_device()


# --- the checks ------------------------------------------------------------------------------


def _trigger(v: Mapping[str, Any]) -> str | None:
    # The trigger names folders and files: trainer/names.py keeps it inside them.
    try:
        names.check_trigger_text(v["placeholder_token"])
    except ConfigError as exc:
        return str(exc)
    return None


def _resolution(v: Mapping[str, Any]) -> str | None:
    # The VAE downsamples by 8: latents need a whole number of pixels per cell.
    size = v["resolution"]
    if size is not None and size % 8:
        return (f"Resolution (--resolution) must be a multiple of 8; got {size}. "
                f"Try {max(8, round(size / 8) * 8)}.")
    return None


def _initializer(v: Mapping[str, Any]) -> str | None:
    if not v["initializer_token"].strip():
        return ("Initializer (--initializer_token) is empty; give a word such as '*' or "
                "'random'.")
    return None


def _dvar_threshold(v: Mapping[str, Any]) -> str | None:
    # A ratio of variances: 1 or more never stops, 0 or less stops nothing (spec A5).
    threshold = v["dvar_threshold"]
    if not 0.0 < threshold < 1.0:
        return (f"DVAR threshold (--dvar_threshold) must lie strictly between 0 and 1 (the "
                f"paper uses 0.39); got {threshold}.")
    return None


def _adam_beta(name: str):
    # torch.optim.AdamW refuses 1.0 ("Invalid beta parameter"): its bias correction divides
    # by 1 - beta**t, which is 0 there. TrainConfig's metadata allows [0, 1] for the form.
    def problem(v: Mapping[str, Any]) -> str | None:
        if v[name] >= 1.0:
            return (f"Adam {name.rsplit('_', 1)[1]} (--{name}) must be below 1 (AdamW divides "
                    f"by 1 - beta^step); got {v[name]}.")
        return None
    return problem


def _device(v: Mapping[str, Any]) -> str | None:
    return check_device_text(normal_device(v["device"]), v["num_processes"])


def _push_to_hub(v: Mapping[str, Any]) -> str | None:
    if v["push_to_hub"]:
        return ("--push_to_hub is not supported: ti-tui never uploads. Drop the flag and "
                "upload the embedding yourself.")
    return None


def _learning_rate(v: Mapping[str, Any]) -> str | None:
    # Segments, never a list per step: checking a 10-million-step run costs what a 10-step
    # one does (the form checks this on every keystroke in the fields it reads).
    try:
        rates = rate_schedule.learning_rate_schedule(
            v["learning_rate"], scheduler=v["lr_scheduler"], warmup_steps=v["lr_warmup_steps"],
            max_steps=v["max_train_steps"], num_cycles=v["lr_num_cycles"], power=v["lr_power"],
            strict=v["strict_schedule"])
    except schedules.ScheduleError as exc:
        return f"Learning rate (--learning_rate): {exc}"
    bad = rates.first_unusable_rate()
    if bad is not None:
        # A1111 would train with these; a negative or NaN rate is never what anyone means.
        return (f"Learning rate (--learning_rate) {v['learning_rate']!r} gives the rate {bad}; "
                "use rates of 0 or more such as 5e-4.")
    return None


def _clip_value(v: Mapping[str, Any]) -> str | None:
    if v["clip_grad_mode"] == "none":
        return None
    try:
        rate_schedule.clip_schedule(v["clip_grad_value"], v["max_train_steps"],
                                strict=v["strict_schedule"])
    except schedules.ScheduleError as exc:
        return f"Clip value (--clip_grad_value): {exc}"
    return None


RULES: tuple[Rule, ...] = (
    Rule("placeholder_token", ("placeholder_token",), _trigger),
    Rule("resolution", ("resolution",), _resolution),
    Rule("initializer_token", ("initializer_token",), _initializer),
    Rule("dvar_threshold", ("dvar_threshold",), _dvar_threshold),
    Rule("adam_beta1", ("adam_beta1",), _adam_beta("adam_beta1")),
    Rule("adam_beta2", ("adam_beta2",), _adam_beta("adam_beta2")),
    Rule("device", ("device", "num_processes"), _device),
    Rule("push_to_hub", ("push_to_hub",), _push_to_hub),
    Rule("learning_rate", ("learning_rate", "lr_scheduler", "lr_warmup_steps", "max_train_steps",
                           "lr_num_cycles", "lr_power", "strict_schedule"), _learning_rate),
    Rule("clip_grad_value", ("clip_grad_mode", "clip_grad_value", "max_train_steps",
                             "strict_schedule"), _clip_value),
)
"""Every cross-field check of TrainConfig, in the order it raises them."""


def rules_reading(fields: Iterable[str]) -> tuple[Rule, ...]:
    """The rules that read any of `fields`, in table order: what to check again after an
    edit of those fields."""
    edited = set(fields)
    return tuple(rule for rule in RULES if edited.intersection(rule.reads))


def problems(values: Mapping[str, Any], rules: Iterable[Rule] = RULES) -> dict[str, str]:
    """{field: sentence} for each of `rules` that fails on the typed `values` (the first
    failing rule per field, in table order)."""
    found: dict[str, str] = {}
    for rule in rules:
        if rule.field not in found:
            problem = rule.problem(values)
            if problem is not None:
                found[rule.field] = problem
    return found


def raise_first(values: Mapping[str, Any]) -> None:
    """Raise ConfigError (naming the rule's field) for the first rule in `RULES` that fails
    on the typed `values`: what TrainConfig's constructor does."""
    for rule in RULES:
        problem = rule.problem(values)
        if problem is not None:
            raise ConfigError(problem, field=rule.field)
