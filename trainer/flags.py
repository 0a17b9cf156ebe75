"""Command-line flags generated from TrainConfig's fields, never written by hand.

Each field becomes `--name` (plus its invokeai-ti aliases, e.g. `--trigger_term`). Booleans get
both directions, `--scale_lr` and `--no_scale_lr`, because invokeai-ti's `--scale_lr` could not
be turned off. Every flag defaults to "not given" (argparse.SUPPRESS) so that `--config
run.toml` can be overridden by exactly the flags the user typed, and a resumed run knows what
changed.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from typing import Any, NoReturn

from trainer.config import TrainConfig
from trainer.errors import ConfigError

GROUP_TITLES = {
    "model": "Model and paths",
    "token": "The new word",
    "data": "Training images",
    "training": "Run length and batches",
    "optim": "Learning rate and optimizer",
    "speed": "Precision, speed and processes",
    "stopping": "Early stopping (DVAR)",
    "output": "Saving, checkpoints and previews",
}


class FriendlyParser(argparse.ArgumentParser):
    """argparse that reports a bad flag as a ConfigError (one line, exit 2) instead of usage."""

    def error(self, message: str) -> NoReturn:
        """argparse's hook for a bad command line: raises ConfigError naming --help."""
        raise ConfigError(f"{message}; see `{self.prog} --help`.")


def add_config_flags(parser: argparse.ArgumentParser) -> None:
    """Add one flag per TrainConfig field, grouped as the help screen shows them."""
    groups: dict[str, argparse._ArgumentGroup] = {}
    for f in dataclasses.fields(TrainConfig):
        meta = f.metadata
        group = groups.get(meta["group"])
        if group is None:
            group = groups[meta["group"]] = parser.add_argument_group(GROUP_TITLES[meta["group"]])
        names = [f"--{f.name}", *meta["flags"]]
        # argparse %-formats help strings: a literal % ("~20% slower") must be doubled.
        help_text = (meta["help"] + _default_note(f)).replace("%", "%%")
        if "bool" in str(f.type):
            group.add_argument(*names, dest=f.name, action="store_const", const=True,
                               default=argparse.SUPPRESS, help=help_text)
            group.add_argument(f"--no_{f.name}", dest=f.name, action="store_const",
                               const=False, default=argparse.SUPPRESS, help=argparse.SUPPRESS)
        else:
            group.add_argument(*names, dest=f.name, default=argparse.SUPPRESS,
                               action="append" if meta.get("repeatable") else "store",
                               metavar=_metavar(f), help=help_text)


def _metavar(f: dataclasses.Field) -> str:
    if f.metadata["choices"]:
        return "{" + ",".join(f.metadata["choices"]) + "}"
    kind = str(f.type)
    return "N" if "int" in kind else "X" if "float" in kind else "TEXT"


def _default_note(f: dataclasses.Field) -> str:
    if f.default is dataclasses.MISSING or f.default in (None, ""):
        return ""
    if isinstance(f.default, bool):
        return " (default: on)" if f.default else ""
    return f" (default: {f.default})"


def config_from_args(values: dict[str, Any], base: TrainConfig | None = None) -> TrainConfig:
    """Overlay the flags the user gave on `base` (a loaded run.toml) or on the defaults."""
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    given = {k: os.pathsep.join(v) if isinstance(v, list) else v
             for k, v in values.items() if k in fields}
    if base is None:
        return TrainConfig(**given)
    merged = dataclasses.asdict(base) | given
    return TrainConfig(**merged)


def build_parser(prog: str = "python -m trainer") -> FriendlyParser:
    """The training command's parser: --config RUN.TOML plus one flag per TrainConfig field."""
    parser = FriendlyParser(prog=prog, description="Train a textual-inversion embedding.",
                            allow_abbrev=False)
    parser.add_argument("--config", default=None, metavar="RUN.TOML",
                        help="Start from this run.toml; flags given as well override it.")
    add_config_flags(parser)
    return parser


def parse_config(argv: list[str] | None = None, prog: str = "ti-tui train") -> TrainConfig:
    """Parse flags (and --config) into a validated TrainConfig."""
    args = vars(build_parser(prog).parse_args(sys.argv[1:] if argv is None else argv))
    base = TrainConfig.from_toml(args.pop("config")) if args.get("config") else None
    args.pop("config", None)
    return config_from_args(args, base)
