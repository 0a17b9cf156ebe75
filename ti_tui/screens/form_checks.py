"""The setup form's checks, as plain functions of values: no widgets, so tests call them directly.

Each check returns a `Note` (level + one sentence) or None. Value checks (types, ranges,
schedule strings) are TrainConfig's own, so the form says exactly what `ti-tui train` would;
the checks here add what needs the disk or the tokenizer: the model folder, image counts,
writable folders, checkpoints to resume from, and words the model already knows.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from pathlib import Path
from typing import Any, Literal, NamedTuple

from trainer import checkpoint_index
from trainer.config import TrainConfig, wrap_trigger
from trainer.errors import ConfigError, UserError

Level = Literal["error", "warning", "info"]
FEW_IMAGES = 3
"""Fewer images than this still trains, with a warning."""


class Note(NamedTuple):
    """What the form shows under a field: a level and one sentence."""

    level: Level
    text: str


def error(text: str) -> Note:
    """An error note: the form refuses to start until it is fixed."""
    return Note("error", text)


# --- values TrainConfig can check on its own ------------------------------------------------


@functools.cache
def _defaults() -> dict[str, Any]:
    base = TrainConfig()
    return {f.name: getattr(base, f.name) for f in dataclasses.fields(base)}


def config_errors(values: dict[str, Any]) -> dict[str, str]:
    """Every TrainConfig error in `values`, by field: {field: sentence}.

    TrainConfig stops at the first bad value; to find the others, each bad value is put back
    to its default and the rest checked again (one extra construction per error).
    """
    defaults = _defaults()
    trial = dict(values)
    found: dict[str, str] = {}
    for _ in range(len(trial) + 1):
        try:
            TrainConfig.from_dict(trial)
            break
        except ConfigError as exc:
            name = exc.field
            if name not in trial or name in found:
                found.setdefault(name or "config", str(exc))
                break
            found[name] = str(exc)
            if name in defaults and trial[name] != defaults[name]:
                trial[name] = defaults[name]
            else:
                del trial[name]
    return found


# --- the model ---------------------------------------------------------------------------------


def model_note(model: str, facts: Any, problem: str | None) -> Note | None:
    """"Model chosen": a usable diffusers folder, with its facts as an info line."""
    if not model.strip():
        return error("Choose a model, or pick 'other path...' and type the path of a diffusers "
                     "folder.")
    if problem:
        return error(problem)
    if facts is None:
        return None
    from ti_tui.panels import family_words

    parts = getattr(facts, "parts", None) or {"text_encoder": facts.token_dim}
    return Note("info", f"{family_words(facts.family, parts)}, native "
                        f"{facts.native_resolution} px, {facts.prediction_type}.")


def no_models_note(root: Path) -> str:
    """The sentence for a root whose models cannot be found."""
    return (f"No diffusers models found in {root / 'models'} or "
            f"{root / 'configs' / 'models.yaml'}; type the path of a diffusers folder.")


# --- the trigger and the initializer -----------------------------------------------------------


def trigger_note(text: str, tokenizer: Any | None) -> Note:
    """The trigger: required, well-formed (TrainConfig checks the pattern), and new to the model."""
    text = text.strip()
    if not text:
        return error("Type a trigger term such as my-cat; you will write <my-cat> in prompts.")
    trigger = wrap_trigger(text)
    if tokenizer is not None:
        from trainer.embeddings import check_trigger

        try:
            check_trigger(tokenizer, trigger)
        except UserError as exc:
            return error(str(exc))
    return Note("info", f"use {trigger} in your prompts")


def initializer_note(text: str, num_vectors: Any, tokenizer: Any | None) -> Note | None:
    """One token for all vectors, or exactly one token per vector; "random" is allowed."""
    if tokenizer is None or not text.strip() or text.strip().lower() == "random":
        return None
    try:
        vectors = int(num_vectors)
    except (TypeError, ValueError):
        vectors = 1
    from trainer.embeddings import initializer_ids

    try:
        initializer_ids(tokenizer, text, max(vectors, 1), seed=0)
    except UserError as exc:
        return error(str(exc))
    return None


# --- folders -----------------------------------------------------------------------------------


def count_images(folder: str) -> tuple[int | None, Note | None]:
    """(images found, note) for the data directory; the count is None when it cannot be read."""
    from trainer.data import IMAGE_SUFFIXES, list_images

    if not folder.strip():
        return None, error("Type the folder that holds your training images.")
    # The folder is on screen beside the message, so the messages do not repeat it.
    if not Path(folder).expanduser().exists():
        return None, error("This folder does not exist yet; create it and put 3-20 images of "
                           "your concept in it.")
    try:
        n = len(list_images(Path(folder)))
    except UserError as exc:
        return None, error(str(exc))
    kinds = ", ".join(s.lstrip(".").upper() for s in IMAGE_SUFFIXES if s != ".jpeg")
    if n == 0:
        return 0, error(f"This folder holds no images ({kinds}); put 3-20 images of your "
                        "concept in it.")
    if n < FEW_IMAGES:
        return n, Note("warning", f"Only {n} image{'s' if n > 1 else ''}; 3-20 varied images "
                                  "train a better embedding.")
    return n, Note("info", f"{n} images found.")


def writable_note(folder: str) -> Note | None:
    """The output directory can be created or written to."""
    if not folder.strip():
        return error("Type a folder for the run's files, e.g. ROOT/text-inversion-output/<trigger>.")
    path = Path(folder).expanduser()
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        return error(f"Output directory {folder} is blocked by the file {probe}; choose "
                     "another folder.")
    if not os.access(probe, os.W_OK | os.X_OK):
        return error(f"Output directory {folder} is not writable ({probe} is read-only for "
                     "you); choose another folder.")
    return None


def latest_checkpoint(folder: str | Path) -> Path | None:
    """The newest complete `checkpoint-<step>` folder in `folder`, or None."""
    return checkpoint_index.latest_checkpoint(Path(folder).expanduser())


def resume_note(resume: bool, output_dir: str, early_stopping: str = "dvar") -> Note | None:
    """What Resume will do with the output folder, as the trainer's preflight decides it: a
    folder holding a run must be resumed (or another folder chosen); resuming where DVAR
    stopped the run stops it again after one update unless Early stopping is none."""
    folder = output_dir.strip()
    checkpoint = latest_checkpoint(output_dir) if folder else None
    if resume and checkpoint is None:
        return Note("info", "no checkpoint yet: this starts a fresh run.")
    if checkpoint is None:
        return None
    if not resume:
        return error(f"{output_dir} already holds a run (last checkpoint {checkpoint.name}); "
                     "tick Resume to continue it, or choose a new output directory.")
    step = checkpoint_index.stopped_by_dvar(Path(folder).expanduser())
    if early_stopping == "dvar" and checkpoint.name == f"checkpoint-{step}":
        return Note("warning", f"DVAR already stopped this run at step {step}, so it stops "
                               "again after one update; set Early stopping to off "
                               "(--early_stopping none) to train on, or untick Resume and "
                               "choose a new output directory to start fresh.")
    return Note("info", f"continues from {checkpoint.name}.")
