"""Requests from outside the loop: stop, save a checkpoint now, render a preview now.

They arrive two ways. Signals (SIGINT/SIGTERM) set the stop flag; a UI in another process
(possibly after an SSH reconnect) drops an empty file named after the action into
OUTPUT_DIR/control/. The loop polls at every step boundary, which costs one directory listing.
"""

from __future__ import annotations

import threading
from pathlib import Path

ACTIONS = ("stop", "save", "preview")
CONTROL_DIR = "control"


class Control:
    """The loop's mailbox for stop, save and preview requests.

    Thread-safe: a signal handler or another thread calls `request`/`request_stop`; the
    loop calls `take` and reads `stop_requested` at each step boundary. With `control_dir`
    set, request files dropped there by `send` (another process) are read by `take` too.
    """

    def __init__(self, control_dir: Path | None = None):
        self.control_dir = control_dir
        self._stop = threading.Event()
        self._pending: set[str] = set()
        self._lock = threading.Lock()

    def request_stop(self) -> None:
        """Set the stop flag (safe from a signal handler); the loop saves and ends."""
        self._stop.set()

    @property
    def stop_requested(self) -> bool:
        """Whether a stop was asked for (by a signal, `request("stop")` or a stop file)."""
        return self._stop.is_set()

    def request(self, action: str) -> None:
        """Queue one of ACTIONS for the next `take` ("stop" sets the flag at once).
        ValueError for any other name."""
        if action not in ACTIONS:
            raise ValueError(f"unknown control action {action!r}")
        if action == "stop":
            self.request_stop()
            return
        with self._lock:
            self._pending.add(action)

    def take(self) -> set[str]:
        """The actions asked for since the last call (file requests are consumed)."""
        if self.control_dir is not None and self.control_dir.is_dir():
            for path in self.control_dir.iterdir():
                if path.name in ACTIONS:
                    path.unlink(missing_ok=True)
                    self.request(path.name)
        with self._lock:
            pending, self._pending = self._pending, set()
        return pending


def send(output_dir: Path, action: str) -> None:
    """Ask the trainer writing into `output_dir` to do `action` at its next step boundary.

    Raises UserError (one sentence) when the request file cannot be made: a full or
    read-only disk, which the trainer will meet and report itself at its next write.
    """
    if action not in ACTIONS:
        raise ValueError(f"unknown control action {action!r}")
    folder = output_dir / CONTROL_DIR
    try:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / action).touch()
    except OSError as exc:
        from trainer.errors import UserError

        raise UserError(f"Could not ask the trainer to {action}: {folder} cannot be written "
                        f"({exc.strerror or exc}).", field="output_dir") from None
