"""Find damaged weight files before anything is written: headers and shapes, never the weights.

A model that only fails when its weights are loaded fails after the output folder, run.toml,
events.jsonl and trainer.log exist. These checks read what a loader reads first and compare
it with what the configs promise, so a cut-off download, a file saved for another config or a
pickle that needs code is refused by preflight with one sentence:

- safetensors: the 8-byte little-endian header length, the JSON header, and every tensor's
  `data_offsets` against the file's real size and its dtype x shape (the layout is the one in
  huggingface/safetensors' README, "Format"); a file cut short is found in microseconds.
- pickles (`.ckpt`, `.bin`, `.pt`): `torch.load(weights_only=True, mmap=True)` onto the meta
  device, which reads the zip directory and the pickle but no tensor data; a truncated zip
  has no directory, and a pickle that names code is refused by torch's restricted unpickler.
- shapes: a diffusers component's tensors against the same model built on the meta device from
  its config.json (no memory, no weights), so "wrong shapes for the config" never reaches
  `from_pretrained`.
"""

from __future__ import annotations

import json
import math
import zipfile
from dataclasses import dataclass
from pathlib import Path

from trainer.errors import ModelError

PICKLE_SUFFIXES = (".ckpt", ".bin", ".pt", ".pth")
_MAX_HEADER = 100 * 1024 * 1024
"""safetensors refuses headers over 100 MB (its own limit), so a larger length means damage."""
_DTYPE_BYTES = {"BOOL": 1, "U8": 1, "I8": 1, "F8_E4M3": 1, "F8_E5M2": 1, "I16": 2, "U16": 2,
                "F16": 2, "BF16": 2, "I32": 4, "U32": 4, "F32": 4, "I64": 8, "U64": 8,
                "F64": 8}
_REDOWNLOAD = "re-download or re-convert the model"


@dataclass(frozen=True)
class TensorInfo:
    """One tensor as a file's header describes it."""

    dtype: str
    """The dtype name: a safetensors header's ("F16", "F32", "BF16") or, for a .ckpt,
    torch's without the prefix ("float16")."""
    shape: tuple[int, ...]
    """The tensor's dimensions, outermost first."""


def _damaged(path: Path, why: str, field: str = "model") -> ModelError:
    return ModelError(f"Weight file {path} is damaged: {why}; {_REDOWNLOAD}.", field=field)


_LFS_POINTER = b"version https://git-lfs"
"""How a Git LFS pointer file starts: a clone made without git-lfs holds these small text
files where the weights should be (diffusers' load_state_dict says the same)."""


def _lfs_pointer(path: Path, head: bytes, field: str) -> ModelError | None:
    if not head.startswith(_LFS_POINTER[:8]):
        return None
    with open(path, "rb") as handle:
        if not handle.read(len(_LFS_POINTER)) == _LFS_POINTER:
            return None
    return ModelError(f"Weight file {path} is a Git LFS pointer, not the weights (the model was "
                      "cloned without git-lfs); run `git lfs pull` in its repository, or "
                      "re-download the model.", field=field)


def read_safetensors_header(path: Path, *, field: str = "model") -> dict[str, TensorInfo]:
    """The tensors of a .safetensors file -> {name: TensorInfo}, after checking its layout.

    Reads the header only (a few KB to a few MB). Raises ModelError naming the file when the
    header is cut off or malformed, or when a tensor's bytes lie past the end of the file
    (a truncated download) or do not match its dtype and shape.
    """
    path = Path(path)
    try:
        size = path.stat().st_size
        with open(path, "rb") as handle:
            head = handle.read(8)
            pointer = _lfs_pointer(path, head, field)
            if pointer is not None:
                raise pointer
            if len(head) < 8:
                raise _damaged(path, f"it is only {size} bytes long", field)
            length = int.from_bytes(head, "little")
            if length > min(size - 8, _MAX_HEADER):
                raise _damaged(path, f"its header claims {length} bytes but the file holds "
                               f"{size} (cut off, or not a safetensors file)", field)
            raw = handle.read(length)
    except OSError as exc:
        raise ModelError(f"Cannot read weight file {path} ({exc.strerror or exc}); check the "
                         "file and its permissions.", field=field) from None
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise _damaged(path, "its header is not valid JSON", field) from None
    if not isinstance(header, dict):
        raise _damaged(path, "its header is not a JSON object", field)
    data_size = size - 8 - length
    tensors: dict[str, TensorInfo] = {}
    end = 0
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        try:
            dtype, shape = str(entry["dtype"]), tuple(int(d) for d in entry["shape"])
            start, stop = (int(o) for o in entry["data_offsets"])
        except (KeyError, TypeError, ValueError):
            raise _damaged(path, f"the header entry of {name!r} is malformed", field) from None
        expected = math.prod(shape) * _DTYPE_BYTES.get(dtype, 0)
        if dtype in _DTYPE_BYTES and stop - start != expected:
            raise _damaged(path, f"tensor {name!r} should take {expected} bytes but the header "
                           f"gives it {stop - start}", field)
        end = max(end, stop)
        tensors[name] = TensorInfo(dtype, shape)
    if end > data_size:
        raise _damaged(path, f"it is cut off ({size} bytes, but its tensors need "
                       f"{8 + length + end})", field)
    return tensors


def read_pickle_shapes(path: Path, *, field: str = "model") -> dict[str, TensorInfo]:
    """The tensors of a torch pickle (.ckpt/.bin/.pt) -> {name: TensorInfo}, weights unread.

    Loads with `weights_only=True` onto the meta device (zip files are memory-mapped, so no
    tensor data is read). Nested {"state_dict": {...}} (Lightning checkpoints) is unwrapped.
    Raises ModelError for a pickle that needs code, and for a damaged or truncated file.
    """
    import torch

    path = Path(path)
    try:
        with open(path, "rb") as handle:
            pointer = _lfs_pointer(path, handle.read(8), field)
        if pointer is not None:
            raise pointer
        is_zip = zipfile.is_zipfile(path)
        data = torch.load(path, map_location="meta", weights_only=True, mmap=is_zip)
    except OSError as exc:
        raise ModelError(f"Cannot read weight file {path} ({exc.strerror or exc}); check the "
                         "file and its permissions.", field=field) from None
    except Exception as exc:  # noqa: BLE001 - unpickling errors have many types
        text = str(exc)
        # torch names the class a pickle wants ("Unsupported global: GLOBAL x.Y"); other
        # refusals of the restricted unpickler ("Unsupported operand 110") mean garbage.
        if "Unsupported global" in text or "GLOBAL " in text:
            raise ModelError(f"Weight file {path} is a pickle that needs code to load, which "
                             "ti-tui never runs; use a .safetensors version of this model "
                             "(most model pages offer one).", field=field) from None
        why = ("it is not a torch checkpoint" if "Weights only load failed" in text
               else "torch cannot read it (" + (text.strip().splitlines()[0][:120]
                                                if text.strip() else type(exc).__name__) + ")")
        raise _damaged(path, why, field) from None
    while isinstance(data, dict) and isinstance(data.get("state_dict"), dict):
        data = data["state_dict"]
    if not isinstance(data, dict):
        raise _damaged(path, "it holds no tensor dictionary", field)
    return {str(k): TensorInfo(str(v.dtype).removeprefix("torch."), tuple(v.shape))
            for k, v in data.items() if isinstance(v, torch.Tensor)}


def read_shapes(path: Path, *, field: str = "model") -> dict[str, TensorInfo]:
    """Header facts of any weight file ti-tui reads: safetensors, else a torch pickle."""
    if Path(path).suffix.lower() == ".safetensors":
        return read_safetensors_header(path, field=field)
    return read_pickle_shapes(path, field=field)


# --- diffusers folders: every component's files against its config --------------------------


def _meta_shapes(component: str, folder: Path) -> dict[str, tuple[int, ...]] | None:
    """The state-dict shapes the component's config.json describes, from a meta-device model.

    None when the class is not one this check knows (the loader then has the last word).
    """
    import torch

    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    with torch.device("meta"), _no_init(component):
        if component.startswith("text_encoder"):
            import transformers

            arch = (config.get("architectures") or ["CLIPTextModel"])[0]
            cls = getattr(transformers, arch, None)
            if cls is None:
                return None
            model = cls(cls.config_class.from_dict(config))
        else:
            import diffusers

            cls = getattr(diffusers, str(config.get("_class_name", "")), None)
            if cls is None:
                return None
            model = cls.from_config(config)
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def _no_init(component: str):
    """Skip the random initialisation of a model built only for its shapes: the library's own
    `no_init_weights` (transformers.initialization / diffusers.models.modeling_utils), which
    the loaders use too. Halves building a meta UNet (small preset: 0.39 -> 0.21 s)."""
    try:
        if component.startswith("text_encoder"):
            from transformers.initialization import no_init_weights
        else:
            from diffusers.models.modeling_utils import no_init_weights
    except ImportError:  # another library version: initialising on meta is only slower
        import contextlib

        return contextlib.nullcontext()
    return no_init_weights()


def weight_files(folder: Path) -> list[Path]:
    """The weight files a loader would read in `folder`: safetensors first (the loaders'
    preference), else pickles; sharded files all count."""
    files = sorted(p for p in folder.iterdir() if p.is_file())
    safe = [p for p in files if p.suffix == ".safetensors"]
    return safe or [p for p in files if p.suffix == ".bin"]


def _check_shard_index(folder: Path) -> None:
    """A sharded component (`*.index.json` + shards) must have every shard its index names:
    a missing one is a download that stopped part-way."""
    for index in sorted(folder.glob("*.index.json")):
        try:
            shards = set(json.loads(index.read_text(encoding="utf-8"))["weight_map"].values())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError,
                AttributeError):
            raise _damaged(index, "it is not a readable shard index") from None
        missing = sorted(s for s in shards if not (folder / str(s)).is_file())
        if missing:
            raise ModelError(f"Model component {folder} is incomplete: its index {index.name} "
                             f"names {len(shards)} weight files but {missing[0]} is missing; "
                             f"{_REDOWNLOAD}.", field="model")


def check_component(model: Path, component: str) -> None:
    """Refuse a diffusers component whose weight files are damaged or do not fit its config.

    Every file's header is checked (see module docstring); then each tensor the file holds
    under the config's name must have the config's shape. Keys the config does not know are
    left alone (older diffusers saves use other attention names, converted at load time).
    """
    folder = Path(model) / component
    _check_shard_index(folder)
    files = weight_files(folder)
    found: dict[str, TensorInfo] = {}
    for path in files:
        found.update(read_shapes(path))
    try:
        expected = _meta_shapes(component, folder)
    except Exception:  # noqa: BLE001 - a config the classes refuse: the loader says why
        expected = None
    if not expected:
        return
    # transformers >= 5.6 saves CLIPTextModel without the "text_model." prefix, older with it.
    plain = {k.removeprefix("text_model."): v for k, v in expected.items()}
    for name, info in found.items():
        want = expected.get(name) or plain.get(name.removeprefix("text_model."))
        if want is not None and tuple(want) != info.shape:
            where = next((p for p in files if len(files) == 1), folder)
            raise ModelError(
                f"Weight file {where} does not fit {component}/config.json: tensor {name} is "
                f"{list(info.shape)} but the config needs {list(want)}; the weights belong to "
                f"another model, so {_REDOWNLOAD}.", field="model")




ENCODERS_AND_MODELS = ("text_encoder", "text_encoder_2", "unet", "vae")


def check_model_weights(facts) -> None:
    """Every weight file of a checked model (trainer.models.ModelFacts), before any is loaded.

    A diffusers folder: each component's files (header layout, then shapes against its
    config.json). A single file was read by trainer/single_file.check_single_file already (its
    header decides the family, and the shapes that fix the config are compared there).
    Raises ModelError (one sentence naming the file).
    """
    path = Path(facts.path)
    if path.is_file():
        return
    for component in ENCODERS_AND_MODELS:
        if (path / component).is_dir():
            check_component(path, component)


# --- single files: every tensor against the config folder ---------------------------------------


def _model_shapes(component: str, config_dir: Path):
    """(meta model, its state-dict shapes) for one component of a diffusers config folder."""
    import torch

    folder = config_dir / component
    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    with torch.device("meta"), _no_init(component):
        if component.startswith("text_encoder"):
            import transformers

            arch = (config.get("architectures") or ["CLIPTextModel"])[0]
            cls = getattr(transformers, arch)
            model = cls(cls.config_class.from_dict(config))
        else:
            import diffusers

            model = getattr(diffusers, str(config["_class_name"])).from_config(config)
    return model, config, {k.removeprefix("text_model."): tuple(v.shape)
                           for k, v in model.state_dict().items()}


def check_single_file_shapes(path: Path, shapes: dict[str, TensorInfo], config_dir: Path,
                             family: str) -> None:
    """Every tensor of a single file, converted to diffusers names, against the config folder.

    The conversion is diffusers' own (single_file_utils: convert_ldm_unet_checkpoint,
    convert_ldm_vae_checkpoint, convert_ldm_clip_checkpoint, convert_open_clip_checkpoint),
    run on meta tensors, so it costs no memory and reads no weights (about 0.5 s for SDXL).
    Raises ModelError naming the first tensor that is missing or has another shape.
    """
    import torch
    from diffusers.loaders.single_file_utils import (convert_ldm_clip_checkpoint,
                                                     convert_ldm_unet_checkpoint,
                                                     convert_ldm_vae_checkpoint,
                                                     convert_open_clip_checkpoint)

    meta = {k: torch.empty(v.shape, device="meta") for k, v in shapes.items()}
    encoders = {"sd1": [("text_encoder", None)],
                "sd2": [("text_encoder", "cond_stage_model.model.")],
                "sdxl": [("text_encoder", None),
                         ("text_encoder_2", "conditioner.embedders.1.model.")]}[family]
    for component in ("unet", "vae", *(name for name, _ in encoders)):
        try:
            model, config, expected = _model_shapes(component, config_dir)
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ModelError(f"Model config folder {config_dir} has no usable "
                             f"{component}/config.json ({type(exc).__name__}: {exc}); pass "
                             "--model_config a complete diffusers folder.",
                             field="model_config") from None
        try:
            if component == "unet":
                converted = convert_ldm_unet_checkpoint(dict(meta), config)
            elif component == "vae":
                converted = convert_ldm_vae_checkpoint(dict(meta), config)
            else:
                prefix = dict(encoders)[component]
                converted = (convert_ldm_clip_checkpoint(dict(meta)) if prefix is None
                             else convert_open_clip_checkpoint(model, dict(meta), prefix=prefix))
        except (KeyError, IndexError, RuntimeError, ValueError, TypeError,
                AttributeError) as exc:
            raise ModelError(f"Model {path} does not fit the config folder {config_dir}: its "
                             f"{component} tensors do not match that layout ({exc}); pass "
                             "--model_config a diffusers folder made for this model.",
                             field="model_config") from None
        found = {k.removeprefix("text_model."): tuple(v.shape) for k, v in converted.items()}
        for name, want in expected.items():
            if name.endswith("position_ids"):
                continue  # a buffer transformers makes itself; old files carry it, new do not
            got = found.get(name)
            if got is None or got != want:
                what = "has no" if got is None else f"has a {list(got)}"
                raise ModelError(
                    f"Model {path} does not fit the config folder {config_dir}: it {what} "
                    f"{component} tensor {name} where the config needs {list(want)}; pass "
                    "--model_config a diffusers folder made for this model, or re-download "
                    "the file if it should be a standard one.", field="model_config")
