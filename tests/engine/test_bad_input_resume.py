"""A bad resume or initial embedding (issue 7), and advice that names the limit that applies
(issue 15 kind b): refused in one sentence naming the field, the run folder untouched
(tests/bad_input_helpers.py).

The finished run resumed here is the session's shared one (tests/conftest.py `finished_run`:
trigger <star>, two vectors, checkpoints at steps 2 and 4); refusals only read it, and a test
that trains on works on a copy.
"""

from __future__ import annotations

import pytest
import torch

from trainer.errors import ConfigError, ResumeError, UserError
from trainer.formats import save_embedding
from trainer.preflight import preflight

from tests.bad_input_helpers import one_sentence, refused
from tests.helpers import make_config


# --- resume and initial embeddings ------------------------------------------------------------


def test_resume_latest_without_checkpoint_starts_fresh_and_says_so(tiny_config, tmp_path):
    """As diffusers' textual_inversion.py and invokeai-ti do (README's typical usage)."""
    (tmp_path / "out").mkdir()
    checked = preflight(tiny_config(resume_from_checkpoint="latest"))
    assert checked.resume_dir is None
    (warning,) = checked.warnings
    assert "fresh run" in warning and str(tmp_path / "out") in warning


def test_a_fresh_run_into_a_finished_run_is_refused(finished_run):
    before = sorted(p.name for p in finished_run.output_path.iterdir())
    refused(finished_run.config, ConfigError, "output_dir", "already holds a run", "checkpoint-4",
            "--resume_from_checkpoint latest", "--output_dir")
    assert sorted(p.name for p in finished_run.output_path.iterdir()) == before


def test_resume_named_checkpoint_missing(tiny_config, tmp_path):
    refused(tiny_config(resume_from_checkpoint="checkpoint-300"), ResumeError,
            "resume_from_checkpoint", "checkpoint-300", "does not exist")


def test_resume_checkpoint_of_another_trigger(finished_run):
    before = sorted(p.name for p in finished_run.output_path.iterdir())
    refused(finished_run.config.replace(placeholder_token="moon",
                                        resume_from_checkpoint="latest", max_train_steps=6),
            ResumeError, "resume_from_checkpoint", "trigger '<star>'", "'<moon>'")
    assert sorted(p.name for p in finished_run.output_path.iterdir()) == before


def test_resume_checkpoint_of_another_model(finished_run, tiny_vpred_model_dir):
    refused(finished_run.config.replace(model=str(tiny_vpred_model_dir),
                                        resume_from_checkpoint="latest", max_train_steps=6),
            ResumeError, "resume_from_checkpoint", "was made with model", "tiny-vpred")


def test_resume_same_model_through_a_symlink_is_accepted(finished_run, tmp_path):
    from trainer import train

    link = tmp_path / "same-model"
    link.symlink_to(finished_run.config.model)
    config = finished_run.copy(tmp_path, model=str(link), resume_from_checkpoint="latest",
                               max_train_steps=5)
    assert preflight(config).resume_dir.name == "checkpoint-4"
    assert train(config).step == 5


def test_resume_checkpoint_with_other_vector_count(finished_run):
    refused(finished_run.config.replace(num_vectors=3, resume_from_checkpoint="latest",
                                        max_train_steps=6),
            ResumeError, "resume_from_checkpoint", "number of vectors 2", "--num_vectors 2")


def test_initial_embedding_of_wrong_dimension(tiny_config, tmp_path):
    save_embedding(tmp_path / "sd2", "<old>", {"text_encoder": torch.zeros(1, 1024)}, "sd2",
                   step=0, model_name="x")
    refused(tiny_config(initial_embedding=str(tmp_path / "sd2" / "learned_embeds.safetensors")),
            ResumeError, "initial_embedding", "token dimension 1024", "token dimension 32",
            "SD 2.x")


def test_initial_embedding_with_other_vector_count(tiny_config, tmp_path):
    save_embedding(tmp_path / "two", "<old>", {"text_encoder": torch.zeros(2, 32)}, "sd1",
                   step=0, model_name="x")
    refused(tiny_config(initial_embedding=str(tmp_path / "two" / "learned_embeds.bin")),
            ResumeError, "initial_embedding", "holds 2 vectors", "--num_vectors 2")


def test_initial_embedding_missing_or_a_folder(tiny_config, tmp_path):
    refused(tiny_config(initial_embedding=str(tmp_path / "nope.pt")), ResumeError,
            "initial_embedding", "does not exist")
    refused(tiny_config(initial_embedding=str(tmp_path)), ResumeError, "initial_embedding",
            "is a folder")


def test_initial_embedding_that_is_not_an_embedding(tiny_config, tmp_path):
    (tmp_path / "junk.safetensors").write_bytes(b"\x00" * 64)
    refused(tiny_config(initial_embedding=str(tmp_path / "junk.safetensors")), ResumeError,
            "initial_embedding", "junk.safetensors", "not a readable embedding")
    torch.save({"a": torch.zeros(2, 32), "b": torch.zeros(2, 32)}, tmp_path / "two.bin")
    refused(tiny_config(initial_embedding=str(tmp_path / "two.bin")), ResumeError,
            "initial_embedding", "holds no embedding tensor")


# --- advice names the setting that applies (issue 15, extra kind b) ----------------------------


@pytest.mark.parametrize("changes, field, words", [
    (dict(max_train_steps=4), "max_train_steps",
     ("already at step 4", "raise --max_train_steps")),
    (dict(max_train_steps=100, num_train_epochs=1, repeats=1, train_batch_size=8),
     "num_train_epochs", ("already at step 4", "set by --num_train_epochs 1 x --repeats 1",
                          "raise --num_train_epochs")),
    (dict(max_train_steps=100, learning_rate="5e-3:2"), "learning_rate",
     ("(--learning_rate)", "ends at or before step 4", "a rate that has no step")),
], ids=["steps", "epochs", "schedule"])
def test_a_resume_past_the_end_names_the_limit_that_ends_the_run(finished_run, tmp_path, changes,
                                                                 field, words):
    from trainer import train

    config = finished_run.copy(tmp_path, resume_from_checkpoint="latest", **changes)
    with pytest.raises(UserError) as info:
        train(config)
    assert info.value.field == field, str(info.value)
    one_sentence(info.value, *words)
    if field != "max_train_steps":
        assert "--max_train_steps" not in str(info.value)


def test_a_schedule_that_ends_first_names_the_limit_it_cuts(tiny_model_dir, demo_images_dir,
                                                             tmp_path):
    from trainer import train

    sink: list = []
    train(make_config(tiny_model_dir, demo_images_dir, tmp_path, learning_rate="5e-3:2",
                      max_train_steps=4, save_steps=0, checkpointing_steps=0,
                      dvar_eval_every=0), emit=sink.append)
    said = [e.message for e in sink if e.type == "warning" and "schedule ends" in e.message]
    assert said == ["The --learning_rate schedule ends at step 2, before the --max_train_steps "
                    "limit (4); training stops there."]
