"""The runs index (ti_tui/runs_index.py): states, figures and cost, over a root holding one
run of each kind (tests/home_runs.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.home_runs import build_root, release, write_run
from ti_tui import runs_index, runs_listing
from ti_tui.runs_index import (DAMAGED, EARLY_STOP, ENDED, FAILED, FINISHED, NOT_A_RUN,
                               NOT_STARTED, RUNNING, AttachedRun, index_runs, read_entry)
from trainer.event_file import EventLog
from trainer.events import EmbeddingSaved, Phase, RunStarted, Step, Stopped, Warning
from trainer.lock import LOCK_NAME


@pytest.fixture
def runs(tmp_path):
    folders = build_root(tmp_path)
    yield folders
    release(tmp_path)


def by_name(entries):
    return {e.folder.name: e for e in entries}


def test_each_kind_of_folder_gets_its_state_and_figures(tmp_path, runs):
    entries = index_runs([runs_index.default_runs_folder(tmp_path)])
    found = by_name(entries)
    assert set(found) == {"cat", "star", "moon", "heart", "broken", "notes"}
    assert entries[0].folder.name == "cat"  # running runs come first
    cat, star, moon, heart = found["cat"], found["star"], found["moon"], found["heart"]
    assert (cat.state, cat.words, cat.step, cat.trigger) == (RUNNING, "running", 30, "<cat>")
    assert cat.owner is not None and cat.owner.pid == os.getpid()
    assert (star.state, star.words) == (FINISHED, "finished: reached the step limit")
    assert star.best_file == runs["star"] / "star-ti.safetensors"  # the file every tool takes
    assert cat.best_file == runs["cat"] / "embeddings" / "cat-ti-steps-20.safetensors"
    assert heart.best_file is None
    assert (moon.state, moon.words, moon.step) == (EARLY_STOP,
                                                   "stopped early by DVAR at step 606", 606)
    assert moon.model == "sd-1/main/tiny" and moon.family == "sd1"
    assert moon.l_det == pytest.approx(0.2 + 0.1 / 606)
    assert moon.dvar_ratio == pytest.approx(1.0 - 0.62)
    assert (heart.state, heart.words) == (FAILED, "failed: Image heart-2.png is not an image.")
    assert found["broken"].state == DAMAGED and "half-written" in found["broken"].words
    assert found["notes"].state == NOT_A_RUN



def read_sizes(monkeypatch) -> list[int]:
    """Record the size of every read runs_index makes from now on (bytes or characters per
    read/readline call), through a counting wrapper around each file it opens."""
    sizes: list[int] = []
    real_open = open

    class Counting:
        def __init__(self, fh):
            self.fh = fh

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.fh.close()

        def __getattr__(self, name):
            return getattr(self.fh, name)

        def read(self, n=-1):
            data = self.fh.read(n)
            sizes.append(len(data))
            return data

        def readline(self, n=-1):
            data = self.fh.readline(n)
            sizes.append(len(data))
            return data

    monkeypatch.setattr(runs_index, "open", lambda *a, **k: Counting(real_open(*a, **k)),
                        raising=False)
    return sizes


def test_reads_only_the_first_line_and_the_tail(tmp_path, runs, monkeypatch):
    """A long run costs two reads of ~64 KB, not the whole file."""
    events = runs["moon"] / "events.jsonl"
    assert events.stat().st_size > 2 * runs_index.TAIL_BYTES
    sizes = read_sizes(monkeypatch)
    entry = read_entry(runs["moon"])
    assert entry.state == EARLY_STOP
    assert sum(sizes) <= runs_index.TAIL_BYTES + 4096


def test_a_dead_lock_holder_is_not_running(tmp_path):
    """A lock left by a killed trainer (its pid gone) means the run ended without a word."""
    out = write_run(tmp_path, "dead", steps=5)
    child = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                           capture_output=True, text=True, check=True)
    (out / LOCK_NAME).write_text(f"{child.stdout.strip()}\n\n\n")
    entry = read_entry(out)
    assert entry.state == ENDED and "without a stopped event" in entry.words
    assert not AttachedRun(out).is_alive()


def test_a_reused_pid_is_not_the_run(tmp_path):
    """The lock's pid is alive (ours) but started at another time: PID reuse, not a run."""
    out = write_run(tmp_path, "reused", steps=5)
    (out / LOCK_NAME).write_text(f"{os.getpid()}\n12345.0\n{os.uname().nodename}\n")
    assert read_entry(out).state == ENDED


def test_a_resumed_run_shows_its_latest_part(tmp_path):
    """A resumed run appends a second run_started; the end of the first part is forgotten."""
    out = write_run(tmp_path, "again", steps=10,
                    end=Stopped(reason="early_stop", step=10, ratio=0.3, threshold=0.39))
    (out / "events.jsonl").rename(tmp_path / "first.jsonl")
    second = write_run(tmp_path / "r2", "again", steps=15)
    text = (tmp_path / "first.jsonl").read_text() + (second / "events.jsonl").read_text()
    (out / "events.jsonl").write_text(text)
    entry = read_entry(out)
    assert entry.state == ENDED and entry.step == 15


def test_odd_folders_are_listed_never_raised(tmp_path):
    base = tmp_path / "text-inversion-output"
    base.mkdir()
    (base / "only-toml").mkdir()
    (base / "only-toml" / "run.toml").write_text('[token]\nplaceholder_token = "owl"\n')
    (base / "empty-events").mkdir()
    (base / "empty-events" / "events.jsonl").write_bytes(b"")
    (base / "garbage").mkdir()
    (base / "garbage" / "events.jsonl").write_bytes(b"\xff\xfe not json\n" * 3)
    (base / "a-file.txt").write_text("x")
    unreadable = base / "locked"
    unreadable.mkdir()
    (unreadable / "events.jsonl").mkdir()  # a folder where the file should be
    found = by_name(index_runs([base]))
    assert found["only-toml"].state == NOT_STARTED and found["only-toml"].trigger == "<owl>"
    assert found["empty-events"].state == DAMAGED
    assert found["garbage"].state == DAMAGED and "does not start with a run" in \
        found["garbage"].words
    assert "a-file.txt" not in found
    assert found["locked"].state in (NOT_A_RUN, DAMAGED)


def test_a_run_folder_given_directly_and_a_missing_place(tmp_path, runs):
    entries = index_runs([runs["star"], tmp_path / "nowhere", runs["star"].parent])
    names = [e.folder.name for e in entries]
    assert names.count("star") == 1 and len(names) == 6


def test_attached_run_stops_through_the_control_folder(tmp_path, runs):
    handle = AttachedRun(runs["cat"])
    assert handle.is_alive() and handle.events_path == runs["cat"] / "events.jsonl"
    handle.stop()
    assert (runs["cat"] / "control" / "stop").is_file()
    assert handle.wait(0) is None
    assert isinstance(handle.output_dir, Path)


def test_an_unchanged_run_is_read_once(tmp_path, runs, monkeypatch):
    """The home screen re-indexes every 2 s: ended runs are not read again, running ones
    (their file grows) are."""
    index_runs([runs_index.default_runs_folder(tmp_path)])
    reads = []
    real = runs_index.read_head_and_tail
    monkeypatch.setattr(runs_index, "read_head_and_tail",
                        lambda path, *a: reads.append(path.parent.name) or real(path, *a))
    index_runs([runs_index.default_runs_folder(tmp_path)])
    assert reads == []
    log = EventLog(runs["cat"] / "events.jsonl")  # the trainer's own writer appends
    log(Step(step=31, loss=0.1, lr=5e-3, images_seen=62, epoch=6.2, micro_batches=31))
    log.close()
    entries = {e.folder.name: e for e in index_runs([runs_index.default_runs_folder(tmp_path)])}
    assert reads == ["cat"] and entries["cat"].step == 31


def write_long_run(root: Path, *, steps: int = 606, moved_from: Path | None = None) -> Path:
    """A run folder whose events.jsonl is over 64 KB and starts, as the trainer's does
    (trainer/setup.py), with phase and warning events before run_started; its final files are
    the ones the embedding_saved and stopped events name."""
    out = root / "green-star"
    out.mkdir(parents=True)
    where = moved_from or out  # the output_dir the trainer wrote in its events
    finals = [where / "green-star-ti.safetensors", where / "learned_embeds.safetensors",
              where / "learned_embeds.bin"]
    for path in finals:
        (out / path.name).write_bytes(b"\0" * 16)
    log = EventLog(out / "events.jsonl")
    log(Phase(name="loading model", detail="/models/tiny-sd", time=1.0))
    log(Warning(message="The model has no safety checker.", file="/models/tiny-sd", time=1.5))
    log(Phase(name="caching latents", detail="5 images", time=2.0))
    log(RunStarted(config={"model": "sd-1/main/tiny", "placeholder_token": "green-star",
                           "max_train_steps": 1000}, model={"name": "sd-1/main/tiny",
                                                            "family": "sd1"},
                   dataset={"n_images": 5}, device="cpu", precision="no", num_processes=1,
                   start_step=0, max_steps=1000, learning_rate=5e-3, lr_scale=1.0,
                   trigger="<green-star>", tokens=["<green-star>"], output_dir=str(where),
                   time=3.0))
    for step in range(1, steps + 1):
        log(Step(step=step, loss=0.5, lr=5e-3, images_seen=2 * step, epoch=step / 5,
                 micro_batches=step, l_det=0.2, dvar_ratio=0.5, time=3.0 + step))
    log(EmbeddingSaved(step=steps, paths=[str(p) for p in finals], final=True, time=700.0))
    log(Stopped(reason="early_stop", step=steps, files=[str(p) for p in finals], ratio=0.38,
                window=20, threshold=0.39, time=701.0))
    log.close()
    assert (out / "events.jsonl").stat().st_size > runs_index.TAIL_BYTES
    return out


def test_a_long_run_that_starts_with_phases_keeps_its_model_limit_and_file(tmp_path):
    """Over 64 KB, the run_started event after the phases is still read: model, 606/1000,
    the standalone file (was "-", no limit, learned_embeds.safetensors)."""
    entry = read_entry(write_long_run(tmp_path))
    assert (entry.state, entry.trigger, entry.model, entry.family) == (
        EARLY_STOP, "<green-star>", "sd-1/main/tiny", "sd1")
    assert (entry.step, entry.max_steps) == (606, 1000)
    assert entry.best_file == tmp_path / "green-star" / "green-star-ti.safetensors"
    assert "step 606/1000" in runs_listing.plain_lines([entry])[0]


def test_the_head_read_stops_at_run_started(tmp_path, monkeypatch):
    """The cost rule, honestly counted: the lines up to run_started, then one tail read."""
    out = write_long_run(tmp_path)
    raw = (out / "events.jsonl").read_bytes()
    head = raw[:raw.index(b"\n", raw.index(b'"run_started"')) + 1]
    sizes = read_sizes(monkeypatch)
    heads, tail = runs_index.read_head_and_tail(out / "events.jsonl")
    assert len(heads) == 4 and '"run_started"' in heads[-1]
    assert sum(sizes) <= len(head) + runs_index.TAIL_BYTES
    assert sizes[:4] == [len(line) for line in head.splitlines(keepends=True)]


def test_the_best_file_is_one_the_run_reported_even_in_a_moved_folder(tmp_path):
    """The stopped event names the final files under the output_dir the trainer had; a folder
    moved (or listed under --runs) finds them by their place in the run."""
    out = write_long_run(tmp_path / "now", moved_from=tmp_path / "then" / "green-star")
    (out / "green-star-ti.safetensors").unlink()  # the one left is a reported diffusers file
    entry = read_entry(out)
    assert entry.best_file == out / "learned_embeds.safetensors"
    assert entry.model == "sd-1/main/tiny"
