"""Checking a diffusers model folder from its JSON configs alone: fast, no weights read.

`check_model_folder` finds what a folder lacks or what does not fit together (a missing
component, a tokenizer without its vocabulary, an encoder whose width the UNet does not take,
an SDXL refiner, a config without the fields the trainer reads) and returns the model's
`ModelFacts`, which every later step (preflight, the form, loading, single files) reads.
Raises ModelError (field "model"), one sentence naming the part and what to do.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from trainer.errors import ModelError
from trainer.paths import near_miss, special_kind

COMPONENTS = ("tokenizer", "text_encoder", "vae", "unet", "scheduler")
SDXL_COMPONENTS = ("tokenizer", "tokenizer_2", "text_encoder", "text_encoder_2", "vae", "unet",
                   "scheduler")
_CONFIG_FILE = {
    "text_encoder": "config.json",
    "text_encoder_2": "config.json",
    "vae": "config.json",
    "unet": "config.json",
    "scheduler": "scheduler_config.json",
}
_SINGLE_FILE_SUFFIXES = (".ckpt", ".safetensors", ".pt", ".pth", ".bin")
_CONVERT_HINT = "pass --model the file itself (ti-tui reads .safetensors and .ckpt files)"


@dataclass(frozen=True)
class ModelFacts:
    """What the trainer needs to know about a model, read from its JSON configs alone."""

    path: Path
    """The model folder or single file the facts were read for."""
    token_dim: int
    """Width of one token embedding (text encoder hidden size): 768 for SD 1.x, 1024 for 2.x."""
    vocab_size: int
    """Rows of the (first) text encoder's token table, 49408 for CLIP."""
    native_resolution: int
    """Pixels per side the UNet was trained at: UNet sample_size x VAE scale factor."""
    prediction_type: str
    """"epsilon", "v_prediction" or "sample", from the scheduler config."""
    num_train_timesteps: int
    """The noise schedule's length (scheduler config; 1000 if absent)."""
    latent_channels: int
    """Channels of a VAE latent (4 for SD 1.x/2.x/SDXL)."""
    vae_scaling_factor: float
    """The factor latents are multiplied by before the UNet (0.18215 SD, 0.13025 SDXL)."""
    family: str
    """"sd1", "sd2" or "sdxl" (trainer/conditioner.py FAMILIES)."""
    parts: dict[str, int] | None = None
    """Widths of the trained rows per text encoder, in order (Conditioner.parts):
    {"text_encoder": token_dim} for SD 1.x/2.x, {"clip_l": 768, "clip_g": 1280} for SDXL,
    whose token_dim is their sum. None means one encoder of token_dim."""
    format: str = "diffusers"
    """"diffusers" (a folder) or "checkpoint" (a single file, trainer/single_file.py)."""
    config_path: Path | None = None
    """The folder holding the configs and tokenizers: the model folder itself (None), or for a
    single file the shipped assets/model-configs/<family> or --model_config folder."""
    warning: str | None = None
    """A guess the user should know about (SD 2.x prediction type), shown as a warning."""

    def __post_init__(self) -> None:
        if self.parts is None:
            object.__setattr__(self, "parts", {"text_encoder": self.token_dim})

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (for the run_started event)."""
        config = None if self.config_path is None else str(self.config_path)
        return {**asdict(self), "path": str(self.path), "config_path": config}


def model_error(message: str) -> ModelError:
    """The ModelError for the --model field, one sentence."""
    return ModelError(message, field="model")


def read_config(path: Path) -> dict[str, Any]:
    """A component's JSON config as a dict; ModelError when unreadable or not an object."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise model_error(
            f"{path} is not a readable JSON file ({exc}); re-download or re-convert the model."
        ) from exc
    if not isinstance(data, dict):
        raise model_error(f"{path} should hold a JSON object; re-download or re-convert the "
                          "model.")
    return data


def weight_files(folder: Path) -> list[Path]:
    """The .safetensors/.bin files directly in a component folder, sorted."""
    weights = (p for p in folder.iterdir() if p.suffix in (".safetensors", ".bin"))
    return sorted(p for p in weights if p.is_file())


def _check_not_a_folder(path: Path) -> None:
    kind = special_kind(path)
    if kind is not None:
        raise model_error(f"Model {path} is {kind}, not a model file or folder; pass --model a "
                          "diffusers folder, a .safetensors/.ckpt checkpoint or a model name.")
    if not path.exists():
        raise model_error(
            f"Model folder {path} does not exist{near_miss(path)}; pass --model a diffusers "
            "folder or a model name."
        )
    if path.is_file():
        if path.suffix.lower() in _SINGLE_FILE_SUFFIXES:
            raise model_error(f"Model {path} is a single-file checkpoint; {_CONVERT_HINT}.")
        raise model_error(f"Model {path} is a file, not a diffusers folder; pass --model a "
                          "folder.")
    if not (path / "model_index.json").is_file() and not (path / "unet").is_dir():
        suffixes = (".ckpt", ".safetensors")
        singles = sorted(p.name for p in path.glob("*") if p.suffix.lower() in suffixes)
        if singles:
            raise model_error(
                f"Model folder {path} is not a diffusers folder but holds a single-file "
                f"checkpoint; pass --model {path / singles[0]} itself."
            )
        raise model_error(
            f"{path} is not a diffusers model folder (it has no model_index.json and no unet/); "
            "pass --model a folder saved by diffusers."
        )
    if (path / "text_encoder_2").is_dir() and not (path / "text_encoder").is_dir():
        raise model_error(
            f"Model {path} is an SDXL refiner (it has text_encoder_2/ but no text_encoder/); "
            "train the embedding on the SDXL base model instead."
        )


def has_tokenizer_files(folder: Path) -> bool:
    """Whether a tokenizer folder holds vocab.json + merges.txt or tokenizer.json."""
    has_bpe = (folder / "vocab.json").is_file() and (folder / "merges.txt").is_file()
    return has_bpe or (folder / "tokenizer.json").is_file()


def _check_component(path: Path, component: str) -> None:
    folder = path / component
    if not folder.is_dir():
        raise model_error(
            f"Model folder {path} has no {component}/ folder; a Stable Diffusion diffusers "
            f"folder needs {', '.join(folder_components(path))}."
        )
    if component in ("tokenizer", "tokenizer_2"):
        if not has_tokenizer_files(folder):
            raise model_error(
                f"Model folder {path} has a {component}/ folder without vocab.json + "
                "merges.txt or tokenizer.json; re-download the model."
            )
        return
    config = _CONFIG_FILE[component]
    if not (folder / config).is_file():
        raise model_error(f"Model folder {path} has no {component}/{config}; re-download the "
                          "model.")
    if component != "scheduler" and not weight_files(folder):
        raise model_error(
            f"Model folder {path} has no {component} weights ({component}/*.safetensors or "
            "*.bin); re-download the model."
        )


def noise_schedule_config(path: Path) -> dict[str, Any]:
    """The folder's scheduler/scheduler_config.json, refused when it does not say its noise
    schedule: diffusers fills a missing beta_schedule / beta_start / beta_end with DDPM's own
    defaults (linear, 1e-4 to 0.02), not Stable Diffusion's (scaled_linear, 0.00085 to 0.012),
    so a config emptied by a bad copy would train silently on the wrong noise levels."""
    config = read_config(path / "scheduler" / "scheduler_config.json")
    named = {"beta_schedule", "beta_start", "beta_end"} <= set(config)
    if not named and "trained_betas" not in config:
        raise model_error(f"Model folder {path} has a scheduler/scheduler_config.json that does "
                          "not give its noise schedule (beta_schedule, beta_start, beta_end); "
                          "re-download or re-convert the model.")
    return config


def native_resolution(unet: dict[str, Any], vae: dict[str, Any]) -> int:
    """Pixels per side the model was trained at, from its UNet and VAE configs: the UNet's
    sample_size (latent pixels) x the VAE's downscale, 2 ** (len(block_out_channels) - 1)
    (512 for SD 1.5: 64 x 8). KeyError, TypeError or ValueError when a config lacks them."""
    sample = unet["sample_size"]
    sample = int(sample[0] if isinstance(sample, (list, tuple)) else sample)
    return sample * 2 ** (len(vae["block_out_channels"]) - 1)


def is_sdxl_folder(path: Path) -> bool:
    """True for a diffusers folder with a second text encoder (SDXL base and its fine-tunes)."""
    return (Path(path) / "text_encoder_2").is_dir()


def folder_components(path: Path) -> tuple[str, ...]:
    """The component folders a model at `path` needs: SDXL adds tokenizer_2 and text_encoder_2."""
    return SDXL_COMPONENTS if is_sdxl_folder(path) else COMPONENTS


def check_model_folder(path: Path) -> ModelFacts:
    """Check that `path` is a usable SD 1.x/2.x/SDXL diffusers folder and return its facts.

    Reads only JSON configs (fast; no weights). Raises ModelError (field "model") naming the
    missing or broken part.
    """
    path = Path(path).expanduser()
    _check_not_a_folder(path)
    for component in folder_components(path):
        _check_component(path, component)
    if is_sdxl_folder(path):
        return _sdxl_facts(path)
    text = read_config(path / "text_encoder" / "config.json")
    vae = read_config(path / "vae" / "config.json")
    unet = read_config(path / "unet" / "config.json")
    sched = noise_schedule_config(path)
    try:
        token_dim = int(text["hidden_size"])
        vocab_size = int(text["vocab_size"])
        native = native_resolution(unet, vae)
    except (KeyError, TypeError, ValueError) as exc:
        raise model_error(
            f"Model folder {path} has a config without {exc}; re-download or re-convert the model."
        ) from exc
    cross = unet.get("cross_attention_dim")
    if isinstance(cross, int) and cross != token_dim:
        raise model_error(
            f"Model folder {path} does not fit together: unet expects {cross}-wide text features "
            f"but text_encoder gives {token_dim}; use an SD 1.x or 2.x model."
        )
    return ModelFacts(
        path=path,
        token_dim=token_dim,
        vocab_size=vocab_size,
        native_resolution=native,
        prediction_type=str(sched.get("prediction_type") or "epsilon"),
        num_train_timesteps=int(sched.get("num_train_timesteps", 1000)),
        latent_channels=int(vae.get("latent_channels", 4)),
        vae_scaling_factor=float(vae.get("scaling_factor", 0.18215)),
        family="sd2" if token_dim == 1024 else "sd1",
    )


def _sdxl_facts(path: Path) -> ModelFacts:
    """Facts of an SDXL folder: two encoders whose widths add up to the UNet's text width."""
    widths = {}
    for part, folder in (("clip_l", "text_encoder"), ("clip_g", "text_encoder_2")):
        config = read_config(path / folder / "config.json")
        if "hidden_size" not in config:
            raise model_error(f"Model folder {path} has a {folder}/config.json without "
                              "hidden_size; re-download or re-convert the model.")
        widths[part] = int(config["hidden_size"])
    vocab = int(read_config(path / "text_encoder" / "config.json").get("vocab_size", 49408))
    vae = read_config(path / "vae" / "config.json")
    unet = read_config(path / "unet" / "config.json")
    sched = noise_schedule_config(path)
    total = sum(widths.values())
    if unet.get("addition_embed_type") != "text_time":
        raise model_error(f"Model folder {path} has two text encoders but its unet has no "
                          "\"text_time\" added conditioning; only SDXL base models and their "
                          "fine-tunes are supported.")
    cross = unet.get("cross_attention_dim")
    if isinstance(cross, int) and cross != total:
        raise model_error(f"Model folder {path} does not fit together: unet expects {cross}-wide "
                          f"text features but the two text encoders give {widths['clip_l']} + "
                          f"{widths['clip_g']} = {total}; re-download or re-convert the model.")
    try:
        native = native_resolution(unet, vae)
    except (KeyError, TypeError, ValueError) as exc:
        raise model_error(f"Model folder {path} has a config without {exc}; re-download or "
                          "re-convert the model.") from exc
    return ModelFacts(
        path=path, token_dim=total, vocab_size=vocab,
        native_resolution=native,
        prediction_type=str(sched.get("prediction_type") or "epsilon"),
        num_train_timesteps=int(sched.get("num_train_timesteps", 1000)),
        latent_channels=int(vae.get("latent_channels", 4)),
        vae_scaling_factor=float(vae.get("scaling_factor", 0.13025)),
        family="sdxl", parts=widths)
