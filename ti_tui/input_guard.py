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

The same decoder sees the terminal vanish. In raw mode a read returns no bytes only when the
terminal has hung up (a closed window or a dropped SSH connection whose shell did not pass
SIGHUP on). Textual 8.2.8 then loops on the empty reads for ever, at a good share of a core;
the decoder turns the first one into SIGHUP for this process, which ti_tui/exits.py makes a
clean exit 129, like a real hang-up.
"""

from __future__ import annotations

import codecs
import os
import signal
import time
from typing import Any

EMPTY_READ_PAUSE_S = 0.1
"""After the terminal is gone, how long the input thread sleeps per empty read until the app
has closed (instead of spinning)."""


def lenient_incremental_decoder(encoding: str) -> type[codecs.IncrementalDecoder]:
    """An incremental decoder class for `encoding` that replaces undecodable bytes with
    U+FFFD (the drivers create it with no arguments), and reports a hung-up terminal."""
    base: Any = codecs.getincrementaldecoder(encoding)

    class TerminalDecoder(base):  # type: ignore[misc, valid-type]
        hung_up = False

        def __init__(self, errors: str = "replace") -> None:
            super().__init__(errors)

        def decode(self, data: bytes, final: bool = False) -> str:
            if not data and not final:
                if not TerminalDecoder.hung_up:
                    TerminalDecoder.hung_up = True
                    os.kill(os.getpid(), signal.SIGHUP)
                else:
                    time.sleep(EMPTY_READ_PAUSE_S)
            return super().decode(data, final)

    return TerminalDecoder


PATCHED_MODULES = ("textual.drivers.linux_driver", "textual.drivers.linux_inline_driver")
"""The driver modules that look `getincrementaldecoder` up in their own namespace."""


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
