"""events.jsonl on disk: appending a run's events, and reading them back.

The trainer appends one JSON line per event through `EventLog`; tools and views read the file
with `read_events` (raw JSON objects) or `load_events` (typed events, via
`trainer.events.parse_event`). The event types themselves are in trainer/events.py.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from trainer import fsutil
from trainer.errors import write_failed
from trainer.events import Event, parse_event, parse_event_line


class EventLog:
    """Appends events to events.jsonl, one line each, written through at once.

    A line is appended with os.write on an O_APPEND descriptor, so a reader tailing the file
    sees whole lines, or at worst a partial last line it must skip.

    A full or read-only disk: the first failed append releases the run's reserved space
    (trainer.fsutil.reserve_space), writes the event again, and raises OutputError (one
    sentence, exit code 2) so the run stops; later events (the error and stopped events)
    are still attempted but never raise, so reporting the problem cannot fail in turn.
    Raises OutputError from the constructor when the file cannot be opened.
    """

    def __init__(self, path: str | os.PathLike[str]):
        self.path = Path(path)
        self.failed = False
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # A run killed mid-line left a fragment; start our first event on a new line.
            self._torn = _ends_mid_line(self.path)
            self._fd: int | None = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT,
                                           0o666)
        except OSError as exc:
            raise write_failed(self.path, exc, self.path.parent) from None

    def __call__(self, event: Event) -> None:
        line = (json.dumps(event.to_dict(), separators=(",", ":")) + "\n").encode("utf-8")
        try:
            self._append(line)
        except OSError as exc:
            if self.failed:
                return  # already reported: the events that report it must not fail too
            self.failed = True
            if fsutil.release_reserve():
                with contextlib.suppress(OSError):
                    self._append(line)
            raise write_failed(self.path, exc, self.path.parent) from None

    def _append(self, line: bytes) -> None:
        if self._fd is None:
            raise OSError(errno.EBADF, "the event log is closed")
        data = (b"\n" if self._torn else b"") + line
        while data:
            written = os.write(self._fd, data)
            self._torn = True  # until the whole line is in
            data = data[written:]
        self._torn = False

    def close(self) -> None:
        """Close the file (every line is already written)."""
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = None


def _ends_mid_line(path: Path) -> bool:
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            if fh.tell() == 0:
                return False
            fh.seek(-1, os.SEEK_END)
            return fh.read(1) != b"\n"
    except FileNotFoundError:
        return False


def read_events(path: str | os.PathLike[str]) -> Iterator[dict[str, Any]]:
    """Every complete line of an events.jsonl file as its raw JSON object (a partial last
    line is skipped). For tools and tests that check what was written; views use
    `load_events`, which gives the typed events."""
    with open(path, encoding="utf-8", errors="replace") as fh:
        for line in fh:
            if line.endswith("\n"):
                event = parse_event_line(line)
                if event is not None:
                    yield event


def load_events(path: str | os.PathLike[str]) -> Iterator[Event]:
    """Every complete event of an events.jsonl file as its typed event (see `parse_event`);
    lines of unknown types come as `Unknown`, malformed ones are skipped."""
    for data in read_events(path):
        event = parse_event(data)
        if event is not None:
            yield event
