"""Checks shared by the bad-input tests (tests/engine/test_bad_input_*.py, issue 7): every refusal is
one sentence naming the field or file, and nothing is written.

Value errors are raised by TrainConfig itself (flags, run.toml and the form all build one);
path, model, image, resume and device errors by `preflight(config)`, which runs before the
output folder is created. The same errors through the real `ti-tui train` command (exit code
2, one line on stderr) are checked for a representative subset in tests/system/test_cli_errors.py.
The valid tiny config each test breaks one thing of is the `tiny_config` fixture
(tests/conftest.py).
"""

from __future__ import annotations

import os

import pytest

from trainer.config import TrainConfig
from trainer.errors import UserError
from trainer.preflight import preflight

IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0
"""Root reads a chmod 000 folder and writes into a read-only one: those tests simulate."""


def one_sentence(error: BaseException, *words: str) -> str:
    """The message: one line, no traceback, containing every word given."""
    text = str(error)
    assert "\n" not in text and "Traceback" not in text, text
    assert text.rstrip().endswith((".", ")")), text
    for word in words:
        assert word in text, f"{word!r} not in {text!r}"
    return text


def refused(config: TrainConfig, kind: type[UserError], field: str, *words: str) -> str:
    """preflight refuses `config` with `kind` on `field`, and wrote nothing."""
    out = config.output_path
    existed = out.exists()
    with pytest.raises(kind) as info:
        preflight(config)
    assert info.value.field == field, (info.value.field, str(info.value))
    assert out.exists() == existed, "preflight must not create the output folder"
    return one_sentence(info.value, *words)
