"""A one-line radio set whose arrow keys choose, not merely highlight.

Textual's RadioSet moves a highlight with the arrows and needs Enter or Space to choose; in a
form that is one keystroke too many, and a user who tabs away after the arrows keeps the old
value without noticing. Here the arrows press the button they land on, as radio groups do in
most GUIs; Space and Enter still work.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from textual.binding import Binding, BindingType
from textual.widgets import RadioButton, RadioSet

from ti_tui.widgets.toggles import ChoiceButton


class ChoiceSet(RadioSet):
    """Radio buttons in a row; `value` is the chosen choice's value string."""

    DEFAULT_CSS = """
    ChoiceSet {
        layout: horizontal;
        height: 1;
        width: 1fr;
        overflow: hidden hidden;
        & > RadioButton { width: auto; margin: 0 1 0 0; }
    }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("down,right", "step(1)", "Next choice", show=False),
        Binding("up,left", "step(-1)", "Previous choice", show=False),
    ]

    def __init__(self, choices: Sequence[tuple[str, str]], value: str | None = None,
                 *, id: str | None = None) -> None:
        """`choices` are (label, value) pairs; `value` picks the one pressed at the start."""
        self.values = [v for _label, v in choices]
        """The choice values, in display order."""
        start = value if value in self.values else self.values[0]
        buttons = [ChoiceButton(label, value=(v == start), name=v) for label, v in choices]
        super().__init__(*buttons, id=id, compact=True)

    def on_mount(self) -> None:
        # RadioSet highlights the first button on mount; highlight the pressed one instead
        # (after RadioSet's own mount handler, which runs after this one).
        self.call_after_refresh(self._highlight_pressed)

    def on_focus(self) -> None:
        self._highlight_pressed()

    def _highlight_pressed(self) -> None:
        self._selected = max(self.pressed_index, 0)

    @property
    def value(self) -> str:
        """The pressed button's value (the first value when none is pressed); setting it
        presses that button and posts Changed as a click would, ignoring unknown values."""
        button = self.pressed_button
        return button.name if button is not None and button.name else self.values[0]

    @value.setter
    def value(self, value: str) -> None:
        if value not in self.values or value == self.value:
            return
        # Switch both buttons now (not through RadioButton.Changed, which arrives later), so
        # `value` reads back at once; then announce the change as a click would.
        index = self.values.index(value)
        buttons = list(self.query(RadioButton))
        with self.prevent(RadioButton.Changed):
            if self._pressed_button is not None:
                self._pressed_button.value = False
            buttons[index].value = True
        self._pressed_button = buttons[index]
        self._selected = index
        self.post_message(self.Changed(self, buttons[index]))

    def set_label(self, value: str, label: str) -> None:
        """Relabel the button of choice `value` (e.g. to mark the model's native size)."""
        self.query(RadioButton)[self.values.index(value)].label = label

    def action_step(self, direction: int) -> None:
        if direction > 0:
            self.action_next_button()
        else:
            self.action_previous_button()
        self.action_toggle_button()
