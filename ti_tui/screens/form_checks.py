"""The setup form's checks, as plain functions of values: no widgets, so tests call them directly.

Each check returns a `Note` (level + one sentence) or None. Value checks (types, ranges,
schedule strings) are TrainConfig's own, so the form says exactly what `ti-tui train` would;
the checks here add what needs the disk or the tokenizer: the model folder, image counts,
writable folders, checkpoints to resume from, and words the model already knows.

Every check declares what it reads (`ValueChecks` through trainer/config_rules.py, the others
in `NOTE_READS`), so an edit checks again only the notes that can change.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Literal, NamedTuple

from trainer import checkpoint_index, config_rules
from trainer.config import TrainConfig, wrap_trigger
from trainer.errors import ConfigError, UserError
from trainer.fields import coerce

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


TOKENIZER = "tokenizer"
"""Not a field: stands for the chosen model's facts, problem and tokenizer in `NOTE_READS`
(they change when the model does, or when its tokenizer has loaded)."""

NOTE_READS: dict[str, tuple[str, ...]] = {
    "model": ("model", TOKENIZER),
    "placeholder_token": ("placeholder_token", TOKENIZER),
    "initializer_token": ("initializer_token", "num_vectors", TOKENIZER),
    "train_data_dir": ("train_data_dir",),
    "output_dir": ("output_dir",),
    "resume_from_checkpoint": ("resume_from_checkpoint", "output_dir", "early_stopping"),
    "resolution": ("resolution", TOKENIZER),
    "num_processes": ("num_processes",),
    # DVAR's advice (trainer/dvar_advice.py) reads the rate at its earliest stop and the setting.
    "early_stopping": ("early_stopping", "dvar_window", "dvar_threshold", "learning_rate",
                       "scale_lr", "train_batch_size", "gradient_accumulation_steps",
                       "num_processes",
                       "lr_scheduler", "lr_warmup_steps", "max_train_steps",
                       "num_train_epochs", "train_data_dir"),
}
"""The form's own note of each field (the checks below: disk, tokenizer, the model's native
size) and the form values it reads; an edit of one of them checks that note again."""


def notes_reading(changed: Iterable[str]) -> list[str]:
    """The fields whose own note (`NOTE_READS`) reads one of `changed`."""
    edited = set(changed)
    return [name for name, reads in NOTE_READS.items() if edited.intersection(reads)]


# --- values TrainConfig can check on its own ------------------------------------------------


@functools.cache
def _fields() -> dict[str, dataclasses.Field]:
    """TrainConfig's fields by name, in declaration order (the order coercion reports them)."""
    return {f.name: f for f in dataclasses.fields(TrainConfig)}


@functools.cache
def _defaults() -> dict[str, Any]:
    base = TrainConfig()
    return {f.name: getattr(base, f.name) for f in dataclasses.fields(base)}


class ValueChecks:
    """TrainConfig's own checks of the form's values, kept field by field.

    `check(values, changed)` checks again only what an edit of `changed` can alter: each
    changed field's type, choices and limits (`trainer.fields.coerce`, from the field's
    metadata) and the rules of trainer/config_rules.py that read one of them; every other
    verdict is kept. The sentences are TrainConfig's, so the form says what `ti-tui train`
    would, and all of them at once where TrainConfig stops at the first.

    A value that fails its own check is taken at its default while the rules run, as if the
    user had not typed it, so one bad number does not hide the problems of the others.
    """

    def __init__(self) -> None:
        self._typed: dict[str, Any] = {}
        """Each field's value in its type (the default while the typed one is refused)."""
        self._own: dict[str, str] = {}
        """Fields whose own value is refused, with the sentence."""
        self._ruled: dict[config_rules.Rule, str] = {}
        """Rules that fail on the values now, with the sentence."""

    def check(self, values: Mapping[str, Any],
              changed: Iterable[str] | None = None) -> dict[str, str]:
        """Every problem of `values` (TrainConfig field -> loose value; a missing field
        counts as its default) by field, after checking again the fields in `changed` (None:
        all of them). Returns {field: sentence}: coercion problems in field order, then rule
        problems in table order, the first per field, as TrainConfig would raise them."""
        fields, defaults = _fields(), _defaults()
        if changed is None or not self._typed:
            names = list(fields)
            rules = config_rules.RULES
        else:
            edited = set(changed)
            names = [name for name in fields if name in edited]
            rules = config_rules.rules_reading(names)
        for name in names:
            try:
                self._typed[name] = coerce(fields[name], values.get(name, defaults[name]))
                self._own.pop(name, None)
            except ConfigError as exc:
                self._typed[name] = defaults[name]
                self._own[name] = str(exc)
        for rule in rules:
            problem = rule.problem(self._typed)
            if problem is None:
                self._ruled.pop(rule, None)
            else:
                self._ruled[rule] = problem
        return self.problems()

    def typed(self) -> dict[str, Any]:
        """Each field's value in its type, as of the last `check` (a refused one at its
        default): what trainer/plan.py reads, without building a TrainConfig."""
        return dict(self._typed)

    def problems(self) -> dict[str, str]:
        """The problems found by the last `check`, by field (see there for the order)."""
        found = {name: self._own[name] for name in _fields() if name in self._own}
        for rule in config_rules.RULES:
            if rule in self._ruled:
                found.setdefault(rule.field, self._ruled[rule])
        return found


def config_errors(values: Mapping[str, Any]) -> dict[str, str]:
    """Every TrainConfig error in `values`, by field: {field: sentence} (see `ValueChecks`)."""
    return ValueChecks().check(values)


# --- the model ---------------------------------------------------------------------------------


def model_note(model: str, facts: Any, problem: str | None) -> Note | None:
    """"Model chosen": a usable diffusers folder, with its facts as an info line."""
    if not model.strip():
        return error("Choose a model, or pick 'other path...' and type the path of a diffusers "
                     "folder or a .safetensors/.ckpt checkpoint.")
    if problem:
        return error(problem)
    if facts is None:
        return None
    from ti_tui.panel_format import family_words

    parts = getattr(facts, "parts", None) or {"text_encoder": facts.token_dim}
    return Note("info", f"{family_words(facts.family, parts)}, native "
                        f"{facts.native_resolution} px, {facts.prediction_type}.")


def no_models_note(root: Path) -> str:
    """The sentence for a root whose models cannot be found."""
    return (f"No diffusers models found in {root / 'models'} or "
            f"{root / 'configs' / 'models.yaml'}; type the path of a diffusers folder or a "
            ".safetensors/.ckpt checkpoint.")


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
        from trainer.paths import near_miss

        return None, error(f"This folder does not exist yet{near_miss(folder)}; create it and "
                           "put 3-20 images of your concept in it.")
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
