"""One run per output folder: a lock file holding the owner's pid.

Two trainers writing one folder would interleave events and overwrite each other's
checkpoints. The lock is created with O_EXCL; a lock whose pid is no longer running (a run
killed with -9, a reboot) is stale and taken over.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from trainer.errors import UserError

LOCK_NAME = ".ti-tui.lock"


def pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class RunLock:
    def __init__(self, path: Path):
        self.path = path

    @classmethod
    def acquire(cls, output_dir: Path) -> RunLock:
        path = output_dir / LOCK_NAME
        for _ in range(2):
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                owner = read_owner(path)
                if owner is not None and owner != os.getpid() and pid_alive(owner):
                    raise UserError(f"Another run (pid {owner}) is still training into "
                                    f"{output_dir}; watch it with `ti-tui watch {output_dir}` "
                                    "or pick another output directory.",
                                    field="output_dir") from None
                path.unlink(missing_ok=True)  # stale: its owner is gone
                continue
            with os.fdopen(fd, "w") as fh:
                fh.write(f"{os.getpid()}\n")
            return cls(path)
        raise UserError(f"Could not take the lock {path}; remove it if no run is active.",
                        field="output_dir")

    def release(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            if read_owner(self.path) == os.getpid():
                self.path.unlink()


def read_owner(path: Path) -> int | None:
    try:
        return int(path.read_text().strip() or "0")
    except (OSError, ValueError):
        return None
