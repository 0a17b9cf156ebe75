"""What the output folder already holds, checked before anything is written: a run to resume
(which checkpoint, whether it fits this run, whether anything is left to train), or results a
fresh run must not write over (another run's checkpoints or embedding, an earlier copy in an
InvokeAI 2.3/3.x root). trainer/preflight.py runs these; the trainer's setup reuses plan_from.
"""

from __future__ import annotations

import os
from pathlib import Path

from trainer import checkpoint, checkpoint_index, formats, install_guide, models
from trainer.config import TrainConfig
from trainer.errors import ConfigError, ResumeError


def check_no_previous_run(output_dir: Path) -> None:
    """Refuse a fresh run into a folder that holds another run's checkpoints: ConfigError
    (field output_dir).

    Training over it would replace its embeddings and leave its checkpoint-N folders beside
    the new ones, so a later `--resume_from_checkpoint latest` would pick the wrong run.
    """
    found = checkpoint.list_checkpoints(output_dir)
    if found:
        step, last = found[-1]
        raise ConfigError(f"Output folder {output_dir} already holds a run (last checkpoint "
                          f"{last.name}, step {step}); pass --resume_from_checkpoint latest "
                          "to continue it, or choose a new --output_dir.", field="output_dir")


def check_no_earlier_embedding(config: TrainConfig) -> None:
    """Refuse a fresh run into a folder already holding an embedding it would replace:
    ConfigError (field output_dir).

    A finished run whose checkpoints were deleted (the summary offers it) has no checkpoint-N
    left for check_no_previous_run to find, and a folder of another tool's embeddings may hold
    a file of the same name; a new run with the same trigger would silently write over
    either. Only a resume may write into a folder holding a result.
    """
    found = formats.earlier_embeddings(config.output_path, config.trigger)
    if not found:
        return
    where = ("--output_dir" if config.output_dir
             else f"--output_dir (the default for {config.trigger} is this folder)")
    first = found[0]
    held = ("holds no checkpoint to resume but an embedding a new run would replace"
            if config.resume_from_checkpoint == "latest"
            else "already holds an embedding a new run would replace")
    raise ConfigError(f"Output folder {config.output_path} {held} ({first.name}); choose "
                      f"another {where}, or start "
                      f"from it with --initial_embedding {first} and a new --output_dir.",
                      field="output_dir")


def root_copy_replaces(config: TrainConfig) -> list[str]:
    """A warning when the end-of-run copy into an InvokeAI 2.3/3.x root (--copy_to_embeddings)
    will replace an earlier run's copy of the same trigger there."""
    if not config.copy_to_embeddings or not install_guide.is_invokeai_legacy_root(config.root):
        return []
    found = install_guide.earlier_root_copies(config.root, config.trigger)
    if not found:
        return []
    return [f"{found[0].parent} already holds an embedding for {config.trigger} "
            f"({', '.join(p.name for p in found)}); this run's copy replaces it at the end, so "
            "pass --no_copy_to_embeddings to keep it installed."]


def resume_start(output_dir: Path, chosen: Path) -> int | None:
    """The step the run will resume at: that of `chosen`, or of the newest older checkpoint
    when `chosen` is damaged, decided by the loader the trainer uses
    (checkpoint.load_newest_usable: a checkpoint is a few KB of rows and optimizer state).
    None when every one is damaged (the trainer then says so)."""
    try:
        return checkpoint.load_newest_usable(output_dir, chosen, lambda *_: None).step
    except ResumeError:
        return None


def plan_from(config: TrainConfig, *, n_images: int, num_processes: int, start_step: int):
    """The run's plan (trainer/plan.py make_plan) from update `start_step` on; a resume that
    leaves nothing to train is a UserError naming the limit that ends the run.

    Raises ConfigError (field learning_rate) when a schedule string has no pair left after the
    checkpoint, and ResumeError (field max_train_steps, or num_train_epochs when the epoch
    limit comes first: raising --max_train_steps would do nothing then) when `start_step`
    is at or past the end."""
    from trainer.events import StopReason
    from trainer.plan import make_plan
    from trainer.schedules import ScheduleError

    try:
        plan = make_plan(config, n_images=n_images, num_processes=num_processes,
                         start_step=start_step)
    except ScheduleError as exc:
        # Only a resume gets here (TrainConfig checked the strings from step 0): a schedule
        # string whose every pair ends at or before the checkpoint.
        raise ConfigError(f"Learning rate (--learning_rate): {exc}",
                          field="learning_rate") from None
    if start_step < plan.end_step:
        return plan
    prefix = f"The checkpoint is already at step {start_step}, at or past the run's end"
    if plan.limit == StopReason.EPOCHS:
        raise ResumeError(f"{prefix} ({plan.end_step}, set by --num_train_epochs "
                          f"{config.num_train_epochs} x --repeats {config.repeats} passes over "
                          f"the images); raise --num_train_epochs to train further.",
                          field="num_train_epochs")
    raise ResumeError(f"{prefix} ({plan.end_step}); raise --max_train_steps to train further.",
                      field="max_train_steps")


def resume_stops_at_once(config: TrainConfig, resume_dir: Path) -> list[str]:
    """A warning when resuming the checkpoint DVAR stopped its run at with DVAR still on: the
    restored DVAR window is already below the threshold, so the run stops after one update."""
    step = checkpoint_index.stopped_by_dvar(resume_dir.parent)
    if config.early_stopping != "dvar" or step is None or resume_dir.name != f"checkpoint-{step}":
        return []
    return [f"DVAR already stopped this run at step {step}, so it stops again after one "
            "update; pass --early_stopping none to train on, or start fresh in a new "
            "--output_dir."]


def check_resume_matches(config: TrainConfig, resume_dir: Path, model_path: Path,
                         facts: models.ModelFacts) -> None:
    """Refuse a checkpoint made for another trigger, vector count or model, before writing.

    Reads meta.json of the chosen checkpoint, or of the newest older one whose meta.json is
    readable (a damaged checkpoint is skipped with a warning when the trainer loads it).
    """
    candidates = [resume_dir] + [p for _, p in reversed(
        checkpoint.list_checkpoints(resume_dir.parent)) if p != resume_dir]
    meta = next((m for m in map(checkpoint.read_meta, candidates) if m is not None), None)
    if meta is None:
        return  # every candidate is damaged: the trainer says so when it tries to load them
    theirs_model = meta.get("model_path")
    same_model = theirs_model is None or _same_path(theirs_model, model_path)
    checks = [("trigger", meta.get("trigger"), config.trigger,
               f"--placeholder_token '{meta.get('trigger')}'"),
              ("number of vectors", meta.get("num_vectors"), config.num_vectors,
               f"--num_vectors {meta.get('num_vectors')}"),
              ("model", theirs_model if not same_model else str(model_path), str(model_path),
               f"--model {theirs_model}"),
              ("token dimension", meta.get("token_dim"), facts.token_dim,
               "the model it was made with")]
    for what, theirs, ours, fix in checks:
        if theirs is not None and theirs != ours:
            raise ResumeError(f"Checkpoint {resume_dir} was made with {what} {theirs!r}, but "
                              f"this run has {ours!r}; resume with {fix}, or drop "
                              "--resume_from_checkpoint and use a new output directory.",
                              field="resume_from_checkpoint")


def _same_path(a: str | os.PathLike[str], b: str | os.PathLike[str]) -> bool:
    return os.path.realpath(os.path.expanduser(a)) == os.path.realpath(os.path.expanduser(b))


def find_resume(config: TrainConfig) -> Path | None:
    """The checkpoint folder to resume from, or None for a fresh run ("latest" in a folder
    with no checkpoint yet, as diffusers' textual_inversion.py does). ResumeError (field
    resume_from_checkpoint) when a named folder is missing or incomplete."""
    wanted = config.resume_from_checkpoint
    if not wanted:
        return None
    if wanted == "latest":
        return checkpoint.latest_checkpoint(config.output_path)
    path = Path(wanted).expanduser()
    if not path.is_absolute() and not path.exists():
        path = config.output_path / wanted
    if not checkpoint.is_complete(path):
        raise ResumeError(f"Checkpoint {path} does not exist or is incomplete; pass "
                          "'latest' or one of the checkpoint-N folders in "
                          f"{config.output_path}.", field="resume_from_checkpoint")
    return path
