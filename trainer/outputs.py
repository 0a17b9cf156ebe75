"""Everything the main process writes during and after a run, and the events that say so.

Snapshots go to OUTPUT_DIR/embeddings/<file>-steps-N.*, checkpoints to OUTPUT_DIR/checkpoint-N/,
previews to OUTPUT_DIR/previews/step-N.png, and at the end the final embedding files (one per
format trainer/formats.py picks for the family and --save_as), dvar_history.csv and, for an
InvokeAI 2.3/3.x root, a copy in ROOT/embeddings/<trigger>/ (trainer/install_guide.py). A write
that fails (disk full, read-only folder) stops the run with one clear sentence; because every
file is written to a temporary name first, the previous checkpoint and embedding stay intact.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

import torch

from trainer import checkpoint, data, formats, fsutil, install_guide
from trainer.config import TrainConfig
from trainer.errors import OutputError, write_failed  # noqa: F401 (OutputError re-exported)
from trainer.events import CheckpointSaved, EmbeddingSaved, Emit, PreviewSaved, Warning
from trainer.fsutil import atomic_write_bytes, atomic_write_text
from trainer.lock import LOCK_NAME


def remove_stale_temporaries(folder: Path) -> None:
    """Clean up after a killed run: delete its temporaries (they are never read), and put
    back a checkpoint it had moved aside to replace (`.checkpoint-N.old`, see
    fsutil.atomic_dir) if the replacement never got its name."""
    fsutil.restore_moved_aside(folder)
    for pattern in (".*.tmp", "*/.*.tmp"):
        for path in folder.glob(pattern):
            if path.name == f"{LOCK_NAME}.{os.getpid()}.tmp":
                continue
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)


class Outputs:
    """Writes snapshots, checkpoints, previews and the final files of one run (main process
    only) and emits the event for each; every write failure becomes an OutputError."""

    def __init__(self, config: TrainConfig, session, emit: Emit):
        self.cfg = config
        self.session = session
        self.emit = emit
        self.out = config.output_path
        self.last_checkpoint_step: int | None = None

    def _guard(self, what: Path, action: Callable[[], object]):
        try:
            return action()
        except Exception as exc:
            failure = fsutil.as_os_error(exc)  # libraries report a full disk as their own type
            if failure is None:
                raise
            fsutil.release_reserve()  # room for the error and stopped events
            raise write_failed(what, failure, self.out) from None

    def _parts(self, vectors: torch.Tensor) -> tuple[dict[str, torch.Tensor], str]:
        """The trained [n, width] rows as per-encoder parts (the contract formats' writers
        take: {"text_encoder": ...} or {"clip_l": ..., "clip_g": ...}), and the model family."""
        conditioner = self.session.conditioner
        return conditioner.split(vectors.detach()), conditioner.family

    def _embedding(self, folder: Path, step: int, vectors: torch.Tensor, suffix: str,
                   final: bool) -> dict[str, Path]:
        parts, family = self._parts(vectors)
        paths = self._guard(folder, lambda: formats.save_embedding(
            folder, self.session.placeholder.trigger, parts, family, step=step,
            model_name=self.cfg.model, suffix=suffix, save_as=self.cfg.save_as))
        self.emit(EmbeddingSaved(step=step, paths=[str(p) for p in paths.values()], final=final))
        return paths

    def checkpoint(self, step: int, vectors: torch.Tensor, state_fn) -> Path:
        """Write checkpoint-<step>/ from the rows [n, width] and `state_fn()` (the loop's
        state dict), pruning to --checkpoints_total_limit; emits CheckpointSaved.
        OutputError if the disk refuses."""
        meta = {"trigger": self.session.placeholder.trigger,
                "tokens": self.session.placeholder.tokens,
                "num_vectors": self.cfg.num_vectors,
                "token_dim": self.session.preflight.facts.token_dim,
                "model_path": str(self.session.preflight.model_path),
                "seed": self.session.seed, "config": _plain_config(self.cfg)}
        path = self._guard(self.out, lambda: checkpoint.save_checkpoint(
            self.out, step, vectors, state_fn(), meta, self.cfg.to_toml(),
            self.cfg.checkpoints_total_limit))
        self.last_checkpoint_step = step
        self.emit(CheckpointSaved(step=step, path=str(path)))
        return path

    def preview(self, step: int) -> Path:
        """Render --num_validation_images for the validation prompt into
        previews/step-<step>.png; emits PreviewSaved. OutputError if the disk refuses."""
        from trainer.preview import render_preview

        prompt = data.preview_template(self.cfg.validation_prompt,
                                       self.session.placeholder.trigger)
        text = data.fill(prompt, self.session.placeholder.prompt_text)
        shown = data.fill(prompt, self.session.placeholder.trigger)
        target = self.out / "previews" / f"step-{step}.png"
        self._guard(target, lambda: render_preview(self.session, text, target,
                                                   self.cfg.num_validation_images))
        self.emit(PreviewSaved(step=step, path=str(target), prompt=shown))
        return target

    def periodic(self, step: int, vectors: torch.Tensor, requests: set[str], state_fn) -> None:
        """After update `step`: the snapshot, checkpoint and preview that --save_steps,
        --checkpointing_steps and --validation_steps call for, plus those asked for in
        `requests` ("save", "preview"). The end step's checkpoint is left to `final`."""
        cfg = self.cfg
        if cfg.save_steps and step % cfg.save_steps == 0:
            self._embedding(self.out / "embeddings", step, vectors,
                            formats.SNAPSHOT_SUFFIX.format(step=step), final=False)
        at_end = step >= self.session.end_step  # final() writes that checkpoint, last
        if ((cfg.checkpointing_steps and step % cfg.checkpointing_steps == 0)
                or "save" in requests) and not at_end:
            self.checkpoint(step, vectors, state_fn)
        if (cfg.validation_steps and step % cfg.validation_steps == 0) or "preview" in requests:
            self.preview(step)

    def final(self, step: int, vectors: torch.Tensor, reason: str, state_fn) -> list[Path]:
        """Write the final embedding files, dvar_history.csv, a last checkpoint, the optional
        pipeline and the InvokeAI 2.3/3.x copy; returns every path written."""
        embedding_files = self._embedding(self.out, step, vectors, "", final=True)
        files = list(embedding_files.values())
        tracker = state_fn()["tracker"]
        if tracker["rows"]:
            history = self.out / "dvar_history.csv"
            self._guard(history, lambda: atomic_write_text(history, _csv(tracker["rows"])))
            files.append(history)
        if self.cfg.save_as_full_pipeline:
            files.append(self._guard(self.out, lambda: self._full_pipeline()))
        if self.last_checkpoint_step != step and step > 0:
            # Always end with a checkpoint: it is a few KB (only the new rows and their
            # optimizer state), and it lets `--resume_from_checkpoint latest` extend any run.
            # Written after every other final file: if one of those fails (a full disk), the
            # newest checkpoint is still an earlier one, and resuming from it redoes the last
            # updates bit for bit and writes everything.
            files.append(self.checkpoint(step, vectors, state_fn))
        if self.cfg.save_as == "a1111" and "a1111" not in embedding_files:
            single = embedding_files.get("standalone")
            self.emit(Warning(message="--save_as a1111 writes a .pt only for SD 1.x/2.x; for "
                              f"this model AUTOMATIC1111 and Forge load {single} as it is."))
        copy = self._copy_to_root()
        if copy is not None:
            files.append(copy)
        return files

    def _copy_to_root(self) -> Path | None:
        """Copy the final embedding into an InvokeAI 2.3/3.x root's embeddings folder, as
        invokeai-ti did; an InvokeAI 4+ root gets no copy (its model manager installs files,
        and the run's end says how)."""
        root = Path(self.cfg.root).expanduser()
        # Only a real 2.3/3.x install: an empty or missing root (the default ~/invokeai on a
        # machine without InvokeAI) must not be created or filled.
        if not self.cfg.copy_to_embeddings or not install_guide.is_invokeai_legacy_root(root):
            return None
        trigger = self.session.placeholder.trigger
        source = install_guide.root_copy_source(self.out, trigger, self.cfg.num_vectors)
        if source is None:
            return None
        target = install_guide.root_copy_target(root, trigger, source)
        try:
            atomic_write_bytes(target, source.read_bytes())
            # An earlier run's copy under the other name would be a second <trigger> in
            # InvokeAI 2.3 (preflight warned at the start that it gets replaced).
            for earlier in install_guide.earlier_root_copies(root, trigger):
                if earlier != target:
                    earlier.unlink()
        except OSError as exc:
            # The run's own files are complete: a failed courtesy copy is no reason to fail it.
            self.emit(Warning(message=f"Could not copy the embedding to {target} "
                                      f"({exc.strerror or exc}); copy {source} there yourself.",
                              file=str(target)))
            return None
        return target  # the end lines say so (install_guide.tool_lines: "copied to ...")

    def _full_pipeline(self) -> Path:
        from trainer.preview import save_pipeline

        return save_pipeline(self.session, self.out / "pipeline")


def _csv(rows) -> str:
    lines = ["step,l_det,dvar_ratio"]
    lines += [f"{s},{v!r},{'' if r is None else repr(r)}" for s, v, r in rows]
    return "\n".join(lines) + "\n"


def _plain_config(config: TrainConfig) -> dict:
    import dataclasses

    return {k: v for k, v in dataclasses.asdict(config).items() if v is not None}
