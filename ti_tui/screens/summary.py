"""After training: why it stopped, how far it got, the files, and two offers.

The offers follow invokeai-ti's end of run, with the safer default for the destructive one:
the embedding goes into ROOT/embeddings/<trigger>/ (default yes; the trainer has usually
copied it already, so unticking removes that copy), and the intermediate `checkpoint-*`
folders can be deleted (default NO; invokeai-ti deleted the whole output folder by default).
An InvokeAI 4+ root gets no copy: its Model Manager installs files, and the screen lists which
file each tool takes (trainer/install_guide.py, the same lines `ti-tui train` prints).
Everything is read from OUTPUT_DIR/events.jsonl and folded by the dashboard's own
`ti_tui.state.fold`, so the screen works for a run this app started and for one it re-attached
to, and says what the dashboard said.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import Screen
from textual.widgets import Button, Checkbox, Footer, Static

from ti_tui.state import RunState, fold_all
from ti_tui.screens.key_line import FittedKeyLine
from ti_tui.widgets.toggles import Tick
from trainer.checkpoint_index import CHECKPOINT_PATTERN
from trainer.config import TrainConfig
from trainer.event_file import load_events
from trainer.events import EVENTS_FILE, StopReason, stop_sentence
from trainer.formats import FORMATS
from trainer.fsutil import atomic_write_bytes
from trainer.install_guide import (is_invokeai4_root, is_invokeai_legacy_root,
                                   root_copy_source, root_copy_target, tool_lines)


@dataclass
class RunOutcome:
    """The end of a run as events.jsonl tells it."""

    reason: StopReason | str | None = None
    """The `stopped` event's reason, or None when the run has not said it stopped."""
    step: int | None = None
    """The step the run stopped at; None without a stopped event."""
    files: list[str] = field(default_factory=list)
    """The final files the stopped event lists."""
    message: str = ""
    """The stopped event's message (an error stop's text)."""
    ratio: float | None = None
    """DVAR's last ratio, when the stopped event gives it."""
    threshold: float | None = None
    """DVAR's threshold, when the stopped event gives it."""
    error: str = ""
    """The last `error` event's message and hint."""

    @classmethod
    def from_state(cls, state: RunState) -> RunOutcome:
        """The outcome of a folded run: its stopped event and its last error."""
        error = state.error
        outcome = cls(error=" ".join(filter(None, [error.message, error.hint])) if error else "")
        stopped = state.stopped
        if stopped is not None:
            outcome.reason, outcome.step, outcome.files = stopped.reason, stopped.step, \
                list(stopped.files)
            outcome.message, outcome.ratio = stopped.message, stopped.ratio
            outcome.threshold = stopped.threshold
        return outcome

    @property
    def failed(self) -> bool:
        """The run ended in an error (its stopped reason, or an error with no stopped event)."""
        return self.reason == StopReason.ERROR or (self.reason is None and bool(self.error))

    def describe(self) -> str:
        """One or two sentences: why the run stopped, at which step, and any error."""
        if self.reason is None:
            return "The run ended without saying why" + (f": {self.error}" if self.error else
                                                         " (see trainer.log).")
        text = f"Stopped at step {self.step}: {stop_sentence(self.reason)}"
        if (self.reason == StopReason.EARLY_STOP and self.ratio is not None
                and self.threshold is not None):
            text += f" (ratio {self.ratio:.3f} < {self.threshold})"
        if self.reason == StopReason.ERROR and (self.error or self.message):
            text += f": {self.error or self.message}"
        elif self.message:
            text += f". {self.message}"
        return text + "."


def read_outcome(output_dir: Path) -> RunOutcome:
    """The outcome of the run in `output_dir`, from its events.jsonl folded into a RunState."""
    path = Path(output_dir) / EVENTS_FILE
    if not path.is_file():
        return RunOutcome(error=f"{path} does not exist")
    return RunOutcome.from_state(fold_all(load_events(path), RunState(base_dir=str(path.parent))))


def final_embedding(config: TrainConfig) -> Path | None:
    """The final file an InvokeAI 2.3/3.x root takes (install_guide.root_copy_source)."""
    return root_copy_source(config.output_path, config.trigger, config.num_vectors)


def embeddings_target(config: TrainConfig) -> Path:
    """Where that file's copy goes: ROOT/embeddings/<trigger>/<its name>."""
    source = final_embedding(config) or Path(FORMATS["diffusers_bin"].file_name(config.trigger))
    return root_copy_target(config.root, config.trigger, source)


def checkpoint_folders(output_dir: Path) -> list[Path]:
    """The `checkpoint-<step>` folders of a run, in name order."""
    folder = Path(output_dir)
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_dir() and CHECKPOINT_PATTERN.match(p.name))


def place_embedding(config: TrainConfig, keep: bool) -> Path | None:
    """Make ROOT/embeddings/<trigger>/ hold the final embedding (keep) or not our copy (not
    keep). Returns the copy's path when it is there afterwards."""
    source, target = final_embedding(config), embeddings_target(config)
    if source is None or not is_invokeai_legacy_root(config.root):
        return None  # only a real InvokeAI 2.3/3.x root gets (or loses) a copy
    ours = target.is_file() and target.read_bytes() == source.read_bytes()
    if keep:
        if not ours:
            atomic_write_bytes(target, source.read_bytes())
        return target
    if ours:
        target.unlink()
        if not any(target.parent.iterdir()):
            target.parent.rmdir()
    return None


def delete_checkpoints(output_dir: Path) -> list[Path]:
    """Delete the run's checkpoint folders; returns the ones removed."""
    removed = checkpoint_folders(output_dir)
    for folder in removed:
        shutil.rmtree(folder, ignore_errors=True)
    return removed


@dataclass
class SummaryResult:
    """What the summary did: where the embedding was copied (or None) and what was deleted."""

    copied_to: Path | None
    """Where the final embedding was copied, or None when it was not."""
    deleted: list[Path]
    """The checkpoint folders removed (delete_checkpoints), empty unless the user chose it."""


class SummaryScreen(FittedKeyLine, Screen[SummaryResult]):
    """The end of a run; Enter on Done (or Ctrl-S) applies the two choices."""

    DEFAULT_CSS = """
    SummaryScreen > VerticalScroll { padding: 1 2; }
    SummaryScreen #summary-title { text-style: bold; padding: 0 0 1 0; }
    SummaryScreen .summary-files { color: $text-muted; padding: 0 0 1 2; }
    SummaryScreen Vertical { height: auto; }
    SummaryScreen Checkbox { width: 1fr; }
    SummaryScreen Horizontal { height: auto; padding: 1 0 0 0; }
    SummaryScreen #summary-keys { color: $text-muted; padding: 1 0 0 0; }
    /* Short terminals (terminal.SHORT_HEIGHT): no blank rows, and the key sentence goes (the
       footer has the keys), so more of the outcome and the files shows before scrolling. */
    SummaryScreen.-short > VerticalScroll { padding: 0 1; }
    SummaryScreen.-short #summary-title, SummaryScreen.-short Horizontal { padding: 0; }
    SummaryScreen.-short .summary-files { padding: 0 0 0 2; }
    SummaryScreen.-short #summary-keys { display: none; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+s", "done", "Done", priority=True, tooltip="apply the choices ticked"),
        # q as well as Esc: every screen without a text field closes with either.
        Binding("escape,q", "leave", "Leave as is", key_display="esc",
                tooltip="Leave as is: close without copying or deleting anything")]
    AUTO_FOCUS = "#summary-copy"
    HELP_TITLE = "the run's summary"
    HELP_KEYS = (("Tab / Shift-Tab", "next / previous choice"),
                 ("Space", "tick or untick a choice"), ("Enter", "on Done, apply the choices"))
    """F1's rows for the keys that are no binding here (ti_tui/screens/help.py)."""
    HELP_FOOT = "Scroll down for the run's curves and its previews over steps."

    def __init__(self, config: TrainConfig, outcome: RunOutcome | None = None) -> None:
        super().__init__()
        self.config = config
        self.outcome = outcome or read_outcome(config.output_path)

    def compose(self) -> ComposeResult:
        out = self.config.output_path
        embedding = final_embedding(self.config)
        checkpoints = checkpoint_folders(out)
        target = embeddings_target(self.config)
        modern_root = is_invokeai4_root(self.config.root)
        with VerticalScroll():
            yield Static(f"Training {self.config.trigger} has ended", id="summary-title",
                         markup=False)
            yield Static(self.outcome.describe(), markup=False)
            files = self.outcome.files or ([str(embedding)] if embedding else [])
            yield Static("Files:\n" + "\n".join(files) if files else "No files were written.",
                         classes="summary-files", markup=False)
            guide = tool_lines(out, self.config.trigger, self.config.root,
                               self.config.num_vectors)
            if guide:
                yield Static("Which file for which tool:\n" + "\n".join(guide),
                             classes="summary-files", id="summary-tools", markup=False)
            with Vertical():
                legacy_root = is_invokeai_legacy_root(self.config.root)
                copyable = embedding is not None and legacy_root
                label = (f"Put the embedding in {target.parent}/" if legacy_root else
                         "No copy into this InvokeAI 4+ root: add the file in its Model Manager"
                         if modern_root else f"No copy: {self.config.root} is not an InvokeAI "
                         "2.3/3.x root")
                yield Tick(label, copyable, disabled=not copyable, id="summary-copy",
                           compact=True)
                yield Tick(f"Delete the {len(checkpoints)} intermediate checkpoint "
                               "folder(s)", False, disabled=not checkpoints,
                               id="summary-delete", compact=True)
            with Horizontal():
                yield Button("Done", id="summary-done", variant="primary", compact=True)
            yield Static("Space ticks or unticks; Enter on Done or Ctrl-S applies the choices; "
                         "Esc or q leaves everything as it is.", id="summary-keys")
            # The run's curves and its previews over steps (scroll down to them).
            from ti_tui.screens.preview_grid import PreviewGrid
            from ti_tui.screens.run_curves import RunCurves

            yield RunCurves(out)
            yield Static("Previews, step 0 to the end:", id="summary-previews-title")
            yield PreviewGrid(out, id="summary-previews")
        yield Footer()

    def on_mount(self) -> None:
        # Focusing the first choice scrolls it into view before the curves below have their
        # height; start at the top instead, where the outcome is (in any terminal size).
        self.call_after_refresh(self.query_one(VerticalScroll).scroll_home, animate=False)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.action_done()

    def action_done(self) -> None:
        keep = self.query_one("#summary-copy", Checkbox)
        delete = self.query_one("#summary-delete", Checkbox)
        try:
            copied = place_embedding(self.config, keep.value) if not keep.disabled else None
            deleted = delete_checkpoints(self.config.output_path) if delete.value else []
        except OSError as exc:
            self.notify(f"Could not finish: {exc}", severity="error")
            return
        self.dismiss(SummaryResult(copied, deleted))

    def action_leave(self) -> None:
        target = embeddings_target(self.config)
        self.dismiss(SummaryResult(target if target.is_file() else None, []))
