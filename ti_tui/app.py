"""The Textual app behind `ti-tui`, `ti-tui --gui` and `ti-tui demo`.

One flow, run by a worker: the setup form returns a TrainConfig, the runner starts the trainer
process, the live screen watches it, and the summary screen closes the run. `make_app` is the
one factory the CLI, the tests and the snapshots use; tests pass a fake `runner` (and a fake
live screen) so no trainer is ever started.

The app's result says how it ended ("quit", "finished", "stopped", "detached", "error"), and
`return_code` is what the CLI should exit with (0, or 1 when the run failed).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

from textual import work
from textual.app import App
from textual.binding import Binding, BindingType
from textual.events import Resize
from textual.screen import Screen

from ti_tui.preferences import restore_preferences, save_preferences
from ti_tui.screens.form import TrainingForm
from ti_tui.screens.help import HelpScreen
from ti_tui.screens.summary import SummaryScreen, read_outcome
from ti_tui.screens.too_small import TooSmallScreen
from ti_tui import terminal
from trainer.config import TrainConfig
from trainer.errors import UserError

Runner = Callable[[TrainConfig], Any]
"""start_run(config) -> RunHandle: writes run.toml and starts the trainer."""
TrainScreenFactory = Callable[[Any], Screen]
"""handle -> the live screen, a Screen[str] dismissing "finished" | "stopped" | "detached"."""


def _default_runner(config: TrainConfig) -> Any:
    from ti_tui.runner import start_run

    return start_run(config)


def _default_train_screen(handle: Any) -> Screen:
    from ti_tui.screens.train import TrainScreen

    return TrainScreen(handle)


class TiTuiApp(App[str]):
    """Form -> trainer -> live screen -> summary."""

    CSS_PATH = "app.tcss"
    TITLE = "ti-tui"
    ENABLE_COMMAND_PALETTE = False  # Ctrl-P moves to the previous field
    # -narrow/-wide and -short/-tall on every screen: its CSS degrades by them (terminal.py).
    HORIZONTAL_BREAKPOINTS = terminal.HORIZONTAL_BREAKPOINTS
    VERTICAL_BREAKPOINTS = terminal.VERTICAL_BREAKPOINTS
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("f1", "help", "Help", tooltip="the keys of this screen (this page)"),
        # Textual's own Ctrl-Q, restated so F1 can say what it does here.
        Binding("ctrl+q", "quit", "Quit", show=False, priority=True,
                tooltip="quit ti-tui (a running trainer goes on: `ti-tui watch` shows it)")]

    def __init__(self, *, root: Path, defaults: TrainConfig, runner: Runner,
                 train_screen: TrainScreenFactory, demo: bool = False,
                 notes: list[str] | None = None, home: list[Path] | None = None,
                 refused: dict[str, tuple[str, str]] | None = None,
                 watch: Path | None = None) -> None:
        super().__init__()
        self.root = root
        self.home = home
        """None: the form opens first (`ti-tui --gui`). A list: the home screen of runs opens
        first (`ti-tui`), listing ROOT/text-inversion-output and these folders (--runs)."""
        self.defaults = defaults
        """The config the form opens with."""
        self.runner = runner
        self.train_screen = train_screen
        self.demo = demo
        """Demo runs do not save preferences: the demo must not replace the user's settings."""
        self.notes = notes or []
        """Things to tell the user once the form is up (e.g. saved settings that were dropped)."""
        self.refused = dict(refused or {})
        """Command-line values the first form shows and marks (cli._form_defaults)."""
        self.watch = watch
        """A running run's folder: the app opens on its live screen (`ti-tui watch`)."""
        self.config: TrainConfig | None = None
        """The config of the run started, once one is."""
        self.handle: Any = None
        self._too_small: TooSmallScreen | None = None

    def on_mount(self) -> None:
        self._check_size()
        self.run_flow()

    # --- the flow --------------------------------------------------------------------------------

    @work(exclusive=True, group="flow")
    async def run_flow(self) -> None:
        """The app's one flow worker, started on mount: the home screen's loop when the app
        opened on it, else one train_flow; then exit with its outcome (1 for "error")."""
        if self.watch is not None:
            await self.watch_flow(self.watch)
            return
        if self.home is not None:
            from ti_tui.screens.home import home_flow

            await home_flow(self)  # the home screen's loop; it ends the app itself
            return
        outcome = await self.train_flow(self.defaults)
        if outcome == "detached":
            self.exit("detached", message=self.watch_hint())
            return
        self.exit(outcome or "finished", return_code=1 if outcome == "error" else 0)

    async def train_flow(self, defaults: TrainConfig) -> str | None:
        """Form -> trainer -> live screen -> summary. Returns "detached", "finished",
        "stopped" or "error"; None when the form was left without starting (it is left so
        only when the home screen opened it; otherwise Esc quits the app)."""
        problem = None
        while True:
            form = TrainingForm(root=self.root, defaults=defaults, problem=problem,
                                refused=self.refused)
            self.refused = {}  # the command line's values, for the first form only
            if self.notes:
                for note in self.notes:
                    self.notify(note, severity="warning", timeout=8)
                self.notes = []
            config = await self._show(form)
            if config is None:
                return None
            if not self.demo:
                self._save_preferences(config)
            self.notify("Checking everything and starting the trainer...", timeout=4)
            try:
                # The runner checks images and the model (preflight): seconds, off the UI loop.
                self.handle = await asyncio.to_thread(self.runner, config)
            except UserError as exc:
                defaults, problem = config, exc
                continue
            except OSError as exc:  # e.g. the output folder cannot be created
                defaults, problem = config, UserError(f"Could not start the trainer: {exc}.")
                continue
            break
        self.config = config
        outcome = await self._show(self.train_screen(self.handle))
        if outcome == "detached":
            return "detached"
        result = read_outcome(config.output_path)
        await self._show(SummaryScreen(config, result))
        return "error" if result.failed else (outcome or "finished")

    async def watch_flow(self, folder: Path) -> None:
        """`ti-tui watch FOLDER` on a terminal: the live screen of the run there (every key of
        it, F1 among them), then its summary once it has ended; leaving the live screen (d,
        Ctrl-Q, a signal) leaves the run going and says how to come back. Exit code 0."""
        from ti_tui.runs_index import AttachedRun
        from ti_tui.runner import watch_hint

        self.handle = AttachedRun(folder)
        try:  # the summary's config; the live screen needs only the events
            self.config = TrainConfig.from_toml(folder / "run.toml").replace(
                output_dir=str(folder))
        except UserError:
            self.config = None
        outcome = await self._show(self.train_screen(self.handle))
        if outcome == "detached":
            self.exit("detached", message=watch_hint(folder))
            return
        if self.config is not None:
            await self._show(SummaryScreen(self.config, read_outcome(folder)))
        self.exit(outcome or "finished")

    def watch_hint(self) -> str:
        """How to come back to the run this app leaves running (runner.watch_hint's words)."""
        from ti_tui.runner import watch_hint

        folder = self.config.output_path if self.config else self.watch
        return watch_hint(folder or Path("."))

    def _save_preferences(self, config: TrainConfig) -> None:
        try:
            save_preferences(self.root, config)
        except OSError as exc:
            self.notify(f"Could not save your settings ({exc}); the run starts anyway.",
                        severity="warning")

    async def _show(self, screen: Screen) -> Any:
        """push_screen_wait, keeping the "too small" notice on top when it is up."""
        if self._too_small is not None:
            self.pop_screen()
            self._too_small = None
        dismissed = self.push_screen(screen, wait_for_dismiss=True)
        self._check_size()
        return await dismissed

    # --- keys ----------------------------------------------------------------------------------

    def action_help(self) -> None:
        if not isinstance(self.screen, (HelpScreen, TooSmallScreen)):
            self.push_screen(HelpScreen.of(self.screen))  # that screen's own keys

    async def action_quit(self) -> None:
        if self.handle is not None and self.is_running_trainer():
            # Quitting the UI never kills a run: it keeps going, and `watch` re-attaches.
            self.exit("detached", message=self.watch_hint())
        else:
            self.exit("quit")

    def leave_on_signal(self, signum: int, exit_code: int) -> None:
        """SIGTERM, SIGHUP, SIGQUIT or SIGINT (ti_tui/exits.py): leave like q does, with the
        signal's exit code. A running trainer goes on (it has its own session)."""
        if self.handle is not None and self.is_running_trainer():
            self.exit("detached", return_code=exit_code, message=self.watch_hint())
        else:
            self.exit("signal", return_code=exit_code)

    def is_running_trainer(self) -> bool:
        """Whether this app started or attached a trainer whose process is still alive."""
        alive = getattr(self.handle, "is_alive", None)
        return bool(alive()) if callable(alive) else False

    # --- terminal size -------------------------------------------------------------------------

    def on_resize(self, event: Resize) -> None:
        # self.size catches up a moment later; the event already has the new size.
        self._check_size(event.size.width, event.size.height)

    def _check_size(self, width: int | None = None, height: int | None = None) -> None:
        small = terminal.too_small(width or self.size.width, height or self.size.height)
        if small and self._too_small is None:
            self._too_small = TooSmallScreen()
            self.push_screen(self._too_small)
        elif not small and self._too_small is not None:
            if self.screen is self._too_small:
                self.pop_screen()
                self._too_small = None
            else:
                # Two resizes in quick succession: the notice's push has not landed yet, so it
                # cannot be popped now; forgetting it here left it up for good (seen under
                # load in tests/system/test_app_tmux.py). Look again once the screen stack settled.
                self.call_after_refresh(self._check_size)


def make_app(*, root: Path, defaults: TrainConfig | None = None, runner: Runner | None = None,
             demo: bool = False, train_screen: TrainScreenFactory | None = None,
             restore: bool = True, home: list[Path] | None = None,
             refused: dict[str, tuple[str, str]] | None = None,
             watch: Path | None = None) -> TiTuiApp:
    """The app for `ti-tui` / `ti-tui --gui` (and `ti-tui demo` with demo=True).

    `home`: open the home screen of runs first (`ti-tui` with no arguments), listing
    ROOT/text-inversion-output and these extra folders; None opens the form first.

    `defaults`: the config the form opens with (else TrainConfig defaults, or the demo's);
    saved preferences are laid over it unless `restore` is False or this is the demo.
    `runner` starts the trainer (default ti_tui.runner.start_run); `train_screen` builds the
    live screen from the runner's handle (default ti_tui.screens.train.TrainScreen).
    `refused`: values the command line gave that TrainConfig refused, field -> (as typed,
    why); the form opens showing them, marked (cli._form_defaults). `watch`: a running run's
    folder to open the live screen of, instead of the form (`ti-tui watch`).
    """
    root = Path(root).expanduser()
    notes: list[str] = []
    if demo:
        if defaults is None:
            from ti_tui.demo_setup import demo_config

            defaults = demo_config(root=str(root))
        config = defaults
    else:
        config = defaults or TrainConfig(root=str(root))
        if restore:
            config, notes = restore_preferences(root, config)
    config = config.replace(root=str(root))
    return TiTuiApp(root=root, defaults=config, runner=runner or _default_runner,
                    train_screen=train_screen or _default_train_screen, demo=demo, notes=notes,
                    home=home, refused=refused, watch=watch)
