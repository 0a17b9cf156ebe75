"""Real runs on the tiny random-weight model: events, files, numbers, and diffusers loading."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from trainer import train
from trainer.config import TrainConfig
from trainer.formats import load_embedding

from tests.helpers import make_config


# The shared finished run (tests/conftest.py `finished_run`): two vectors, --save_as a1111,
# 4 updates of batch 2 with snapshots and checkpoints at steps 2 and 4, an InvokeAI 2.3 root.


def test_events_tell_the_whole_run(finished_run):
    events = finished_run.events
    types = [e.type for e in events]
    assert types[0] == "phase" and "run_started" in types and types[-1] == "stopped"
    steps = [e for e in events if e.type == "step"]
    assert [s.step for s in steps] == list(range(1, 5))
    assert all(math.isfinite(s.loss) and s.lr == pytest.approx(5e-3) for s in steps)
    assert [s.images_seen for s in steps] == [2 * k for k in range(1, 5)]
    assert steps[-1].epoch == pytest.approx(8 / 6)
    assert all(s.l_det is not None for s in steps)
    assert steps[2].dvar_ratio is None and steps[3].dvar_ratio == pytest.approx(1.0)
    started = next(e for e in events if e.type == "run_started")
    assert started.tokens == ["<star>", "<star>_1"] and started.dataset["n_images"] == 6
    assert started.dataset["images_per_update"] == 2 and not started.dataset["full_cycle"]
    assert started.dataset["epochs_total"] == pytest.approx(4 * 2 / 6)
    stopped = events[-1]
    assert stopped.reason == "max_steps" and stopped.step == 4


def test_files_are_written_where_designed(finished_run):
    config = finished_run.config
    out = config.output_path
    for name in ("star-ti.safetensors", "learned_embeds.safetensors", "learned_embeds.bin",
                 "star-ti.pt", "dvar_history.csv", "checkpoint-2", "checkpoint-4",
                 "embeddings/learned_embeds-steps-2.safetensors",
                 "embeddings/learned_embeds-steps-4.bin", "embeddings/star-ti-steps-4.safetensors",
                 "embeddings/star-ti-steps-2.pt"):
        assert (out / name).exists(), name
    history = (out / "dvar_history.csv").read_text().splitlines()
    assert history[0] == "step,l_det,dvar_ratio" and len(history) == 5
    # Two vectors: InvokeAI 2.3 reads them from <name>.safetensors, not from the .bin.
    copied = Path(config.root) / "embeddings" / "star-ti"
    assert [p.name for p in copied.iterdir()] == ["star-ti.safetensors"]
    assert (copied / "star-ti.safetensors").read_bytes() == (out / "star-ti.safetensors").read_bytes()
    assert not list(out.rglob("*.tmp"))


def test_embedding_moved_from_the_initializer_and_formats_agree(finished_run, tiny_model_dir):
    from trainer.models import load_components

    config, vectors = finished_run.config, finished_run.vectors
    out = config.output_path
    table = load_components(tiny_model_dir).text_encoder.get_input_embeddings().weight
    from trainer.models import load_tokenizer

    star = load_tokenizer(tiny_model_dir).encode("star", add_special_tokens=False)[0]
    initial = table[star].expand(2, -1)
    saved = load_file(str(out / "learned_embeds.safetensors"))
    assert list(saved) == ["<star>"] and saved["<star>"].shape == (2, table.shape[1])
    assert not torch.allclose(saved["<star>"], initial)
    assert torch.equal(saved["<star>"], vectors)
    for name in ("learned_embeds.bin", "star-ti.pt", "star-ti.safetensors"):
        assert torch.equal(load_embedding(out / name)[1], vectors)
    a1111 = torch.load(out / "star-ti.pt", weights_only=True)
    assert a1111["name"] == "star-ti" and a1111["step"] == 4
    assert a1111["sd_checkpoint_name"] == config.model


@pytest.mark.parametrize("name", ["learned_embeds.safetensors", "learned_embeds.bin", "star-ti.pt",
                                  "star-ti.safetensors"])
def test_each_file_loads_in_diffusers(finished_run, tiny_model_dir, name):
    from diffusers import StableDiffusionPipeline

    config = finished_run.config
    pipe = StableDiffusionPipeline.from_pretrained(tiny_model_dir, local_files_only=True,
                                                   safety_checker=None,
                                                   requires_safety_checker=False)
    pipe.load_textual_inversion(str(config.output_path / name), token="<star>")
    ids = pipe.tokenizer.convert_tokens_to_ids(["<star>", "<star>_1"])
    table = pipe.text_encoder.get_input_embeddings().weight
    assert torch.allclose(table[ids], finished_run.vectors)


def test_single_vector_bin_is_1d_like_invokeai_and_loads(tiny_model_dir, demo_images_dir,
                                                        tmp_path):
    from diffusers import StableDiffusionPipeline

    config = make_config(tiny_model_dir, demo_images_dir, tmp_path, max_train_steps=2,
                         save_steps=0, checkpointing_steps=0, dvar_eval_every=0)
    events = []
    result = train(config, emit=events.append)
    data = torch.load(config.output_path / "learned_embeds.bin", weights_only=True)
    assert list(data) == ["<star>"] and data["<star>"].dim() == 1
    assert not any(e.type == "step" and e.l_det is not None for e in events)
    pipe = StableDiffusionPipeline.from_pretrained(tiny_model_dir, local_files_only=True,
                                                   safety_checker=None,
                                                   requires_safety_checker=False)
    pipe.load_textual_inversion(str(config.output_path / "learned_embeds.bin"))
    row = pipe.text_encoder.get_input_embeddings().weight[
        pipe.tokenizer.convert_tokens_to_ids("<star>")]
    assert torch.allclose(row, result.vectors[0])


def test_v_prediction_model_trains(tiny_vpred_model_dir, demo_images_dir, tmp_path):
    config = make_config(tiny_vpred_model_dir, demo_images_dir, tmp_path, max_train_steps=3,
                         save_steps=0, checkpointing_steps=0)
    events = []
    train(config, emit=events.append)
    started = next(e for e in events if e.type == "run_started")
    assert started.model["prediction_type"] == "v_prediction"
    assert events[-1].reason == "max_steps"


def test_same_seed_gives_the_same_run(finished_run, tmp_path):
    """The shared run again, into another folder (and root): the same losses, L_det values
    (exact: events.jsonl keeps every float's digits) and final vectors."""
    config = finished_run.config.replace(output_dir=str(tmp_path / "out"),
                                         root=str(tmp_path / "root"))
    events = []
    result = train(config, emit=events.append)

    def curve(run_events):
        return [(e.loss, e.l_det) for e in run_events if e.type == "step"]

    assert curve(events) == curve(finished_run.events) and len(curve(events)) == 4
    assert torch.equal(result.vectors, finished_run.vectors)


def test_run_toml_in_checkpoint_reruns(finished_run):
    config = finished_run.config
    meta = json.loads((config.output_path / "checkpoint-4" / "meta.json").read_text())
    assert meta["step"] == 4 and meta["trigger"] == "<star>" and meta["num_vectors"] == 2
    again = TrainConfig.from_toml(config.output_path / "checkpoint-4" / "run.toml")
    assert again == config
