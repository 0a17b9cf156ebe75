"""The setup form's fields: which TrainConfig fields it shows, in what order, with what control.

Labels, help, choices, limits and the control kind come from the field itself (trainer/
config.py: its type and metadata, see `control_kind`); this module only lists the fields in
form order and the few words the form adds (check-box labels, choice labels, placeholders).
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
PICKERS = ("model", "resolution")
"""Fields with a composite control of their own (ti_tui/widgets/pickers.py)."""
SELECT_OVER = 4
"""A choice field with more choices than this gets a drop-down; fewer fit on one line."""
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
TYPED_KINDS = ("model", "resolution", "number", "text")
"""Controls that show any text typed (control_kind): a refused value can be put in them to be
fixed in place; a check box or a set of choices can only show one of its own values."""


def text_of(value: Any) -> str:
    """A config value as an Input shows it (None: empty)."""
    return "" if value is None else str(value)


def control_kind(name: str) -> str:
    """Which control edits TrainConfig field `name`, read from the field: "model" or
    "resolution" (a picker), "tick" (a bool, or a field the form shows as a check box),
    "select" or "choices" (choices in its metadata, by how many), "number" (int or float),
    else "text"."""
    f = field_info(name)
    base = str(f.type).replace("| None", "").strip()
    choices = f.metadata["choices"]
    if name in PICKERS:
        return name
    if name in CHECKBOXES or base == "bool":
        return "tick"
    if choices:
        return "select" if len(choices) > SELECT_OVER else "choices"
    if base in ("int", "float"):
        return "number"
    return "text"


def make_control(name: str, value: Any, *, models: list, root: Path) -> Widget:
    """The control that edits TrainConfig field `name`, showing `value`."""
    f = field_info(name)
    kind = control_kind(name)
    if kind == "model":
        return ModelPicker(models, text_of(value))
    if kind == "resolution":
        return ResolutionPicker(value, None)
    if kind == "tick":
        ticked = bool(value) if name != "resume_from_checkpoint" else value is not None
        return Tick(CHECKBOXES.get(name, ""), ticked, compact=True, id=f"f-{name}")
    if kind == "select":
        return Select([(c, c) for c in f.metadata["choices"]], value=value, allow_blank=False,
                      compact=True, id=f"f-{name}")
    if kind == "choices":
        labels = CHOICE_LABELS.get(name, {})
        return ChoiceSet([(labels.get(c, c), c) for c in f.metadata["choices"]], value,
                         id=f"f-{name}")
    if kind == "number":
        integer = str(f.type).startswith("int")
        return Input(text_of(value), restrict=r"[0-9]*" if integer else r"[0-9.eE+-]*",
                     compact=True, classes="number", id=f"f-{name}",
                     placeholder="random" if f.default is None else "")
    placeholder = {"train_data_dir": f"{root}/{FOLLOW_TRIGGER['train_data_dir']}/<trigger>",
                   "output_dir": f"{root}/{FOLLOW_TRIGGER['output_dir']}/<trigger>",
                   "placeholder_token": "e.g. my-cat",
                   "device": "auto, cpu, cuda or cuda:N"}.get(name, "")
    return Input(text_of(value), placeholder=placeholder, compact=True, id=f"f-{name}")
