"""Checkpoints and exact resume: a run stopped at step 4 and resumed equals a straight run."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from trainer import train
from trainer.control import Control
from trainer.formats import save_embedding
from trainer.errors import ResumeError
from trainer.preflight import preflight
from ti_tui.state import fold_all

from tests.helpers import make_config, stop_at


@pytest.fixture(scope="module")
def straight_and_resumed(tiny_model_dir, demo_images_dir, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("resume")
    common = dict(max_train_steps=6, save_steps=0, checkpointing_steps=0,
                  gradient_accumulation_steps=2, dvar_window=3)
    straight_events: list = []
    straight = train(make_config(tiny_model_dir, demo_images_dir, tmp / "a", **common),
                     emit=straight_events.append)
    config = make_config(tiny_model_dir, demo_images_dir, tmp / "b", **common)
    first_events: list = []
    control = Control()
    first = train(config, emit=stop_at(4, control, first_events), control=control)
    second_events: list = []
    resumed = train(config.replace(resume_from_checkpoint="latest"),
                    emit=second_events.append)
    return straight, straight_events, first, first_events, resumed, second_events, config


def test_user_stop_saves_a_checkpoint_and_the_embedding(straight_and_resumed):
    _, _, first, first_events, _, _, config = straight_and_resumed
    assert first.reason == "user" and first.step == 4
    assert (config.output_path / "checkpoint-4" / "meta.json").is_file()
    stopped = first_events[-1]
    assert stopped.type == "stopped" and stopped.reason == "user" and stopped.step == 4


def test_resumed_run_ends_with_the_same_embedding(straight_and_resumed):
    straight, straight_events, _, _, resumed, second_events, _ = straight_and_resumed
    assert resumed.step == straight.step == 6
    assert (resumed.vectors - straight.vectors).abs().max().item() <= 1e-6
    started = next(e for e in second_events if e.type == "run_started")
    assert started.start_step == 4
    tail = [(e.step, e.loss, e.l_det, e.images_seen) for e in second_events if e.type == "step"]
    full = [(e.step, e.loss, e.l_det, e.images_seen) for e in straight_events
            if e.type == "step" and e.step > 4]
    assert tail == full


def test_dvar_history_continues_across_the_resume(straight_and_resumed):
    _, straight_events, _, _, _, second_events, config = straight_and_resumed
    ratios = [e.dvar_ratio for e in straight_events if e.type == "step"]
    assert [e.dvar_ratio for e in second_events if e.type == "step"] == ratios[4:]
    lines = (config.output_path / "dvar_history.csv").read_text().splitlines()
    assert [line.split(",")[0] for line in lines[1:]] == ["1", "2", "3", "4", "5", "6"]
    # The dashboard's window fill goes on from the restored history too (not from 0).
    started = next(e for e in second_events if e.type == "run_started")
    assert started.ldet_history == 4
    assert fold_all(second_events).ldet_count == 6


def test_checkpoints_total_limit_keeps_the_newest(tiny_model_dir, demo_images_dir, tmp_path):
    config = make_config(tiny_model_dir, demo_images_dir, tmp_path, max_train_steps=6,
                         checkpointing_steps=1, checkpoints_total_limit=2, save_steps=0,
                         dvar_eval_every=0)
    train(config)
    names = sorted(p.name for p in config.output_path.glob("checkpoint-*"))
    assert names == ["checkpoint-5", "checkpoint-6"]


def test_resume_latest_without_checkpoint_starts_fresh_with_a_warning(tiny_model_dir,
                                                                      demo_images_dir, tmp_path):
    """README's typical usage passes `latest` on the first run too; diffusers'
    textual_inversion.py and invokeai-ti then start a new run, and so does this trainer."""
    config = make_config(tiny_model_dir, demo_images_dir, tmp_path, max_train_steps=2,
                         save_steps=0, checkpointing_steps=0, dvar_eval_every=0,
                         resume_from_checkpoint="latest")
    seen: list = []
    result = train(config, emit=seen.append)
    assert result.reason == "max_steps" and result.step == 2
    assert next(e for e in seen if e.type == "run_started").start_step == 0
    warnings = [e.message for e in seen if e.type == "warning"]
    assert any("found no checkpoint" in w and str(config.output_path) in w
               and "fresh run" in w for w in warnings), warnings


def test_resume_refuses_a_different_trigger(straight_and_resumed, tmp_path):
    *_, config = straight_and_resumed
    other = config.replace(placeholder_token="other", resume_from_checkpoint="latest")
    with pytest.raises(ResumeError, match="trigger"):
        train(other)


def test_resume_refuses_different_num_vectors(straight_and_resumed):
    *_, config = straight_and_resumed
    with pytest.raises(ResumeError, match="number of vectors"):
        train(config.replace(num_vectors=2, resume_from_checkpoint="latest"))


def test_resume_past_the_end_is_refused(straight_and_resumed):
    *_, config = straight_and_resumed
    with pytest.raises(ResumeError, match="raise --max_train_steps"):
        train(config.replace(resume_from_checkpoint="latest"))


def test_resume_with_more_steps_is_allowed_and_logged(straight_and_resumed):
    *_, config = straight_and_resumed
    events: list = []
    result = train(config.replace(resume_from_checkpoint="latest", max_train_steps=7),
                   emit=events.append)
    assert result.step == 7
    assert any(e.type == "warning" and "max_train_steps" in e.message for e in events)


def test_initial_embedding_starts_from_the_file(tiny_model_dir, demo_images_dir, tmp_path):
    from trainer.models import check_model_folder

    dim = check_model_folder(tiny_model_dir).token_dim
    start = torch.full((1, dim), 0.25)
    written = save_embedding(tmp_path / "init", "<old>", {"text_encoder": start}, "sd1",
                             step=0, model_name="x", save_as="a1111")
    a1111_file = next(p for p in written.values() if p.suffix == ".pt")  # old-ti.pt: a word
    config = make_config(tiny_model_dir, demo_images_dir, tmp_path, max_train_steps=1,
                         learning_rate="0", initial_embedding=str(a1111_file),
                         save_steps=0, checkpointing_steps=0, dvar_eval_every=0)
    result = train(config)
    assert torch.equal(result.vectors, start)


def test_initial_embedding_of_wrong_dimension_uses_invokeai_wording(
        tiny_model_dir, demo_images_dir, tmp_path):
    save_embedding(tmp_path / "init", "<old>", {"text_encoder": torch.zeros(1, 1024)}, "sd2",
                   step=0, model_name="x")
    config = make_config(tiny_model_dir, demo_images_dir, tmp_path,
                         initial_embedding=str(tmp_path / "init" / "learned_embeds.bin"))
    with pytest.raises(ResumeError, match=r"trained on a model with token dimension 1024 \(SD 2.x\), "
                                          "but the current model has token dimension 32"):
        preflight(config)


def test_resume_refuses_a_different_model(straight_and_resumed, tiny_vpred_model_dir):
    *_, config = straight_and_resumed
    with pytest.raises(ResumeError, match="model"):
        train(config.replace(model=str(tiny_vpred_model_dir), resume_from_checkpoint="latest"))
