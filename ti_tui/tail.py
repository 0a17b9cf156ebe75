"""Incremental reading of events.jsonl while the trainer appends to it.

`EventTail.read_new()` returns only the events written since the last call, as typed events
(`trainer.events.parse_event`): it remembers the byte offset and keeps a partial last line
(the writer may be mid-line) until its newline arrives, so a dashboard polling ten times a
second never re-reads the whole file. Lines of unknown types come as `Unknown` events (the
state counts and skips them); lines that are not events are dropped.
"""

from __future__ import annotations

import os
from pathlib import Path

from trainer.events import Event, parse_event

MAX_CHUNK = 8 * 1024 * 1024
"""Bytes read per call at most, so attaching to a huge file never blocks the UI for long."""


class EventTail:
    """Follows one events.jsonl file; call `read_new()` as often as you like."""

    def __init__(self, path: str | os.PathLike[str]):
        self.path = Path(path)
        """The events.jsonl being followed (it may not exist yet)."""
        self.offset = 0
        """Bytes consumed so far, partial line included."""
        self._partial = b""
        self._inode: int | None = None

    def read_new(self) -> list[Event]:
        """The complete events appended since the last call (empty if none or no file yet)."""
        try:
            info = os.stat(self.path)
        except FileNotFoundError:
            return []
        if self._inode is not None and (info.st_ino != self._inode or info.st_size < self.offset):
            # The file was replaced or truncated (a new run in the same folder): start over.
            self.offset, self._partial = 0, b""
        self._inode = info.st_ino
        if info.st_size == self.offset:
            return []
        with open(self.path, "rb") as fh:
            fh.seek(self.offset)
            chunk = fh.read(MAX_CHUNK)
        self.offset += len(chunk)
        data = self._partial + chunk
        lines = data.split(b"\n")
        self._partial = lines.pop()  # b"" when the chunk ended on a newline
        events = []
        for raw in lines:
            event = parse_event(raw.decode("utf-8", errors="replace"))
            if event is not None:
                events.append(event)
        return events

    @property
    def pending(self) -> bool:
        """True when more bytes are on disk than were read (a capped read left some)."""
        try:
            return os.stat(self.path).st_size > self.offset
        except FileNotFoundError:
            return False
