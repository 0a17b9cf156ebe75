"""The setup form's fields: which TrainConfig fields it shows, in what order, with what control.

Labels, help and choices come from the field metadata (trainer/config.py); this module only
says which control suits each field and the few words the form adds (check-box labels).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from textual.widget import Widget
from textual.widgets import Input, Select

from ti_tui.widgets.choice_set import ChoiceSet
from ti_tui.widgets.pickers import ModelPicker, ResolutionPicker
from ti_tui.widgets.toggles import Tick
from trainer.config import field_info

FIELDS = (
    "model", "placeholder_token", "initializer_token", "resume_from_checkpoint",
    "learnable_property", "train_data_dir", "output_dir", "resolution", "center_crop",
    "mixed_precision", "max_train_steps", "num_train_epochs", "train_batch_size",
    "gradient_accumulation_steps", "learning_rate", "lr_scheduler", "lr_warmup_steps",
    "scale_lr", "early_stopping", "dvar_window", "dvar_threshold", "num_vectors", "save_steps",
    "checkpointing_steps", "seed", "num_processes", "device",
)
"""The TrainConfig fields the form edits, in the order shown."""
NUMBER_FIELDS = ("max_train_steps", "num_train_epochs", "train_batch_size",
                 "gradient_accumulation_steps", "lr_warmup_steps", "dvar_window",
                 "dvar_threshold", "num_vectors", "save_steps", "checkpointing_steps", "seed",
                 "num_processes")
CHECKBOXES = {
    "resume_from_checkpoint": "continue from the last checkpoint",
    "center_crop": "crop the centre square before resizing",
    "scale_lr": "× batch × accumulation × processes",
}
CHOICE_LABELS = {"early_stopping": {"dvar": "DVAR on", "none": "off"}}
FOLLOW_TRIGGER = {"train_data_dir": "text-inversion-training-data",
                  "output_dir": "text-inversion-output"}
"""Folders that follow the trigger (ROOT/<base>/<trigger>) until the user edits them."""
LABELS = {"resume_from_checkpoint": "Resume", "early_stopping": "Early stopping"}


def text_of(value: Any) -> str:
    """A config value as an Input shows it (None: empty)."""
    return "" if value is None else str(value)


def make_control(name: str, value: Any, *, models: list, root: Path) -> Widget:
    """The control that edits TrainConfig field `name`, showing `value`."""
    meta = field_info(name).metadata
    if name == "model":
        return ModelPicker(models, text_of(value))
    if name == "resolution":
        return ResolutionPicker(value, None)
    if name in CHECKBOXES:
        ticked = bool(value) if name != "resume_from_checkpoint" else value is not None
        return Tick(CHECKBOXES[name], ticked, compact=True, id=f"f-{name}")
    if name == "lr_scheduler":
        return Select([(c, c) for c in meta["choices"]], value=value, allow_blank=False,
                      compact=True, id=f"f-{name}")
    if meta["choices"]:
        labels = CHOICE_LABELS.get(name, {})
        return ChoiceSet([(labels.get(c, c), c) for c in meta["choices"]], value,
                         id=f"f-{name}")
    if name in NUMBER_FIELDS:
        integer = "int" in str(field_info(name).type)
        return Input(text_of(value), restrict=r"[0-9]*" if integer else r"[0-9.eE+-]*",
                     compact=True, classes="number", id=f"f-{name}",
                     placeholder="random" if name == "seed" else "")
    placeholder = {"train_data_dir": f"{root}/{FOLLOW_TRIGGER['train_data_dir']}/<trigger>",
                   "output_dir": f"{root}/{FOLLOW_TRIGGER['output_dir']}/<trigger>",
                   "placeholder_token": "e.g. my-cat",
                   "device": "auto, cpu, cuda or cuda:N"}.get(name, "")
    return Input(text_of(value), placeholder=placeholder, compact=True, id=f"f-{name}")
