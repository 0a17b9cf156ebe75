"""The training loop: one step is one optimizer update, everywhere.

`train(config, emit, control)` runs a whole run in this process (or in each process of an
`accelerate launch`). Per update: draw `gradient_accumulation_steps` micro-batches, run the
frozen text encoder and UNet forward and backward to the few trainable rows, average the
gradient over processes, unscale, clip, step; then evaluate L_det for DVAR, emit a `step`
event, and save whatever is due. Files and events come only from the main process.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from trainer import (checkpoint, core_share, devices, divergence, fsutil, memory_advice, outputs,
                     threads)
from trainer.announce import announce
from trainer.config import TrainConfig
from trainer.control import CONTROL_DIR, Control
from trainer.errors import UserError, write_failed
from trainer.evaluation import deterministic_loss
from trainer.events import Emit, Error, Step, Stopped, StopReason, Warning
from trainer.optim import make_optimizer
from trainer.lock import RunLock
from trainer.objective import diffusion_loss
from trainer.preflight import Preflight, preflight
from trainer.sampler import BatchSampler
from trainer.setup import Session, prepare, resolve_seed
from trainer.tracking import Tracker

MAX_NONFINITE_IN_A_ROW = 10


@dataclass
class RunResult:
    """How `train` ended: why, at which step, the final rows and the files written."""

    reason: StopReason
    """Why the run ended (the stopped event's reason)."""
    step: int
    """Completed updates when it ended."""
    vectors: torch.Tensor
    """The final rows, fp32 [num_vectors, width], on the CPU whatever the run's device."""
    files: list[Path] = field(default_factory=list)
    """Every file the final save wrote (empty outside the main process)."""


def train(config: TrainConfig, emit: Emit | None = None, control: Control | None = None,
          accelerator=None, checked: Preflight | None = None) -> RunResult:
    """Run one training run; every outcome, errors included, ends with a `stopped` event.

    `checked` is the Preflight of `config` when this process just ran it (trainer/start.py);
    otherwise every check runs here.
    """
    from accelerate import Accelerator

    _quiet_libraries()
    # Mixed precision is applied by the loop itself (autocast + GradScaler on the few trained
    # rows), so accelerate only provides the device, the process group and the reductions.
    accelerator = accelerator or Accelerator(mixed_precision="no")
    # The CPU threads of this process (trainer/threads.py); in-process callers get their own
    # count back when the run ends.
    threads_before = torch.get_num_threads()
    main = accelerator.is_main_process
    sink: Emit = emit if (emit is not None and main) else (lambda event: None)
    control = control or Control(config.output_path / CONTROL_DIR if main else None)
    lock = None
    loop: _Loop | None = None
    try:
        # An automatic count is watched from here, before the model loads, so the first
        # measurement of the other processes spans the loading.
        thread_plan = threads.plan_threads(config.cpu_threads, threads.local_processes())
        torch.set_num_threads(thread_plan.threads)
        cores = core_share.SharedCores(thread_plan.threads) if thread_plan.adapts else None
        if checked is None:
            checked = preflight(config, check_lock=main)
        if main:
            try:
                config.output_path.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise write_failed(config.output_path, exc) from None
            lock = RunLock.acquire(config.output_path)
            outputs.remove_stale_temporaries(config.output_path)
            fsutil.reserve_space(config.output_path)  # room to report a full disk later
        seed = _shared_seed(resolve_seed(config, checked), accelerator)
        device = devices.resolve_device(config.device, accelerator)
        session = prepare(config, checked, device=device,
                          num_processes=accelerator.num_processes, seed=seed, emit=sink)
        loop = _Loop(session, accelerator, sink, control, thread_plan, cores)
        return loop.run()
    except UserError as exc:
        sink(Error(message=str(exc), user_error=True))
        sink(Stopped(reason=StopReason.ERROR, step=loop.step if loop else 0, message=str(exc)))
        raise
    except Exception as exc:
        failure = fsutil.as_os_error(exc)
        if failure is not None and failure.errno in fsutil.DISK_FULL_ERRNOS:
            # A full or read-only disk met by a write outside the guarded ones: the same one
            # sentence and exit code 2, never an "internal error".
            fsutil.release_reserve()
            error = write_failed(failure.filename or config.output_path, failure,
                                 config.output_path)
            sink(Error(message=str(error), user_error=True))
            sink(Stopped(reason="error", step=loop.step if loop else 0, message=str(error)))
            raise error from None
        if memory_advice.is_out_of_memory(exc):
            # The user can fix it: the last update's embedding is saved, then one sentence
            # naming the settings of this run that lower the memory (exit 2).
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            files = loop.emergency_save() if loop is not None and main else []
            error = memory_advice.out_of_memory_error(
                config, devices.device_type(config.device), step=loop.step if loop else None,
                saved=bool(files), resolution=checked.resolution if checked else None)
            sink(Error(message=str(error), user_error=True))
            sink(Stopped(reason=StopReason.ERROR, step=loop.step if loop else 0,
                         message=str(error), files=[str(f) for f in files]))
            raise error from None
        files = loop.emergency_save() if loop is not None and main else []
        sink(Error(message=f"Internal error: {type(exc).__name__}: {exc}", user_error=False,
                   hint="See trainer.log in the output folder for the traceback."))
        sink(Stopped(reason=StopReason.ERROR, step=loop.step if loop else 0, message=str(exc),
                     files=[str(f) for f in files]))
        raise
    finally:
        torch.set_num_threads(threads_before)
        if lock is not None:
            fsutil.release_reserve()
            lock.release()


def _quiet_libraries() -> None:
    """Library chatter (torchvision notices, resize hints) is noise in a run's log."""
    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    transformers_logging.set_verbosity_error()
    diffusers_logging.set_verbosity_error()


def _shared_seed(seed: int, accelerator) -> int:
    """Every process must draw the same batches: take the main process's seed."""
    if accelerator.num_processes == 1:
        return seed
    from accelerate.utils import broadcast_object_list

    return int(broadcast_object_list([seed])[0])


class _Loop:
    """One run's updates after `prepare`: the optimizer, loss scaler, sampler and noise
    generator, the DVAR tracker, the divergence guard and (main process) the Outputs.

    `run()` loops until the plan's end step, DVAR's stop, a stop request or an error, and
    returns the RunResult; `state_dict()` is what a checkpoint stores to continue bit for bit.
    """

    def __init__(self, session: Session, accelerator, emit: Emit, control: Control,
                 thread_plan: threads.ThreadPlan, cores: core_share.SharedCores | None = None):
        self.session = session
        # The CPU thread plan train() applied; `cores` lowers the count while others work.
        self.thread_plan = thread_plan
        self.cores = cores
        self.cfg: TrainConfig = session.config
        self.accelerator = accelerator
        self.emit = emit
        self.control = control
        self.main = accelerator.is_main_process
        self.world = accelerator.num_processes
        self.vectors = session.vectors
        # AdamW, or SAM around it (trainer/optim.py); either runs its own gradient passes.
        self.optimizer = make_optimizer(self.cfg, [self.vectors],
                                        session.plan.rate_at(session.start_step))
        self.scaler = (torch.amp.GradScaler(session.device.type)
                       if self.cfg.mixed_precision == "fp16" else None)
        self.sampler = BatchSampler(session.cache.num_images, len(session.caption_ids),
                                    self.cfg.train_batch_size, seed=session.seed,
                                    rank=accelerator.process_index, world_size=self.world)
        self.noise_gen = torch.Generator().manual_seed(session.seed + 1_000_003 *
                                                       (accelerator.process_index + 1))
        self.timesteps = session.components.noise_scheduler.config.num_train_timesteps
        self.tracker = Tracker(self.cfg)
        self.step = session.start_step
        self.micro_batches = 0
        self.skipped_total = 0
        self.nonfinite_streak = 0
        self.last_good = self.vectors.detach().clone()
        self.files = outputs.Outputs(self.cfg, session, emit) if self.main else None
        if session.resumed is not None:
            self._restore(session.resumed.state)
        # Measured once: the range a usable row must stay in (trainer/divergence.py).
        self.vocabulary = divergence.VocabularyRange.from_tables(divergence.frozen_tables(
            session.conditioner.encoders))
        self._check_start_vectors()
        self.last_good_step = self.step
        self.last_good_optimizer = copy.deepcopy(self.optimizer.state_dict())

    # --- resume ---------------------------------------------------------------------------
    def _restore(self, state: dict) -> None:
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scaler is not None and state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        self.sampler.load_state_dict(state["sampler"])
        self.noise_gen.set_state(state["noise_generator"])
        checkpoint.restore_rng(state["rng"])
        self.micro_batches = int(state["micro_batches"])
        self.skipped_total = int(state["skipped_total"])
        self.tracker.load_state_dict(state["tracker"])

    def state_dict(self) -> dict:
        """Optimizer, loss scaler, sampler, noise generator, global RNGs, counters and the
        DVAR tracker: the checkpoint's state.pt (loaded back by `_restore`)."""
        return {"optimizer": self.optimizer.state_dict(),
                "scaler": self.scaler.state_dict() if self.scaler is not None else {},
                "sampler": self.sampler.state_dict(), "noise_generator": self.noise_gen.get_state(),
                "rng": checkpoint.capture_rng(), "micro_batches": self.micro_batches,
                "skipped_total": self.skipped_total, "tracker": self.tracker.state_dict()}

    # --- one update -------------------------------------------------------------------------
    def _inputs(self):
        batch = self.sampler.next()
        device = self.session.device
        latents = self.session.cache.sample(batch.indices, batch.flips, self.noise_gen)
        noise = torch.randn(latents.shape, generator=self.noise_gen).to(device)
        timesteps = torch.randint(0, self.timesteps, (len(batch.indices),),
                                  generator=self.noise_gen).to(device)
        caption_ids = self.session.caption_ids[batch.templates.to(device)]
        return latents, noise, timesteps, caption_ids, self.session.time_ids(len(batch.indices))

    def _accumulate(self, batches) -> torch.Tensor:
        """Forward and backward every micro-batch; returns the update's mean loss."""
        session = self.session
        components = session.components
        total = torch.zeros((), device=session.device)
        accumulation_steps = len(batches)
        for latents, noise, timesteps, ids, time_ids in batches:
            loss = diffusion_loss(unet=session.train_unet, conditioner=components.conditioner,
                                  scheduler=components.noise_scheduler, latents=latents,
                                  noise=noise, timesteps=timesteps, input_ids=ids,
                                  time_ids=time_ids, autocast=session.autocast,
                                  unet_dtype=session.unet_dtype) / accumulation_steps
            (self.scaler.scale(loss) if self.scaler is not None else loss).backward()
            total += loss.detach()
        self.micro_batches += accumulation_steps
        return total

    def _sync_grad(self) -> None:
        if self.world > 1:
            self.vectors.grad = self.accelerator.reduce(self.vectors.grad, reduction="mean")

    def _backward(self, batches) -> torch.Tensor:
        """One gradient pass over the update's micro-batches, averaged over processes."""
        loss = self._accumulate(batches)
        self._sync_grad()
        return loss

    def update(self) -> tuple[float, float, bool]:
        """One optimizer update; returns (loss, pre-clip grad norm, skipped)."""
        plan = self.session.plan
        for group in self.optimizer.param_groups:
            group["lr"] = plan.rate_at(self.step)
        batches = [self._inputs() for _ in range(self.cfg.gradient_accumulation_steps)]
        loss = self.optimizer.gradients(lambda: self._backward(batches))
        if self.world > 1:
            loss = self.accelerator.reduce(loss, reduction="mean")
        if self.scaler is not None:
            self.scaler.unscale_(self.optimizer)  # clip true gradients, never scaled ones
        grad_norm = float(self.vectors.grad.norm())
        value = plan.clip_at(self.step)
        if value is not None:
            if self.cfg.clip_grad_mode == "norm":
                torch.nn.utils.clip_grad_norm_([self.vectors], value)
            else:
                torch.nn.utils.clip_grad_value_([self.vectors], value)
        loss_value = float(loss)
        finite = math.isfinite(grad_norm) and math.isfinite(loss_value)
        if self.scaler is not None:
            scale = self.scaler.get_scale()
            self.scaler.step(self.optimizer)
            self.scaler.update()
            skipped = self.scaler.get_scale() < scale
        else:
            skipped = not finite
            if finite:
                self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.step += 1
        return loss_value, grad_norm, skipped

    # --- the run ------------------------------------------------------------------------------
    def run(self) -> RunResult:
        """Emit run_started, train until the run ends, write the final files and emit
        stopped; returns why and where it ended. UserError from a file write propagates
        (train reports it)."""
        announce(self.emit, self.session, self.tracker, self.world, self.thread_plan)
        reason = self.session.plan.limit
        if self._stop_requested():  # asked to stop while the model was loading
            return self._finish(StopReason.USER)
        if self.main and self.cfg.validation_steps and self.step == 0:
            self.files.preview(0)  # the starting point, so later previews can be compared
        while self.step < self.session.end_step:
            self._share_cores()
            started = time.perf_counter()
            loss, grad_norm, skipped = self.update()
            stop_reason = self._after_update(loss, grad_norm, skipped, started)
            if stop_reason is not None:
                reason = stop_reason
                break
        return self._finish(reason)

    def _share_cores(self) -> None:
        """Run as many CPU threads as the cores other processes leave (trainer/core_share.py)."""
        count = self.cores.threads() if self.cores is not None else None
        if count is not None:
            torch.set_num_threads(count)

    def _after_update(self, loss: float, grad_norm: float, skipped: bool,
                      started: float) -> StopReason | None:
        self.skipped_total += int(skipped)
        finite_rows = bool(torch.isfinite(self.vectors).all())
        # Finite is not usable: rows far outside the vocabulary's range encode to NaN later.
        diverged = self.vocabulary.problem(self.vectors) if finite_rows else None
        if not finite_rows or diverged:
            # The update is undone, optimizer state included: no file may hold such rows.
            self._restore_last_good()
        if skipped or not finite_rows or not math.isfinite(loss):
            self.nonfinite_streak += 1
        elif not diverged:
            self.nonfinite_streak = 0
            self.last_good = self.vectors.detach().clone()
            self.last_good_step = self.step
            self.last_good_optimizer = copy.deepcopy(self.optimizer.state_dict())
        metrics = (self.tracker.evaluate(self.step, self._l_det) if self.session.eval_batch
                   else {})
        seconds = time.perf_counter() - started
        plan = self.session.plan
        images = plan.images_per_update
        done = self.step - 1  # the update just made
        self.emit(Step(step=self.step, loss=loss, lr=plan.rate_at(done),
                       images_seen=self.sampler.items_drawn,
                       epoch=self.sampler.items_drawn / self.session.cache.num_images,
                       micro_batches=self.micro_batches * self.world, grad_norm=grad_norm,
                       clip_value=plan.clip_at(done),
                       skipped=skipped, skipped_total=self.skipped_total,
                       images_per_s=images / seconds if seconds > 0 else None,
                       step_seconds=seconds, memory_mb=_memory_mb(self.session.device),
                       cpu_threads=torch.get_num_threads(),
                       **metrics))
        if self.tracker.constant_warning_due():
            self.emit(Warning(message="L_det has not changed at all: the learning rate may be 0 "
                                      "or the embedding frozen; DVAR cannot decide."))
        if diverged:
            self.emit(Error(message=f"The trained vectors diverged at step {self.step}: they "
                                    f"{diverged}; stopped and kept the embedding of step "
                                    f"{self.last_good_step}.",
                            hint=divergence.advice(plan.rate_at(done), plan.lr_scale),
                            user_error=True))
            return StopReason.ERROR
        if self.nonfinite_streak >= MAX_NONFINITE_IN_A_ROW:
            with torch.no_grad():
                self.vectors.copy_(self.last_good)
            self.emit(Error(message=f"The loss was NaN or infinite for {MAX_NONFINITE_IN_A_ROW} "
                                    "updates in a row; stopped and kept the last finite "
                                    "embedding.", hint=_nan_advice(self.cfg), user_error=True))
            return StopReason.ERROR
        requests = self.control.take() if self.main else set()
        if self.main:
            self.files.periodic(self.step, self.vectors, requests, self.state_dict)
        if self.cfg.early_stopping == "dvar" and self.tracker.stopped:
            return StopReason.EARLY_STOP
        if self._stop_requested():
            return StopReason.USER
        return None

    def _restore_last_good(self) -> None:
        with torch.no_grad():
            self.vectors.copy_(self.last_good)
        self.optimizer.load_state_dict(copy.deepcopy(self.last_good_optimizer))

    def _check_start_vectors(self) -> None:
        """A checkpoint or initial embedding whose rows are unusable cannot start a run."""
        problem = self.vocabulary.problem(self.vectors)
        if problem is None:
            return
        resumed = self.session.resumed
        if resumed is not None:
            raise UserError(f"Checkpoint {resumed.path} holds vectors that {problem}; "
                            "resume from an older checkpoint-N folder, or drop "
                            "--resume_from_checkpoint to start fresh.",
                            field="resume_from_checkpoint")
        raise UserError(f"Initial embedding {self.cfg.initial_embedding} holds vectors that "
                        f"{problem}; it cannot be trained further: start from another "
                        "embedding or from --initializer_token.", field="initial_embedding")

    def _l_det(self) -> float:
        session = self.session
        components = session.components
        return deterministic_loss(session.eval_batch, unet=components.unet,
                                  conditioner=components.conditioner,
                                  scheduler=components.noise_scheduler, autocast=session.autocast,
                                  unet_dtype=session.unet_dtype)

    def _stop_requested(self) -> bool:
        if self.world == 1:
            return self.control.stop_requested
        # Every process must leave the loop at the same update, or the next all-reduce hangs.
        if self.control.stop_requested:
            self.accelerator.set_trigger()
        return bool(self.accelerator.check_trigger())

    def emergency_save(self) -> list[Path]:
        """After an unexpected failure, keep the last finite embedding if at all possible."""
        if self.step == self.session.start_step:
            return []
        try:
            with torch.no_grad():
                if self.vocabulary.problem(self.vectors) is not None:
                    self.vectors.copy_(self.last_good)
            return self.files.final(self.step, self.vectors, StopReason.ERROR, self.state_dict)
        except Exception:  # noqa: BLE001 - the original error is the one to report
            return []

    def _finish(self, reason: StopReason) -> RunResult:
        files: list[Path] = []
        if self.main:
            files = self.files.final(self.step, self.vectors, reason, self.state_dict)
            self.emit(Stopped(reason=reason, step=self.step, files=[str(f) for f in files],
                              **self.tracker.stop_facts(reason)))
        return RunResult(reason=reason, step=self.step,
                         vectors=self.vectors.detach().to("cpu", copy=True), files=files)


def _nan_advice(config: TrainConfig) -> str:
    """What to change after a NaN streak: the precision only when it is a half one."""
    precision = ("" if config.mixed_precision == "no" else
                 f", or use --mixed_precision no instead of {config.mixed_precision} (half "
                 "precision overflowing is the usual cause)")
    return (f"Lower --learning_rate{precision}, then resume with --resume_from_checkpoint "
            "latest.")


def _memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    import psutil

    return psutil.Process().memory_info().rss / 2**20
