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
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from trainer.discovery import ModelEntry, find_models, resolve_model  # noqa: F401 (re-exported)
from trainer.conditioner import Conditioner, make_conditioner
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


# --- checking --------------------------------------------------------------------------------


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
    kind = special_kind(path)
    if kind is not None:
        raise _refuse(f"Model {path} is {kind}, not a model file or folder; pass --model a "
                      "diffusers folder, a .safetensors/.ckpt checkpoint or a model name.")
    if not path.exists():
        raise _refuse(
            f"Model folder {path} does not exist{near_miss(path)}; pass --model a diffusers "
            "folder or a model name."
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
                f"Model folder {path} is not a diffusers folder but holds a single-file "
                f"checkpoint; pass --model {path / singles[0]} itself."
            )
        raise _refuse(
            f"{path} is not a diffusers model folder (it has no model_index.json and no unet/); "
            "pass --model a folder saved by diffusers."
        )
    if (path / "text_encoder_2").is_dir() and not (path / "text_encoder").is_dir():
        raise _refuse(
            f"Model {path} is an SDXL refiner (it has text_encoder_2/ but no text_encoder/); "
            "train the embedding on the SDXL base model instead."
        )


def _has_tokenizer_files(folder: Path) -> bool:
    has_bpe = (folder / "vocab.json").is_file() and (folder / "merges.txt").is_file()
    return has_bpe or (folder / "tokenizer.json").is_file()


def _check_component(path: Path, component: str) -> None:
    folder = path / component
    if not folder.is_dir():
        raise _refuse(
            f"Model folder {path} has no {component}/ folder; a Stable Diffusion diffusers "
            f"folder needs {', '.join(folder_components(path))}."
        )
    if component in ("tokenizer", "tokenizer_2"):
        if not _has_tokenizer_files(folder):
            raise _refuse(
                f"Model folder {path} has a {component}/ folder without vocab.json + "
                "merges.txt or tokenizer.json; re-download the model."
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


def _sdxl_facts(path: Path) -> ModelFacts:
    """Facts of an SDXL folder: two encoders whose widths add up to the UNet's text width."""
    widths = {}
    for part, folder in (("clip_l", "text_encoder"), ("clip_g", "text_encoder_2")):
        config = _read_json(path / folder / "config.json")
        if "hidden_size" not in config:
            raise _refuse(f"Model folder {path} has a {folder}/config.json without hidden_size; "
                          "re-download or re-convert the model.")
        widths[part] = int(config["hidden_size"])
    vocab = int(_read_json(path / "text_encoder" / "config.json").get("vocab_size", 49408))
    vae = _read_json(path / "vae" / "config.json")
    unet = _read_json(path / "unet" / "config.json")
    sched = _read_json(path / "scheduler" / "scheduler_config.json")
    total = sum(widths.values())
    if unet.get("addition_embed_type") != "text_time":
        raise _refuse(f"Model folder {path} has two text encoders but its unet has no "
                      "\"text_time\" added conditioning; only SDXL base models and their "
                      "fine-tunes are supported.")
    cross = unet.get("cross_attention_dim")
    if isinstance(cross, int) and cross != total:
        raise _refuse(f"Model folder {path} does not fit together: unet expects {cross}-wide "
                      f"text features but the two text encoders give {widths['clip_l']} + "
                      f"{widths['clip_g']} = {total}; re-download or re-convert the model.")
    try:
        sample = unet["sample_size"]
        sample = int(sample[0] if isinstance(sample, (list, tuple)) else sample)
        vae_factor = 2 ** (len(vae["block_out_channels"]) - 1)
    except (KeyError, TypeError, ValueError) as exc:
        raise _refuse(f"Model folder {path} has a config without {exc}; re-download or "
                      "re-convert the model.") from exc
    return ModelFacts(
        path=path, token_dim=total, vocab_size=vocab,
        native_resolution=sample * vae_factor,
        prediction_type=str(sched.get("prediction_type") or "epsilon"),
        num_train_timesteps=int(sched.get("num_train_timesteps", 1000)),
        latent_channels=int(vae.get("latent_channels", 4)),
        vae_scaling_factor=float(vae.get("scaling_factor", 0.13025)),
        family="sdxl", parts=widths)


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
    """The parts of a pipeline textual inversion needs; every model in it is frozen.

    The tokenizer(s) and text encoder(s) live in the conditioner (trainer/conditioner.py),
    which is the only place the model family matters.
    """

    conditioner: Conditioner
    """Tokenizer(s) and text encoder(s), and how they condition the UNet."""
    vae: Any
    """diffusers AutoencoderKL: images to latents and back."""
    unet: Any
    """diffusers UNet2DConditionModel, frozen."""
    noise_scheduler: Any
    """diffusers DDPMScheduler built from the model's scheduler config (adds noise in
    training, gives the v-prediction target)."""

    @property
    def tokenizer(self):
        """The first tokenizer (SD's only one, SDXL's CLIP-L one)."""
        return self.conditioner.tokenizer

    @property
    def text_encoder(self):
        """The first text encoder (SD's only one, SDXL's CLIP-L one)."""
        return self.conditioner.text_encoder


def _root_cause(exc: BaseException) -> str:
    """The first line of the innermost exception: libraries wrap the useful one
    ("header too large") in generic ones ("Unable to load weights from ...")."""
    while exc.__cause__ is not None or exc.__context__ is not None:
        exc = exc.__cause__ or exc.__context__
    lines = str(exc).strip().splitlines()
    return (lines[0] if lines else type(exc).__name__)[:200]


def weights_variant(folder: Path) -> str | None:
    """The variant a component folder's weights are saved as ("fp16" for model.fp16.safetensors
    or diffusion_pytorch_model.fp16-00001-of-00002.safetensors), or None when plain weights
    (model.safetensors, pytorch_model.bin, ...) are there.

    `from_pretrained(variant="fp16")` downloads, and InvokeAI installs from the Hub, keep
    only the variant's files; diffusers and transformers look for the plain names unless told
    the variant (diffusers/utils/hub_utils.py `_add_variant`), so such a folder failed to
    load after every check had passed. Plain weights win when both are there."""
    variants = []
    for weights in _weight_files(folder):
        stem = weights.name[:-len(weights.suffix)]
        if "." not in stem:
            return None
        variants.append(stem.split(".", 1)[1].split("-", 1)[0])
    return sorted(variants)[0] if variants else None


def _load_model(cls, path: Path, subfolder: str, **kwargs):
    kwargs.update(subfolder=subfolder, local_files_only=True)
    variant = weights_variant(path / subfolder) if (path / subfolder).is_dir() else None
    if variant:
        kwargs["variant"] = variant
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


def check_model(path: Path, *, model_config: str | Path | None = None,
                prediction_type: str | None = None) -> ModelFacts:
    """Facts of `path`: a diffusers folder, or a single-file checkpoint (.safetensors, .ckpt).

    Single files are checked by trainer/single_file.py against the shipped config folder of
    their family, or `model_config` (--model_config). `prediction_type` (--prediction_type)
    overrides what the config says. Raises ModelError (one sentence).
    """
    from trainer import single_file

    path = Path(path).expanduser()
    if path.is_file() and path.suffix.lower() in single_file.LOADABLE_SUFFIXES:
        return single_file.check_single_file(path, model_config=model_config,
                                             prediction_type=prediction_type)
    facts = check_model_folder(path)
    if prediction_type and prediction_type != facts.prediction_type:
        facts = replace(facts, prediction_type=prediction_type)
    return facts


def load_components(path: Path, *, torch_dtype=None, tokenizer=None,
                    facts: ModelFacts | None = None) -> Components:
    """Load the tokenizer(s), text encoder(s), VAE, UNet and a DDPM noise scheduler from `path`.

    Checks the folder first (clear errors), loads each component on its own (no pipeline,
    so no safety checker or feature extractor), freezes the models and puts them in eval
    mode; the trainer un-freezes only what it trains. A `tokenizer` already loaded from this
    folder (the preflight's) is used as the first tokenizer. An SDXL folder also loads
    tokenizer_2 and text_encoder_2 (CLIPTextModelWithProjection: its text projection gives
    the pooled `text_embeds`); the conditioner built for the family holds them.
    """
    import torch
    from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTextModelWithProjection

    path = Path(path).expanduser()
    if path.is_file():  # a single-file checkpoint: the same Components, from its converter
        from trainer import single_file

        return single_file.load_components(path, facts or check_model(path),
                                           torch_dtype=torch_dtype, tokenizer=tokenizer)
    check_model_folder(path)
    # transformers 5 renamed from_pretrained's torch_dtype to dtype; diffusers keeps torch_dtype.
    # transformers 5 also loads in the file's dtype by default ("auto"), diffusers in fp32: a
    # folder saved in fp16 (a variant download, an InvokeAI conversion) would give an fp16
    # text encoder beside an fp32 UNet, so fp32 is asked for, as a single file gets.
    tf_dtype = {"dtype": torch_dtype if torch_dtype is not None else torch.float32}
    df_dtype = {} if torch_dtype is None else {"torch_dtype": torch_dtype}
    tokenizers = [tokenizer if tokenizer is not None else load_tokenizer(path)]
    encoders = [_load_model(CLIPTextModel, path, "text_encoder", **tf_dtype)]
    force_zeros = True
    if is_sdxl_folder(path):
        tokenizers.append(load_tokenizer(path / "tokenizer_2"))
        encoders.append(_load_model(CLIPTextModelWithProjection, path, "text_encoder_2",
                                    **tf_dtype))
        index = path / "model_index.json"
        if index.is_file():
            force_zeros = bool(_read_json(index).get("force_zeros_for_empty_prompt", True))
    return Components(
        conditioner=make_conditioner(tokenizers, encoders,
                                     force_zeros_for_empty_prompt=force_zeros),
        vae=_load_model(AutoencoderKL, path, "vae", **df_dtype),
        unet=_load_model(UNet2DConditionModel, path, "unet", **df_dtype),
        # DDPM for training whatever the folder ships (PNDM, DDIM, Euler...): it keeps the
        # betas, timesteps and prediction_type, which is all add_noise and the loss target need.
        noise_scheduler=DDPMScheduler.from_pretrained(
            str(path), subfolder="scheduler",
            **({} if facts is None else {"prediction_type": facts.prediction_type})),
    )
