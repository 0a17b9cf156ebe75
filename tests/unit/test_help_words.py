"""`ti-tui train --help` prints each field's help as written: argparse %-formats help strings,
so a literal % in a field's text (the optimizer's "~20% slower") once printed argparse's own
dict of the action in the middle of the sentence."""

from __future__ import annotations

import dataclasses
import re

from trainer.config import TrainConfig
from trainer.flags import build_parser


def _flat(text: str) -> str:
    return re.sub(r"\s+", " ", text)


def test_every_field_help_is_printed_word_for_word():
    shown = _flat(build_parser("ti-tui train").format_help())
    assert "'option_strings'" not in shown
    for f in dataclasses.fields(TrainConfig):
        # argparse may break a line at a hyphen, so compare with hyphen-breaks joined too.
        words = _flat(f.metadata["help"])
        assert words in shown or words in shown.replace("- ", "-"), f.name


def test_a_percent_sign_in_help_survives():
    assert "~20% slower" in _flat(build_parser("ti-tui train").format_help())
