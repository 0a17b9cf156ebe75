"""The runs under a root, one line each, read cheaply: what the home screen lists.

A run folder is one `ti-tui train` wrote (`run.toml`, `events.jsonl`, the lock while it
trains). For each folder `index_runs` reads only the HEAD of events.jsonl, from its first line
up to and including the run_started event (trigger, model, family, limits; the trainer writes
a few phase and warning events before it, trainer/setup.py), at most `HEAD_LINES` lines and
`HEAD_MAX` bytes, and the LAST `TAIL_BYTES` (the latest step and, once it has ended, the
embedding_saved, error and stopped events), folds them with the dashboard's own
`ti_tui.state.fold`, and decides the state:

- running: the folder's run lock (trainer/lock.py) is held by a live process, checked as the
  lock checks it (pid alive AND the same start time, so a reused pid is not a run);
- finished / stopped early by DVAR at step N / stopped by you / failed (with the one-line
  reason) from the stopped and error events;
- ended without a word (the trainer was killed: no stopped event and no live lock);
- not started (run.toml but no events), damaged (events.jsonl whose first line is not a
  phase or run_started event) and "not a run" (neither file): listed so, never an exception.

Cost: the head (a few KB) and one read of at most `TAIL_BYTES` per folder, whatever the
length of the run.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

from ti_tui.runner import run_alive
from ti_tui.state import RunState, fold
from trainer.config import TrainConfig, wrap_trigger
from trainer.events import EVENTS_FILE, Phase, RunStarted, StopReason, parse_event, stop_words
from trainer.formats import FORMATS
from trainer.lock import LOCK_NAME, Owner, read_lock

TAIL_BYTES = 64 * 1024
"""How much of the end of events.jsonl is read: many hundred step events, and the end."""
HEAD_MAX = 1024 * 1024
"""The most bytes read from the start looking for run_started: that line holds the config and
dataset facts (a few KB), the phase and warning events before it are short; more is damage."""
HEAD_LINES = 256
"""The most lines read from the start looking for run_started: a handful of phases, and one
warning per skipped image."""
RUN_FILE = "run.toml"
OUTPUT_FOLDER = "text-inversion-output"
"""Where runs go by default: ROOT/text-inversion-output/<trigger> (TrainConfig.output_path)."""

# What a run is doing, as the home screen's state column says it.
RUNNING, FINISHED, EARLY_STOP, USER_STOP, FAILED = ("running", "finished", "dvar", "user",
                                                    "failed")
ENDED, NOT_STARTED, DAMAGED, NOT_A_RUN = "ended", "not-started", "damaged", "not-a-run"
LIVE_STATES = frozenset({RUNNING})
ENDED_STATES = frozenset({FINISHED, EARLY_STOP, USER_STOP, FAILED, ENDED})

SORT_ORDER = {RUNNING: 0, FINISHED: 1, EARLY_STOP: 1, USER_STOP: 1, FAILED: 1, ENDED: 1,
              NOT_STARTED: 2, DAMAGED: 3, NOT_A_RUN: 4}


@dataclass(frozen=True)
class RunEntry:
    """One folder as the home screen shows it."""

    folder: Path
    """The run's output folder."""
    state: str
    """One of RUNNING, FINISHED, EARLY_STOP, USER_STOP, FAILED, ENDED, NOT_STARTED, DAMAGED,
    NOT_A_RUN."""
    words: str
    """The state in words, with the one-line reason: "stopped early by DVAR at step 606"."""
    trigger: str = ""
    """The trigger, from run_started or run.toml; "" when unknown."""
    model: str = ""
    """The model's name or path as run_started gave it; "" when unknown."""
    family: str = ""
    """sd1 / sd2 / sdxl as the trainer reported it in run_started; "" when unknown."""
    step: int = 0
    """Updates done (the last step event read, or the stopped event's step)."""
    max_steps: int = 0
    """The step the run ends at (run_started's max_steps); 0 when unknown."""
    l_det: float | None = None
    """The last L_det read (DVAR's deterministic loss), if any."""
    dvar_ratio: float | None = None
    """The last DVAR ratio read, if any."""
    updated: float | None = None
    """Unix time of the last write to events.jsonl (its mtime): the run's age."""
    best_file: Path | None = None
    """The embedding to use: the final learned_embeds.safetensors (.bin), else the newest
    snapshot; None when the run wrote none."""
    owner: Owner | None = None
    """The live lock holder, for a running run."""

    @property
    def is_run(self) -> bool:
        """Whether the folder holds a readable run (any state but DAMAGED and NOT_A_RUN)."""
        return self.state not in (DAMAGED, NOT_A_RUN)

    @property
    def label(self) -> str:
        """The run as a sentence names it: "<moon>" for a folder named after its trigger, else
        the folder and the trigger, "green-star2 (<green-star>)" (runs of one trigger differ)."""
        if not self.trigger:
            return self.folder.name
        if self.trigger == wrap_trigger(self.folder.name):
            return self.trigger
        return f"{self.folder.name} ({self.trigger})"

    @property
    def running(self) -> bool:
        """Whether a live trainer holds the folder's lock."""
        return self.state == RUNNING

    @property
    def ended(self) -> bool:
        """Whether the run stopped: finished, stopped by DVAR or the user, failed, or ended
        without a stopped event."""
        return self.state in ENDED_STATES

    @property
    def can_resume(self) -> bool:
        """A run that is not training and has a run.toml can be continued from it."""
        return not self.running and (self.folder / RUN_FILE).is_file()

    def age(self, now: float | None = None) -> float | None:
        """Seconds since the run last wrote an event."""
        if self.updated is None:
            return None
        return max(0.0, (time.time() if now is None else now) - self.updated)

    def run_config(self) -> TrainConfig:
        """The run's run.toml as a TrainConfig pointing at this folder (wherever it was
        found, e.g. under --runs); raises UserError (ConfigError) if it cannot be read."""
        return TrainConfig.from_toml(self.folder / RUN_FILE).replace(output_dir=str(self.folder))


def default_runs_folder(root: str | os.PathLike[str]) -> Path:
    """ROOT/text-inversion-output: where a run goes when --output_dir is not given."""
    return Path(root).expanduser() / OUTPUT_FOLDER


def is_run_folder(folder: Path) -> bool:
    """Whether `folder` holds an events.jsonl or a run.toml."""
    return (folder / EVENTS_FILE).is_file() or (folder / RUN_FILE).is_file()


def candidate_folders(places: list[Path]) -> list[Path]:
    """Each place that is a run folder itself, else its sub-folders; unique, in order."""
    seen: set[Path] = set()
    found: list[Path] = []
    for place in places:
        try:
            if is_run_folder(place):
                children = [place]
            elif place.is_dir():
                children = sorted(p for p in place.iterdir()
                                  if p.is_dir() and not p.name.startswith("."))
            else:
                children = []
        except OSError:
            continue  # unreadable: nothing to list there
        for child in children:
            key = child.resolve()
            if key not in seen:
                seen.add(key)
                found.append(child)
    return found


def index_runs(places: list[Path], now: float | None = None) -> list[RunEntry]:
    """Every run folder under `places`, running first, then the newest first."""
    entries = [read_entry(folder) for folder in candidate_folders(places)]
    now = time.time() if now is None else now
    return sorted(entries, key=lambda e: (SORT_ORDER[e.state], -(e.updated or 0.0),
                                          e.folder.name))


def read_head_and_tail(path: Path, tail_bytes: int = TAIL_BYTES) -> tuple[list[str], list[str]]:
    """The complete lines of `path` from its start up to and including the run_started
    event (at most HEAD_LINES lines and HEAD_MAX bytes; all of them when the run has none
    yet), and the complete lines of its last `tail_bytes` after those (without a partial
    first or last line). ([], []) when the first line is empty, half-written or enormous.
    Raises OSError."""
    head: list[bytes] = []
    with open(path, "rb") as fh:
        size = os.fstat(fh.fileno()).st_size
        used = 0
        while len(head) < HEAD_LINES and used < HEAD_MAX:
            line = fh.readline(HEAD_MAX - used)
            if not line.endswith(b"\n"):
                break  # the end of the file, a line being written, or the byte limit
            head.append(line)
            used += len(line)
            if _is_run_started(line):
                break
        if not head:
            return [], []  # empty, half-written first line, or an enormous one
        start = max(used, size - tail_bytes)
        fh.seek(start)
        chunk = fh.read(size - start)
    lines = chunk.split(b"\n")
    lines.pop()  # after the last newline: b"" or a line still being written
    if start > used and lines:
        lines.pop(0)  # the read began mid-line
    decode = (lambda raw: raw.decode("utf-8", errors="replace"))
    return [decode(raw) for raw in head], [decode(raw) for raw in lines]


def _is_run_started(line: bytes) -> bool:
    """Whether a raw events.jsonl line is the run_started event (a cheap look at its type
    before the line is parsed; parse_event decides what it really is)."""
    return b'"run_started"' in line and isinstance(
        parse_event(line.decode("utf-8", errors="replace")), RunStarted)


def read_entry(folder: Path) -> RunEntry:
    """One folder's line: never raises for what is (or is not) in the folder."""
    events_path = folder / EVENTS_FILE
    updated = _mtime(events_path) or _mtime(folder / RUN_FILE)
    # The runner's own test (lock held, pid alive and started when the lock says).
    live = read_lock(folder / LOCK_NAME) if run_alive(folder) else None
    if not events_path.is_file():
        if (folder / RUN_FILE).is_file():
            words = "starting" if live else "not started: run.toml but no events.jsonl"
            state = RUNNING if live else NOT_STARTED
            return RunEntry(folder, state, words, trigger=_toml_trigger(folder),
                            updated=updated, owner=live)
        return RunEntry(folder, NOT_A_RUN, "not a run: no events.jsonl or run.toml",
                        updated=_mtime(folder))
    try:
        run, what = read_events_summary(events_path)
    except OSError as exc:
        return RunEntry(folder, DAMAGED, f"damaged: cannot read {EVENTS_FILE} ({exc.strerror})",
                        updated=updated)
    if run is None:
        state = RUNNING if live else DAMAGED
        return RunEntry(folder, state, "starting" if live else f"damaged: {EVENTS_FILE} {what}",
                        trigger=_toml_trigger(folder), updated=updated, owner=live)
    state, words = _decide(run, live)
    model = run.model.get("name") or run.model.get("path") or run.config.get("model") or ""
    return RunEntry(folder, state, words, trigger=run.trigger or _toml_trigger(folder),
                    model=str(model), family=str(run.model.get("family") or ""),
                    step=int(run.stopped.step if run.stopped else run.step),
                    max_steps=run.max_steps, l_det=run.l_det, dvar_ratio=run.dvar_ratio,
                    updated=updated, best_file=best_file(folder, run.trigger, run), owner=live)


_SUMMARIES: dict[Path, tuple[tuple[int, int, int], RunState | None, str]] = {}
"""events.jsonl path -> (its inode, size and mtime; the folded head and tail; what is wrong).
The home screen re-indexes every few seconds: an ended run's file does not change, so it is
read once, and only running runs are read again."""
SUMMARY_CACHE_MAX = 4096


def read_events_summary(path: Path) -> tuple[RunState | None, str]:
    """The head (up to run_started) and the tail of events.jsonl folded into a RunState, or (None, what is
    wrong with the file). Cached on the file's inode, size and mtime. Raises OSError."""
    info = os.stat(path)
    key = (info.st_ino, info.st_size, info.st_mtime_ns)
    cached = _SUMMARIES.get(path)
    if cached is not None and cached[0] == key:
        return cached[1], cached[2]
    head, tail = read_head_and_tail(path)
    first = parse_event(head[0]) if head else None
    run: RunState | None = None
    what = ""
    if isinstance(first, (Phase, RunStarted)):
        run = RunState(base_dir=str(path.parent))
        for line in (*head, *tail):
            fold(run, parse_event(line))  # None (a damaged line) is counted and skipped
    else:
        what = "is empty or half-written" if not head else "does not start with a run"
    if len(_SUMMARIES) >= SUMMARY_CACHE_MAX:
        _SUMMARIES.clear()
    _SUMMARIES[path] = (key, run, what)
    return run, what


def _decide(run: RunState, live: Owner | None) -> tuple[str, str]:
    """(state, words) from the folded events and whether the lock is held."""
    stop = run.stopped
    if live is not None and stop is None:
        return RUNNING, "running" if run.status == "training" else "starting"
    if stop is not None:
        reason, step = stop.reason, stop.step
        if reason == StopReason.ERROR or run.error:
            return FAILED, f"failed: {_one_line(run)}"
        if reason == StopReason.EARLY_STOP:
            return EARLY_STOP, f"{stop_words(reason)} at step {step}"
        if reason == StopReason.USER:
            return USER_STOP, f"{stop_words(reason)} at step {step}"
        return FINISHED, f"finished: {stop_words(reason)}"
    if run.error:
        return FAILED, f"failed: {_one_line(run)}"
    return ENDED, "ended without a stopped event (killed?); see trainer.log"


def _one_line(run: RunState) -> str:
    """The error's message, else the stopped event's, cut to its first line."""
    text = ((run.error.message if run.error else "")
            or (run.stopped.message if run.stopped else "") or "see trainer.log")
    return text.strip().splitlines()[0] if text.strip() else "see trainer.log"


def best_file(folder: Path, trigger: str = "", run: RunState | None = None) -> Path | None:
    """The embedding a user should take from `folder`.

    First the files the run itself reported, when `run` (its folded events) has them: the
    stopped event's final files, else the newest embedding_saved event's; among them the
    standalone `<name>.safetensors` (the one file every tool installs, trainer/formats.py),
    else that file found by the trigger's name, else a reported .safetensors, else any
    reported file, that is still on disk. Reported paths are taken relative to the run's
    output_dir, so a folder moved or listed under --runs still finds them. Without events
    that name files: the final standalone file, else the final diffusers files, else the
    newest snapshot (embeddings/<file>-steps-N.safetensors).
    None when the run wrote no embedding yet."""
    names = [FORMATS["standalone"].file_name(trigger)] if trigger else []
    reported = [p for p in _reported_files(folder, run) if p.is_file()]
    for path in (*(p for p in reported if p.name in names), *(folder / n for n in names)):
        if path.is_file():
            return path
    if reported:
        return next((p for p in reported if p.suffix == ".safetensors"), reported[0])
    for name in ("learned_embeds.safetensors", "learned_embeds.bin"):
        if (folder / name).is_file():
            return folder / name
    snapshots = []
    try:
        for path in (folder / "embeddings").glob("*-steps-*.safetensors"):
            number = path.stem.rsplit("-", 1)[-1]
            if number.isdigit():
                # Newest first; at one step, the standalone file before the diffusers one.
                snapshots.append((int(number), path.name.startswith(tuple(names)), path))
    except OSError:
        return None
    return max(snapshots)[2] if snapshots else None


def _reported_files(folder: Path, run: RunState | None) -> list[Path]:
    """The embedding files the run's last stopped (else embedding_saved) event names, moved
    from the run's output_dir into `folder`."""
    if run is None:
        return []
    if run.stopped is not None and run.stopped.files:
        paths = run.stopped.files
    elif run.last_embedding is not None:
        paths = run.last_embedding.paths
    else:
        return []
    found = []
    for text in paths:
        path = Path(text)
        try:
            rel = path.relative_to(run.output_dir) if run.output_dir else Path(path.name)
        except ValueError:
            rel = Path(path.name)  # written elsewhere: look for it by name in the folder
        found.append(folder / rel)
    return found


def _toml_trigger(folder: Path) -> str:
    """The trigger from run.toml, read without validating the whole config."""
    import tomllib

    try:
        data = tomllib.loads((folder / RUN_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return ""
    for table in (data, *(v for v in data.values() if isinstance(v, dict))):
        token = table.get("placeholder_token")
        if isinstance(token, str):
            return wrap_trigger(token)
    return ""


def _mtime(path: Path) -> float | None:
    try:
        return path.stat().st_mtime
    except OSError:
        return None


@dataclass
class AttachedRun:
    """A RunHandle (ti_tui.runner.RunHandle) for a run this process did not start.

    The live screen talks to it like to the runner's handle: requests and the clean stop go
    through the folder's control files (trainer/control.py), which reach the trainer however
    it was started and from any later session; "alive" is the run lock's check.
    """

    output_dir: Path
    """The run's output folder (holds events.jsonl, the lock and control/)."""

    @property
    def events_path(self) -> Path:
        """OUTPUT_DIR/events.jsonl, the run's event log."""
        return self.output_dir / EVENTS_FILE

    def request(self, action: str) -> None:
        """Drop a control file for `action` ("stop", "save", "preview"); UserError when the
        folder cannot be written (trainer.control.send)."""
        from trainer import control

        control.send(self.output_dir, action)

    def stop(self) -> None:
        """Ask for a clean stop: the trainer finishes the update, saves, and exits."""
        self.request("stop")

    def is_alive(self) -> bool:
        """Whether a live trainer holds the folder's run lock."""
        return run_alive(self.output_dir)

    def wait(self, timeout: float | None = None) -> int | None:
        """Always None at once: the trainer is not this process's child."""
        return None  # not our child: its exit code is not ours to collect
