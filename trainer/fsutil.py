"""Write files so that no reader, and no crash, ever sees half of one.

Every file the trainer produces goes through `atomic_write_*`: the bytes land in a temporary
name in the same folder, are flushed and fsynced, and are then renamed over the target. A
rename within one filesystem is atomic, so the target is either the old file, the new file, or
absent, even after `kill -9` or a power cut.

Temporary names start with a dot and end in `.tmp`, so nothing that lists outputs ever takes
one for a result; a run removes those a killed run left behind (trainer.outputs). While one
exists it is listed in `in_flight()`, so a process that must exit at once (a second Ctrl-C)
can delete it first (`discard_in_flight`).

Writes go through `write_file_synced`, plain Python file I/O, so a full disk or a read-only
folder raises `OSError` with its errno (ENOSPC, EROFS, EACCES) whatever produced the bytes;
callers serialise in memory first (safetensors' `save`, `torch.save` into a buffer) rather than
letting a library write the file and report the failure as its own exception type.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

_IN_FLIGHT: set[Path] = set()
_IN_FLIGHT_LOCK = threading.Lock()


def _read_umask() -> int:
    # Read once at import: os.umask can only be read by setting it, which is not thread-safe.
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_UMASK = _read_umask()


def _default_mode(kind: str) -> int:
    """0o666/0o777 minus the umask: what open()/mkdir() would have given (mkstemp gives 0600)."""
    return (0o777 if kind == "dir" else 0o666) & ~_UMASK


def _track(path: Path) -> None:
    with _IN_FLIGHT_LOCK:
        _IN_FLIGHT.add(path)


def _untrack(path: Path) -> None:
    with _IN_FLIGHT_LOCK:
        _IN_FLIGHT.discard(path)


def in_flight() -> list[Path]:
    """Temporary files and folders being written right now (they are never read)."""
    with _IN_FLIGHT_LOCK:
        return sorted(_IN_FLIGHT)


def discard_in_flight() -> None:
    """Delete every temporary being written: call just before `os._exit` so none is left."""
    for path in in_flight():
        with contextlib.suppress(OSError):
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink()


def _fsync_dir(path: Path) -> None:
    # The rename itself lives in the directory entry; fsync the folder so it survives a crash.
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def write_file_synced(path: str | os.PathLike[str], data: bytes) -> None:
    """Write `data` to `path` (created or truncated) and fsync it; OSError on any failure."""
    with open(path, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside `target`; rename it over `target` if the block succeeds."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    tmp = Path(tmp_name)
    _track(tmp)
    try:
        os.fchmod(fd, _default_mode("file"))
        os.close(fd)
        yield tmp
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, target)
        _fsync_dir(target.parent)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        _untrack(tmp)


def atomic_write_bytes(target: str | os.PathLike[str], data: bytes) -> None:
    """Write `data` to a temporary file beside `target`, fsync it and rename it into place:
    readers see the old file or the whole new one. OSError (full disk, read-only) as raised."""
    with atomic_path(target) as tmp:
        write_file_synced(tmp, data)


def atomic_write_text(target: str | os.PathLike[str], text: str) -> None:
    """`atomic_write_bytes` of `text` encoded as UTF-8."""
    atomic_write_bytes(target, text.encode("utf-8"))


def atomic_save(target: str | os.PathLike[str], writer: Callable[[Path], None]) -> None:
    """Call `writer(tmp_path)` (e.g. PIL's Image.save), then rename.

    Prefer serialising to bytes and `atomic_write_bytes`: a library writing the file itself
    may report a full disk as its own exception type instead of OSError.
    """
    with atomic_path(target) as tmp:
        writer(tmp)


@contextlib.contextmanager
def atomic_dir(target: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary folder beside `target`; when the block succeeds it becomes `target`.

    An older folder of the same name is moved aside (to `.NAME.old`) first and removed only
    after the new one is in place, so at every moment one complete folder exists under the
    name or under the `.old` name; `restore_moved_aside` puts the latter back after a crash.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    _track(tmp)
    try:
        os.chmod(tmp, _default_mode("dir"))
        yield tmp
        for child in tmp.iterdir():
            if child.is_file():
                with open(child, "rb") as fh:
                    os.fsync(fh.fileno())
        old = None
        if target.exists():
            old = moved_aside_name(target)
            shutil.rmtree(old, ignore_errors=True)
            os.replace(target, old)
        os.replace(tmp, target)
        _fsync_dir(target.parent)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
        _untrack(tmp)


def moved_aside_name(target: Path) -> Path:
    """Where atomic_dir parks an existing folder while replacing it: `.NAME.old` beside it."""
    return target.with_name(f".{target.name}.old")


def restore_moved_aside(folder: Path) -> list[Path]:
    """After a crash inside `atomic_dir`: put back every `.NAME.old` whose NAME is missing,
    and delete those whose NAME was replaced. Returns the folders restored."""
    restored = []
    for old in folder.glob(".*.old"):
        name = old.name[1:-len(".old")]
        if not name:
            continue
        target = old.with_name(name)
        if target.exists():
            if old.is_dir():
                shutil.rmtree(old, ignore_errors=True)
            else:
                old.unlink(missing_ok=True)
        else:
            with contextlib.suppress(OSError):
                os.replace(old, target)
                restored.append(target)
    return restored


# --- room to say why a run stopped -----------------------------------------------------------

RESERVE_NAME = ".ti-tui.reserve"
RESERVE_BYTES = 64 * 1024
"""Enough for the error and stopped events and a log line, many times over."""

_reserve: Path | None = None


def reserve_space(folder: str | os.PathLike[str], size: int = RESERVE_BYTES) -> Path | None:
    """Hold up to `size` bytes in `folder` (hidden file `.ti-tui.reserve`) for later.

    When the disk fills mid-run, the write that failed releases this file
    (`release_reserve`), so the run can still append its error and stopped events to
    events.jsonl and the UI can say what happened. The bytes are random so that a compressing
    file system really allocates them. Falls back to smaller sizes on a nearly full disk, and
    to nothing when even 4 KiB do not fit. Returns the file, or None.
    """
    global _reserve
    path = Path(folder) / RESERVE_NAME
    for n in (size, size // 4, size // 16):
        try:
            write_file_synced(path, os.urandom(n))
            _reserve = path
            return path
        except OSError:
            with contextlib.suppress(OSError):
                path.unlink()
    return None


def release_reserve() -> bool:
    """Delete the reserve file, if any; True when it freed space."""
    global _reserve
    path, _reserve = _reserve, None
    if path is None:
        return False
    try:
        path.unlink()
    except OSError:
        return False
    return True


class TolerantStream:
    """A text stream whose writes never raise OSError (a full disk under trainer.log).

    The trainer's stdout and stderr are OUTPUT_DIR/trainer.log. When that disk fills, a
    library's progress line or the error handler's own message would raise from wherever it
    is printed and turn a clear "disk full" stop into a crash; a lost log line is the lesser
    harm, since the events say what happened.
    """

    def __init__(self, stream):
        self._stream = stream

    def write(self, text: str) -> int:
        """Write to the wrapped stream; on OSError drop the text and report it written."""
        try:
            return self._stream.write(text)
        except OSError:
            return len(text)

    def flush(self) -> None:
        """Flush the wrapped stream, ignoring OSError."""
        with contextlib.suppress(OSError):
            self._stream.flush()

    def __getattr__(self, name: str):
        return getattr(self._stream, name)


def as_os_error(exc: BaseException) -> OSError | None:
    """The OSError behind `exc`, or None when it is not a file-system failure.

    Libraries that write files themselves report a full disk as their own type: safetensors
    raises SafetensorError("... I/O error: No space left on device (os error 28) ..."), which
    carries the errno only in its text (safetensors' Rust std::io::Error display).
    """
    seen = 0
    current: BaseException | None = exc
    while current is not None and seen < 8:
        if isinstance(current, OSError):
            return current
        match = re.search(r"\(os error (\d+)\)", str(current))
        if match:
            code = int(match.group(1))
            return OSError(code, os.strerror(code))
        current = current.__cause__ or current.__context__
        seen += 1
    return None


DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EFBIG})
"""Write failures that come from the disk, not from ti-tui: full, over quota, read-only."""
