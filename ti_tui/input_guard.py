"""Input bytes that are not UTF-8 must never end the app.

Textual 8.2.8's LinuxDriver and LinuxInlineDriver read the terminal with a strict UTF-8
incremental decoder (`getincrementaldecoder("utf-8")()` in drivers/linux_driver.py
`run_input_thread` and drivers/linux_inline_driver.py). One byte that is not UTF-8 (0xE9, "é"
typed in a Latin-1 terminal; an X10 mouse report past column 95, whose coordinate byte is
32 + column; line noise; pasted binary) raises UnicodeDecodeError in the input thread, which
Textual turns into a panic: the app ends, and with exit code 0. Upstream: Textualize/textual
issue #6456 (also referenced as #6668 in our issue 19); fix proposed in PR #6498, not released
as of 8.2.8.

Until it is, `install()` makes those drivers build their decoder with errors="replace": each
bad byte becomes U+FFFD. "replace" rather than "ignore" keeps an X10 mouse report three
characters long, so Textual's parser still consumes it whole (as an unsupported mouse code,
dropped) instead of taking the next real key into it.
"""

from __future__ import annotations

import codecs
from collections.abc import Callable
from functools import partial
from typing import Any

PATCHED_MODULES = ("textual.drivers.linux_driver", "textual.drivers.linux_inline_driver")
"""The driver modules that look `getincrementaldecoder` up in their own namespace."""


def lenient_incremental_decoder(encoding: str) -> Callable[..., Any]:
    """`codecs.getincrementaldecoder(encoding)`, whose instances replace undecodable bytes
    with U+FFFD unless told otherwise (the driver calls it with no arguments)."""
    decoder_class = codecs.getincrementaldecoder(encoding)
    return partial(decoder_class, errors="replace")


def install() -> list[str]:
    """Patch the Textual drivers present (idempotent); returns the modules patched.

    Raises nothing: a Textual without these modules (another platform, a future layout) is
    left as it is.
    """
    import importlib

    patched = []
    for name in PATCHED_MODULES:
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        if hasattr(module, "getincrementaldecoder"):
            module.getincrementaldecoder = lenient_incremental_decoder  # type: ignore[attr-defined]
            patched.append(name)
    return patched
