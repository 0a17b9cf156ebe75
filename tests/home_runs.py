"""A root holding one run folder of each kind the home screen lists, built from the
trainer's own event dataclasses (trainer/events.py) and written with its EventLog.

    cat      running: its lock is held by the test process (a live pid, its start time)
    star     finished at its step limit, with previews and a final embedding
    moon     stopped early by DVAR at step 606
    heart    failed with an error event
    broken   damaged: events.jsonl's first line is cut off
    notes    not a run: a folder with a text file
"""

from __future__ import annotations

from pathlib import Path

from trainer.config import TrainConfig
from trainer.formats import FORMATS
from trainer.event_file import EventLog
from trainer.events import EmbeddingSaved, Error, PreviewSaved, RunStarted, Step, Stopped
from trainer.lock import RunLock

T0 = 1_700_000_000.0
"""The first event's time: fixed, so ages and durations are the same on every machine."""


def write_run(root: Path, word: str, *, steps: int, end: Stopped | None = None,
              error: Error | None = None, previews: tuple[int, ...] = (),
              final: bool = False, max_steps: int = 1000) -> Path:
    """ROOT/text-inversion-output/<word> with run.toml and events.jsonl as a trainer writes
    them: run_started, `steps` step events (L_det and the DVAR ratio falling), previews at the
    given steps (real PNGs), then the error and stopped events if given."""
    config = TrainConfig(model="sd-1/main/tiny", root=str(root), placeholder_token=word,
                         train_data_dir=str(root / "text-inversion-training-data" / word),
                         max_train_steps=max_steps, dvar_window=20, dvar_threshold=0.39)
    out = config.output_path
    out.mkdir(parents=True)
    (out / "run.toml").write_text(config.to_toml())
    log = EventLog(out / "events.jsonl")
    t = T0
    log(RunStarted(config={"model": config.model, "placeholder_token": word,
                           "max_train_steps": max_steps, "dvar_window": 20,
                           "dvar_threshold": 0.39, "early_stopping": "dvar"},
                   model={"name": config.model, "path": str(root / "models" / "tiny"),
                          "family": "sd1", "prediction_type": "epsilon"},
                   dataset={"n_images": 5}, device="cpu", precision="no", num_processes=1,
                   start_step=0, max_steps=max_steps, learning_rate=5e-3, lr_scale=1.0,
                   trigger=f"<{word}>", tokens=[f"<{word}>"], output_dir=str(out), time=t))
    for step in range(1, steps + 1):
        t += 0.1
        ratio = 1.0 - 0.62 * step / max(steps, 1) if step > 20 else None
        log(Step(step=step, loss=0.5 / step ** 0.5, lr=5e-3, images_seen=2 * step,
                 epoch=step / 5, micro_batches=step, l_det=0.2 + 0.1 / step,
                 dvar_ratio=ratio, time=t))
        if step in previews:
            path = out / "previews" / f"step-{step}.png"
            write_png(path, step)
            log(PreviewSaved(step=step, path=str(path), prompt=f"a photo of <{word}>", time=t))
    if 0 in previews:
        write_png(out / "previews" / "step-0.png", 0)
        log(PreviewSaved(step=0, path=str(out / "previews" / "step-0.png"),
                         prompt=f"a photo of <{word}>", time=T0))
    if steps >= 20:  # a snapshot, as --save_steps 20 writes it
        (out / "embeddings").mkdir()
        (out / "embeddings" / FORMATS["standalone"].file_name(f"<{word}>", "-steps-20")
         ).write_bytes(b"\0" * 16)
    if final:  # named as a run names it ("star" is a word, so star-ti.safetensors)
        (out / FORMATS["standalone"].file_name(f"<{word}>")).write_bytes(b"\0" * 16)
        (out / "learned_embeds.safetensors").write_bytes(b"\0" * 16)
        (out / "learned_embeds.bin").write_bytes(b"\0" * 16)
        log(EmbeddingSaved(step=steps, paths=[str(out / "learned_embeds.safetensors")],
                           final=True, time=t))
    if error is not None:
        log(error)
    if end is not None:
        log(end)
    log.close()
    return out


def write_png(path: Path, step: int, size: int = 64) -> Path:
    """A small picture that changes with `step` (a square growing on grey)."""
    from PIL import Image, ImageDraw

    path.parent.mkdir(parents=True, exist_ok=True)
    img = Image.new("RGB", (size, size), (128, 128, 128))
    side = 8 + (step * 4) % (size - 8)
    ImageDraw.Draw(img).rectangle([4, 4, 4 + side, 4 + side], fill=(20, 200, 60))
    img.save(path)
    return path


def build_root(root: Path) -> dict[str, Path]:
    """The six folders above under `root`; returns word -> folder. The caller releases the
    running run's lock with `release(root)`."""
    end = T0 + 200
    runs = {
        "cat": write_run(root, "cat", steps=30, previews=(0, 10, 20)),
        "star": write_run(root, "star", steps=40, max_steps=40, previews=(0, 20, 40),
                          final=True,
                          end=Stopped(reason="max_steps", step=40, time=end)),
        "moon": write_run(root, "moon", steps=606, final=True,
                          end=Stopped(reason="early_stop", step=606, ratio=0.387,
                                      window=20, threshold=0.39, time=end)),
        "heart": write_run(root, "heart", steps=3,
                           error=Error(message="Image heart-2.png is not an image.\nmore",
                                       hint="Remove it.", time=end),
                           end=Stopped(reason="error", step=3, message="bad image", time=end)),
    }
    broken = root / "text-inversion-output" / "broken"
    broken.mkdir(parents=True)
    (broken / "events.jsonl").write_text('{"type": "run_sta')
    notes = root / "text-inversion-output" / "notes"
    notes.mkdir()
    (notes / "readme.txt").write_text("not a run")
    runs["broken"], runs["notes"] = broken, notes
    _LOCKS[str(root)] = RunLock.acquire(runs["cat"])
    return runs


_LOCKS: dict[str, RunLock] = {}


def release(root: Path) -> None:
    """Let go of the running run's lock taken by `build_root`."""
    lock = _LOCKS.pop(str(root), None)
    if lock is not None:
        lock.release()


# --- waiting on the home screen (pilot tests) --------------------------------------------------



async def home_listing(pilot, runs: int):
    """The home screen, once it lists `runs` entries."""
    from ti_tui.screens.home import HomeScreen

    from tests.form_pilot import until

    await until(pilot, lambda: isinstance(pilot.app.screen, HomeScreen)
                and len(pilot.app.screen.entries) == runs, "the home list")
    return pilot.app.screen


async def select(pilot, home, name: str) -> None:
    """Put the home list's cursor on the run in folder `name`."""
    from textual.widgets import DataTable

    home.query_one(DataTable).move_cursor(row=[e.folder.name for e in home.entries].index(name))
    await pilot.pause()
    assert home.selected.folder.name == name
