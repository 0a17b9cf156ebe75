"""Find the models under an InvokeAI root, and turn `--model` into a folder.

InvokeAI 3.x+ keeps diffusers folders under ROOT/models (named by their path there, e.g.
`sd-1/main/stable-diffusion-v1-5`); 2.3 lists them in ROOT/configs/models.yaml (a `path:` or
a Hugging Face cache `repo_id:`). Nothing here loads weights or touches the network.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trainer.errors import ModelError


@dataclass(frozen=True)
class ModelEntry:
    """A model found under an InvokeAI root."""

    name: str
    """What the user types: `sd-1/main/stable-diffusion-v1-5` (3.x) or the models.yaml key."""
    path: Path
    """The diffusers folder."""
    source: str
    """Where it was found: "invokeai3" (a folder scan) or "models.yaml"."""


# --- finding ---------------------------------------------------------------------------------


def _is_model_dir(path: Path) -> bool:
    return (path / "model_index.json").is_file() and (path / "unet").is_dir() and (
        path / "text_encoder"
    ).is_dir()


_MAX_SCAN_DEPTH = 6
"""InvokeAI nests models 1-3 folders deep (base/type/name); deeper folders are not models."""


def _scan(folder: Path, models: Path, ancestors: frozenset[str], found: list[ModelEntry]) -> None:
    try:
        children = sorted(os.scandir(folder), key=lambda e: e.name)
    except OSError:
        return  # unreadable folder: nothing to find there
    for child in children:
        # Hidden folders are caches; `models--org--name` folders are the Hugging Face cache,
        # whose snapshots models.yaml names properly (repo_id entries).
        if child.name.startswith((".", "models--")) or not child.is_dir():
            continue
        real = os.path.realpath(child.path)
        if real in ancestors:
            continue  # a symlink back up the tree
        path = Path(child.path)
        if _is_model_dir(path):
            # A model's own subfolders are components, so nothing inside it is searched.
            found.append(ModelEntry(path.relative_to(models).as_posix(), path, "invokeai3"))
        elif len(ancestors) < _MAX_SCAN_DEPTH:
            _scan(path, models, ancestors | {real}, found)


def _scan_models_dir(root: Path) -> list[ModelEntry]:
    """InvokeAI 3.x+: every diffusers folder under ROOT/models, named by its relative path.

    Symlinks are followed (users often link big models in); only a link back to a folder
    on the current path is refused, so two names for one model both appear.
    """
    models = root / "models"
    found: list[ModelEntry] = []
    if models.is_dir():
        _scan(models, models, frozenset({os.path.realpath(models)}), found)
    return found


def _hf_snapshot(root: Path, repo_id: str) -> Path | None:
    """The snapshot folder of `repo_id` in a Hugging Face cache inside the InvokeAI root."""
    repo_dir_name = "models--" + repo_id.replace("/", "--")
    # 2.3 sets HF_HOME=ROOT/models (cache in models/hub); 2.2 used models/diffusers directly.
    for cache in (root / "models" / "hub", root / "models" / "diffusers"):
        snapshots = cache / repo_dir_name / "snapshots"
        if not snapshots.is_dir():
            continue
        ref = cache / repo_dir_name / "refs" / "main"
        if ref.is_file():
            rev = ref.read_text(encoding="utf-8").strip()
            if rev and (snapshots / rev).is_dir():
                return snapshots / rev
        revs = [p for p in snapshots.iterdir() if p.is_dir()]
        if revs:
            return max(revs, key=lambda p: p.stat().st_mtime)
    return None


def _yaml_entry_path(root: Path, entry: dict[str, Any]) -> Path | None:
    if entry.get("path"):
        path = Path(str(entry["path"])).expanduser()
        if path.is_absolute():
            return path
        # 2.3 paths are relative to ROOT; 3.x models.yaml paths are relative to ROOT/models.
        for base in (root, root / "models"):
            if (base / path).exists():
                return base / path
        return root / path
    if entry.get("repo_id"):
        return _hf_snapshot(root, str(entry["repo_id"]))
    return None


def _read_models_yaml(root: Path) -> list[ModelEntry]:
    """InvokeAI 2.3 (and 3.0-3.x): diffusers entries of ROOT/configs/models.yaml that exist."""
    import yaml

    config = root / "configs" / "models.yaml"
    if not config.is_file():
        return []
    try:
        data = yaml.safe_load(config.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ModelError(
            f"{config} is not valid YAML ({first}); fix or move it aside.", field="model"
        ) from exc
    if data is None:
        return []
    if not isinstance(data, dict):
        raise ModelError(
            f"{config} should map model names to settings; fix or move it aside.", field="model"
        )
    found = []
    for name, entry in data.items():
        if not isinstance(entry, dict) or entry.get("format") != "diffusers":
            continue  # __metadata__, ckpt/checkpoint entries, LoRAs...
        path = _yaml_entry_path(root, entry)
        if path is not None and path.is_dir():
            found.append(ModelEntry(str(name), path, "models.yaml"))
    return found


def find_models(root: Path) -> list[ModelEntry]:
    """All diffusers models under the InvokeAI root `root`, sorted by name.

    A folder that models.yaml lists is not listed again by the folder scan: it keeps its
    models.yaml name, the one InvokeAI showed the user.
    """
    root = Path(root).expanduser()
    listed = _read_models_yaml(root)
    in_yaml = {os.path.realpath(e.path) for e in listed}
    scanned = [e for e in _scan_models_dir(root) if os.path.realpath(e.path) not in in_yaml]
    return sorted(listed + scanned, key=lambda e: e.name)


def _name_list(names: list[str], limit: int = 8) -> str:
    shown = ", ".join(names[:limit])
    return shown if len(names) <= limit else f"{shown} and {len(names) - limit} more"


def resolve_model(model: str, root: Path) -> Path:
    """Turn `--model` into a path: an existing path, a model name, or a name's last part.

    An existing file is returned as is, so `check_model_folder` can say it is a single-file
    checkpoint rather than "not found". Raises ModelError (field "model") otherwise.
    """
    if not model.strip():  # Path("") is ".", which exists: never train on the cwd by accident
        raise ModelError("--model is empty; pass a diffusers folder or a model name.", field="model")
    root = Path(root).expanduser()
    as_path = Path(model).expanduser()
    if as_path.exists():
        return as_path
    entries = find_models(root)
    for entry in entries:
        if entry.name == model:
            return entry.path
    tail = [e for e in entries if e.name.rsplit("/", 1)[-1] == model]
    if len(tail) == 1:
        return tail[0].path
    names = [e.name for e in entries]
    if len(tail) > 1:
        raise ModelError(
            f'Model "{model}" matches several models under {root} '
            f"({_name_list([e.name for e in tail])}); pass --model the full name.",
            field="model",
        )
    if not names:
        raise ModelError(
            f'Model "{model}" was not found: found no models under {root / "models"} '
            f'or in {root / "configs" / "models.yaml"}, so pass --model a path to a diffusers folder.',
            field="model",
        )
    raise ModelError(
        f'Model "{model}" was not found under {root} (found: {_name_list(names)}); '
        "pass --model a path to a diffusers folder or one of those names.",
        field="model",
    )
