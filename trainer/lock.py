"""One run per output folder: a lock file holding the owner's pid.

Two trainers writing one folder would interleave events and overwrite each other's
checkpoints. The lock is created with O_EXCL and holds three lines: the owner's pid, its
process start time and the host name. A lock is stale, and taken over, when its pid is no
longer running, or is running but started at another time (the pid was reused after a
reboot). A lock written on another host cannot be checked from here, so it is respected.

`preflight` calls `check_free` before anything is written, so a second `ti-tui train` into a
folder whose run is still going is refused without touching that run's files.
"""

from __future__ import annotations

import contextlib
import os
import socket
from dataclasses import dataclass
from pathlib import Path

from trainer.errors import UserError, write_failed

LOCK_NAME = ".ti-tui.lock"


def pid_alive(pid: int) -> bool:
    """Whether a process `pid` exists on this machine (signal 0; one owned by another user
    counts). Says nothing about pid reuse: Owner.is_running also compares start times."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def start_time(pid: int) -> float | None:
    """When process `pid` started (seconds since the epoch), or None if unknown."""
    try:
        import psutil

        return round(psutil.Process(pid).create_time(), 2)
    except Exception:  # noqa: BLE001 - psutil missing, process gone, no permission
        return None


@dataclass(frozen=True)
class Owner:
    """Who holds a run lock: the lock file's three lines."""

    pid: int
    """The trainer's process id."""
    started: float | None = None
    """Its start time, seconds since the epoch (psutil), to detect a reused pid; None if
    unknown."""
    host: str | None = None
    """The machine's host name; a lock from another host cannot be checked and counts as held."""

    def is_running(self) -> bool:
        """True while the run that wrote the lock may still be going."""
        if self.host and self.host != socket.gethostname():
            return True  # another machine's process: it cannot be checked from here
        if not pid_alive(self.pid):
            return False
        if self.started is not None:
            now = start_time(self.pid)
            if now is not None and abs(now - self.started) > 1.0:
                return False  # the pid now belongs to another process
        return True

    def text(self) -> str:
        """The lock file's content: pid, start time and host, one per line."""
        started = "" if self.started is None else repr(self.started)
        return f"{self.pid}\n{started}\n{self.host or ''}\n"


def _me() -> Owner:
    return Owner(os.getpid(), start_time(os.getpid()), socket.gethostname())


def _held_message(owner: Owner, output_dir: Path) -> str:
    where = f" on {owner.host}" if owner.host and owner.host != socket.gethostname() else ""
    return (f"Another run (pid {owner.pid}{where}) is still training into {output_dir}; watch "
            f"it with `ti-tui watch {output_dir}`, stop it first, or pick another output "
            "directory.")


def check_free(output_dir: Path) -> None:
    """Raise UserError if a live run other than this process holds `output_dir`'s lock."""
    owner = read_lock(output_dir / LOCK_NAME)
    if owner is not None and owner.pid != os.getpid() and owner.is_running():
        raise UserError(_held_message(owner, output_dir), field="output_dir")


class RunLock:
    """OUTPUT_DIR/.ti-tui.lock, held by the one process training into that folder."""

    def __init__(self, path: Path):
        self.path = path

    @classmethod
    def acquire(cls, output_dir: Path) -> RunLock:
        """Take `output_dir`'s lock, removing a stale one (its owner is gone).

        Raises UserError (field output_dir) when a live run holds it or it cannot be taken
        in three tries, and the write_failed error when the disk refuses the file."""
        path = output_dir / LOCK_NAME
        for _ in range(3):
            try:
                created = _create_with_content(path, _me().text())
            except OSError as exc:  # a full or read-only disk: one sentence, not a traceback
                raise write_failed(path, exc, output_dir) from None
            if created:
                return cls(path)
            seen = _read_raw(path)
            owner = read_lock(path)
            if owner is not None and owner.pid != os.getpid() and owner.is_running():
                raise UserError(_held_message(owner, output_dir), field="output_dir")
            # Stale (its owner is gone): remove it, unless another run replaced it meanwhile.
            if _read_raw(path) == seen:
                path.unlink(missing_ok=True)
        raise UserError(f"Could not take the lock {path}; delete that file if no run is "
                        "training into this folder.", field="output_dir")

    def release(self) -> None:
        """Delete the lock file if this process still owns it; a missing file is fine."""
        with contextlib.suppress(FileNotFoundError):
            owner = read_lock(self.path)
            if owner is not None and owner.pid == os.getpid():
                self.path.unlink()


def _create_with_content(path: Path, text: str) -> bool:
    """Create `path` holding `text` if it does not exist; False if it does.

    The content is written to a private file which is then hard-linked to `path`, so no
    other process ever reads the lock empty. Filesystems without hard links fall back to
    O_EXCL creation.
    """
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(text)
        try:
            os.link(tmp, path)
            return True
        except FileExistsError:
            return False
        except OSError:
            pass  # no hard links here
    finally:
        tmp.unlink(missing_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    return True


def _read_raw(path: Path) -> str | None:
    try:
        return path.read_text()
    except (OSError, UnicodeDecodeError):
        return None


def read_lock(path: Path) -> Owner | None:
    """The lock's owner, or None if there is no lock or it is unreadable (then it is stale)."""
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError):
        return None
    try:
        pid = int(lines[0].strip()) if lines and lines[0].strip() else 0
        started = float(lines[1]) if len(lines) > 1 and lines[1].strip() else None
    except ValueError:
        return None
    host = lines[2].strip() if len(lines) > 2 and lines[2].strip() else None
    return Owner(pid, started, host) if pid > 0 else None


def read_owner(path: Path) -> int | None:
    """The pid in a lock file (kept for callers that only need the pid)."""
    owner = read_lock(path)
    return None if owner is None else owner.pid
