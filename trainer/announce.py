"""What a run announces before its first update (trainer/loop.py calls `announce`).

One place builds the `run_started` event every view reads (the run header, the summary, the
runs index) and the start-of-run warnings, so the loop itself holds only the updates.
"""

from __future__ import annotations

import dataclasses

import torch

from trainer import threads
from trainer.config import TrainConfig
from trainer.events import Emit, RunStarted, Warning
from trainer.setup import Session, describe_dataset
from trainer.tracking import Tracker


def announce(emit: Emit, session: Session, tracker: Tracker, world: int,
             thread_plan: threads.ThreadPlan) -> None:
    """Emit what a run says before its first update: the `run_started` event and warnings.

    `run_started` carries the config (with the seed drawn), the model's facts (family and
    each encoder's row width come from the conditioner), the dataset, device, precision,
    processes, the plan's start/end and rate, the restored L_det history's length and the CPU
    thread plan this process applied (`thread_plan`), with the count torch uses. Warnings: a resume whose restored DVAR history already meets the stop rule
    (specs/dvar-and-schedules.md: correct, but the user must hear it), and a batch larger
    than the dataset. Main process only.
    """
    cfg = session.config
    facts = session.preflight.facts
    emit(RunStarted(
        config=_config_dict(cfg) | {"seed": session.seed}, model={
            "name": cfg.model, "path": str(session.preflight.model_path),
            "token_dim": facts.token_dim, "prediction_type": facts.prediction_type,
            "native_resolution": facts.native_resolution,
            # The family and the width of each encoder's rows come from the conditioner.
            "family": session.conditioner.family,
            "parts": dict(session.conditioner.parts)},
        dataset=describe_dataset(session), device=str(session.device),
        precision=cfg.mixed_precision, num_processes=world,
        start_step=session.start_step, max_steps=session.end_step,
        learning_rate=session.plan.rate_at(session.start_step),
        lr_scale=session.plan.lr_scale,
        end_reason=session.plan.limit, ldet_history=len(tracker.rows),
        trigger=session.placeholder.trigger, tokens=session.placeholder.tokens,
        output_dir=str(cfg.output_path), cpu_threads=thread_plan.as_dict() | {"torch_threads": torch.get_num_threads()},
        latent_cache_memory_mb=session.latent_cache_memory_mb))
    if session.resumed is not None and cfg.early_stopping == "dvar" and tracker.stopped:
        # Correct by the spec (the restored history already meets the stop rule), but a
        # user who resumed to train on must hear it before the run ends after one update.
        emit(Warning(message="The checkpoint's L_det history already meets DVAR's stop rule, "
                             "so this run stops again after its first update; to train on, "
                             "resume with --early_stopping none."))
    per_update = session.plan.images_per_update
    if per_update > session.cache.num_images:
        emit(Warning(message=f"Batch x accumulation x processes = {per_update} is more than "
                             f"the {session.cache.num_images} images, so each update sees "
                             f"some images twice ({per_update} images per update); nothing "
                             "was clamped."))


def _config_dict(config: TrainConfig) -> dict:
    """The run's settings as plain values, without the hub token (never written to a file)."""
    return {k: v for k, v in dataclasses.asdict(config).items() if k != "hub_token"}

