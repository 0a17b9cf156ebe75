"""Driving the setup form by keys in pilot tests: a fake runner and live screen, and key helpers.

The fake runner records the TrainConfig it is handed and the fake live screen stands in for
the trainer, so nothing is ever trained by the form tests.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from textual.binding import BindingType
from textual.screen import Screen
from textual.widgets import Static

from ti_tui.app import make_app
from ti_tui.screens.form import FIELDS, TrainingForm
from trainer.config import TrainConfig

SIZE = (100, 40)


class FakeTrainScreen(Screen[str]):
    """Stands in for the live screen: shows the handle, dismisses with `outcome` on "d"."""

    BINDINGS: ClassVar[list[BindingType]] = [("d", "done", "Done")]

    def __init__(self, handle, outcome: str = "finished"):
        super().__init__()
        self.handle, self.outcome = handle, outcome

    def compose(self):
        yield Static(f"training {self.handle}")

    def action_done(self) -> None:
        self.dismiss(self.outcome)


class FakeRunner:
    """Records every config; raises `error` instead when one is set."""

    def __init__(self, error: Exception | None = None):
        self.configs: list[TrainConfig] = []
        self.error = error

    def __call__(self, config: TrainConfig) -> str:
        if self.error is not None:
            error, self.error = self.error, None
            raise error
        self.configs.append(config)
        return "fake-handle"


def app_for(root: Path, runner: FakeRunner | None = None, outcome: str = "finished", **kw):
    app = make_app(root=root, runner=runner or FakeRunner(),
                   train_screen=lambda handle: FakeTrainScreen(handle, outcome), **kw)
    app.animation_level = "none"   # focus scrolls the form; the pilot would wait for each glide
    return app


async def until(pilot, check, what: str) -> None:
    """Let the app run until `check()` holds (a condition, never a fixed sleep); AssertionError
    naming `what` after 500 short turns."""
    for _ in range(500):
        await pilot.pause(0.02)
        if check():
            return
    raise AssertionError(f"{what} did not happen; the screen is {pilot.app.screen}")


async def started(pilot, runner: FakeRunner) -> None:
    """Wait until the form has handed a config to `runner` (Start was accepted)."""
    await until(pilot, lambda: runner.configs, "the run's start")


async def ready(pilot) -> TrainingForm:
    """Wait until the form is up and its tokenizer loaded (one load per session: cached)."""
    for _ in range(400):
        await pilot.pause(0.02)
        form = pilot.app.screen
        if isinstance(form, TrainingForm) and not form.tokenizer_pending:
            await pilot.pause()
            return form
    raise AssertionError(f"the form did not become ready: {pilot.app.screen}")


async def goto(pilot, form: TrainingForm, name: str, control: int = 0) -> None:
    """Tab or Shift-Tab (keys only), the shorter way round, until the `control`-th control of
    row `name` has focus."""
    focused = pilot.app.focused
    here = form._field_of(focused) if focused is not None else None
    position = FIELDS.index(here) if here in FIELDS else len(FIELDS)  # the buttons: the end
    ahead = (FIELDS.index(name) - position) % (len(FIELDS) + 2)
    key = "tab" if ahead <= (len(FIELDS) + 2) // 2 else "shift+tab"
    for _ in range(80):
        focused = pilot.app.focused
        targets = [w for w in form.rows[name].query("*") if w.focusable]
        if focused is not None and targets and focused is targets[control]:
            return
        await pilot.press(key)
    raise AssertionError(f"could not tab to {name}")


async def type_into(pilot, form: TrainingForm, name: str, text: str) -> None:
    """Tab to the row, select what is there and type `text` over it."""
    await goto(pilot, form, name)
    await pilot.press("home", "shift+end", *(text or ["backspace"]))
    await pilot.pause()


def message(form: TrainingForm, name: str) -> str:
    return form.rows[name].message
