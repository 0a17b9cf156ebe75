"""Running out of memory: one sentence naming the settings of this run that lower the need.

An out-of-memory error is the commonest way a textual-inversion run fails on a GPU (a batch
of 8 at SDXL's 1024 px, previews of 4 images, L_det on a large evaluation batch), and the
user can always fix it; so it is a UserError (exit 2), never an "internal error" with a
traceback, and it names only the settings that would help *this* run: lowering a batch that
is already 1 or turning on checkpointing that is already on is no advice. The last completed
update's embedding is saved first (trainer/loop.py), so a resume with the new settings
continues the run.
"""

from __future__ import annotations

from trainer.config import TrainConfig
from trainer.errors import UserError

_CPU_SIGNS = ("DefaultCPUAllocator: can't allocate memory", "not enough memory")


def is_out_of_memory(exc: BaseException) -> bool:
    """Whether `exc` is the device or the host running out of memory: torch's
    OutOfMemoryError (CUDA, MPS), Python's MemoryError, or the CPU allocator's RuntimeError
    (c10/core/impl/alloc_cpu.cpp "DefaultCPUAllocator: can't allocate memory")."""
    import torch

    if isinstance(exc, (MemoryError, torch.OutOfMemoryError)):
        return True
    text = str(exc)
    return isinstance(exc, RuntimeError) and (
        "out of memory" in text.lower() or any(sign in text for sign in _CPU_SIGNS))


def remedies(config: TrainConfig, device_type: str, resolution: int | None) -> list[str]:
    """The changes that lower this run's memory, most effective first; each names its flag
    and the value in effect."""
    fixes = []
    batch, accumulation = config.train_batch_size, config.gradient_accumulation_steps
    if batch > 1:
        fixes.append(f"lower --train_batch_size from {batch} (raise "
                     f"--gradient_accumulation_steps to keep {batch * accumulation} images per "
                     "update)")
    if not config.gradient_checkpointing:
        fixes.append("add --gradient_checkpointing")
    if device_type == "cuda" and config.mixed_precision == "no":
        fixes.append("use --mixed_precision bf16 (or fp16)")
    if config.dvar_eval_every > 0 and config.dvar_eval_batch_size > 1:
        fixes.append(f"lower --dvar_eval_batch_size from {config.dvar_eval_batch_size}")
    if config.validation_steps and config.num_validation_images > 1:
        fixes.append(f"lower --num_validation_images from {config.num_validation_images}")
    if resolution and resolution > 256:
        fixes.append(f"lower --resolution from {resolution}")
    return fixes


def out_of_memory_error(config: TrainConfig, device_type: str, *, step: int | None,
                        saved: bool, resolution: int | None = None) -> UserError:
    """The UserError (field train_batch_size) for an out-of-memory failure at update `step`
    (None or 0: before the first update); `saved`: the embedding of that step was written."""
    where = "GPU" if device_type == "cuda" else "computer"
    when = (f"after update {step} (its embedding and checkpoint are saved, so resume with "
            "--resume_from_checkpoint latest)" if step and saved
            else f"after update {step}" if step else "before the first update")
    fixes = remedies(config, device_type, resolution)
    if not fixes:
        advice = ("every memory setting is already at its lowest; use a device with more "
                  "memory" + (" or --device cpu" if device_type == "cuda" else ""))
    elif len(fixes) == 1:
        advice = fixes[0]
    else:
        advice = ", ".join(fixes[:-1]) + f" or {fixes[-1]}"
    return UserError(f"The {where} ran out of memory {when}; {advice}.",
                     field="train_batch_size")
