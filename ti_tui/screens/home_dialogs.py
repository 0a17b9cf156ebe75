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
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from ti_tui.runs_index import RunEntry
from ti_tui.screens.home_fit import fit_path
from ti_tui.screens.question import Question
from ti_tui.terminal import SHORT_HEIGHT


class ConfirmDelete(Question):
    """Asks before deleting a run folder; the focused (default) button keeps it."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("y", "answer(True)", "Delete"),
        Binding("n,escape", "answer(False)", "Keep"),
    ]
    KIND = "delete"
    HELP_TITLE = "the delete question"

    def __init__(self, entry: RunEntry) -> None:
        super().__init__(f"Delete the run {entry.label}?", self.words(str(entry.folder)),
                         yes="Delete", no="Keep it")
        self.entry = entry

    @staticmethod
    def words(folder: str) -> str:
        """What deleting does, naming `folder`."""
        return (f"This removes the folder {folder} and everything in it (embeddings, "
                "checkpoints, previews). It cannot be undone.")

    def text_for(self, width: int, height: int) -> str:
        """On a short screen the folder in one line, kept from its end (fit_path: the run's
        own name stays), so the question and both buttons fit with it; else the whole path."""
        if height >= SHORT_HEIGHT:
            return self.text
        return self.words(fit_path(self.entry.folder, max(12, width)))


class ModelsScreen(ModalScreen[None]):
    """The models found under the root, exactly as `ti-tui models` prints them."""

    DEFAULT_CSS = """
    ModelsScreen { align: center middle; }
    ModelsScreen > VerticalScroll { width: 100%; max-width: 120; height: auto;
        max-height: 100%; border: round $primary; padding: 0 1; background: $surface; }
    ModelsScreen #models-title { text-style: bold; }
    ModelsScreen #models-foot { color: $text-muted; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q,m,enter", "close", "Close"),
        # A modal screen cuts the app's bindings off (Textual's _modal_binding_chain).
        Binding("f1", "app.help", "Help", show=False)]
    HELP_TITLE = "the models found"

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
    from ti_tui.models_command import cmd_models

    out = io.StringIO()
    try:
        with redirect_stdout(out):
            cmd_models(["--root", str(root)])
    except Exception as exc:  # noqa: BLE001 - a broken root is shown, not fatal
        return f"Could not list the models: {exc}"
    return out.getvalue().rstrip() or "No models found."
