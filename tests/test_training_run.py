"""Real runs on the tiny random-weight model: events, files, numbers, and diffusers loading."""

from __future__ import annotations

import json
import math

import pytest
import torch
from safetensors.torch import load_file

from trainer import train
from trainer.config import TrainConfig
from trainer.formats import load_embedding

from .helpers import make_config


@pytest.fixture(scope="module")
def two_vector_run(tiny_model_dir, demo_images_dir, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("run2")
    (tmp / "root").mkdir()
    (tmp / "root" / "invokeai.init").write_text("")  # an InvokeAI 2.3 root: it gets the copy
    config = make_config(tiny_model_dir, demo_images_dir, tmp, num_vectors=2,
                         initializer_token="star", save_as="a1111")
    events = []
    result = train(config, emit=events.append)
    return config, events, result


def test_events_tell_the_whole_run(two_vector_run):
    config, events, result = two_vector_run
    types = [e.type for e in events]
    assert types[0] == "phase" and "run_started" in types and types[-1] == "stopped"
    steps = [e for e in events if e.type == "step"]
    assert [s.step for s in steps] == list(range(1, 9))
    assert all(math.isfinite(s.loss) and s.lr == pytest.approx(5e-3) for s in steps)
    assert [s.images_seen for s in steps] == [2 * k for k in range(1, 9)]
    assert steps[-1].epoch == pytest.approx(16 / 6)
    assert all(s.l_det is not None for s in steps)
    assert steps[2].dvar_ratio is None and steps[3].dvar_ratio == pytest.approx(1.0)
    started = next(e for e in events if e.type == "run_started")
    assert started.tokens == ["<star>", "<star>_1"] and started.dataset["n_images"] == 6
    assert started.dataset["images_per_update"] == 2 and not started.dataset["full_cycle"]
    assert started.dataset["epochs_total"] == pytest.approx(8 * 2 / 6)
    stopped = events[-1]
    assert stopped.reason == "max_steps" and stopped.step == 8 == result.step


def test_files_are_written_where_designed(two_vector_run):
    config, events, _ = two_vector_run
    out = config.output_path
    for name in ("star-ti.safetensors", "learned_embeds.safetensors", "learned_embeds.bin",
                 "star-ti.pt", "dvar_history.csv", "checkpoint-4", "checkpoint-8",
                 "embeddings/learned_embeds-steps-4.safetensors",
                 "embeddings/learned_embeds-steps-8.bin", "embeddings/star-ti-steps-8.safetensors",
                 "embeddings/star-ti-steps-4.pt"):
        assert (out / name).exists(), name
    history = (out / "dvar_history.csv").read_text().splitlines()
    assert history[0] == "step,l_det,dvar_ratio" and len(history) == 9
    # Two vectors: InvokeAI 2.3 reads them from <name>.safetensors, not from the .bin.
    copied = config.output_path.parent / "root" / "embeddings" / "star-ti"
    assert [p.name for p in copied.iterdir()] == ["star-ti.safetensors"]
    assert (copied / "star-ti.safetensors").read_bytes() == (out / "star-ti.safetensors").read_bytes()
    assert not list(out.rglob("*.tmp"))


def test_embedding_moved_from_the_initializer_and_formats_agree(two_vector_run, tiny_model_dir):
    from trainer.models import load_components

    config, _, result = two_vector_run
    out = config.output_path
    table = load_components(tiny_model_dir).text_encoder.get_input_embeddings().weight
    from trainer.models import load_tokenizer

    star = load_tokenizer(tiny_model_dir).encode("star", add_special_tokens=False)[0]
    initial = table[star].expand(2, -1)
    saved = load_file(str(out / "learned_embeds.safetensors"))
    assert list(saved) == ["<star>"] and saved["<star>"].shape == (2, table.shape[1])
    assert not torch.allclose(saved["<star>"], initial)
    assert torch.equal(saved["<star>"], result.vectors)
    for name in ("learned_embeds.bin", "star-ti.pt", "star-ti.safetensors"):
        _, vectors = load_embedding(out / name)
        assert torch.equal(vectors, result.vectors)
    a1111 = torch.load(out / "star-ti.pt", weights_only=True)
    assert a1111["name"] == "star-ti" and a1111["step"] == 8
    assert a1111["sd_checkpoint_name"] == config.model


@pytest.mark.parametrize("name", ["learned_embeds.safetensors", "learned_embeds.bin", "star-ti.pt",
                                  "star-ti.safetensors"])
def test_each_file_loads_in_diffusers(two_vector_run, tiny_model_dir, name):
    from diffusers import StableDiffusionPipeline

    config, _, result = two_vector_run
    pipe = StableDiffusionPipeline.from_pretrained(tiny_model_dir, local_files_only=True,
                                                   safety_checker=None,
                                                   requires_safety_checker=False)
    pipe.load_textual_inversion(str(config.output_path / name), token="<star>")
    ids = pipe.tokenizer.convert_tokens_to_ids(["<star>", "<star>_1"])
    table = pipe.text_encoder.get_input_embeddings().weight
    assert torch.allclose(table[ids], result.vectors)


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


def test_same_seed_gives_the_same_run(tiny_model_dir, demo_images_dir, tmp_path):
    runs = []
    for name in ("a", "b"):
        config = make_config(tiny_model_dir, demo_images_dir, tmp_path / name,
                             max_train_steps=4, save_steps=0, checkpointing_steps=0)
        events = []
        result = train(config, emit=events.append)
        runs.append(([(e.loss, e.l_det) for e in events if e.type == "step"], result.vectors))
    assert runs[0][0] == runs[1][0]
    assert torch.equal(runs[0][1], runs[1][1])


def test_run_toml_in_checkpoint_reruns(two_vector_run):
    config, _, _ = two_vector_run
    meta = json.loads((config.output_path / "checkpoint-8" / "meta.json").read_text())
    assert meta["step"] == 8 and meta["trigger"] == "<star>" and meta["num_vectors"] == 2
    again = TrainConfig.from_toml(config.output_path / "checkpoint-8" / "run.toml")
    assert again == config
