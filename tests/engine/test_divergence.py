"""Finite is not usable (issue 15, item 2): an absurd learning rate drives the trained vectors
to ~1e30 while the loss is still finite. The run must notice, keep and checkpoint the last good
vectors (and their optimizer state), say which setting to change, and a resume at a sane rate
from that checkpoint must work.
"""

from __future__ import annotations

import pytest
import torch

from trainer import checkpoint, train
from trainer.divergence import FP16_MAX, NORM_FACTOR, VocabularyRange
from trainer.formats import load_embedding
from trainer.errors import UserError

from tests.fault_helpers import assert_every_file_whole
from tests.helpers import make_config


def test_one_absurd_update_is_undone_and_the_run_stops_naming_the_rate(
        tiny_model_dir, demo_images_dir, tmp_path):
    config = make_config(tiny_model_dir, demo_images_dir, tmp_path, learning_rate="1e30",
                         max_train_steps=12, save_steps=4, checkpointing_steps=4,
                         dvar_eval_every=0)
    sink: list = []
    result = train(config, emit=sink.append)
    assert result.reason == "error"
    error = next(e for e in sink if e.type == "error")
    assert error.user_error
    assert error.message.startswith("The trained vectors diverged at step 1:")
    assert "kept the embedding of step 0" in error.message
    assert "--learning_rate" in error.hint and "1e+30" in error.hint
    assert "--resume_from_checkpoint latest" in error.hint
    out = config.output_path
    _, saved = load_embedding(out / "learned_embeds.safetensors")
    final = checkpoint.load_checkpoint(checkpoint.latest_checkpoint(out))
    for vectors in (saved, final.vectors, result.vectors):
        assert torch.isfinite(vectors).all() and vectors.abs().max() < 10
    assert torch.equal(saved, final.vectors)
    # The optimizer state in the checkpoint is the untouched one of step 0 (nothing poisoned).
    state = final.state["optimizer"]["state"]
    assert all(torch.isfinite(t).all() for s in state.values() for t in s.values()
               if isinstance(t, torch.Tensor) and t.is_floating_point())
    assert_every_file_whole(out)
    # The documented recovery: resume at a sane rate.
    resumed: list = []
    again = train(config.replace(learning_rate="5e-3", resume_from_checkpoint="latest"),
                  emit=resumed.append)
    assert again.reason == "max_steps" and again.step == 12
    assert not [e for e in resumed if e.type == "error"]
    assert torch.isfinite(again.vectors).all() and again.vectors.abs().max() < 10


def test_a_later_divergence_keeps_the_last_good_step(tiny_model_dir, demo_images_dir,
                                                     tmp_path):
    # Sane for 3 updates, then the schedule jumps to an absurd rate.
    config = make_config(tiny_model_dir, demo_images_dir, tmp_path,
                         learning_rate="5e-3:3, 1e30", max_train_steps=8, save_steps=0,
                         checkpointing_steps=0, dvar_eval_every=0)
    sink: list = []
    result = train(config, emit=sink.append)
    error = next(e for e in sink if e.type == "error")
    assert "diverged at step 4" in error.message and "embedding of step 3" in error.message
    steps = [e for e in sink if e.type == "step"]
    assert [e.step for e in steps] == [1, 2, 3, 4]
    assert result.reason == "error"
    _, saved = load_embedding(config.output_path / "learned_embeds.safetensors")
    assert saved.abs().max() < 10


def test_an_initial_embedding_that_diverged_is_refused(tiny_model_dir, demo_images_dir,
                                                       tmp_path):
    from safetensors.torch import save_file

    (tmp_path / "emb").mkdir()
    save_file({"<star>": torch.full((1, 32), 1e30)},
              str(tmp_path / "emb" / "learned_embeds.safetensors"))
    config = make_config(tiny_model_dir, demo_images_dir, tmp_path,
                         initial_embedding=str(tmp_path / "emb" / "learned_embeds.safetensors"))
    with pytest.raises(UserError) as info:
        train(config)
    assert info.value.field == "initial_embedding"
    assert "learned_embeds.safetensors holds vectors that" in str(info.value)


# --- the rule ------------------------------------------------------------------------------


def test_the_rule_measures_each_encoder_part_against_its_own_vocabulary():
    small = torch.full((10, 4), 0.1)  # row norm 0.2
    wide = torch.full((10, 6), 2.0)  # row norm ~4.9
    vocab = VocabularyRange.from_tables([small, wide])
    assert vocab.widths == (4, 6)
    ok = torch.cat([torch.full((2, 4), 1.0), torch.full((2, 6), 100.0)], dim=1)
    assert vocab.problem(ok) is None  # part 2 is far beyond part 1's range, but not its own
    bad = torch.cat([torch.full((2, 4), 100.0), torch.full((2, 6), 1.0)], dim=1)
    problem = vocab.problem(bad)
    assert problem is not None and f"more than {NORM_FACTOR:g} times" in problem


def test_values_beyond_fp16_are_unusable_even_inside_a_wide_vocabulary():
    vocab = VocabularyRange.from_tables([torch.full((4, 8), 1e6)])
    assert vocab.problem(torch.full((1, 8), 6e4)) is None
    problem = vocab.problem(torch.full((1, 8), 7e4))
    assert problem is not None and f"{FP16_MAX:g}" in problem
    assert "NaN" in vocab.problem(torch.tensor([[float("nan")] * 8]))
