"""The runs in plain text, where no screen can be drawn (a pipe, a log, TERM=dumb, a cron
job): `ti-tui` lists them one line each, and says so in one sentence when there are none;
`ti-tui watch` says in one sentence why a folder holds nothing to watch."""

from __future__ import annotations

from pathlib import Path

from ti_tui.runner import run_alive
from ti_tui.runs_index import RUN_FILE, RunEntry
from trainer.events import EVENTS_FILE


def plain_lines(entries: list[RunEntry], now: float | None = None) -> list[str]:
    """The runs as plain text, one line each (where no screen can be drawn: a pipe, a log,
    TERM=dumb): folder, state words, updates, last L_det and DVAR ratio, best file."""
    lines = []
    for e in entries:
        parts = [e.folder.name, e.trigger or "-", e.words]
        if e.is_run:
            parts.append(f"step {e.step}/{e.max_steps}" if e.max_steps else f"step {e.step}")
            if e.l_det is not None:
                parts.append(f"L_det {e.l_det:.5g}")
            if e.dvar_ratio is not None:
                parts.append(f"ratio {e.dvar_ratio:.3f}")
        age = e.age(now)
        if age is not None:
            parts.append(f"{int(age // 60)} min ago" if age >= 60 else f"{int(age)} s ago")
        if e.best_file is not None:
            parts.append(f"use {e.best_file}")
        lines.append("  ".join(parts))
    return lines


def no_runs_words(places: list[Path]) -> str:
    """Where no run was found, as the end of a sentence: "no runs under A, B", saying which
    of them does not exist (a mistyped --root or --runs lists nothing)."""
    missing = [str(p) for p in places if not p.exists()]
    where = ", ".join(str(p) for p in places)
    if not missing:
        return f"no runs under {where}"
    them = "it does not exist" if len(places) == 1 else f"{', '.join(missing)} does not exist"
    return f"no runs under {where} ({them})"


def watch_problem(folder: Path) -> str | None:
    """Why `ti-tui watch FOLDER` cannot show a run there, as one sentence; None when it can
    (the folder has an events.jsonl)."""
    then = "pass the output folder of a run (`ti-tui` lists them, with their folders)"
    if not folder.exists():
        return f"{folder} does not exist; {then}."
    if not folder.is_dir():
        return f"{folder} is a file, not a run folder; {then}."
    if (folder / EVENTS_FILE).is_file():
        return None
    if (folder / RUN_FILE).is_file():
        if run_alive(folder):
            return (f"the run in {folder} is starting and has not written {EVENTS_FILE} "
                    "yet; try again in a few seconds.")
        return (f"the run in {folder} never started ({RUN_FILE} but no {EVENTS_FILE}), so "
                "there is nothing to watch; its trainer.log, if any, says why.")
    return f"{folder} holds no run (no {EVENTS_FILE} or {RUN_FILE}); {then}."
