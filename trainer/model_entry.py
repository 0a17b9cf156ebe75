"""One model found on disk (`ModelEntry`), and how it is described for people.

trainer/discovery.py finds entries; `describe` fills in what `ti-tui models` and the form
show: the family (SD1, SD2, SD2-v, SDXL), the format (diffusers or checkpoint), the size on
disk, and why ti-tui cannot train on it, if it cannot. Describing reads configs and file
headers (trainer/single_file.py, trainer/weights_check.py), never weights.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from trainer.errors import UserError

FAMILY_LABELS = {"sd1": "SD1", "sd2": "SD2", "sdxl": "SDXL"}
SOURCES = {"invokeai-db": "InvokeAI 4+ database", "invokeai3": "InvokeAI 3.x models folder",
           "models.yaml": "InvokeAI 2.3 models.yaml", "models-dir": "checkpoints folder"}


@dataclass(frozen=True)
class ModelEntry:
    """A model found on disk."""

    name: str
    """What the user types: `sd-1/main/stable-diffusion-v1-5` (3.x), the models.yaml key,
    InvokeAI 4+'s model name, or a checkpoint's path in its folder (`sdxl/pony.safetensors`)."""
    path: Path
    """The diffusers folder or the single file."""
    source: str
    """Where it was found: "invokeai-db", "invokeai3", "models.yaml" or "models-dir"."""
    family: str | None = None
    """"SD1", "SD2", "SD2-v" or "SDXL"; None when unknown or unsupported."""
    format: str = "diffusers"
    """"diffusers" (a folder) or "checkpoint" (one file)."""
    size: int | None = None
    """Bytes on disk."""
    problem: str | None = None
    """Why it cannot be trained on ("an SD3 model", a damaged file...); None when it can."""
    prediction_type: str | None = None
    """What InvokeAI's database records for it, when it does."""
    found_in: Path | None = None
    """The root, database or checkpoints folder it was found in."""


def family_label(family: str, prediction_type: str | None) -> str:
    """"SD1", "SD2", "SD2-v" or "SDXL" for people."""
    label = FAMILY_LABELS.get(family, family)
    return "SD2-v" if family == "sd2" and prediction_type == "v_prediction" else label


def disk_size(path: Path) -> int | None:
    """Bytes of a file, or of every file in a folder (links followed, each file once); None
    when nothing is there (a listed model deleted since: "?", not "0 B")."""
    try:
        if path.is_file():
            return path.stat().st_size
        if not path.is_dir():
            return None
        total, seen = 0, set()
        for dirpath, _, names in os.walk(path, followlinks=True):
            for name in names:
                stat = os.stat(os.path.join(dirpath, name))
                if (stat.st_dev, stat.st_ino) not in seen:
                    seen.add((stat.st_dev, stat.st_ino))
                    total += stat.st_size
        return total
    except OSError:
        return None


def size_text(size: int | None) -> str:
    """Bytes on disk for people: "812.0 KB", "6.5 GB", "?" when unknown."""
    if size is None:
        return "?"
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return "?"


_PIPELINES = {"Flux": "a Flux model", "StableDiffusion3": "an SD3 model",
              "Inpaint": "an inpainting model", "XLImg2Img": "an SDXL refiner",
              "Upscale": "an upscaler", "InstructPix2Pix": "an InstructPix2Pix model",
              "Depth2Img": "a depth-to-image model", "Controlnet": "a ControlNet pipeline"}
"""Words in a diffusers pipeline class name that make it one ti-tui cannot train on."""


def pipeline_problem(folder: Path) -> str | None:
    """Why a diffusers folder is not an SD 1.x/2.x/SDXL base pipeline, from model_index.json
    (`_class_name`, e.g. FluxPipeline); None when it is one, or when there is no index."""
    import json

    try:
        name = str(json.loads((folder / "model_index.json").read_text(encoding="utf-8"))
                   .get("_class_name", ""))
    except (OSError, UnicodeDecodeError, ValueError, AttributeError):
        return None
    for word, what in _PIPELINES.items():
        if word.lower() in name.lower():
            return what
    return None


def describe(entry: ModelEntry) -> ModelEntry:
    """`entry` with its family, format, size and problem filled in from its configs/header."""
    from dataclasses import replace

    from trainer import models, single_file, weights_check

    path = entry.path
    # A listed model that is missing keeps the format its listing recorded.
    fmt = "checkpoint" if path.is_file() else "diffusers" if path.exists() else entry.format
    family, problem = entry.family, entry.problem
    if problem is None and not path.exists():
        problem = "missing on disk"
    elif problem is None and fmt == "diffusers":
        problem = pipeline_problem(path)
    if problem is None and fmt == "diffusers" and path.exists():
        try:
            facts = models.check_model_folder(path)
            family = family_label(facts.family, entry.prediction_type or facts.prediction_type)
        except UserError as exc:
            problem = str(exc)
    elif problem is None:
        try:
            shapes = weights_check.read_shapes(path)
            detected = single_file.detect(shapes)
            if detected.family is None:
                problem = detected.what
            else:
                pred = entry.prediction_type
                if detected.family == "sd2" and pred is None:
                    pred = single_file.guess_sd2_prediction(path, shapes)
                family = family_label(detected.family, pred)
        except UserError as exc:
            problem = str(exc)
    return replace(entry, family=family, format=fmt, size=disk_size(path), problem=problem)
