"""The home screen fitted to the terminal's width: the table of runs, the paths of the
details under it, and the key line.

Nothing in a cell is ever cut. A DataTable wider than its window shows only its left part, so
a cut step count such as `211/100` (really 211/1000) reads as another number; instead, when
the columns do not fit, they give way whole, one rung of `LADDER` at a time, and the first
plan that fits is drawn:

    Model goes (the details under the table name the model), then L_det, then Age;
    the Step column's total is abbreviated (211/1000 -> 211/1k);
    Trigger goes when the Run column names the runs; then Ratio;
    Best file goes (the details under the table name the file, whole, at any size);
    State drops its step ("DVAR stop @608" -> "DVAR stop": the Step column has it);
    Step drops its total (211).

Only then, at the narrowest, is the run's name shortened, in its middle with "…" (both ends
stay: green-star2 and green-star3 differ at the end).

The Run column (the run folder's name) is shown when some run's folder is not named after its
trigger, as when one trigger was trained several times (green-star, green-star2, green-star3 of
<green-star>): the trigger alone cannot tell those runs apart. Names repeated across --runs
folders get their parent folder's name in front.

Paths in the details give way from the left ("…/text-inversion-output/moon": the end tells
runs apart). The key line shows every key when they fit; else, compact, the most used ones
that fit beside F1, which lists them all (ti_tui/screens/key_line.py). Keys left off the line
still work.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from pathlib import Path

from rich.cells import cell_len
from textual.binding import ActiveBinding

from ti_tui.panel_format import short_float
from ti_tui.screens import key_line
from ti_tui.screens.key_line import KeyDisplay, key_width, keys_fit  # noqa: F401 (re-exported)
from ti_tui.runs_index import RunEntry
from trainer.config import wrap_trigger

CELL_PADDING = 1
"""Blank cells each side of a DataTable cell (DataTable's cell_padding default)."""
FAMILY_WORDS = {"sd1": "SD1", "sd2": "SD2", "sdxl": "SDXL"}
NAME_COLUMNS = ("Run", "Trigger")
"""The columns that say which run a row is: at least one of them stays."""
ALL_COLUMNS = ("Run", "Trigger", "Model", "State", "Step", "L_det", "Ratio", "Age",
               "Best file")


@dataclass(frozen=True)
class Plan:
    """Which columns are drawn, and how short their cells are."""

    columns: tuple[str, ...]
    """The columns drawn, in ALL_COLUMNS order."""
    step_total: str = "whole"
    """How the Step column writes the step limit: whole (211/1000), short (211/1k), none (211)."""
    state_step: bool = True
    """Whether the State column repeats the step of a stop ("DVAR stop @608")."""
    name_room: int | None = None
    """The most characters a run's name may take; None: whole."""

    def without(self, column: str) -> Plan:
        """This plan minus `column`."""
        return replace(self, columns=tuple(c for c in self.columns if c != column))


def _drop(column: str):
    return lambda plan: plan.without(column)


LADDER = (
    _drop("Model"), _drop("L_det"), _drop("Age"),
    lambda plan: replace(plan, step_total="short"),
    lambda plan: plan.without("Trigger") if "Run" in plan.columns else plan,
    _drop("Ratio"), _drop("Best file"),
    lambda plan: replace(plan, state_step=False),
    lambda plan: replace(plan, step_total="none"),
)
"""The ways the table gives way, in order (the module's docstring says why this order)."""


def age_words(seconds: float | None) -> str:
    """'12s', '5m', '3h', '2d': an age in at most four characters."""
    if seconds is None:
        return "-"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit}"
    return f"{int(seconds)}s"


def state_cell(entry: RunEntry, with_step: bool = True) -> str:
    """The state column: short words (the detail line below the table has the reason);
    `with_step` False leaves out the step of a stop (the Step column has it)."""
    at = f" @{entry.step}" if with_step else ""
    return {"failed": "failed", "finished": "finished", "dvar": f"DVAR stop{at}",
            "user": f"you stopped{at}", "ended": "ended (killed?)",
            "not-started": "not started", "damaged": "damaged",
            "not-a-run": "not a run"}.get(entry.state, entry.words)


def short_count(number: int) -> str:
    """A step limit in few characters: 1000 -> 1k, 1500 -> 1.5k, 12000 -> 12k, 900 -> 900.
    Exact for whole thousands; otherwise one decimal below 10k, rounded above (a limit, read
    at a glance; the details and the summary have it whole)."""
    if number < 1000:
        return str(number)
    if number % 1000 == 0:
        return f"{number // 1000}k"
    return f"{number / 1000:.1f}k" if number < 10_000 else f"{round(number / 1000)}k"


def step_cell(entry: RunEntry, total: str = "whole") -> str:
    """Updates done, with the step limit whole, short or left out (`total`)."""
    if not entry.is_run:
        return "-"
    if not entry.max_steps or total == "none":
        return str(entry.step)
    limit = str(entry.max_steps) if total == "whole" else short_count(entry.max_steps)
    return f"{entry.step}/{limit}"


def run_names(entries: list[RunEntry]) -> dict[str, str]:
    """Each entry's name for the Run column, by folder: the folder's name, with its parent's
    name in front when two listed folders share a name (ROOT/.../moon and --runs DIR/moon)."""
    counts: dict[str, int] = {}
    for e in entries:
        counts[e.folder.name] = counts.get(e.folder.name, 0) + 1
    return {str(e.folder): e.folder.name if counts[e.folder.name] == 1
            else f"{e.folder.parent.name}/{e.folder.name}" for e in entries}


def needs_run_column(entries: list[RunEntry]) -> bool:
    """Whether the trigger alone does not tell the runs apart: some run's folder is not named
    after its trigger, or two runs share a trigger."""
    triggers = [e.trigger for e in entries if e.trigger]
    return len(set(triggers)) < len(triggers) or any(
        e.trigger and e.trigger != wrap_trigger(e.folder.name) for e in entries)


def elide(text: str, room: int) -> str:
    """`text` in at most `room` characters, its middle replaced by "…" (both ends kept)."""
    if len(text) <= room:
        return text
    if room <= 1:
        return "…"[:room]
    head = (room - 1) // 2
    return text[:head] + "…" + text[len(text) - (room - 1 - head):]


def row_cells(entry: RunEntry, plan: Plan, name: str, now: float) -> dict[str, str]:
    """The plain text of each of `plan`'s columns for `entry` (`name`: its Run name)."""
    model = entry.model.rsplit("/", 1)[-1] if entry.model else "-"
    family = FAMILY_WORDS.get(entry.family, entry.family)
    room = plan.name_room
    # Without a Run column the Trigger column names non-runs (damaged, "not a run") by folder.
    trigger = entry.trigger or ("-" if "Run" in plan.columns else entry.folder.name)
    cells = {
        "Run": name, "Trigger": trigger,
        "Model": f"{model} ({family})" if family else model,
        "State": state_cell(entry, plan.state_step),
        "Step": step_cell(entry, plan.step_total),
        "L_det": short_float(entry.l_det, 4),
        "Ratio": short_float(entry.dvar_ratio, 3),
        "Age": age_words(entry.age(now)),
        "Best file": entry.best_file.name if entry.best_file else "-"}
    if room is not None:
        for column in NAME_COLUMNS:
            cells[column] = elide(cells[column], room)
    return {column: cells[column] for column in plan.columns}


def table_width(rows: list[dict[str, str]], columns: tuple[str, ...]) -> int:
    """How many cells wide a DataTable of `rows` is (each column as wide as its widest cell
    or header, plus its padding)."""
    return sum(max([cell_len(column), *(cell_len(r[column]) for r in rows)])
               + 2 * CELL_PADDING for column in columns)


def fit(entries: list[RunEntry], room: int, now: float | None = None
        ) -> tuple[Plan, list[dict[str, str]]]:
    """The widest plan whose table fits in `room` cells, and its rows (one per entry, in
    order). Whole columns give way first (LADDER); the run's name is shortened last."""
    now = time.time() if now is None else now
    names = run_names(entries)
    columns = ALL_COLUMNS if needs_run_column(entries) else \
        tuple(c for c in ALL_COLUMNS if c != "Run")
    plan = Plan(columns)

    def rows_of(p: Plan) -> list[dict[str, str]]:
        return [row_cells(e, p, names[str(e.folder)], now) for e in entries]

    rows = rows_of(plan)
    for rung in LADDER:
        if room <= 0 or table_width(rows, plan.columns) <= room:
            return plan, rows
        plan = rung(plan)
        rows = rows_of(plan)
    over = table_width(rows, plan.columns) - room
    if room > 0 and over > 0:
        name_column = next(c for c in NAME_COLUMNS if c in plan.columns)
        widest = max([cell_len(r[name_column]) for r in rows], default=0)
        plan = replace(plan, name_room=max(len(name_column), widest - over, 3))
        rows = rows_of(plan)
    return plan, rows


def fit_path(path: Path | str, width: int) -> str:
    """`path` in at most `width` characters, keeping its end (the file and the folders
    nearest it, what tells runs apart): "…/text-inversion-output/moon"."""
    text = str(path)
    home = str(Path.home())
    if home != "/" and (text == home or text.startswith(home + "/")):
        text = "~" + text[len(home):]
    if len(text) <= width:
        return text
    return "…" + text[len(text) - max(0, width - 1):]


def use_words(best: Path, width: int) -> str:
    """The detail line's file to use, its name first (whole), then its folder shortened to
    what is left of `width`: "use: moon.safetensors in …/text-inversion-output/moon"."""
    head = f"use: {best.name} in "
    if width - len(head) < 12:
        return f"use: {best.name}"  # no room for a useful part of the folder
    return head + fit_path(best.parent, width - len(head))


KEYS_FIRST = ("choose('open')", "choose('new')", "choose('resume')", "choose('quit')", "stop",
              "choose('previews')", "delete", "choose('models')")
"""The key line's actions, most used first: on a narrow terminal it keeps those that fit,
then F1 (the whole list); every key works whether shown or not."""


def fit_keys(bindings: dict[str, ActiveBinding], width: int,
             display: KeyDisplay) -> dict[str, ActiveBinding]:
    """The home screen's key line fitted to `width` cells (key_line.fit_keys, most used
    first as KEYS_FIRST orders them)."""
    return key_line.fit_keys(bindings, width, display, KEYS_FIRST)
