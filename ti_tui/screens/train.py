"""TrainScreen: the live dashboard of a running trainer, inside the Textual app.

A thread worker tails events.jsonl and posts each batch of new events; the screen folds them
into one RunState and marks it dirty. A 4 Hz timer then refreshes the panel widgets that
changed, so a trainer doing 100 steps a second costs at most four redraws a second (and the
charts, the dearest panels, at most one). Each widget draws one panel declared in
ti_tui/panels.py, the same drawing the headless view uses.

Keys: s save a checkpoint now, p preview now, q / Ctrl-C stop (after a y/n question),
d detach (the trainer goes on; `ti-tui watch OUTPUT_DIR` comes back to it), v the previews;
once the run ended, q, Enter or Esc close it. Below 58 columns the key line keeps the most
used keys beside F1 (ti_tui/screens/key_line.py).
The screen dismisses with "finished", "stopped" or "detached".
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import ClassVar

from rich.console import RenderableType
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.events import Resize
from textual.message import Message
from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import Footer, Static
from textual.worker import Worker, WorkerState, get_current_worker

from ti_tui import panels
from ti_tui.panel_format import status_words
from ti_tui.runner import RunHandle
from ti_tui.screens.key_line import FittedKeyLine
from ti_tui.screens.question import Question
from ti_tui.state import RunState, fold
from ti_tui.tail import EventTail
from trainer.events import Event, StopReason

POLL_S = 0.1
"""How long the tail worker sleeps when the file has nothing new."""
REFRESH_S = panels.TEXT_REFRESH_S
"""The redraw timer: text panels at most 4 times a second, charts once (panels.py)."""


class EventsRead(Message):
    """A batch of new events from events.jsonl, in file order."""

    def __init__(self, events: list[Event]) -> None:
        super().__init__()
        self.events = events
        """The typed events (the tail skips partial lines and blank ones)."""


class TrainerExited(Message):
    """The trainer process is gone and its last events have been read."""

    def __init__(self, code: int | None) -> None:
        super().__init__()
        self.code = code
        """Its exit code, if the handle knows it."""


class PanelView(Widget):
    """One dashboard panel, drawn from the screen's shared RunState at this widget's size."""

    spec: ClassVar[panels.PanelSpec]
    """The panel as ti_tui/panels.py declares it: its function, redraw cap, clock ticks and
    the layout modes that show it."""

    def __init__(self, state: RunState) -> None:
        super().__init__()
        self.state = state
        """The screen's RunState; it is folded in place, so this reference stays current."""
        self.drawn_version = -1
        """`state.events` when this widget last asked to be redrawn."""
        self.drawn_at = 0.0

    @property
    def refresh_every(self) -> float:
        """Seconds between redraws at most (the charts cost more than the text panels)."""
        return self.spec.refresh_s

    @property
    def ticks(self) -> bool:
        """Redraw every second while running, for clocks that move without events."""
        return self.spec.ticks

    def render(self) -> RenderableType:
        width, height = self.size
        # An ended run's clocks stop at its last event (a dead trainer writes no stopped event).
        ended = self.state.finished or getattr(self.screen, "ended", False)
        now = None if ended else time.time()
        return self.spec.draw(self.state, width, height, now)


class HeaderView(PanelView):
    """Trigger, model, device and output (text_panels.header_panel)."""

    spec = panels.HEADER


class ProgressView(PanelView):
    """Step, bar, clocks, rates and DVAR's earliest stop (text_panels.progress_panel)."""

    spec = panels.PROGRESS


class LossView(PanelView):
    """Training loss, its smoothed line and L_det (chart_panels.loss_panel)."""

    spec = panels.LOSS


class DvarView(PanelView):
    """The DVAR ratio against its threshold (chart_panels.dvar_panel)."""

    spec = panels.DVAR


class ScheduleView(PanelView):
    """Learning rate, its next change and gradient clipping (text_panels.schedule_panel)."""

    spec = panels.SCHEDULE


class FilesView(PanelView):
    """Checkpoints, snapshots, previews, warnings and errors (text_panels.files_panel)."""

    spec = panels.FILES


class PreviewView(PanelView):
    """The last preview image in half-blocks (chart_panels.preview_panel)."""

    spec = panels.PREVIEW


class TopRow(Horizontal):
    """Progress, schedule and files."""


class ChartRow(Horizontal):
    """Loss, DVAR and the preview."""


class StatusLine(Static):
    """One line for what the keys did: stopping, finished, exited without a stop event."""


class ConfirmStop(Question):
    """Asks whether to stop the run; True means stop. Enter alone keeps training
    (ti_tui/screens/question.py). On the live screen (`leave`), d answers LEAVE instead:
    whoever pressed q to quit a viewer, as in less or top, learns here how to leave with the
    run going on."""

    BINDINGS = [
        Binding("y", "answer(True)", "Stop"),
        Binding("n", "answer(False)", "Keep training"),
        Binding("escape", "answer(False)", "Keep training", show=False),
        Binding("d", "leave", "Leave it running",
                tooltip="leave this screen, the run going on (`ti-tui watch` comes back)"),
    ]
    KIND = "stop"
    HELP_TITLE = "the stop question"
    LEAVE = "leave"
    """The answer of d: leave the live screen with the run going on."""

    def __init__(self, leave: bool = False) -> None:
        words = "The trainer finishes this step, saves a checkpoint and the embedding, then exits."
        if leave:
            words += " Or press d to leave this screen with the run going on."
        super().__init__("Stop training?", words, yes="Stop", no="Keep training")
        self.offers_leave = leave

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """d applies only where leaving was offered (the live screen, not the home list)."""
        return self.offers_leave if action == "leave" else True

    def action_leave(self) -> None:
        self.dismiss(self.LEAVE)  # type: ignore[arg-type]


KEYS: tuple[tuple[str, str, str, str, str], ...] = (
    ("s", "save", "Save checkpoint", "Save", "save a checkpoint after this step"),
    ("p", "preview", "Preview", "Preview", "render a preview after this step"),
    ("v", "view_previews", "View previews", "Previews", "every preview so far, as a grid"),
    ("q", "stop", "Stop", "Stop", "stop the run (after a y/n question); it saves first"),
    ("d", "detach", "Detach", "Detach",
     "leave the trainer running and quit (`ti-tui watch` comes back)"),
    ("q,enter,escape", "close", "Close", "Close", "close this screen once the run ended"),
)
"""(keys, action, footer words, short footer words, what F1 says): the live screen's keys."""
_SHORTENED = {action for _, action, _, _, _ in KEYS}
NARROW_WIDTH = 74
"""Below this many columns the footer uses the short words: the long ones with F1 Help take
73 cells, and Textual's footer cuts what does not fit (it cut Detach and F1 at 60x20)."""
KEYS_FIRST = tuple(name for action in ("stop", "close", "detach", "save", "preview",
                                       "view_previews")
                   for name in (action, f"short({action!r})"))
"""The key line's actions, most used first: below 58 columns even the short words do not all
fit, so the line keeps those that fit beside F1 (ti_tui/screens/key_line.py), which lists
them all; every key works whether shown or not."""


class TrainScreen(FittedKeyLine, Screen[str]):
    """The live dashboard of the trainer behind `handle`."""

    KEYS_FIRST = KEYS_FIRST
    CSS_PATH = "../train.tcss"
    BINDINGS = [
        *(Binding(key, action, words, tooltip=what) for key, action, words, _, what in KEYS),
        # The same keys with short words, for a terminal too narrow for the long ones (the
        # footer cut "d Detach" and "F1 Help" off at 60 columns).
        *(Binding(key, f"short({action!r})", short, tooltip=what)
          for key, action, _, short, what in KEYS),
        Binding("ctrl+c", "interrupt", "Stop", show=False, priority=True,
                tooltip="ask to stop the run (y/n); once it ended, close this screen"),
    ]
    HELP_TITLE = "the live training screen"
    HELP_FOOT = ("The trainer runs on when this screen closes by d or the terminal goes: "
                 "`ti-tui watch OUTPUT_DIR` shows it again.")

    def __init__(self, handle: RunHandle) -> None:
        super().__init__()
        self.handle = handle
        """The trainer: where its events are, and how to ask it to save, preview or stop."""
        self.state = RunState(base_dir=str(handle.events_path.parent))
        """Everything the panels show, folded from the events read so far."""
        self.ended = False
        """True once the run has a stopped event or its process is gone."""
        self.stop_asked = False
        self._dirty = False
        self._last_tick = 0

    # --- layout -----------------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        yield HeaderView(self.state)
        with TopRow():
            yield ProgressView(self.state)
            yield ScheduleView(self.state)
            yield FilesView(self.state)
        with ChartRow():
            yield LossView(self.state)
            yield DvarView(self.state)
            yield PreviewView(self.state)
        yield StatusLine()
        yield Footer()

    @property
    def views(self) -> list[PanelView]:
        """Every panel widget on the screen, in layout order."""
        return list(self.query(PanelView))

    @property
    def status_line(self) -> StatusLine:
        """The line above the footer that says what the last key did."""
        return self.query_one(StatusLine)

    def on_mount(self) -> None:
        self._apply_layout(self.app.size.width, self.app.size.height)
        self.set_interval(REFRESH_S, self._redraw)
        self._tail()

    def on_resize(self, event: Resize) -> None:
        # FittedKeyLine then fits the key line: long or short words (check_action), compact
        # with the most used keys beside F1 where even the short ones do not all fit.
        self._apply_layout(event.size.width, event.size.height)

    def _apply_layout(self, width: int, height: int) -> None:
        """Show the panels that fit, at the sizes the headless layout uses (panels.arrange's
        numbers); the screen also carries -compact, -medium or -full for the CSS."""
        mode = panels.layout_mode(width, height)
        for name in (panels.TINY, panels.COMPACT, panels.MEDIUM, panels.FULL):
            self.set_class(mode == name, f"-{name}")
        for view in self.views:
            view.display = mode in view.spec.modes
        heights = panels.row_heights(mode)
        self.query_one(HeaderView).styles.height = heights[panels.ROWS[0]]
        # In the tiny mode progress is the last row shown: it takes the rest, as in arrange.
        tiny = mode == panels.TINY
        self.query_one(TopRow).styles.height = "1fr" if tiny else heights[panels.ROWS[1]]
        self.query_one(ChartRow).display = not tiny
        self.query_one(PreviewView).styles.width = panels.preview_width(width, mode)

    # --- events in --------------------------------------------------------------------------
    @work(thread=True, exclusive=True, exit_on_error=False, group="tail")
    def _tail(self) -> None:
        """Read new events as they are appended and post them; report the trainer's exit."""
        worker = get_current_worker()
        tail = EventTail(self.handle.events_path)
        while not worker.is_cancelled:
            events = tail.read_new()
            if events:
                self.post_message(EventsRead(events))
                if not tail.pending:
                    # Let a fast trainer's steps pile up: one message per poll, not per line.
                    worker.cancelled_event.wait(POLL_S)
                continue
            if not self.handle.is_alive():
                rest = tail.read_new()
                if rest:
                    self.post_message(EventsRead(rest))
                self.post_message(TrainerExited(self.handle.wait(0)))
                return
            worker.cancelled_event.wait(POLL_S)

    @on(EventsRead)
    def _fold(self, message: EventsRead) -> None:
        for event in message.events:
            fold(self.state, event)
        self._dirty = True
        if self.state.finished and not self.ended:
            self._end(f"Run finished: {status_words(self.state)}. Press q to close.")

    @on(TrainerExited)
    def _exited(self, message: TrainerExited) -> None:
        if not self.ended:
            code = f" (exit code {message.code})" if message.code is not None else ""
            self._end(f"The trainer exited without a stopped event{code}. Press q to close.",
                      error=True)

    @on(Worker.StateChanged)
    def _worker_failed(self, event: Worker.StateChanged) -> None:
        if event.state == WorkerState.ERROR:
            self._say(f"Reading {self.handle.events_path} failed: {event.worker.error}",
                      error=True)

    def _end(self, words: str, error: bool = False) -> None:
        self.ended = True
        self._dirty = True
        self._say(words, error)
        self.fit_key_line(self.size.width)  # fewer keys now: maybe all fit again

    def _say(self, words: str, error: bool = False) -> None:
        self.status_line.update(words)
        self.status_line.set_class(error, "-error")
        self.status_line.display = True

    def _redraw(self) -> None:
        """The redraw timer: redraw what changed (each view at its own cap) and the clock."""
        clock = time.monotonic()
        second = int(clock)
        tick = second != self._last_tick and not self.ended
        self._last_tick = second
        if not self._dirty and not tick:
            return
        pending = False
        for view in self.views:
            changed = view.drawn_version != self.state.events
            if changed and clock - view.drawn_at < view.refresh_every:
                pending = True  # drawn recently: the next tick catches up
            elif changed or (tick and view.ticks):
                view.drawn_version, view.drawn_at = self.state.events, clock
                view.refresh()
        self._dirty = pending

    # --- keys -------------------------------------------------------------------------------
    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Textual's hook for which bindings apply: close only once the run ended; save,
        preview, stop and detach only while it runs."""
        if action == "short":  # the short-worded twin of a key, in a narrow terminal
            return self.narrow and self._runs_now(str(parameters[0]))
        if action in _SHORTENED and self.narrow:
            return False
        return self._runs_now(action)

    def _runs_now(self, action: str) -> bool:
        if action == "close":
            return self.ended
        if action in ("save", "preview", "stop", "detach"):
            return not self.ended
        return True

    @property
    def narrow(self) -> bool:
        """Too narrow for the long key words in the footer (NARROW_WIDTH)."""
        return self.app.size.width < NARROW_WIDTH

    def action_short(self, action: str) -> None:
        """A key's short-worded twin does what the key does."""
        getattr(self, f"action_{action}")()

    def action_save(self) -> None:
        if self._request("save"):
            self.notify("Checkpoint requested: it is saved after this step.")

    def action_preview(self) -> None:
        if self._request("preview"):
            self.notify("Preview requested: it is rendered after this step.")

    def _request(self, action: str) -> bool:
        """Send a request file; a full or read-only disk is a notice, not a crash."""
        from trainer.errors import UserError

        try:
            self.handle.request(action)
        except UserError as exc:
            self.notify(str(exc), severity="error")
            return False
        return True

    def action_view_previews(self) -> None:
        """Every preview so far, full screen, as a grid over steps (q comes back here)."""
        from ti_tui.screens.preview_grid import PreviewGridScreen

        self.app.push_screen(PreviewGridScreen(self.handle.events_path.parent))

    def action_stop(self) -> None:
        if self.stop_asked:
            self.notify("Already stopping: the trainer is saving and will exit.")
            return
        self.app.push_screen(ConfirmStop(leave=True), self._confirmed)

    def _confirmed(self, stop: bool | str | None) -> None:
        if stop == ConfirmStop.LEAVE:
            self.action_detach() if not self.ended else self.action_close()
            return
        if stop and not self.ended:
            self.handle.stop()
            self.stop_asked = True
            self._say("Stopping: the trainer finishes this step, saves a checkpoint and the "
                      "embedding, then exits.")

    def action_interrupt(self) -> None:
        """Ctrl-C: stop while running, close once ended."""
        self.action_close() if self.ended else self.action_stop()

    def action_detach(self) -> None:
        """Leave the trainer running; the app prints `runner.watch_hint` as it quits."""
        self.dismiss("detached")

    def action_close(self) -> None:
        user = self.stop_asked or self.state.stop_reason == StopReason.USER
        self.dismiss("stopped" if user else "finished")
