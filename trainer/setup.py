"""Everything a run needs before its first update: models, tokens, latents, captions, rates.

`prepare(config, preflight, device=..., num_processes=..., seed=..., emit=...)` returns a
`Session` holding the frozen models, the trainable vectors spliced into the text encoder(s)
by the model's conditioner (trainer/conditioner.py), the cached latents, the tokenized
captions, the run's plan (trainer/plan.py: its end, the rate and clip value of every
update), and the DVAR evaluation batch. trainer/loop.py then only runs updates.
"""

from __future__ import annotations

import json
import os
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from trainer import checkpoint, data, dvar_advice, embeddings, formats, models, names
from trainer.conditioner import Conditioner
from trainer.config import TrainConfig
from trainer.errors import ResumeError
from trainer.evaluation import EvalBatch, build_eval_batch
from trainer.events import Emit, Phase, StopReason, Warning
from trainer.latents import LatentCache, LazyLatentCache
from trainer.plan import RunPlan, run_limit
from trainer.preflight import Preflight
from trainer.resume_checks import plan_from

PRECISION_DTYPES = {"no": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
VAE_DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


@dataclass
class Session:
    """Everything `prepare` made ready for the loop: the models on their device, the trained
    rows, the cached latents and captions, the plan and the DVAR evaluation batch."""

    config: TrainConfig
    """The run's validated settings."""
    preflight: Preflight
    """The checks' findings: model path and facts, resolution, images, resume folder."""
    components: models.Components
    """UNet, VAE, noise scheduler and conditioner, loaded."""
    placeholder: embeddings.Placeholder
    """The trigger's tokens and their ids."""
    vectors: torch.nn.Parameter
    """The trained rows, fp32 [num_vectors, sum of the conditioner's part widths]."""
    cache: LatentCache
    """VAE posterior of every image and its mirror (lazy on a CPU, eager elsewhere)."""
    caption_ids: torch.Tensor
    """[T, E, 77] token ids of every caption template with the trigger filled in, one row per
    text encoder (Conditioner.tokenize)."""
    image_paths: list[Path]
    """The training images, in sorted-filename order (dataset item i is image_paths[i])."""
    device: torch.device
    """This process's device (--device, resolved per process)."""
    unet_dtype: torch.dtype
    """fp16/bf16 for the frozen UNet on CUDA with mixed precision, else float32."""
    seed: int
    """The run's seed (resolve_seed)."""
    plan: RunPlan
    """Images per update, the end step and the limit that sets it, the rate and clip value of
    every update (trainer/plan.py)."""
    eval_batch: EvalBatch | None
    """DVAR's fixed batch, or None when --dvar_eval_every is 0."""
    resumed: checkpoint.Checkpoint | None
    """The checkpoint this run continues, or None for a fresh run."""
    train_unet: Any
    """What the training forward calls: the UNet, or its torch.compile wrapper with --compile.
    L_det and previews call the plain UNet: under inference_mode and at their own batch sizes a
    compiled one would compile again for each."""
    latent_cache_memory_mb: float | None = None
    """On CUDA, the peak GPU memory (MiB) of start-up through the latent cache; the peak
    statistics are reset after it, so each step's memory_mb is the steps' own peak."""

    @property
    def conditioner(self) -> Conditioner:
        """The model family's text-encoder side (trainer/conditioner.py)."""
        return self.components.conditioner

    def time_ids(self, batch_size: int) -> torch.Tensor | None:
        """The added time conditioning of a batch at the training size (None for SD 1.x/2.x)."""
        ids = self.conditioner.time_ids(batch_size, self.preflight.resolution)
        return None if ids is None else ids.to(self.device)

    @property
    def autocast(self):
        """The mixed-precision context for forward passes (a no-op for fp32)."""
        if self.config.mixed_precision == "no":
            return nullcontext()
        return torch.autocast(self.device.type, dtype=PRECISION_DTYPES[self.config.mixed_precision])

    @property
    def start_step(self) -> int:
        """Updates already done when this run starts (a resumed checkpoint's step, or 0)."""
        return self.plan.start_step

    @property
    def end_step(self) -> int:
        """Where the run ends by max steps, epochs or the end of the LR schedule."""
        return self.plan.end_step


def resolve_seed(config: TrainConfig, preflight: Preflight) -> int:
    """The run's seed: as configured, else the resumed run's, else a fresh random one."""
    if config.seed is not None:
        return config.seed
    if preflight.resume_dir is not None:
        try:
            return int(json.loads((preflight.resume_dir / "meta.json").read_text())["seed"])
        except (OSError, ValueError, KeyError):
            pass
    return int.from_bytes(os.urandom(4), "little") % 2**31


def eval_seed(config: TrainConfig, seed: int) -> int:
    """The DVAR batch's own seed (spec A2): --dvar_eval_seed, else the training seed."""
    return config.dvar_eval_seed if config.dvar_eval_seed is not None else seed


def prepare(config: TrainConfig, preflight: Preflight, *, device: torch.device,
            num_processes: int, seed: int, emit: Emit) -> Session:
    """Load the model checked by `preflight`, add and splice the trigger's tokens, cache the
    latents, tokenize the caption templates, make the plan and the DVAR batch.

    `device` is this process's device and `num_processes` the data-parallel world size (it
    sets images per update). Emits Phase and Warning events. Raises ConfigError (a trigger
    the tokenizer knows, an initializer that does not fit, a VAE that overflows), ResumeError
    (a checkpoint from another trigger, vector count, width or model; nothing left to train),
    ModelError and DataError as the loaders do.
    """
    emit(Phase(name="loading model", detail=str(preflight.model_path)))
    for message in preflight.warnings:
        emit(Warning(message=message))
    unet_dtype = torch.float32
    if device.type == "cuda" and config.mixed_precision != "no":
        # Frozen UNet weights in half precision halve its memory; the trained rows stay fp32.
        unet_dtype = PRECISION_DTYPES[config.mixed_precision]
    if preflight.facts.warning:
        emit(Warning(message=preflight.facts.warning, file=str(preflight.model_path)))
    components = models.load_components(preflight.model_path, tokenizer=preflight.tokenizer,
                                        facts=preflight.facts)
    conditioner = components.conditioner
    placeholder = conditioner.add_placeholder(config.trigger, config.num_vectors)
    renamed = names.rename_notice(config.placeholder_token, config.trigger,
                                  formats.standalone_stem(config.trigger))
    if renamed:  # "cat" trains as <cat>: say so, the prompt word is not what was typed
        emit(Warning(message=renamed))

    resumed = _load_resume(config, preflight, placeholder, emit)
    start = _start_vectors(config, preflight, conditioner, resumed, seed)
    vectors = conditioner.splice(placeholder, start)
    conditioner.to(device)
    # Moved and cast in one call, tensor by tensor: moving the fp32 UNet first and casting on
    # the GPU would hold both copies at once (SDXL: 10.4 + 5.2 GB).
    components.unet.to(device=device, dtype=unet_dtype)
    if config.gradient_checkpointing:
        components.unet.enable_gradient_checkpointing()
        components.unet.train()  # diffusers only checkpoints in training mode; no dropout here
    if config.allow_tf32 and device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    if device.type == "cuda":
        components.unet.to(memory_format=torch.channels_last)
    train_unet = components.unet
    if config.compile:
        # Opt-in: compiling takes a while at the first step and pays off on long GPU runs only
        # (docs/PERFORMANCE.md: on CPU it is slower).
        train_unet = torch.compile(components.unet)

    emit(Phase(name="caching latents", detail=f"{len(preflight.images)} images"))
    loaded = data.load_images(config.data_path, preflight.resolution, config.center_crop,
                              on_warning=lambda msg, f: emit(Warning(message=msg, file=f)))
    # The VAE keeps its own precision (--vae_precision, fp32 by default): it runs once per image
    # here and once per preview, and SDXL's VAE overflows in fp16.
    vae_dtype = VAE_DTYPES[config.vae_precision]
    components.vae.to(device, dtype=vae_dtype)
    pixels = data.to_tensor_batch(loaded.images)
    if device.type == "cpu":
        # Encoded as batches first draw them: the first update waits for its own pictures
        # only (trainer/latents.py, LazyLatentCache).
        cache = LazyLatentCache(components.vae, pixels, device, dtype=vae_dtype)
    else:
        cache = LatentCache.encode(components.vae, pixels, device, dtype=vae_dtype)
    if config.validation_steps == 0 and device.type == "cuda":
        # Latents are cached: the VAE is only needed again to decode previews.
        components.vae.to("cpu")
    latent_cache_memory_mb = None
    if device.type == "cuda":
        # The VAE encoding every image makes start-up's peak; reported apart from the steps'.
        latent_cache_memory_mb = torch.cuda.max_memory_allocated(device) / 2**20
        torch.cuda.reset_peak_memory_stats(device)

    templates = data.templates_for(config.learnable_property)
    captions = [t.format(placeholder.prompt_text) for t in templates]
    caption_ids = conditioner.tokenize(captions).to(device)

    start_step = resumed.step if resumed else 0
    # Preflight refused these resumes already from the listed images; the loaded ones may be
    # fewer (broken files skipped), which can only bring the end nearer.
    plan = plan_from(config, n_images=len(loaded.images), num_processes=num_processes,
                     start_step=start_step)
    if plan.limit == StopReason.SCHEDULE_END:
        # Name the limit it comes before: --max_train_steps, or --num_train_epochs when
        # epochs end the run first (run_limit's choice).
        _, cut = run_limit(config.max_train_steps, config.num_train_epochs, config.repeats,
                           len(loaded.images), plan.images_per_update)
        limit = ("--num_train_epochs" if cut == StopReason.EPOCHS else "--max_train_steps")
        emit(Warning(message=f"The --learning_rate schedule ends at step {plan.end_step}, "
                             f"before the {limit} limit ({plan.limit_end}); training stops "
                             "there."))
    slow = dvar_advice.advice_for_plan(plan)
    if slow:  # DVAR would likely stop at its floor, before the embedding is learned
        emit(Warning(message=f"DVAR: {slow}"))

    eval_batch = None
    if config.dvar_eval_every > 0:
        size = config.dvar_eval_batch_size
        eval_batch = build_eval_batch(cache, caption_ids.cpu(), size,
                                      components.noise_scheduler.config.num_train_timesteps,
                                      eval_seed(config, seed), device,
                                      time_ids=conditioner.time_ids(size, preflight.resolution))
    return Session(config=config, preflight=preflight, components=components,
                   placeholder=placeholder,
                   vectors=vectors, cache=cache, caption_ids=caption_ids,
                   image_paths=loaded.paths, device=device, unet_dtype=unet_dtype, seed=seed,
                   plan=plan, eval_batch=eval_batch, resumed=resumed, train_unet=train_unet,
                   latent_cache_memory_mb=latent_cache_memory_mb)


def _load_resume(config: TrainConfig, preflight: Preflight, placeholder: embeddings.Placeholder,
                 emit: Emit) -> checkpoint.Checkpoint | None:
    if preflight.resume_dir is None:
        return None
    found = checkpoint.load_newest_usable(
        config.output_path, preflight.resume_dir,
        lambda msg, f: emit(Warning(message=msg, file=f)))
    meta = found.meta
    checks = [("trigger", meta.get("trigger"), placeholder.trigger),
              ("number of vectors", meta.get("num_vectors"), config.num_vectors),
              ("token dimension", meta.get("token_dim"), preflight.facts.token_dim),
              ("model", meta.get("model_path") and os.path.realpath(meta["model_path"]),
               os.path.realpath(preflight.model_path))]
    for what, theirs, ours in checks:
        if theirs != ours:
            raise ResumeError(f"Checkpoint {found.path} was made with {what} {theirs!r}, but "
                              f"this run has {ours!r}; resume with the same {what} or start "
                              "a new output directory.", field="resume_from_checkpoint")
    old = meta.get("config", {})
    for key in ("max_train_steps", "learning_rate", "lr_scheduler"):
        if key in old and old[key] != getattr(config, key):
            emit(Warning(message=f"Resuming with {key} changed from {old[key]!r} to "
                                 f"{getattr(config, key)!r}."))
    return found


def _start_vectors(config: TrainConfig, preflight: Preflight, conditioner: Conditioner,
                   resumed: checkpoint.Checkpoint | None, seed: int) -> torch.Tensor:
    """[n, width] rows to start from: the checkpoint's, the initial embedding's, or each
    encoder's own rows of the initializer token(s)."""
    if resumed is not None:
        return resumed.vectors.float()
    if config.initial_embedding:
        _, vectors = formats.load_embedding(config.initial_embedding)
        formats.check_dimension(vectors, preflight.facts.token_dim, config.initial_embedding)
        return vectors.float()
    return conditioner.initial_vectors(config.initializer_token, config.num_vectors, seed)


def describe_dataset(session: Session) -> dict[str, Any]:
    """The civitai seed's arithmetic done right (one step is one optimizer update), from the
    run's plan: the `dataset` facts of the run_started event."""
    plan = session.plan
    return {"n_images": plan.n_images, "images": [str(p) for p in session.image_paths],
            "resolution": session.preflight.resolution,
            "images_per_update": plan.images_per_update,
            "updates_per_epoch": plan.updates_per_epoch, "epochs_total": plan.epochs_total,
            "full_cycle": plan.full_cycle, "templates": len(session.caption_ids),
            "end_reason": plan.limit.value}
