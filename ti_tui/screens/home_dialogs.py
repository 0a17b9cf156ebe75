"""The home screen's two dialogs: "delete this run?" (Keep is the default) and the models
found under the root (exactly what `ti-tui models` prints)."""

from __future__ import annotations

import io
from contextlib import redirect_stdout
from pathlib import Path
from typing import ClassVar

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Grid, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Label, Static

from ti_tui.runs_index import RunEntry


class ConfirmDelete(ModalScreen[bool]):
    """Asks before deleting a run folder; the focused (default) button keeps it."""

    DEFAULT_CSS = """
    ConfirmDelete { align: center middle; }
    ConfirmDelete > Grid { grid-size: 2; grid-gutter: 1 2; grid-rows: auto auto 3;
        width: 66; max-width: 100%; height: auto; padding: 1 2; border: thick $error;
        background: $surface; }
    ConfirmDelete Label, ConfirmDelete Static { column-span: 2; }
    ConfirmDelete Label { text-style: bold; }
    ConfirmDelete Button { width: 100%; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("y", "answer(True)", "Delete"),
        Binding("n,escape", "answer(False)", "Keep"),
    ]
    AUTO_FOCUS = "#delete-keep"

    def __init__(self, entry: RunEntry) -> None:
        super().__init__()
        self.entry = entry

    def compose(self) -> ComposeResult:
        with Grid():
            yield Label(f"Delete the run {self.entry.label}?")
            yield Static(f"This removes the folder {self.entry.folder} and everything in it "
                         "(embeddings, checkpoints, previews). It cannot be undone.",
                         markup=False)
            yield Button("Keep it [n]", variant="primary", id="delete-keep",
                         action="screen.answer(False)")
            yield Button("Delete [y]", variant="error", id="delete-yes",
                         action="screen.answer(True)")

    def action_answer(self, delete: bool) -> None:
        self.dismiss(delete)


class ModelsScreen(ModalScreen[None]):
    """The models found under the root, exactly as `ti-tui models` prints them."""

    DEFAULT_CSS = """
    ModelsScreen { align: center middle; }
    ModelsScreen > VerticalScroll { width: 100%; max-width: 120; height: auto;
        max-height: 100%; border: round $primary; padding: 0 1; background: $surface; }
    ModelsScreen #models-title { text-style: bold; }
    ModelsScreen #models-foot { color: $text-muted; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape,q,m,enter", "close", "Close")]

    def __init__(self, root: Path) -> None:
        super().__init__()
        self.root = root

    def compose(self) -> ComposeResult:
        with VerticalScroll():
            yield Static(f"Models under {self.root}", id="models-title", markup=False)
            yield Static("looking...", id="models-list", markup=False)
            yield Static("Esc closes this list.", id="models-foot")

    def on_mount(self) -> None:
        self._list()

    @work(thread=True, exclusive=True)
    def _list(self) -> None:
        text = models_report(self.root)
        self.app.call_from_thread(self.query_one("#models-list", Static).update, text)

    def action_close(self) -> None:
        self.dismiss(None)


def models_report(root: Path) -> str:
    """What `ti-tui models --root ROOT` prints (the same code, so the two never differ)."""
    from ti_tui.cli import cmd_models

    out = io.StringIO()
    try:
        with redirect_stdout(out):
            cmd_models(["--root", str(root)])
    except Exception as exc:  # noqa: BLE001 - a broken root is shown, not fatal
        return f"Could not list the models: {exc}"
    return out.getvalue().rstrip() or "No models found."
