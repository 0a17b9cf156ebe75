"""Check and load Stable Diffusion models that are already on disk.

Nothing here touches the network: models come from a diffusers folder the user names, a
single-file checkpoint (trainer/single_file.py), or an InvokeAI root or checkpoint folder
(trainer/discovery.py). Checking reads only the JSON configs (trainer/model_check.py), so the
form can validate a model in milliseconds; loading reads the weights of the components the
trainer needs, never a whole pipeline.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from trainer.discovery import ModelEntry, find_models, resolve_model  # noqa: F401 (re-exported)
from trainer.conditioner import Conditioner, make_conditioner
from trainer.model_check import (ModelFacts, check_model_folder, has_tokenizer_files,
                                  is_sdxl_folder, model_error, read_config, weight_files)


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
    if not has_tokenizer_files(folder):
        raise model_error(
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
    raise model_error(
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
    for weights in weight_files(folder):
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
        files = weight_files(path / subfolder)
        # diffusers and transformers prefer .safetensors when both kinds are present.
        files.sort(key=lambda f: f.suffix != ".safetensors")
        where = files[0] if files else path / subfolder
        reason = _root_cause(exc).replace(str(where), "the file")
        raise model_error(
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
            force_zeros = bool(read_config(index).get("force_zeros_for_empty_prompt", True))
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
