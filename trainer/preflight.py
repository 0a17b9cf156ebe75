"""Every check that can fail before a single file is written or a weight is loaded.

`ti-tui train` and the form run `preflight(config)` before creating the output folder, so a
user error ends with one sentence and exit code 2 and leaves nothing behind. The trainer runs
it again (a run.toml may have been edited by hand). It reads configs, lists images and loads
the tokenizer (about a second), but never the model weights.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from trainer import data, devices, embeddings, formats, lock
from trainer import models, paths, single_file, weights_check
from trainer.config import TrainConfig
from trainer.errors import ConfigError, DataError, ModelError, ResumeError
from trainer.resume_checks import (check_no_earlier_embedding, check_no_previous_run,
                                   check_resume_matches, find_resume, plan_from,
                                   resume_start, resume_stops_at_once, root_copy_replaces)


@dataclass
class Preflight:
    """What the checks found, reused by the trainer so nothing is looked up twice."""

    model_path: Path
    """The model folder or single file --model resolved to."""
    facts: models.ModelFacts
    """The model's facts, from its JSON configs (or its single file's header)."""
    images: list[Path]
    """The image files found in --train_data_dir, sorted by name (decoded later)."""
    resolution: int
    """Training size in pixels per side: --resolution, else the model's native one."""
    resume_dir: Path | None
    """The checkpoint folder to resume from, or None for a fresh run."""
    tokenizer: object
    """The (first) tokenizer, loaded for the trigger and caption checks."""
    warnings: tuple[str, ...] = ()
    """Findings that do not stop the run; trainer.setup.prepare emits them as Warning events."""


def preflight(config: TrainConfig, *, check_device: bool = True,
              check_lock: bool | None = None) -> Preflight:
    """Run every check; raise UserError (one sentence) at the first that fails.

    `check_lock` (default: unless this is a non-main process of an `accelerate launch`, whose
    main process holds the lock by then) refuses an output folder a live run is writing.
    """
    if check_lock is None:
        check_lock = is_main_process()
    if not config.placeholder_token:
        raise ConfigError("Trigger term (--placeholder_token) is required, e.g. "
                          "--placeholder_token '<my-cat>'.", field="placeholder_token")
    if not config.train_data_dir:
        raise ConfigError("Data directory (--train_data_dir) is required: the folder holding "
                          "your 3-20 training images.", field="train_data_dir")
    check_user_paths(config)
    check_model_path(config.model)
    model_path = models.resolve_model(config.model, Path(config.root).expanduser(),
                                      models_dirs=config.models_dirs)
    facts = models.check_model(model_path, model_config=config.model_config,
                               prediction_type=config.prediction_type)
    # Headers and shapes of every weight file: a damaged model is refused here, before the
    # output folder exists, not when the trainer loads it.
    weights_check.check_model_weights(facts)
    images = data.list_images(config.data_path)
    if not images:
        raise DataError(f"Data directory {config.data_path} holds no images (PNG, JPEG, "
                        "WebP, GIF or BMP); put 3-20 images of your concept in it.",
                        field="train_data_dir")
    # Decodes images until one works (one decode for a healthy folder), so a folder of
    # nothing but broken files is refused here, before any file is written.
    data.check_some_image_usable(config.data_path, images)
    check_output_dir(config.output_path,
                     None if config.output_dir else paths.default_output_label(config.trigger))
    if check_lock:
        lock.check_free(config.output_path)
    tokenizer = models.load_tokenizer(Path(config.tokenizer_name).expanduser()
                                      if config.tokenizer_name
                                      else single_file.tokenizer_folder(facts))
    embeddings.check_trigger(tokenizer, config.trigger)
    if facts.family == "sdxl" and not config.tokenizer_name:
        # SDXL's second tokenizer gets the trigger too (trainer/conditioner.py); a fine-tune
        # whose tokenizer_2 already holds it would otherwise fail after the output exists.
        second = models.load_tokenizer(single_file.tokenizer_folder(facts) / "tokenizer_2")
        embeddings.check_trigger(second, config.trigger)
    embeddings.initializer_ids(tokenizer, config.initializer_token, config.num_vectors,
                               config.seed or 0)
    # Captions and the preview prompt must fit CLIP's 77 tokens: never cut silently.
    data.check_fits_window(tokenizer, num_vectors=config.num_vectors,
                           learnable_property=config.learnable_property,
                           validation_prompt=config.validation_prompt, trigger=config.trigger)
    resume_dir = find_resume(config)
    check_eval_batch_fits(config, facts)
    warnings: list[str] = []
    if config.model_config and facts.config_path is None:
        warnings.append(f"--model_config {config.model_config} is ignored: it is only read for "
                        f"single-file checkpoints, and {model_path} is a diffusers folder with "
                        "its own configs.")
    warnings += root_copy_replaces(config)
    if resume_dir is not None:
        check_resume_matches(config, resume_dir, model_path, facts)
        # A resume with nothing left to train (the limit that ends the run named), found
        # before the output folder gets a new event log that would call the run failed.
        start = resume_start(config.output_path, resume_dir)
        if start is not None:
            plan_from(config, n_images=len(images), num_processes=config.num_processes,
                      start_step=start)
        warnings += resume_stops_at_once(config, resume_dir)
    elif config.resume_from_checkpoint == "latest":
        # diffusers' textual_inversion.py and invokeai-ti start a new run here, so the
        # documented "typical usage" (the flag on every run, the first included) works.
        check_no_earlier_embedding(config)
        warnings.append(f"--resume_from_checkpoint latest found no checkpoint in "
                        f"{config.output_path} yet, so this is a fresh run.")
    else:
        check_no_previous_run(config.output_path)
        check_no_earlier_embedding(config)
    if config.initial_embedding:
        _, vectors = formats.load_embedding(config.initial_embedding)
        formats.check_dimension(vectors, facts.token_dim, config.initial_embedding)
        if vectors.shape[0] != config.num_vectors:
            raise ResumeError(f"{config.initial_embedding} holds {vectors.shape[0]} vectors but "
                              f"--num_vectors is {config.num_vectors}; set --num_vectors "
                              f"{vectors.shape[0]}.", field="initial_embedding")
    if check_device:
        devices.check_device(config.device, config.num_processes)
        check_precision(config.mixed_precision, config.device)
        check_precision(config.vae_precision, config.device, field="vae_precision")
    resolution = config.resolution or facts.native_resolution
    return Preflight(model_path, facts, images, resolution, resume_dir, tokenizer,
                     tuple(warnings))


def is_main_process() -> bool:
    """False in the non-main processes of an `accelerate launch` (it sets RANK)."""
    try:
        return int(os.environ.get("RANK", "0") or 0) == 0
    except ValueError:
        return True


def check_model_path(model: str) -> None:
    """A --model written as a path (absolute, ./, ../ or ~) must exist: ModelError (field
    model) if it does not.

    Names such as `sd-1/main/stable-diffusion-v1-5` are left to models.resolve_model, which
    lists the names found under the root.
    """
    text = model.strip()
    if not (os.path.isabs(text) or text.startswith(("./", "../", "~", ".\\", "..\\"))):
        return
    path = Path(text).expanduser()
    if not path.exists():
        raise ModelError(f"Model folder {path} does not exist{paths.near_miss(path)}; pass "
                         "--model an existing "
                         "diffusers folder, or a model name from `ti-tui models`.",
                         field="model")


def check_user_paths(config: TrainConfig) -> None:
    """Every path the user typed, as the OS sees it (too long, a link loop, no permission on
    the way, a file where a folder should be): one sentence naming the field (trainer/paths.py).
    """
    root = Path(config.root).expanduser()
    values = [("root", config.root), ("train_data_dir", config.train_data_dir),
              ("output_dir", config.output_path), ("model", config.model),
              ("model_config", config.model_config), ("tokenizer_name", config.tokenizer_name),
              ("initial_embedding", config.initial_embedding)]
    values += [("models_dir", folder) for folder in config.models_dirs]
    if config.model and not os.path.isabs(os.path.expanduser(config.model)):
        values.append(("model", root / config.model))  # a name is looked up under the root
    if config.resume_from_checkpoint not in (None, "", "latest"):
        values.append(("resume_from_checkpoint", config.resume_from_checkpoint))
    default_out = None if config.output_dir else paths.default_output_label(config.trigger)
    for field, value in values:
        paths.check_path(field, value, default_out if field == "output_dir" else None)


def check_output_dir(path: Path, label: str | None = None) -> None:
    """The output folder must be a folder we can write, or creatable (trainer/paths.py);
    `label` names a default folder the user did not type (paths.default_output_label)."""
    paths.check_creatable("output_dir", path, label)


def check_eval_batch_fits(config: TrainConfig, facts: models.ModelFacts) -> None:
    """DVAR's fixed evaluation batch gives each of its images a different timestep
    (trainer/evaluation.py), so it cannot hold more images than the model's noise schedule
    has steps: ConfigError (field dvar_eval_batch_size) before anything is written."""
    steps = facts.num_train_timesteps
    if config.dvar_eval_every > 0 and config.dvar_eval_batch_size > steps:
        raise ConfigError(f"DVAR eval batch (--dvar_eval_batch_size) "
                          f"{config.dvar_eval_batch_size} is larger than the model's "
                          f"{steps} noise timesteps, and each of its images takes a different "
                          f"one; use at most {steps}.", field="dvar_eval_batch_size")


def check_precision(precision: str, device: str = "auto",
                    field: str = "mixed_precision") -> None:
    """Refuse a precision the run's device (--device, auto resolved here) cannot run.

    `field` is the flag it came from: --mixed_precision (full precision "no") or
    --vae_precision (full precision "fp32")."""
    import torch

    full = "fp32" if field == "vae_precision" else "no"
    what = "VAE precision" if field == "vae_precision" else "Mixed precision"
    if precision == full:
        return
    if devices.device_type(device) == "cpu":
        if precision == "fp16":
            where = ("no CUDA GPU was found" if device != "cpu"
                     else f"--device cpu was chosen (or ${devices.DEVICE_ENV}=cpu, its "
                     "default)" if devices.from_environment(device)
                     else "--device cpu was chosen")
            raise ConfigError(f"{what} fp16 needs a CUDA GPU and {where}; use "
                              f"--{field} {full} (or bf16, slow on most CPUs).", field=field)
        return
    if precision == "bf16" and not torch.cuda.is_bf16_supported():
        raise ConfigError(f"{what} bf16 is not supported by this GPU; use --{field} fp16.",
                          field=field)
