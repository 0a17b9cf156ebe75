"""Errors the trainer raises on purpose.

`UserError` is anything the person at the keyboard can fix (a path, an image, a value, a
model). The CLI prints its message as one line and exits with code 2, never a traceback.
Every message names the field or file and says what to do.
"""

from __future__ import annotations

import errno


class UserError(Exception):
    """A problem the user can fix; `str(error)` is one clear sentence for them."""

    exit_code = 2

    def __init__(self, message: str, *, field: str | None = None, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.field = field
        """The TrainConfig field (or flag) at fault, when there is one: the form focuses it."""
        self.hint = hint
        """An extra sentence saying what to do, when the message itself does not."""

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message} {self.hint}"


class ConfigError(UserError):
    """A TrainConfig value is out of range or malformed."""


class DataError(UserError):
    """The training images cannot be used."""


class ModelError(UserError):
    """The model cannot be found or loaded."""


class ResumeError(UserError):
    """A checkpoint or initial embedding cannot be resumed from."""


class OutputError(UserError):
    """A file could not be written (disk full, read-only folder, quota...)."""


def write_failed(path, exc: OSError, output_dir=None) -> OutputError:
    """The one sentence for a write that failed with `exc` (ENOSPC, EROFS, EACCES, EDQUOT...).

    The advice depends on what is on disk: with a complete checkpoint in `output_dir`, resume
    from it; without one (a fresh run that failed before its first checkpoint, or a write
    before the run started), `--resume_from_checkpoint latest` would only fail, so the advice
    is to start again.
    """
    from pathlib import Path

    from trainer.checkpoint_index import latest_checkpoint

    reason = exc.strerror or str(exc)
    remedy = _REMEDIES.get(exc.errno, "free some space or fix the folder's permissions")
    latest = None
    if output_dir is not None:
        try:
            latest = latest_checkpoint(Path(output_dir))
        except OSError:
            latest = None
    if latest is not None:
        return OutputError(f"Could not write {path} ({reason}); the previous checkpoint and "
                           f"embedding are intact, so {remedy} and resume with "
                           "--resume_from_checkpoint latest.", field="output_dir")
    return OutputError(f"Could not write {path} ({reason}); no checkpoint was saved yet, so "
                       f"{remedy} or pick another --output_dir, and start the run again.",
                       field="output_dir")


_REMEDIES = {
    errno.ENOSPC: "free some space", errno.EDQUOT: "free some space within your quota",
    errno.EFBIG: "free some space", errno.EROFS: "remount the disk read-write",
    errno.EACCES: "fix the folder's permissions", errno.EPERM: "fix the folder's permissions",
}
"""What to do for each errno: the advice must name the fix that applies."""
