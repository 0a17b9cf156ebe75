"""Small shared helpers for tests that run the real trainer on the tiny model."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from trainer.config import TrainConfig
from trainer.events import Event

if TYPE_CHECKING:
    import torch


def make_config(model, images, tmp_path, **changes) -> TrainConfig:
    """A fast tiny-model run: 8 updates of batch 2, DVAR evaluated but not stopping, on the CPU
    whatever the machine has (tests that exercise CUDA pass device="cuda" and are marked gpu)."""
    values = dict(model=str(model), root=str(tmp_path / "root"), placeholder_token="star",
                  device="cpu",
                  train_data_dir=str(images), output_dir=str(tmp_path / "out"),
                  train_batch_size=2, max_train_steps=8, learning_rate="5e-3", scale_lr=False,
                  seed=1, dvar_window=4, dvar_threshold=0.05, save_steps=4,
                  checkpointing_steps=4, early_stopping="none")
    values.update(changes)
    return TrainConfig(**values)


def fill_invokeai_root(root: Path, model_dir: Path, images_dir: Path, word: str) -> Path:
    """Make `root` an InvokeAI root: the model linked as models/sd-1/main/tiny and the images
    copied to text-inversion-training-data/<word>; invokeai.yaml makes it a 3.x root (one
    that gets the ROOT/embeddings copy, install_guide.is_invokeai_legacy_root)."""
    models = root / "models" / "sd-1" / "main"
    models.mkdir(parents=True)
    (root / "invokeai.yaml").write_text("InvokeAI:\n  Paths: {}\n")
    (models / "tiny").symlink_to(model_dir, target_is_directory=True)
    shutil.copytree(images_dir, root / "text-inversion-training-data" / word)
    return root


def link_model(src: Path, dst: Path, *, skip: tuple[str, ...] = ()) -> Path:
    """A model folder at `dst` whose parts are symlinks into `src`, minus the `skip` ones.

    Cheap, and lets a test break one part without touching the shared session model.
    """
    dst.mkdir(parents=True)
    for child in src.iterdir():
        if child.name not in skip:
            (dst / child.name).symlink_to(child)
    return dst


@dataclass(frozen=True)
class FinishedRun:
    """A tiny run trained once per session and read by many tests (the `finished_run`
    fixture in tests/conftest.py): two vectors, --save_as a1111, 4 updates with snapshots and
    checkpoints at steps 2 and 4, L_det every update, an InvokeAI 2.3 root (it gets the copy),
    run through `python -m trainer`'s entry so events.jsonl is written as for `ti-tui watch`.

    Read-only: a test that resumes, damages or adds files works on `copy(folder)`.
    """

    config: TrainConfig
    """The run's settings (output_dir is the shared folder)."""
    events: tuple[Event, ...]
    """Its events.jsonl, read back as typed events."""
    vectors: torch.Tensor
    """The final embedding, (2, 32): the trained rows of the tiny text encoder."""

    @property
    def output_path(self) -> Path:
        """The shared run folder: never write into it."""
        return self.config.output_path

    def copy(self, folder: Path, **changes) -> TrainConfig:
        """The run folder copied to `folder`/out, and the config pointing at the copy (and its
        own `folder`/root, so a resumed run's copy to the root lands there), with `changes`."""
        out = folder / "out"
        shutil.copytree(self.output_path, out, symlinks=True)
        root = folder / "root"
        shutil.copytree(self.config.root, root, symlinks=True)
        return self.config.replace(output_dir=str(out), root=str(root), **changes)


def train_finished_run(model: Path, images: Path, folder: Path) -> FinishedRun:
    """Train the shared `FinishedRun` into `folder` (out/ and an InvokeAI 2.3 root/)."""
    from trainer.__main__ import run
    from trainer.event_file import load_events
    from trainer.events import EVENTS_FILE
    from trainer.formats import load_embedding

    (folder / "root").mkdir(parents=True)
    (folder / "root" / "invokeai.init").write_text("")  # an InvokeAI 2.3 root: it gets the copy
    config = make_config(model, images, folder, num_vectors=2, initializer_token="star",
                         save_as="a1111", max_train_steps=4, save_steps=2,
                         checkpointing_steps=2)
    assert run(config) == 0
    out = config.output_path
    events = tuple(load_events(out / EVENTS_FILE))
    return FinishedRun(config, events, load_embedding(out / "learned_embeds.safetensors")[1])


def tree_state(folder: Path) -> dict[str, tuple[int, int]]:
    """(size, mtime in ns) of every file under `folder` by relative path: compared before and
    after the session to prove a shared fixture stayed read-only."""
    return {p.relative_to(folder).as_posix(): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*")) if p.is_file() and not p.is_symlink()}


def stop_at(step: int, control, sink: list):
    """An emit callback for `trainer.train`: keeps every event in `sink` and asks `control`
    (a trainer.control.Control) to stop once update `step` is reported, as Ctrl-C would."""
    def emit(event):
        sink.append(event)
        if event.type == "step" and event.step == step:
            control.request_stop()
    return emit
