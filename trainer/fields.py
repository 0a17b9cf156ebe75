"""How TrainConfig fields are declared and how loose values become typed ones.

`opt()` declares a field with everything the flags, the form and validation need (help,
label, group, choices, limits, aliases). `coerce()` turns a form string or a TOML value into
the field's type, or raises a ConfigError that names the field and says what to do.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import field
from typing import Any

from trainer.errors import ConfigError


def opt(default: Any, help: str, *, label: str, group: str, flags: tuple[str, ...] = (),
        choices: tuple[str, ...] | None = None, minimum: float | None = None,
        maximum: float | None = None, accepted_only: bool = False, factory: Any = None,
        repeatable: bool = False):
    """A TrainConfig field with everything the flags, the form and validation need.

    `repeatable`: the flag may be given several times; the values are joined with
    os.pathsep (a str field holding a list of folders).
    """
    meta = {"help": help, "label": label, "group": group, "flags": flags, "choices": choices,
            "minimum": minimum, "maximum": maximum, "accepted_only": accepted_only,
            "repeatable": repeatable}
    if factory is not None:
        return field(default_factory=factory, metadata=meta)
    return field(default=default, metadata=meta)


def describe(f: dataclasses.Field) -> str:
    """How messages name a field: its label and its flag."""
    return f"{f.metadata['label']} (--{f.name})"


def coerce(f: dataclasses.Field, value: Any) -> Any:
    """Turn a loose value (a form string, a TOML number) into the field's type; ConfigError
    naming the field for a missing value, a bad type, a choice not offered or a value out of
    its limits."""
    kind = f.type if isinstance(f.type, str) else f.type.__name__
    optional = "None" in kind
    base = kind.replace(" | None", "").strip()
    if value is None or (optional and isinstance(value, str) and value.strip().lower() in ("", "none")):
        if optional:
            return None
        if base == "str" and f.default is not dataclasses.MISSING and value is None:
            return f.default
        raise ConfigError(f"{describe(f)} needs a value.", field=f.name)
    if base == "bool":
        value = _as_bool(f, value)
    elif base == "int":
        value = _as_int(f, value)
    elif base == "float":
        value = _as_float(f, value)
    else:
        value = str(value) if not isinstance(value, str) else value
    meta = f.metadata
    if meta["choices"] and value not in meta["choices"]:
        raise ConfigError(f"{describe(f)} must be one of {', '.join(meta['choices'])}; got "
                          f"{value!r}.", field=f.name)
    if base in ("int", "float"):
        lo, hi = meta["minimum"], meta["maximum"]
        if lo is not None and value < lo:
            raise ConfigError(f"{describe(f)} must be at least {_fmt(lo)}; got {_fmt(value)}.",
                              field=f.name)
        if hi is not None and value > hi:
            raise ConfigError(f"{describe(f)} must be at most {_fmt(hi)}; got {_fmt(value)}.",
                              field=f.name)
    return value


def _fmt(number: float) -> str:
    return str(int(number)) if float(number).is_integer() else str(number)


def _as_bool(f: dataclasses.Field, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on", "y"):
        return True
    if text in ("0", "false", "no", "off", "n"):
        return False
    raise ConfigError(f"{describe(f)} must be true or false; got {value!r}.", field=f.name)


def _as_int(f: dataclasses.Field, value: Any) -> int:
    if isinstance(value, bool):
        raise ConfigError(f"{describe(f)} must be a whole number; got {value!r}.", field=f.name)
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    try:
        return int(str(value).strip().replace("_", ""))
    except ValueError:
        raise ConfigError(f"{describe(f)} must be a whole number; got {value!r}.",
                          field=f.name) from None


def _as_float(f: dataclasses.Field, value: Any) -> float:
    try:
        number = float(str(value).strip()) if not isinstance(value, (int, float)) else float(value)
    except ValueError:
        number = math.nan
    if isinstance(value, bool) or not math.isfinite(number):
        raise ConfigError(f"{describe(f)} must be a number; got {value!r}.", field=f.name)
    return number
