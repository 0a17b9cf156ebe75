"""Issue 15's extra kinds, members found after the first sweep, each refused or said before
anything is written (tests/bad_input_helpers.py `refused`):

- text that becomes a folder must not reuse one it was not meant for: a finished run whose
  checkpoints were deleted (the summary offers it) still holds its embedding, and a folder of
  another tool's embeddings may hold a file of the same name; a fresh run, or `latest` with
  no checkpoint, would silently write over either. An InvokeAI 2.3/3.x root's copy of the
  same trigger under the other file name would be a second <trigger> there.
- advice names the setting that applies: a default output folder is named as made from the
  trigger under --root, not as an --output_dir nobody passed; a resume with nothing left is
  refused by preflight, so the run folder is not given an event log that calls it failed.
- what cannot fit the model is refused: a DVAR evaluation batch larger than the model's noise
  timesteps (each of its images takes a different one) ended in an internal error, exit 1.
"""

from __future__ import annotations

import shutil

import pytest

from trainer.errors import ConfigError, ResumeError
from trainer.preflight import preflight

from tests.bad_input_helpers import refused
from tests.helpers import tree_state


def _without_checkpoints(finished_run, tmp_path, **changes):
    config = finished_run.copy(tmp_path, **changes)
    for folder in config.output_path.glob("checkpoint-*"):
        shutil.rmtree(folder)
    return config


@pytest.mark.parametrize("resume", [None, "latest"], ids=["fresh", "latest"])
def test_a_finished_run_without_checkpoints_is_not_written_over(finished_run, tmp_path, resume):
    config = _without_checkpoints(finished_run, tmp_path, resume_from_checkpoint=resume)
    before = tree_state(config.output_path)
    refused(config, ConfigError, "output_dir", "already holds an embedding" if resume is None
            else "holds no checkpoint to resume", "(star-ti.safetensors)",
            f"--initial_embedding {config.output_path / 'star-ti.safetensors'}",
            "--output_dir")
    assert tree_state(config.output_path) == before


def test_snapshots_alone_may_be_started_again(finished_run, tmp_path):
    """What a run that failed before its first checkpoint leaves (a full disk): the documented
    remedy starts it again in the same folder."""
    config = _without_checkpoints(finished_run, tmp_path)
    for path in config.output_path.iterdir():
        if path.is_file():
            path.unlink()
    assert list((config.output_path / "embeddings").glob("star-ti-steps-*"))
    preflight(config)


def test_a_folder_of_other_embeddings_keeps_its_same_named_file(tiny_config, tmp_path):
    folder = tmp_path / "webui-embeddings"
    folder.mkdir()
    (folder / "someone-else.pt").write_bytes(b"another tool's embedding")
    config = tiny_config(output_dir=str(folder), placeholder_token="my-dog")
    preflight(config)  # other names: nothing of ours to replace
    (folder / "my-dog.safetensors").write_bytes(b"an embedding of the same name")
    refused(config, ConfigError, "output_dir", "(my-dog.safetensors)")


def test_a_default_output_folder_is_named_as_the_trigger_s_under_root(tiny_config, tmp_path):
    config = tiny_config(output_dir="", placeholder_token="moon")
    config.output_path.parent.mkdir(parents=True)
    config.output_path.write_text("a file where the run's folder would go")
    line = refused(config, ConfigError, "output_dir", "The default output folder for <moon>",
                   "--root", "pass --output_dir to choose another", "is a file")
    assert "Output directory (--output_dir)" not in line


def test_a_resume_with_nothing_left_is_refused_before_the_event_log_moves(finished_run,
                                                                         tmp_path):
    config = finished_run.copy(tmp_path, resume_from_checkpoint="latest", max_train_steps=100,
                               num_train_epochs=1, repeats=1, train_batch_size=8)
    before = tree_state(config.output_path)
    refused(config, ResumeError, "num_train_epochs", "already at step 4",
            "raise --num_train_epochs")
    assert tree_state(config.output_path) == before


def test_an_evaluation_batch_larger_than_the_noise_schedule_is_refused(tiny_config):
    refused(tiny_config(dvar_eval_batch_size=1001), ConfigError, "dvar_eval_batch_size",
            "1000 noise timesteps", "use at most 1000")
    preflight(tiny_config(dvar_eval_batch_size=1001, dvar_eval_every=0))  # no DVAR batch


def test_an_earlier_root_copy_is_announced_then_replaced_not_doubled(finished_run, tmp_path):
    from trainer import train

    config = finished_run.copy(tmp_path, resume_from_checkpoint="latest", max_train_steps=6)
    installed = tmp_path / "root" / "embeddings" / "star-ti"
    (installed / "learned_embeds.bin").write_bytes(b"a one-vector run's copy")
    (warning,) = [w for w in preflight(config).warnings if "already holds" in w]
    assert str(installed) in warning and "--no_copy_to_embeddings" in warning
    train(config)
    assert sorted(p.name for p in installed.iterdir()) == ["star-ti.safetensors"]
