"""Find the models on this machine, and turn `--model` into a folder or file.

Sources, all read-only and offline:
- InvokeAI 4.x-6.x: the main models in ROOT/<db_dir>/invokeai.db (trainer/invokeai_db.py),
  named as InvokeAI shows them.
- InvokeAI 3.x: diffusers folders under ROOT/models, named by their path there
  (`sd-1/main/stable-diffusion-v1-5`); 2.3: ROOT/configs/models.yaml (a `path:` or a Hugging
  Face cache `repo_id:`). A root with a database is not scanned as 3.x (its folders are the
  database's).
- A1111/Forge and ComfyUI: `*.safetensors` / `*.ckpt` under each --models_dir folder (and
  the diffusers folders there, each as one model, never searched inside), and
  under ROOT/models/Stable-diffusion (A1111/Forge) or ROOT/models/checkpoints (ComfyUI) when
  --root is such an install; named by their path in that folder.

Every entry says its family (SD1, SD2, SD2-v, SDXL), format, size on disk and where it was
found; one ti-tui cannot train on (SD3, Flux, refiner, inpainting, damaged) is listed with
the reason, and refused with that sentence if chosen. Describing reads configs and file
headers, never weights.
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path
from typing import Any

from trainer.errors import ModelError
from trainer.paths import near_miss
from trainer.model_entry import (  # noqa: F401 (re-exported: callers import them from here)
    SOURCES, ModelEntry, describe, disk_size, family_label, pipeline_problem, size_text)

CHECKPOINT_FOLDERS = (("models", "Stable-diffusion"), ("models", "checkpoints"))
"""Where A1111/Forge and ComfyUI keep checkpoints, relative to their install folder."""


# --- finding ---------------------------------------------------------------------------------


def _is_model_dir(path: Path) -> bool:
    """A diffusers pipeline folder: SD's (unet/) and also SD3/Flux's (transformer/), which are
    listed as unsupported rather than hidden."""
    return (path / "model_index.json").is_file() and (
        (path / "unet").is_dir() or (path / "transformer").is_dir())


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
            found.append(ModelEntry(path.relative_to(models).as_posix(), path, "invokeai3",
                                     found_in=models))
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
    # 2.3 names a checkpoint's file `weights:`; everything else (3.x too) uses `path:`.
    location = entry.get("path") or entry.get("weights")
    if location:
        path = Path(str(location)).expanduser()
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
    """InvokeAI 2.3 (and 3.0-3.x): the pipelines in ROOT/configs/models.yaml that exist.

    Diffusers entries name a folder; checkpoint entries (2.3 `format: ckpt` with `weights:`,
    3.x `format: checkpoint` with `path:`) a single file, whose original-config name says
    whether an SD 2.x file is v-prediction (2.3 ships `v2-inference-v.yaml` for those).
    """
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
        if not isinstance(entry, dict) or "/" in str(name) and "/main/" not in str(name):
            continue  # __metadata__, 3.x LoRAs, VAEs, embeddings (base/type/name keys)...
        kind = entry.get("format")
        path = _yaml_entry_path(root, entry) if kind in ("diffusers", "ckpt", "checkpoint") \
            else None
        if path is None:
            continue
        if kind == "diffusers" and path.is_dir():
            found.append(ModelEntry(str(name), path, "models.yaml", found_in=config))
        elif kind != "diffusers" and path.is_file():
            v_pred = str(entry.get("config") or "").endswith("-v.yaml")
            found.append(ModelEntry(str(name), path, "models.yaml", format="checkpoint",
                                    prediction_type="v_prediction" if v_pred else None,
                                    found_in=config))
    return found


def _read_database(root: Path) -> list[ModelEntry] | None:
    """InvokeAI 4+: the database's main models; None when the root has no database."""
    from trainer import invokeai_db

    if not invokeai_db.database_path(root).is_file():
        return None
    db = invokeai_db.database_path(root)
    found = []
    for model in invokeai_db.read_main_models(root):
        family = invokeai_db.SUPPORTED_BASES.get(model.base)
        if family == "SD2" and model.prediction_type == "v_prediction":
            family = "SD2-v"
        found.append(ModelEntry(model.name, model.path, "invokeai-db",
                                family=None if model.problem else family,
                                format="checkpoint" if model.format == "checkpoint"
                                else "diffusers", problem=model.problem,
                                prediction_type=model.prediction_type, found_in=db))
    return found


def checkpoint_folders(root: Path, models_dirs: list[Path] | tuple = ()) -> list[Path]:
    """The folders scanned for single files: --models_dir ones, then ROOT's A1111/ComfyUI
    checkpoint folders when --root is such an install."""
    folders = [Path(p).expanduser() for p in models_dirs]
    folders += [Path(root).expanduser().joinpath(*parts) for parts in CHECKPOINT_FOLDERS]
    unique: dict[str, Path] = {}
    for folder in folders:
        if folder.is_dir():
            unique.setdefault(os.path.realpath(folder), folder)
    return list(unique.values())


def _scan_checkpoints(folder: Path) -> list[ModelEntry]:
    """`*.safetensors` / `*.ckpt` under `folder` (A1111 and ComfyUI search subfolders too),
    named by their path there; hidden files and folders are skipped.

    A diffusers folder (it has model_index.json) met on the way is listed as one model, and
    nothing inside it is: its unet/, vae/ and text_encoder/ weight files are components, not
    checkpoints (listing them called each one "not a full Stable Diffusion checkpoint")."""
    from trainer.single_file import LISTED_SUFFIXES

    found = []
    for dirpath, dirnames, names in os.walk(folder, followlinks=True):
        if "model_index.json" in names:
            here = Path(dirpath)
            name = here.relative_to(folder).as_posix() if here != folder else here.name
            found.append(ModelEntry(name, here, "models-dir", found_in=folder))
            dirnames[:] = []
            continue
        depth = Path(dirpath).relative_to(folder).parts
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".")
                             and len(depth) < _MAX_SCAN_DEPTH)
        for name in sorted(names):
            if name.startswith(".") or not name.lower().endswith(LISTED_SUFFIXES):
                continue
            path = Path(dirpath) / name
            found.append(ModelEntry(path.relative_to(folder).as_posix(), path, "models-dir",
                                    format="checkpoint", found_in=folder))
    return found


def find_models(root: Path, models_dirs: list[Path] | tuple = (), *,
                describe_all: bool = False) -> list[ModelEntry]:
    """Every model found under the InvokeAI root `root` and in `models_dirs`, sorted by name.

    A folder that models.yaml lists is not listed again by the folder scan: it keeps its
    models.yaml name, the one InvokeAI showed the user; a root with an InvokeAI 4+ database
    is listed from it alone. `describe_all` fills in family, format, size and problem
    (reads configs and headers; `ti-tui models` and the form want it, resolving does not).
    """
    root = Path(root).expanduser()
    from_db = _read_database(root)
    if from_db is not None:
        listed = from_db
    else:
        listed = _read_models_yaml(root)
        in_yaml = {os.path.realpath(e.path) for e in listed}
        listed += [e for e in _scan_models_dir(root) if os.path.realpath(e.path) not in in_yaml]
    seen = {os.path.realpath(e.path) for e in listed}
    for folder in checkpoint_folders(root, models_dirs):
        for entry in _scan_checkpoints(folder):
            if os.path.realpath(entry.path) not in seen:
                seen.add(os.path.realpath(entry.path))
                listed.append(entry)
    if describe_all:
        listed = [describe(e) for e in listed]
    return sorted(listed, key=lambda e: e.name)


def _name_list(names: list[str], limit: int = 8) -> str:
    shown = ", ".join(names[:limit])
    return shown if len(names) <= limit else f"{shown} and {len(names) - limit} more"


def _short_names(entry: ModelEntry) -> set[str]:
    """The names a model answers to besides its full one: its last part, and for a single
    file that part without .safetensors/.ckpt (A1111 and ComfyUI users type those)."""
    last = entry.name.rsplit("/", 1)[-1]
    return {last, Path(last).stem} if entry.format == "checkpoint" else {last}


def resolve_model(model: str, root: Path, *, models_dirs: list[Path] | tuple = ()) -> Path:
    """Turn `--model` into a path: an existing path, a model name, or a name's last part.

    Names come from every source `find_models` reads. A model listed as unsupported (SD3,
    Flux, an InvokeAI inpainting model...) is refused with its reason. An existing file is
    returned as is; trainer.models.check_model decides whether it is a usable checkpoint.
    Raises ModelError (field "model") otherwise.
    """
    if not model.strip():  # Path("") is ".", which exists: never train on the cwd by accident
        raise ModelError("--model is empty; pass a diffusers folder, a checkpoint file or a "
                         "model name.", field="model")
    root = Path(root).expanduser()
    as_path = Path(model).expanduser()
    try:
        if as_path.exists():
            return as_path
    except OSError as exc:  # a name too long to be a path, say: treat it as a name
        if exc.errno not in (36, 63):  # ENAMETOOLONG on Linux / macOS
            raise
    entries = find_models(root, models_dirs)
    matches = [e for e in entries if e.name == model]
    if not matches:
        matches = [e for e in entries if model in _short_names(e)]
    if len(matches) == 1:
        entry = matches[0]
        if entry.problem is None and not entry.path.exists():
            # Listed (InvokeAI's database, models.yaml) but deleted or moved since: say where
            # it was listed, not "Model folder ... does not exist" as if the user typed a path.
            raise ModelError(f'Model "{model}" is listed in the {SOURCES[entry.source]} '
                             f"{entry.found_in or root} at {entry.path}, but nothing is there "
                             "any more; re-install it there, or pass --model another name or "
                             "a path.", field="model")
        if entry.problem is None and entry.path.is_dir():  # an SD3/Flux/refiner folder
            entry = replace(entry, problem=pipeline_problem(entry.path))
        if entry.problem:
            raise ModelError(f'Model "{model}" ({entry.path}) is {entry.problem}; ti-tui '
                             "trains embeddings for SD 1.x, SD 2.x and SDXL base models, so "
                             "pick one of those.", field="model")
        return entry.path
    names = [e.name for e in entries]
    if len(matches) > 1:
        raise ModelError(
            f'Model "{model}" matches several models ({_name_list([e.name for e in matches])}); '
            "pass --model the full name or a path.", field="model")
    folders = checkpoint_folders(root, models_dirs)
    also = f" or in {_name_list([str(f) for f in folders], limit=4)}" if folders else ""
    if not names:
        raise ModelError(
            f'Model "{model}" was not found: found no models under {root / "models"}, '
            f'{root / "configs" / "models.yaml"} or InvokeAI\'s database{also}, so pass --model '
            "a diffusers folder or a checkpoint file (or --models_dir the folder holding it).",
            field="model")
    raise ModelError(
        f'Model "{model}"{near_miss(model, names)} was not found under {root}{also} (found: '
        f'{_name_list(names)}); pass '
        "--model one of those names, a diffusers folder or a checkpoint file.", field="model")
