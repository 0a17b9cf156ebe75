"""Find, check and load Stable Diffusion models that are already on disk.

Nothing here touches the network: models come from a diffusers folder the user names, or from
an InvokeAI root (3.x+: folders under ROOT/models; 2.3: ROOT/configs/models.yaml). Checking
reads only the JSON configs, so the form can validate a model in milliseconds; loading reads
the weights of the five components the trainer needs, never a whole pipeline.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from trainer.discovery import ModelEntry, find_models, resolve_model  # noqa: F401 (re-exported)
from trainer.errors import ModelError

COMPONENTS = ("tokenizer", "text_encoder", "vae", "unet", "scheduler")
_CONFIG_FILE = {
    "text_encoder": "config.json",
    "vae": "config.json",
    "unet": "config.json",
    "scheduler": "scheduler_config.json",
}
_SINGLE_FILE_SUFFIXES = (".ckpt", ".safetensors", ".pt", ".pth", ".bin")
_CONVERT_HINT = (
    "convert it to a diffusers folder first (diffusers' "
    "scripts/convert_original_stable_diffusion_to_diffusers.py, or "
    "StableDiffusionPipeline.from_single_file(file).save_pretrained(folder))"
)


# --- checking --------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelFacts:
    """What the trainer needs to know about a model, read from its JSON configs alone."""

    path: Path
    token_dim: int
    """Width of one token embedding (text encoder hidden size): 768 for SD 1.x, 1024 for 2.x."""
    vocab_size: int
    native_resolution: int
    """Pixels per side the UNet was trained at: UNet sample_size x VAE scale factor."""
    prediction_type: str
    """"epsilon", "v_prediction" or "sample", from the scheduler config."""
    num_train_timesteps: int
    latent_channels: int
    vae_scaling_factor: float
    family: str
    """A label for people: "sd1" or "sd2"."""

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (for the run_started event)."""
        return {**asdict(self), "path": str(self.path)}


def _refuse(message: str) -> ModelError:
    return ModelError(message, field="model")


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _refuse(
            f"{path} is not a readable JSON file ({exc}); re-download or re-convert the model."
        ) from exc
    if not isinstance(data, dict):
        raise _refuse(f"{path} should hold a JSON object; re-download or re-convert the model.")
    return data


def _weight_files(folder: Path) -> list[Path]:
    weights = (p for p in folder.iterdir() if p.suffix in (".safetensors", ".bin"))
    return sorted(p for p in weights if p.is_file())


def _check_not_a_folder(path: Path) -> None:
    if not path.exists():
        raise _refuse(
            f"Model folder {path} does not exist; pass --model a diffusers folder or a model name."
        )
    if path.is_file():
        if path.suffix.lower() in _SINGLE_FILE_SUFFIXES:
            raise _refuse(f"Model {path} is a single-file checkpoint; {_CONVERT_HINT}.")
        raise _refuse(f"Model {path} is a file, not a diffusers folder; pass --model a folder.")
    if not (path / "model_index.json").is_file() and not (path / "unet").is_dir():
        suffixes = (".ckpt", ".safetensors")
        singles = sorted(p.name for p in path.glob("*") if p.suffix.lower() in suffixes)
        if singles:
            raise _refuse(
                f"Model folder {path} holds a single-file checkpoint ({singles[0]}); "
                f"{_CONVERT_HINT}."
            )
        raise _refuse(
            f"{path} is not a diffusers model folder (it has no model_index.json and no unet/); "
            "pass --model a folder saved by diffusers."
        )
    if (path / "text_encoder_2").is_dir():
        raise _refuse(
            f"Model {path} is an SDXL model (it has text_encoder_2/); "
            "ti-tui trains SD 1.x and 2.x embeddings only."
        )


def _has_tokenizer_files(folder: Path) -> bool:
    has_bpe = (folder / "vocab.json").is_file() and (folder / "merges.txt").is_file()
    return has_bpe or (folder / "tokenizer.json").is_file()


def _check_component(path: Path, component: str) -> None:
    folder = path / component
    if not folder.is_dir():
        raise _refuse(
            f"Model folder {path} has no {component}/ folder; a Stable Diffusion diffusers "
            "folder needs tokenizer, text_encoder, vae, unet and scheduler."
        )
    if component == "tokenizer":
        if not _has_tokenizer_files(folder):
            raise _refuse(
                f"Model folder {path} has a tokenizer/ folder without vocab.json + merges.txt "
                "or tokenizer.json; re-download the model."
            )
        return
    config = _CONFIG_FILE[component]
    if not (folder / config).is_file():
        raise _refuse(f"Model folder {path} has no {component}/{config}; re-download the model.")
    if component != "scheduler" and not _weight_files(folder):
        raise _refuse(
            f"Model folder {path} has no {component} weights ({component}/*.safetensors or "
            "*.bin); re-download the model."
        )


def check_model_folder(path: Path) -> ModelFacts:
    """Check that `path` is a usable SD 1.x/2.x diffusers folder and return its facts.

    Reads only JSON configs (fast; no weights). Raises ModelError (field "model") naming the
    missing or broken part.
    """
    path = Path(path).expanduser()
    _check_not_a_folder(path)
    for component in COMPONENTS:
        _check_component(path, component)
    text = _read_json(path / "text_encoder" / "config.json")
    vae = _read_json(path / "vae" / "config.json")
    unet = _read_json(path / "unet" / "config.json")
    sched = _read_json(path / "scheduler" / "scheduler_config.json")
    try:
        token_dim = int(text["hidden_size"])
        vocab_size = int(text["vocab_size"])
        sample = unet["sample_size"]
        sample = int(sample[0] if isinstance(sample, (list, tuple)) else sample)
        vae_factor = 2 ** (len(vae["block_out_channels"]) - 1)
    except (KeyError, TypeError, ValueError) as exc:
        raise _refuse(
            f"Model folder {path} has a config without {exc}; re-download or re-convert the model."
        ) from exc
    cross = unet.get("cross_attention_dim")
    if isinstance(cross, int) and cross != token_dim:
        raise _refuse(
            f"Model folder {path} does not fit together: unet expects {cross}-wide text features "
            f"but text_encoder gives {token_dim}; use an SD 1.x or 2.x model."
        )
    return ModelFacts(
        path=path,
        token_dim=token_dim,
        vocab_size=vocab_size,
        native_resolution=sample * vae_factor,
        prediction_type=str(sched.get("prediction_type") or "epsilon"),
        num_train_timesteps=int(sched.get("num_train_timesteps", 1000)),
        latent_channels=int(vae.get("latent_channels", 4)),
        vae_scaling_factor=float(vae.get("scaling_factor", 0.18215)),
        family="sd2" if token_dim == 1024 else "sd1",
    )


# --- loading ---------------------------------------------------------------------------------


@contextlib.contextmanager
def quiet_progress_bars() -> Iterator[None]:
    """Hide transformers' per-file progress bars (they would scribble over a TUI or a log)."""
    from transformers.utils import logging as tf_logging

    enabled = tf_logging.is_progress_bar_enabled()
    tf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if enabled:
            tf_logging.enable_progress_bar()


def load_tokenizer(path: Path):
    """The CLIP tokenizer in `path`/tokenizer (vocab.json + merges.txt, or tokenizer.json).

    `path` may also be a tokenizer folder itself (what `--tokenizer_name` names).
    """
    from transformers import CLIPTokenizer, CLIPTokenizerFast

    path = Path(path).expanduser()
    folder = path / "tokenizer" if (path / "tokenizer").is_dir() else path
    # transformers 5 "loads" a folder with no vocabulary as a 2-token tokenizer, silently.
    if not _has_tokenizer_files(folder):
        raise _refuse(
            f"Could not load the tokenizer in {folder}: it holds neither vocab.json + merges.txt "
            "nor tokenizer.json; re-download the model."
        )
    errors = []
    # transformers 5 has one tokenizers-backed CLIPTokenizer that reads both layouts; on 4.x the
    # slow class needs vocab.json + merges.txt and the fast one also reads tokenizer.json alone.
    for cls in dict.fromkeys((CLIPTokenizer, CLIPTokenizerFast)):
        try:
            return cls.from_pretrained(str(folder), local_files_only=True)
        except Exception as exc:  # noqa: BLE001 - any failure means "try the other class"
            errors.append(exc)
    raise _refuse(
        f"Could not load the tokenizer in {folder} ({errors[-1]}); re-download the model."
    ) from errors[-1]


@dataclass
class Components:
    """The parts of a pipeline textual inversion needs; the three models are frozen."""

    tokenizer: Any
    text_encoder: Any
    vae: Any
    unet: Any
    noise_scheduler: Any


def _root_cause(exc: BaseException) -> str:
    """The first line of the innermost exception: libraries wrap the useful one
    ("header too large") in generic ones ("Unable to load weights from ...")."""
    while exc.__cause__ is not None or exc.__context__ is not None:
        exc = exc.__cause__ or exc.__context__
    lines = str(exc).strip().splitlines()
    return (lines[0] if lines else type(exc).__name__)[:200]


def _load_model(cls, path: Path, subfolder: str, **kwargs):
    kwargs.update(subfolder=subfolder, local_files_only=True)
    try:
        with quiet_progress_bars():
            model = cls.from_pretrained(str(path), **kwargs)
    except Exception as exc:  # noqa: BLE001 - safetensors, torch and OSError all mean "bad file"
        files = _weight_files(path / subfolder)
        # diffusers and transformers prefer .safetensors when both kinds are present.
        files.sort(key=lambda f: f.suffix != ".safetensors")
        where = files[0] if files else path / subfolder
        reason = _root_cause(exc).replace(str(where), "the file")
        raise _refuse(
            f"Could not load {subfolder} weights from {where} ({reason}); the file may be corrupt "
            "or incomplete, so re-download or re-convert the model."
        ) from exc
    model.requires_grad_(False)
    model.eval()
    return model


def load_components(path: Path, *, torch_dtype=None, tokenizer=None) -> Components:
    """Load tokenizer, text encoder, VAE, UNet and a DDPM noise scheduler from `path`.

    Checks the folder first (clear errors), loads each component on its own (no pipeline,
    so no safety checker or feature extractor), freezes the three models and puts them in
    eval mode; the trainer un-freezes only what it trains. A `tokenizer` already loaded
    from this folder (the preflight's) is used as it is.
    """
    from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
    from transformers import CLIPTextModel

    path = Path(path).expanduser()
    check_model_folder(path)
    # transformers 5 renamed from_pretrained's torch_dtype to dtype; diffusers keeps torch_dtype.
    tf_dtype = {} if torch_dtype is None else {"dtype": torch_dtype}
    df_dtype = {} if torch_dtype is None else {"torch_dtype": torch_dtype}
    return Components(
        tokenizer=tokenizer if tokenizer is not None else load_tokenizer(path),
        text_encoder=_load_model(CLIPTextModel, path, "text_encoder", **tf_dtype),
        vae=_load_model(AutoencoderKL, path, "vae", **df_dtype),
        unet=_load_model(UNet2DConditionModel, path, "unet", **df_dtype),
        # DDPM for training whatever the folder ships (PNDM, DDIM...): it keeps the betas,
        # timesteps and prediction_type, which is all add_noise and the loss target need.
        noise_scheduler=DDPMScheduler.from_pretrained(str(path), subfolder="scheduler"),
    )
