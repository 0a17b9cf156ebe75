"""Errors the trainer raises on purpose.

`UserError` is anything the person at the keyboard can fix (a path, an image, a value, a
model). The CLI prints its message as one line and exits with code 2, never a traceback.
Every message names the field or file and says what to do.
"""

from __future__ import annotations


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
