"""Single-file checkpoints (`.safetensors`, `.ckpt`): detect the family, check, load offline.

A1111/Forge, ComfyUI and InvokeAI 4+ keep most models as one file in the original (LDM/SGM)
layout: `model.diffusion_model.*` (UNet), `first_stage_model.*` (VAE), and
`cond_stage_model.*` (SD 1.x/2.x) or `conditioner.embedders.{0,1}.*` (SDXL) text encoders.
diffusers' `from_single_file` converts such a file, but without `config=` it fetches the
diffusers configs from the Hub (diffusers#8752); ti-tui ships them in assets/model-configs/
(sd1, sd2, sd2-v, sdxl) and always passes `config=<folder>, local_files_only=True`.

The family is read from the header's keys and shapes (never the weights) with diffusers' own
`single_file_utils.infer_diffusers_model_type` (diffusers 0.42, run on meta tensors), plus the
text-encoder prefixes for files too small for its layer-numbered keys (tests' tiny models).
diffusers never tells SD 2.x v-prediction from epsilon (both shapes are identical), so
`--prediction_type` decides; without it ti-tui guesses with ComfyUI's rule
(comfy/supported_models.py, SD20.model_type: std of
`output_blocks.11.1.transformer_blocks.0.norm1.bias` > 0.09 means v-prediction, one 320-value
tensor read) and says so in a warning naming the flag.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from trainer import model_check, weights_check
from trainer.errors import ModelError
from trainer.model_configs import (  # noqa: F401 (re-exported for preflight and the form)
    complete_config, shipped_config, tokenizer_folder)
from trainer.weights_check import PICKLE_SUFFIXES, TensorInfo

LISTED_SUFFIXES = (".safetensors", ".ckpt")
"""What a checkpoints folder is scanned for (A1111, Forge and ComfyUI list these two)."""
LOADABLE_SUFFIXES = (".safetensors", *PICKLE_SUFFIXES)
PREDICTION_TYPES = ("epsilon", "v_prediction")

UNET = "model.diffusion_model."
VAE = "first_stage_model."
TEXT_KEYS = {
    # family -> (prefix of the token table, and of the second encoder for SDXL)
    "sd1": "cond_stage_model.transformer.text_model.embeddings.token_embedding.weight",
    "sd2": "cond_stage_model.model.token_embedding.weight",
    "sdxl": "conditioner.embedders.0.transformer.text_model.embeddings.token_embedding.weight",
}
SDXL_G_TOKENS = "conditioner.embedders.1.model.token_embedding.weight"
_SD2_VPRED_KEY = UNET + "output_blocks.11.1.transformer_blocks.0.norm1.bias"
_SD2_VPRED_STD = 0.09

_UNSUPPORTED = {
    "xl_refiner": "an SDXL refiner", "xl_inpaint": "an SDXL inpainting model",
    "inpainting": "an SD 1.x inpainting model", "inpainting_v2": "an SD 2.x inpainting model",
    "instruct-pix2pix": "an InstructPix2Pix model", "upscale": "an SD x4 upscaler",
    "playground-v2-5": "a Playground v2.5 model",
}
_UNSUPPORTED_PREFIX = {"sd3": "an SD3 model", "sd35": "an SD3.5 model", "flux": "a Flux model",
                       "chroma": "a Flux (Chroma) model", "controlnet": "a ControlNet",
                       "stable_cascade": "a Stable Cascade model",
                       "animatediff": "an AnimateDiff motion module"}


@dataclass(frozen=True)
class Detected:
    """What a single file holds, from its keys and shapes alone."""

    family: str | None
    """"sd1", "sd2" or "sdxl" when ti-tui can train on it, else None."""
    what: str
    """For people: "SD 1.x", "SD 2.x", "SDXL", or e.g. "a Flux model" when unsupported."""
    kind: str
    """diffusers' model type name ("v1", "v2", "xl_base", "flux-dev", ...), or ours."""


def _meta(shapes: dict[str, TensorInfo]) -> dict:
    import torch

    return {k: torch.empty(v.shape, device="meta") for k, v in shapes.items()}


def detect(shapes: dict[str, TensorInfo]) -> Detected:
    """The family of a checkpoint from its tensor names and shapes.

    diffusers' `infer_diffusers_model_type` names the exotic kinds (SD3, Flux, refiner,
    inpainting...); its fallback "v1" is then confirmed by the text encoder's prefix, which
    also recognises SDXL and SD 2.x files whose encoders have fewer layers than the keys
    diffusers probes. A file without UNet, VAE or text encoder is no full model.
    """
    from diffusers.loaders.single_file_utils import infer_diffusers_model_type

    try:
        kind = infer_diffusers_model_type(_meta(shapes))
    except Exception:  # noqa: BLE001 - a probe that reads values (meta has none): not SD
        kind = "unknown"
    if kind in _UNSUPPORTED:
        return Detected(None, _UNSUPPORTED[kind], kind)
    for prefix, what in _UNSUPPORTED_PREFIX.items():
        if kind.startswith(prefix):
            return Detected(None, what, kind)
    keys = shapes.keys()
    has = lambda prefix: any(k.startswith(prefix) for k in keys)  # noqa: E731
    if not has(UNET):
        return Detected(None, "not a full Stable Diffusion checkpoint (it has no UNet "
                        "weights; a LoRA, VAE or embedding?)", "no-unet")
    if kind not in ("v1", "v2", "xl_base"):
        return Detected(None, f"a model of a kind ti-tui cannot train ({kind})", kind)
    if has("conditioner.embedders.1.model.") and has("conditioner.embedders.0.transformer."):
        family, kind = "sdxl", "xl_base"
    elif has("conditioner.embedders.0.model.") and not has("conditioner.embedders.1."):
        return Detected(None, _UNSUPPORTED["xl_refiner"], "xl_refiner")
    elif has("cond_stage_model.model."):
        family, kind = "sd2", "v2"
    elif has("cond_stage_model.transformer."):
        family = "sd1"
    else:
        return Detected(None, "not a full Stable Diffusion checkpoint (it has no text "
                        "encoder weights)", "no-text-encoder")
    if not has(VAE):
        return Detected(None, "not a full Stable Diffusion checkpoint (it has no VAE "
                        "weights)", "no-vae")
    return Detected(family, {"sd1": "SD 1.x", "sd2": "SD 2.x", "sdxl": "SDXL"}[family], kind)


def refusal(path: Path, detected: Detected) -> ModelError:
    """The one-sentence refusal of a file ti-tui cannot train on."""
    return ModelError(f"Model {path} is {detected.what}; ti-tui trains embeddings for SD 1.x, "
                      "SD 2.x and SDXL base models and their fine-tunes, so pick one of those.",
                      field="model")


def _original_config_prediction(path: Path) -> str | None:
    """The prediction type an A1111-style `<stem>.yaml` beside the file states, if any."""
    import yaml

    for config in (path.with_suffix(".yaml"), path.with_suffix(".yml")):
        try:
            data = yaml.safe_load(config.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, yaml.YAMLError):
            continue
        params = ((data or {}).get("model") or {}).get("params") or {} \
            if isinstance(data, dict) else {}
        if isinstance(params, dict):
            return "v_prediction" if params.get("parameterization") == "v" else "epsilon"
    return None


def guess_sd2_prediction(path: Path, shapes: dict[str, TensorInfo]) -> str:
    """"v_prediction" or "epsilon" for an SD 2.x file, by ComfyUI's rule (module docstring).

    Decided first by what sits beside the file: A1111's convention of an original config
    `<name>.yaml` next to `<name>.safetensors` (`model.params.parameterization: "v"` for
    v-prediction, as in Stability's v2-inference-v.yaml; none for epsilon), then a `v_pred`
    key (ComfyUI writes one into v-prediction checkpoints it saves). Reads one small tensor;
    a pickle (.ckpt) is not opened again and counts as v-prediction, the kind of the SD 2.x
    models most people hold (2.0-v and 2.1-v, 768 px).
    """
    beside = _original_config_prediction(path)
    if beside is not None:
        return beside
    if "v_pred" in shapes:
        return "v_prediction"
    if path.suffix.lower() != ".safetensors" or _SD2_VPRED_KEY not in shapes:
        return "v_prediction"
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as handle:
            bias = handle.get_tensor(_SD2_VPRED_KEY).float()
    except Exception:  # noqa: BLE001 - the damage check already passed; be safe, not clever
        return "v_prediction"
    return "v_prediction" if float(bias.std(unbiased=False)) > _SD2_VPRED_STD else "epsilon"


# --- checking: the facts of a file against its config folder ---------------------------------


def _json(path: Path) -> dict:
    """A config of the config folder; its errors name --model_config, which chose it."""
    import json

    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        raise ModelError(f"Model config {path} cannot be read ({why}); pass --model_config "
                         "a complete diffusers folder.", field="model_config") from None
    if not isinstance(data, dict):
        raise ModelError(f"Model config {path} should hold a JSON object; pass --model_config "
                         "a complete diffusers folder.", field="model_config")
    return data


def _fits(path: Path, config_dir: Path, what: str, in_file, in_config) -> None:
    if in_file != in_config:
        raise ModelError(
            f"Model {path} does not fit the config folder {config_dir}: {what} is {in_file} in "
            f"the file but {in_config} in the config; pass --model_config a diffusers folder "
            "made for this model (its JSON configs are enough).", field="model_config")


def check_single_file(path: Path, *, model_config: str | Path | None = None,
                      prediction_type: str | None = None):
    """Check a single-file checkpoint and return its trainer.model_check.ModelFacts.

    Reads the file's header (damage, pickles needing code and the family are found here,
    before anything is written) and the JSON configs of the shipped folder for its family,
    or of `model_config`. `prediction_type` (--prediction_type) overrides the config's; for
    an SD 2.x file without either, the guess is explained in `facts.warning`. Raises
    ModelError naming the file and what to do.
    """
    path = Path(path).expanduser()
    if path.suffix.lower() not in LOADABLE_SUFFIXES:
        raise ModelError(f"Model {path} is a file ti-tui cannot read as a model; pass a "
                         ".safetensors or .ckpt checkpoint, or a diffusers folder.",
                         field="model")
    shapes = weights_check.read_shapes(path)
    detected = detect(shapes)
    if detected.family is None:
        raise refusal(path, detected)
    family, warning = detected.family, None
    if model_config:
        config_dir = Path(model_config).expanduser()
        if not (config_dir / "unet" / "config.json").is_file():
            raise ModelError(f"Model config folder {config_dir} has no unet/config.json; pass "
                             "--model_config a diffusers folder (its JSON configs are "
                             "enough).", field="model_config")
    else:
        if family == "sd2" and prediction_type is None:
            guessed = guess_sd2_prediction(path, shapes)
            source = ("the .yaml beside it" if _original_config_prediction(path)
                      else "its weights")
            warning = (f"{path.name} is an SD 2.x model, and such files do not say whether they "
                       f"predict noise or velocity; guessed {guessed} from {source}. Pass "
                       "--prediction_type epsilon or v_prediction if the previews look wrong.")
            prediction_type = guessed
        config_dir = shipped_config(family, prediction_type or "epsilon")
    text = _json(config_dir / "text_encoder" / "config.json")
    unet = _json(config_dir / "unet" / "config.json")
    vae = _json(config_dir / "vae" / "config.json")
    sched = _json(config_dir / "scheduler" / "scheduler_config.json")
    if TEXT_KEYS[family] not in shapes:
        # e.g. an early SD 1.x merge saved without transformers' "text_model." level, which
        # diffusers' converter does not read either.
        raise ModelError(f"Model {path} has its text encoder under names diffusers cannot "
                         f"read (no {TEXT_KEYS[family]}); re-save it with a current tool, or "
                         "use a diffusers version of the model.", field="model")
    vocab, width = shapes[TEXT_KEYS[family]].shape[:2]
    _fits(path, config_dir, "the text encoder's width", width, text.get("hidden_size"))
    parts = None
    if family == "sdxl":
        text_2 = _json(config_dir / "text_encoder_2" / "config.json")
        width_2 = shapes[SDXL_G_TOKENS].shape[1] if SDXL_G_TOKENS in shapes else None
        _fits(path, config_dir, "the second text encoder's width", width_2,
              text_2.get("hidden_size"))
        parts = {"clip_l": width, "clip_g": width_2}
    conv_in = shapes.get(UNET + "input_blocks.0.0.weight")
    if conv_in is not None:
        _fits(path, config_dir, "the UNet's first channel count", conv_in.shape[0],
              (unet.get("block_out_channels") or [None])[0])
        _fits(path, config_dir, "the UNet's input channels", conv_in.shape[1],
              unet.get("in_channels", 4))
    vae_in = shapes.get(VAE + "encoder.conv_in.weight")
    if vae_in is not None:
        _fits(path, config_dir, "the VAE's first channel count", vae_in.shape[0],
              (vae.get("block_out_channels") or [None])[0])
    weights_check.check_single_file_shapes(path, shapes, config_dir, family)
    try:
        native = model_check.native_resolution(unet, vae)
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelError(f"Model config folder {config_dir} has a config without {exc}; pass "
                         "--model_config a complete diffusers folder.",
                         field="model_config") from None
    return model_check.ModelFacts(
        path=path, token_dim=width + (parts["clip_g"] if parts else 0), vocab_size=vocab,
        native_resolution=native,
        prediction_type=prediction_type or str(sched.get("prediction_type") or "epsilon"),
        num_train_timesteps=int(sched.get("num_train_timesteps", 1000)),
        latent_channels=int(vae.get("latent_channels", 4)),
        vae_scaling_factor=float(vae.get("scaling_factor", 0.18215)),
        family=family, parts=parts, format="checkpoint", config_path=config_dir,
        warning=warning)


# --- loading -----------------------------------------------------------------------------------


def _state_dict(path: Path) -> dict:
    """All tensors of the file: safetensors memory-mapped, pickles with weights_only."""
    import zipfile

    import torch
    from safetensors.torch import load_file

    if path.suffix.lower() == ".safetensors":
        return load_file(str(path))
    data = torch.load(path, map_location="cpu", weights_only=True,
                      mmap=zipfile.is_zipfile(path))
    while isinstance(data, dict) and isinstance(data.get("state_dict"), dict):
        data = data["state_dict"]
    return data


def load_components(path: Path, facts, *, torch_dtype=None, tokenizer=None):
    """Load a checked single file into the same trainer.models.Components a folder gives.

    Each component goes through diffusers' single-file converters with the config folder of
    `facts` (`from_single_file(state, config=..., subfolder=..., local_files_only=True)` for
    the UNet and VAE, `create_diffusers_clip_model_from_ldm` for the text encoders, as
    diffusers' own pipeline loader does); the file is read once. Models come back frozen, in
    eval mode; the scheduler is a DDPMScheduler with `facts.prediction_type`. ModelError
    (field model) when the file cannot be read or does not fit the config.
    """
    from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
    from diffusers.loaders.single_file_utils import create_diffusers_clip_model_from_ldm
    from transformers import CLIPTextModel, CLIPTextModelWithProjection

    from trainer import models
    from trainer.conditioner import make_conditioner

    path = Path(path).expanduser()
    config = complete_config(Path(facts.config_path))
    options = {"config": str(config), "local_files_only": True, "torch_dtype": torch_dtype}
    encoder_names = [("text_encoder", CLIPTextModel)]
    if facts.family == "sdxl":
        encoder_names.append(("text_encoder_2", CLIPTextModelWithProjection))
    try:
        state = _state_dict(path)
        with models.quiet_progress_bars():
            unet = UNet2DConditionModel.from_single_file(state, subfolder="unet", **options)
            vae = AutoencoderKL.from_single_file(state, subfolder="vae", **options)
            encoders = [create_diffusers_clip_model_from_ldm(cls, state, subfolder=name,
                                                             **options)
                        for name, cls in encoder_names]
    except Exception as exc:  # noqa: BLE001 - every failure here means "this file, this config"
        raise ModelError(f"Could not load {path} with the config folder {config} "
                         f"({models._root_cause(exc)}); the file may be damaged or not fit that "
                         "config, so re-download it or pass --model_config a diffusers folder "
                         "made for it.", field="model") from exc
    del state
    for model in (unet, vae, *encoders):
        model.requires_grad_(False)
        model.eval()
    tokenizers = [tokenizer if tokenizer is not None else models.load_tokenizer(config)]
    if facts.family == "sdxl":
        tokenizers.append(models.load_tokenizer(config / "tokenizer_2"))
    index = config / "model_index.json"
    force_zeros = bool(_json(index).get("force_zeros_for_empty_prompt", True)) \
        if index.is_file() else True
    scheduler = DDPMScheduler.from_pretrained(str(config), subfolder="scheduler",
                                              prediction_type=facts.prediction_type)
    return models.Components(
        conditioner=make_conditioner(tokenizers, encoders,
                                     force_zeros_for_empty_prompt=force_zeros),
        vae=vae, unet=unet, noise_scheduler=scheduler)
