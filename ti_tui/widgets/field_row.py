"""One row of the setup form: a label, the control(s) that edit one setting, and a message.

The label and help text come from the TrainConfig field's metadata, so the form never writes
them a second time. The message line sits under the control and is hidden while empty; its
level (error, warning, info) is a CSS class, and it also starts with a symbol so the level
reads without colour (NO_COLOR, monochrome terminals).
"""

from __future__ import annotations

from typing import Literal

from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widget import Widget
from textual.widgets import Label, Static

from trainer.config import field_info

Level = Literal["error", "warning", "info"]

SYMBOLS: dict[str, str] = {"error": "✗", "warning": "!", "info": "·"}
"""What starts a message of each level, so it reads without colour."""


def field_help(name: str) -> str:
    """The help line of TrainConfig field `name`, naming its flag: what the hint bar shows."""
    meta = field_info(name).metadata
    return f"{meta['label']} (--{name}): {meta['help']}"


class FieldRow(Widget):
    """Label + control(s) on one line, one sentence of feedback under them."""

    DEFAULT_CSS = """
    FieldRow {
        height: auto;
        width: 1fr;
        & > Horizontal { height: auto; width: 1fr; }
        & .field-label { width: 24; padding: 0 1 0 0; }
        & .field-message { height: auto; padding: 0 0 0 24; display: none; }
        & .field-message.-shown { display: block; }
        & .field-message.-error { color: $text-error; }
        & .field-message.-warning { color: $text-warning; }
        & .field-message.-info { color: $text-muted; }
        /* A rule on the row itself makes Textual restyle its children on focus changes;
           without it the label rule below never re-applies. */
        &:focus-within { background: $boost; }
        &:focus-within .field-label { text-style: bold reverse; }
    }
    """

    def __init__(self, field: str, *controls: Widget, label: str | None = None) -> None:
        super().__init__(id=f"row-{field}")
        self.field = field
        """The TrainConfig field this row edits."""
        self.label_text = label or field_info(field).metadata["label"]
        """The label shown left of the control (the field's metadata label by default)."""
        self.help_text = field_help(field)
        """One line of help: shown in the form's hint bar while the row has focus."""
        self._controls = controls
        self.level: Level | None = None
        """The level of the message shown now, or None when there is none."""
        self.message = ""
        """The sentence shown under the control (empty: none)."""

    def compose(self) -> ComposeResult:
        with Horizontal():
            yield Label(self.label_text, classes="field-label")
            yield from self._controls
        yield Static("", classes="field-message", markup=False)

    def on_mount(self) -> None:
        for control in self._controls:
            if control.can_focus and control.tooltip is None:
                control.tooltip = field_info(self.field).metadata["help"]

    @property
    def message_line(self) -> Static:
        """The line under the control that shows its error, warning or note."""
        return self.query_one(".field-message", Static)

    def set_message(self, message: str = "", level: Level | None = None) -> None:
        """Show `message` under the control at `level`; an empty message hides the line."""
        if (message, level) == (self.message, self.level):
            return
        self.message, self.level = message, (level if message else None)
        line = self.message_line
        line.update(f"{SYMBOLS[level]} {message}" if message and level else "")
        line.set_class(bool(message), "-shown")
        for name in ("error", "warning", "info"):
            line.set_class(level == name, f"-{name}")

    @property
    def first_control(self) -> Widget:
        """The first focusable control of the row (what "focus this problem" focuses)."""
        for widget in self.query("*"):
            if widget.focusable:
                return widget
        return self._controls[0]
