"""The home screen: what `ti-tui` with no arguments opens, as a launcher menu starts it.

It lists the runs under ROOT/text-inversion-output and any `--runs DIR` (ti_tui/runs_index.py
reads them: two small reads per run), refreshed every few seconds, one line each: the run's
folder name (when the trigger alone does not tell the runs apart), trigger, model and family,
state, updates done, last L_det and DVAR ratio, age, best file. The table is fitted to the
width by ti_tui/screens/home_fit.py: columns give way whole, a cell is never cut. Below the
table, the chosen run in full: folder, trigger and state words, best file to use (its name
first, the folder shortened from the left); below SHORT rows, that one line only, so the list
keeps its rows. The key line keeps the keys that fit, most used first, and then shows F1 for
the whole list.

Keys (all in the footer; the mouse is never needed):
    n new run           r resume (the form pre-filled from run.toml, Resume ticked)
    Enter open: the live screen of a running run, the summary of an ended one
    s stop a running run (asks; a clean stop through the folder, as the live screen's)
    p the previews as a grid over steps
    x / Delete delete a run folder (asks; "Keep" is the default button)
    m the models found (as `ti-tui models`)
    q / Esc / Ctrl-C quit (a running trainer goes on)

The screen itself starts nothing: it dismisses with a `HomeChoice` and the app's flow
(ti_tui/app.py) opens the form, the live screen or the summary, then comes back here.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static

from ti_tui.panel_format import short_float
from ti_tui.runs_index import (DAMAGED, NOT_A_RUN, RunEntry, default_runs_folder,
                               index_runs)
from ti_tui.runs_listing import no_runs_words
from ti_tui.screens.home_dialogs import ConfirmDelete, ModelsScreen
from ti_tui.screens.home_fit import KEYS_FIRST, age_words, fit, fit_path, use_words
from ti_tui.screens.key_line import FittedKeyLine

SHORT = 16
"""Below this many rows the details shrink to one line, so the list keeps its rows."""
REFRESH_S = 2.0
"""How often the list is read again (two small reads per changed run folder)."""
AGE_REDRAW_S = 10.0
"""An unchanged list is redrawn this often, for its Age column."""

STATE_STYLE = {"running": "bold cyan", "finished": "green", "dvar": "green", "user": "yellow",
               "failed": "red", "ended": "red", "damaged": "red", "not-started": "dim",
               "not-a-run": "dim"}


@dataclass(frozen=True)
class HomeChoice:
    """What the user picked: action is new | resume | open | previews | models | quit."""

    action: str
    """new, resume, open, previews, models or quit."""
    entry: RunEntry | None = None
    """The run it applies to (resume, open, previews); None otherwise."""


class HomeScreen(FittedKeyLine, Screen[HomeChoice]):
    """The list of runs and what can be done with them."""

    DEFAULT_CSS = """
    HomeScreen #home-title { height: 1; padding: 0 1; text-style: bold; }
    HomeScreen DataTable { height: 1fr; }
    HomeScreen #home-detail { height: auto; max-height: 6; padding: 0 1;
        border-top: solid $primary; }
    HomeScreen #home-empty { padding: 1 2; color: $text-muted; }
    HomeScreen.-short #home-detail { max-height: 1; border-top: none; }
    """
    KEYS_FIRST = KEYS_FIRST  # the key line's order of priority (home_fit.py)
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("n", "choose('new')", "New", tooltip="a new run: the form, empty"),
        Binding("r", "choose('resume')", "Resume",
                tooltip="resume the chosen run: the form, filled from it"),
        Binding("enter", "choose('open')", "Open", key_display="⏎", priority=True,
                tooltip="open the chosen run: the live screen of a running one, the summary "
                        "of an ended one"),
        Binding("s", "stop", "Stop", tooltip="ask the chosen running run to stop (it saves)"),
        Binding("p", "choose('previews')", "Previews", tooltip="the chosen run's previews"),
        Binding("x,delete", "delete", "Delete", key_display="x",
                tooltip="delete the chosen run's folder (asks first)"),
        Binding("m", "choose('models')", "Models", tooltip="the models found under the root"),
        Binding("q,escape", "choose('quit')", "Quit", key_display="q",
                tooltip="quit; running trainers go on"),
        # Ctrl-C too: on a launcher's first screen it is the key people press to get out
        # (Textual would only say "press ctrl+q"); exit 0 as for q, running trainers go on.
        # Its own binding, off the key line, so the line's Quit key stays q.
        Binding("ctrl+c", "choose('quit')", "Quit", show=False,
                tooltip="quit; running trainers go on"),
    ]
    HELP_TITLE = "the runs"
    HELP_KEYS = (("↑ ↓", "choose a run"),)
    """F1's rows for the keys that are no binding here (ti_tui/screens/help.py)."""

    def __init__(self, *, root: Path, runs: list[Path] | None = None,
                 select: Path | None = None) -> None:
        """`root`: the InvokeAI root (its text-inversion-output is listed); `runs`: more
        folders to list (--runs); `select`: the run folder to put the cursor on."""
        super().__init__()
        self.root = Path(root).expanduser()
        self.places = [default_runs_folder(self.root), *(Path(p).expanduser()
                                                          for p in runs or [])]
        self.entries: list[RunEntry] = []
        self._select = select
        self._drawn_at = 0.0
        self._columns: tuple[str, ...] = ()
        self._drawn_room = 0
        """The width the table was last fitted to."""

    def compose(self) -> ComposeResult:
        yield Static(self.title_words(200), id="home-title", markup=False)
        yield DataTable(cursor_type="row", zebra_stripes=True)
        yield Static("", id="home-detail", markup=False)
        yield Footer()

    def title_words(self, width: int) -> str:
        """"ti-tui · runs in A, B" within `width`: each place keeps its end (fit_path), so
        every --runs folder stays named on a narrow terminal."""
        head = "ti-tui · runs in "
        room = (width - len(head)) // len(self.places) - 2
        if room >= 16:
            return head + ", ".join(fit_path(p, room) for p in self.places)
        # Too narrow for paths: the folders' names, as many as fit.
        names = head + ", ".join(p.name for p in self.places)
        return names if len(names) <= width else names[:max(1, width - 1)] + "…"

    def on_resize(self) -> None:
        """Fit the title, the columns and the details to the new size (FittedKeyLine fits
        the key line)."""
        width, height = self.size
        self.set_class(0 < height < SHORT, "-short")
        self.query_one("#home-title", Static).update(self.title_words(width - 2))
        if self.entries and self._drawn_room != self.table_room(len(self.entries)):
            self._drawn_at = 0.0
            self.show_entries(self.entries)
        else:
            self.show_detail()

    def table_room(self, rows: int) -> int:
        """The cells the table's columns may take: the screen's width, less the vertical
        scroll bar when `rows` rows do not all fit (0 before the first layout)."""
        width, height = self.size
        table = self.query_one(DataTable)
        # Before the table is laid out, its height is the screen less the title, the key line
        # and the details (one line on a short screen, else up to four and the rule).
        shown = table.size.height or height - 2 - (1 if self.has_class("-short") else 5)
        bar = table.styles.scrollbar_size_vertical if rows + 1 > shown else 0
        return max(0, width - bar)

    def on_mount(self) -> None:
        self.reload()
        self.set_interval(REFRESH_S, self.reload)
        self.query_one(DataTable).focus()

    # --- the list ------------------------------------------------------------------------
    @work(thread=True, exclusive=True, group="home-index")
    def reload(self) -> None:
        """Index the runs off the UI thread, then show them."""
        entries = index_runs(self.places)
        self.app.call_from_thread(self.show_entries, entries)

    def show_entries(self, entries: list[RunEntry]) -> None:
        """Fill the table with `entries`, keeping the selected run under the cursor; skipped
        when nothing changed and the ages are fresh (AGE_REDRAW_S)."""
        now = time.time()
        if entries == self.entries and self._select is None and \
                now - self._drawn_at < AGE_REDRAW_S:
            return  # nothing changed: no redraw, the cursor and scroll stay as they are
        self._drawn_at = now
        table = self.query_one(DataTable)
        keep = self._select or (self.selected.folder if self.selected else None)
        if entries:
            self._select = None  # placed; kept until there is a list to place it in
        self.entries = entries
        self._drawn_room = self.table_room(len(entries))
        plan, rows = fit(entries, self._drawn_room, now)
        columns = plan.columns
        table.clear(columns=columns != self._columns)
        if columns != self._columns:
            table.add_columns(*columns)
            self._columns = columns
        for entry, cells in zip(entries, rows):
            styled = {**cells}
            if "State" in styled:
                styled["State"] = _styled(cells["State"], STATE_STYLE.get(entry.state, ""))
            table.add_row(*(styled[c] for c in columns), key=str(entry.folder))
        if keep is not None:
            for row, entry in enumerate(entries):
                if entry.folder == keep:
                    table.move_cursor(row=row)
                    break
        self.show_detail()

    @property
    def selected(self) -> RunEntry | None:
        """The run under the table's cursor, or None when the table is empty."""
        table = self.query_one(DataTable)
        if not self.entries or table.cursor_row is None:
            return None
        row = table.cursor_row
        return self.entries[row] if 0 <= row < len(self.entries) else None

    @on(DataTable.RowHighlighted)
    def show_detail(self) -> None:
        """Describe the selected run (folder, state, model, last L_det...) under the table."""
        detail = self.query_one("#home-detail", Static)
        entry = self.selected
        if entry is None:
            # The key first: on a short screen only the first line shows.
            detail.update(f"Press n to start a run: {no_runs_words(self.places)}.")
            return
        width = max(20, self.size.width - 2)
        use = (use_words(entry.best_file, width) if entry.best_file else
               "no embedding written yet")
        if self.has_class("-short"):
            # One line on a short terminal: the file to take, else what the run is doing.
            detail.update(use if entry.is_run and entry.best_file else entry.words)
            return
        # The trigger is named here too: the table may have given its column away.
        words = f"{entry.trigger} · {entry.words}" if entry.trigger else entry.words
        lines = [fit_path(entry.folder, width), words]
        if entry.is_run:
            figures = (f"   L_det {short_float(entry.l_det, 5)}   DVAR ratio "
                       f"{short_float(entry.dvar_ratio, 3)}   last event "
                       f"{age_words(entry.age())} ago")
            # The model's path gives way from the left so the figures stay on its line; on a
            # narrow screen they get a line of their own.
            room = width - len("model ") - len(figures)
            if room >= 12:
                lines.append(f"model {fit_path(entry.model or '-', room)}{figures}")
            else:
                lines += [f"model {fit_path(entry.model or '-', width - 6)}", figures.strip()]
            lines.append(use)
        detail.update("\n".join(lines))

    @on(DataTable.RowSelected)
    def _enter(self) -> None:
        self.action_choose("open")

    # --- keys ----------------------------------------------------------------------------
    def action_choose(self, action: str) -> None:
        entry = self.selected
        if action in ("new", "models", "quit"):
            self.dismiss(HomeChoice(action, entry))
            return
        problem = self._refusal(action, entry)
        if problem:
            self.notify(problem, severity="warning")
            return
        self.dismiss(HomeChoice(action, entry))

    def _refusal(self, action: str, entry: RunEntry | None) -> str | None:
        """Why `action` cannot be done on `entry`, or None."""
        if entry is None:
            return "No run is selected; press n to start one."
        if entry.state in (NOT_A_RUN, DAMAGED) and action != "previews":
            return f"{entry.folder.name} is {entry.words}."
        if action == "resume":
            if entry.running:
                return "This run is still training; Enter watches it."
            if not entry.can_resume:
                return f"{entry.folder} has no run.toml to resume from."
        return None

    def action_stop(self) -> None:
        entry = self.selected
        if entry is None or not entry.running:
            self.notify("Only a running run can be stopped.", severity="warning")
            return
        from ti_tui.screens.train import ConfirmStop

        def confirmed(stop: bool | None) -> None:
            if stop:
                from ti_tui.runs_index import AttachedRun

                AttachedRun(entry.folder).stop()
                self.notify(f"Stopping {entry.label}: it finishes this update, saves a "
                            "checkpoint and the embedding, then exits.")

        self.app.push_screen(ConfirmStop(), confirmed)

    def action_delete(self) -> None:
        entry = self.selected
        if entry is None:
            return
        if entry.running:
            self.notify("This run is still training: stop it first (s).", severity="warning")
            return
        if entry.state == NOT_A_RUN:
            self.notify(f"{entry.folder} is not a run folder; ti-tui deletes only runs.",
                        severity="warning")
            return

        def confirmed(delete: bool | None) -> None:
            if not delete:
                return
            try:
                shutil.rmtree(entry.folder)
            except OSError as exc:
                self.notify(f"Could not delete {entry.folder}: {exc.strerror or exc}.",
                            severity="error")
                return
            self.notify(f"Deleted {entry.folder}.")
            self.reload()

        self.app.push_screen(ConfirmDelete(entry), confirmed)


def _styled(text: str, style: str):
    from rich.text import Text

    return Text(text, style=style)


async def home_flow(app) -> None:
    """The app's flow when it opens on the home screen: show it, do what was chosen, come
    back, until the user quits. `app` is the TiTuiApp (ti_tui/app.py); its `train_flow`
    runs the form, the trainer, the live screen and the summary."""
    from ti_tui.runs_index import AttachedRun
    from ti_tui.screens.preview_grid import PreviewGridScreen
    from ti_tui.screens.summary import SummaryScreen, read_outcome
    from trainer.errors import UserError

    select: Path | None = None
    while True:
        choice: HomeChoice = await app._show(HomeScreen(root=app.root, runs=app.home,
                                                        select=select))
        entry = choice.entry
        select = entry.folder if entry is not None else None
        if choice.action == "quit":
            await app.action_quit()  # says how to come back when our trainer still runs
            return
        if choice.action == "models":
            await app._show(ModelsScreen(app.root))
        elif choice.action == "previews" and entry is not None:
            await app._show(PreviewGridScreen(entry.folder))
        elif choice.action == "new":
            if await app.train_flow(app.defaults) is not None and app.config is not None:
                select = app.config.output_path
        elif choice.action in ("resume", "open") and entry is not None:
            config = None
            if choice.action == "resume" or not entry.running:
                try:
                    config = entry.run_config()
                except UserError as exc:
                    app.notify(f"Cannot read {entry.folder / 'run.toml'}: {exc}",
                               severity="error", timeout=8)
                    continue
            if choice.action == "resume":
                # The same folder, from its latest checkpoint, with every setting as it was.
                defaults = config.replace(resume_from_checkpoint="latest",
                                          output_dir=str(entry.folder))
                if await app.train_flow(defaults) is not None and app.config is not None:
                    select = app.config.output_path
            elif entry.running:
                outcome = await app._show(app.train_screen(AttachedRun(entry.folder)))
                if outcome != "detached":
                    try:
                        config = entry.run_config()
                    except UserError:
                        continue
                    await app._show(SummaryScreen(config, read_outcome(entry.folder)))
            else:
                await app._show(SummaryScreen(config, read_outcome(entry.folder)))
