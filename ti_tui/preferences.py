"""The last run's settings: saved on start, restored by the next form (all but the trigger).

Like invokeai-ti's `preferences.conf`, there is one slot, ROOT/text-inversion-output/
preferences.toml (the user's config folder when the root does not exist), holding the flat TrainConfig values of the last run started from the form.
The trigger is left out on purpose (a new run usually means a new word), and so are the root
(the command line says where it is), the resume choice (the form ticks it from the disk) and
the hub token (a secret). The file is written atomically; a bad or stale file never stops the
form: each value that no longer fits is dropped and named in a note.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from pathlib import Path
from typing import Any

import tomli_w

from trainer.config import TrainConfig, field_info
from trainer.errors import ConfigError
from trainer.fsutil import atomic_write_text
from trainer.names import OUTPUT_FOLDER_FILES

PREFERENCES_NAME = OUTPUT_FOLDER_FILES[0]  # no trigger may take its name (trainer/names.py)
NOT_SAVED = frozenset({"placeholder_token", "root", "resume_from_checkpoint", "hub_token"})
"""TrainConfig fields that are never written to (nor read from) the preferences file."""


def preferences_path(root: str | Path) -> Path:
    """Where the form's last values are kept: ROOT/text-inversion-output/preferences.toml when
    the root folder exists, else preferences.toml in the user's config folder
    (platformdirs.user_config_dir, which follows $XDG_CONFIG_HOME). Saving never creates the
    root: a missing ~/invokeai made on the fly would later pass for an InvokeAI install."""
    folder = Path(root).expanduser()
    if folder.is_dir():
        return folder / "text-inversion-output" / PREFERENCES_NAME
    import platformdirs

    return Path(platformdirs.user_config_dir("ti-tui")) / PREFERENCES_NAME


def preference_values(config: TrainConfig) -> dict[str, Any]:
    """The values of `config` that are saved: everything but NOT_SAVED and unset (None) ones."""
    values = {}
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if f.name not in NOT_SAVED and value is not None:
            values[f.name] = value
    return values


def save_preferences(root: str | Path, config: TrainConfig) -> Path:
    """Write `config`'s saved values to ROOT/text-inversion-output/preferences.toml."""
    path = preferences_path(root)
    header = "# ti-tui: the settings of the last run started from the form (all but the trigger).\n"
    atomic_write_text(path, header + tomli_w.dumps(preference_values(config)))
    return path


def load_preferences(root: str | Path) -> tuple[dict[str, Any], list[str]]:
    """(saved values, notes): the values are {} when there is no file or it cannot be read."""
    path = preferences_path(root)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}, []
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        return {}, [f"Ignored saved settings in {path}: {exc}."]
    flat: dict[str, Any] = {}
    for key, value in data.items():
        flat.update(value if isinstance(value, dict) else {key: value})
    return {k: v for k, v in flat.items() if k not in NOT_SAVED}, []


def apply_preferences(config: TrainConfig, values: dict[str, Any]) -> tuple[TrainConfig, list[str]]:
    """`config` with the saved `values` laid over it; values that no longer fit are dropped.

    Returns the new config and one note per dropped value (an unknown setting from another
    version, an out-of-range number...).
    """
    base = {f.name: getattr(config, f.name) for f in dataclasses.fields(config)}
    merged = {**base, **{k: v for k, v in values.items() if k not in NOT_SAVED}}
    notes: list[str] = []
    for _ in range(len(merged) + 1):
        try:
            return TrainConfig.from_dict(merged, source="saved settings"), notes
        except ConfigError as exc:
            name = exc.field
            if name not in merged or merged[name] == base.get(name, object()):
                return config, notes + [f"Ignored the saved settings: {exc}"]
            label = field_info(name).metadata["label"] if name in base else name
            notes.append(f"Ignored the saved {label}: {exc}")
            if name in base:
                merged[name] = base[name]
            else:
                del merged[name]
    return config, notes


def restore_preferences(root: str | Path, config: TrainConfig) -> tuple[TrainConfig, list[str]]:
    """`config` with the preferences saved under `root` applied, and notes on what was dropped."""
    values, notes = load_preferences(root)
    if not values:
        return config, notes
    restored, more = apply_preferences(config, values)
    return restored, notes + more


def saved_models_dirs(root: str | Path) -> list[str]:
    """The checkpoint folders (--models_dir) remembered under `root`, in order."""
    values, _ = load_preferences(root)
    text = values.get("models_dir")
    return [p for p in str(text).split(os.pathsep) if p] if text else []


def remember_models_dirs(root: str | Path, folders: list[str]) -> list[str]:
    """Add `folders` to the remembered --models_dir folders (kept in preferences.toml with
    the form's other saved settings); returns the whole list."""
    path = preferences_path(root)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        data = {}
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        data = {}  # unreadable: load_preferences ignores it too; start it again
    flat: dict[str, Any] = {}
    for key, value in data.items():
        flat.update(value if isinstance(value, dict) else {key: value})
    known = [p for p in str(flat.get("models_dir") or "").split(os.pathsep) if p]
    merged = list(dict.fromkeys(known + [str(Path(f).expanduser().resolve()) for f in folders]))
    flat["models_dir"] = os.pathsep.join(merged)
    header = "# ti-tui: the settings of the last run started from the form (all but the trigger).\n"
    atomic_write_text(path, header + tomli_w.dumps(flat))
    return merged
