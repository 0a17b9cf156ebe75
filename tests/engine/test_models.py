"""Finding, checking and loading local models (trainer/models.py)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from trainer.errors import ModelError
from trainer.models import (
    ModelEntry,
    check_model_folder,
    find_models,
    load_components,
    load_tokenizer,
    resolve_model,
)

from tests.helpers import link_model


def real_component(model: Path, src: Path, name: str, *, skip: tuple[str, ...] = ()) -> Path:
    """Replace the symlinked component `name` of `model` by a real folder of links."""
    (model / name).unlink()
    return link_model(src / name, model / name, skip=skip)


# --- InvokeAI 3.x+ layout ---------------------------------------------------------------------


@pytest.fixture
def invokeai3_root(tmp_path: Path, tiny_model_dir: Path, tiny_vpred_model_dir: Path) -> Path:
    root = tmp_path / "invokeai"
    models = root / "models"
    a = link_model(tiny_model_dir, models / "sd-1" / "main" / "model-a")
    (a / "nested").mkdir()
    (a / "nested" / "inner").symlink_to(tiny_model_dir)  # inside a model: not a model
    (models / "sd-2" / "main").mkdir(parents=True)
    (models / "sd-2" / "main" / "model-b").symlink_to(tiny_vpred_model_dir)
    (models / "sd-1" / "embedding" / "some-embedding").mkdir(parents=True)
    (models / "sd-1" / "embedding" / "some-embedding" / "learned_embeds.bin").write_bytes(b"x")
    (models / ".cache").mkdir()
    (models / ".cache" / "hidden-model").symlink_to(tiny_model_dir)
    (models / "loop").symlink_to(models)  # must not hang
    return root


def test_find_models_invokeai3(invokeai3_root: Path, tiny_vpred_model_dir: Path):
    found = find_models(invokeai3_root)
    assert [e.name for e in found] == ["sd-1/main/model-a", "sd-2/main/model-b"]
    assert {e.source for e in found} == {"invokeai3"}
    assert found[1].path.resolve() == tiny_vpred_model_dir.resolve()


def test_find_models_invokeai3_models_yaml(invokeai3_root: Path):
    # InvokeAI 3.0-3.x also kept configs/models.yaml, with paths relative to ROOT/models.
    (invokeai3_root / "configs").mkdir()
    (invokeai3_root / "configs" / "models.yaml").write_text(
        "__metadata__:\n  version: 3.0.0\n"
        "sd-1/main/model-a:\n  path: sd-1/main/model-a\n  format: diffusers\n"
    )
    found = find_models(invokeai3_root)
    assert [(e.name, e.source) for e in found] == [
        ("sd-1/main/model-a", "models.yaml"),
        ("sd-2/main/model-b", "invokeai3"),
    ]


def test_find_models_missing_root(tmp_path: Path):
    assert find_models(tmp_path / "nowhere") == []


# --- InvokeAI 2.3 layout ----------------------------------------------------------------------


@pytest.fixture
def invokeai23_root(tmp_path: Path, tiny_model_dir: Path) -> Path:
    root = tmp_path / "invokeai-2.3"
    link_model(tiny_model_dir, root / "models" / "converted" / "my-local")
    # Hugging Face cache with two revisions: refs/main names the older-looking one.
    repo = root / "models" / "hub" / "models--runwayml--stable-diffusion-v1-5"
    link_model(tiny_model_dir, repo / "snapshots" / "abc123")
    link_model(tiny_model_dir, repo / "snapshots" / "zzz999")
    os.utime(repo / "snapshots" / "abc123", (1_000_000, 1_000_000))
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("abc123")
    # A second repo without refs/main: the newest snapshot wins.
    other = root / "models" / "hub" / "models--someone--other" / "snapshots"
    link_model(tiny_model_dir, other / "old")
    link_model(tiny_model_dir, other / "new")
    os.utime(other / "old", (1_000_000, 1_000_000))
    (root / "models" / "ldm").mkdir()
    (root / "models" / "ldm" / "v1-5.ckpt").write_bytes(b"not really")
    (root / "configs").mkdir(parents=True)
    (root / "configs" / "models.yaml").write_text(
        """\
stable-diffusion-1.5:
  description: Stable Diffusion version 1.5 diffusers model
  repo_id: runwayml/stable-diffusion-v1-5
  format: diffusers
  default: true
other:
  repo_id: someone/other
  format: diffusers
my-local:
  path: models/converted/my-local
  format: diffusers
old-ckpt:
  config: configs/stable-diffusion/v1-inference.yaml
  weights: models/ldm/v1-5.ckpt
  format: ckpt
gone:
  path: models/converted/gone
  format: diffusers
"""
    )
    return root


def test_find_models_invokeai23(invokeai23_root: Path):
    found = {e.name: e for e in find_models(invokeai23_root)}
    # my-local is also under models/ but is listed once, under its models.yaml name.
    assert sorted(found) == ["my-local", "old-ckpt", "other", "stable-diffusion-1.5"]
    # 2.3's `format: ckpt` entries are single files now (this one is not a real one).
    assert found["old-ckpt"].format == "checkpoint"
    assert found["old-ckpt"].path == invokeai23_root / "models" / "ldm" / "v1-5.ckpt"
    described = {e.name: e for e in find_models(invokeai23_root, describe_all=True)}
    assert "damaged" in described["old-ckpt"].problem
    assert {e.source for e in found.values()} == {"models.yaml"}
    assert found["stable-diffusion-1.5"].path.name == "abc123"  # refs/main beats mtime
    assert found["other"].path.name == "new"
    assert found["my-local"].path == invokeai23_root / "models" / "converted" / "my-local"


def test_malformed_models_yaml(tmp_path: Path):
    (tmp_path / "configs").mkdir()
    config = tmp_path / "configs" / "models.yaml"
    config.write_text("foo: [unclosed\n")
    with pytest.raises(ModelError) as err:
        find_models(tmp_path)
    assert str(config) in str(err.value)
    config.write_text("- just\n- a list\n")
    with pytest.raises(ModelError, match="models.yaml"):
        find_models(tmp_path)


# --- resolve_model ----------------------------------------------------------------------------


def test_resolve_model(invokeai3_root: Path, tiny_model_dir: Path):
    assert resolve_model(str(tiny_model_dir), invokeai3_root) == tiny_model_dir
    by_name = resolve_model("sd-1/main/model-a", invokeai3_root)
    assert by_name == invokeai3_root / "models" / "sd-1" / "main" / "model-a"
    assert resolve_model("model-b", invokeai3_root).name == "model-b"


def test_resolve_model_not_found_lists_names(invokeai3_root: Path):
    with pytest.raises(ModelError) as err:
        resolve_model("foo", invokeai3_root)
    message = str(err.value)
    assert err.value.field == "model"
    assert message.startswith(f'Model "foo" was not found under {invokeai3_root}')
    assert "sd-1/main/model-a, sd-2/main/model-b" in message
    assert "--model" in message


def test_resolve_model_empty(tmp_path: Path):
    with pytest.raises(ModelError, match="--model is empty"):
        resolve_model("  ", tmp_path)


def test_resolve_model_no_models(tmp_path: Path):
    with pytest.raises(ModelError, match="found no models under") as err:
        resolve_model("foo", tmp_path)
    assert str(tmp_path / "models") in str(err.value)


def test_resolve_model_ambiguous_tail(tmp_path: Path, tiny_model_dir: Path):
    for base in ("sd-1", "sd-2"):
        (tmp_path / "models" / base).mkdir(parents=True)
        (tmp_path / "models" / base / "same").symlink_to(tiny_model_dir)
    with pytest.raises(ModelError, match="matches several"):
        resolve_model("same", tmp_path)


# --- check_model_folder -----------------------------------------------------------------------


def test_check_model_folder_facts(tiny_model_dir: Path, tiny_vpred_model_dir: Path):
    facts = check_model_folder(tiny_model_dir)
    assert facts.path == tiny_model_dir
    assert (facts.token_dim, facts.vocab_size, facts.native_resolution) == (32, 49408, 64)
    assert (facts.prediction_type, facts.num_train_timesteps) == ("epsilon", 1000)
    assert (facts.latent_channels, facts.vae_scaling_factor, facts.family) == (4, 0.18215, "sd1")
    assert json.loads(json.dumps(facts.to_dict()))["path"] == str(tiny_model_dir)
    assert check_model_folder(tiny_vpred_model_dir).prediction_type == "v_prediction"


def _broken(kind: str, tmp_path: Path, src: Path) -> Path:
    if kind == "missing":
        return tmp_path / "nope"
    if kind == "file":
        (tmp_path / "notes.txt").write_text("hi")
        return tmp_path / "notes.txt"
    if kind == "ckpt":
        (tmp_path / "v1-5-pruned.ckpt").write_bytes(b"\0")
        return tmp_path / "v1-5-pruned.ckpt"
    if kind == "not-diffusers":
        (tmp_path / "empty").mkdir()
        return tmp_path / "empty"
    if kind == "no-unet":
        return link_model(src, tmp_path / "m", skip=("unet",))
    if kind == "no-weights":
        model = link_model(src, tmp_path / "m")
        real_component(model, src, "vae", skip=("diffusion_pytorch_model.safetensors",))
        return model
    if kind == "no-vocab":
        model = link_model(src, tmp_path / "m")
        real_component(model, src, "tokenizer", skip=("vocab.json",))
        return model
    raise AssertionError(kind)


@pytest.mark.parametrize(
    "kind, expected",
    [
        ("missing", "does not exist"),
        ("file", "is a file, not a diffusers folder"),
        ("ckpt", "is a single-file checkpoint; pass --model the file itself"),
        ("not-diffusers", "no model_index.json"),
        ("no-unet", "has no unet/ folder"),
        ("no-weights", "has no vae weights"),
        ("no-vocab", "tokenizer/"),
    ],
)
def test_check_model_folder_refusals(kind, expected, tmp_path: Path, tiny_model_dir: Path):
    path = _broken(kind, tmp_path, tiny_model_dir)
    with pytest.raises(ModelError) as err:
        check_model_folder(path)
    assert expected in str(err.value)
    assert str(path) in str(err.value)
    assert err.value.field == "model"


# --- loading ----------------------------------------------------------------------------------


def test_load_tokenizer_from_tokenizer_json_only(tiny_model_dir: Path, tmp_path: Path):
    model = link_model(tiny_model_dir, tmp_path / "m", skip=("tokenizer",))
    load_tokenizer(tiny_model_dir).save_pretrained(model / "tokenizer")
    for name in ("vocab.json", "merges.txt"):  # transformers 4.x also writes these
        (model / "tokenizer" / name).unlink(missing_ok=True)
    assert (model / "tokenizer" / "tokenizer.json").is_file()
    tok = load_tokenizer(model)
    assert tok("a photo of a cat").input_ids == [49406, 320, 1125, 539, 320, 2368, 49407]
    assert check_model_folder(model).token_dim == 32


def test_load_tokenizer_from_a_tokenizer_folder(tiny_model_dir: Path, tmp_path: Path):
    tok = load_tokenizer(tiny_model_dir / "tokenizer")
    assert tok("a photo of a cat").input_ids[-2] == 2368
    with pytest.raises(ModelError, match="Could not load the tokenizer"):
        load_tokenizer(tmp_path)


def test_load_components_frozen(tiny_model_dir: Path):
    from diffusers import DDPMScheduler

    parts = load_components(tiny_model_dir)
    for module in (parts.text_encoder, parts.vae, parts.unet):
        assert not module.training
        assert not any(p.requires_grad for p in module.parameters())
    assert isinstance(parts.noise_scheduler, DDPMScheduler)
    assert parts.noise_scheduler.config.prediction_type == "epsilon"
    assert parts.tokenizer("a cat").input_ids == [49406, 320, 2368, 49407]
    assert parts.text_encoder.get_input_embeddings().weight.shape == (49408, 32)


def test_load_components_reads_pndm_scheduler_as_ddpm(tiny_vpred_model_dir: Path, tmp_path: Path):
    model = link_model(tiny_vpred_model_dir, tmp_path / "m", skip=("scheduler",))
    config = json.loads((tiny_vpred_model_dir / "scheduler" / "scheduler_config.json").read_text())
    config.update(_class_name="PNDMScheduler", skip_prk_steps=True, set_alpha_to_one=False)
    (model / "scheduler").mkdir()
    (model / "scheduler" / "scheduler_config.json").write_text(json.dumps(config))
    sched = load_components(model).noise_scheduler
    assert sched.config.prediction_type == "v_prediction"
    assert sched.config.beta_schedule == "scaled_linear" and sched.config.beta_end == 0.012


def test_corrupt_weights_name_the_file(tiny_model_dir: Path, tmp_path: Path):
    model = link_model(tiny_model_dir, tmp_path / "m")
    weights = "diffusion_pytorch_model.safetensors"
    unet = real_component(model, tiny_model_dir, "unet", skip=(weights,))
    (unet / weights).write_bytes(b"\x08\x00garbage")
    with pytest.raises(ModelError) as err:
        load_components(model)
    assert str(unet / weights) in str(err.value)
    assert err.value.field == "model"


def test_model_entry_is_frozen():
    entry = ModelEntry("a", Path("/x"), "invokeai3")
    with pytest.raises(AttributeError):
        entry.name = "b"  # type: ignore[misc]


@pytest.mark.parametrize("config", [{}, {"_class_name": "DDPMScheduler"},
                                    {"beta_schedule": "scaled_linear", "beta_start": 0.00085}])
def test_a_scheduler_config_without_its_noise_schedule_is_refused(tiny_model_dir: Path,
                                                                   tmp_path: Path, config):
    """diffusers would fill the missing betas with DDPM's defaults (linear, 1e-4..0.02), not
    SD's, and train on the wrong noise levels without a word: refused before anything runs."""
    model = link_model(tiny_model_dir, tmp_path / "m", skip=("scheduler",))
    (model / "scheduler").mkdir()
    (model / "scheduler" / "scheduler_config.json").write_text(json.dumps(config))
    with pytest.raises(ModelError, match="does not give its noise schedule") as info:
        check_model_folder(model)
    assert info.value.field == "model" and str(model) in str(info.value)


def test_a_scheduler_config_with_trained_betas_is_taken(tiny_model_dir: Path, tmp_path: Path):
    model = link_model(tiny_model_dir, tmp_path / "m", skip=("scheduler",))
    source = json.loads((tiny_model_dir / "scheduler" / "scheduler_config.json").read_text())
    config = {k: v for k, v in source.items() if k not in ("beta_schedule", "beta_start",
                                                             "beta_end")}
    config["trained_betas"] = [0.001] * int(source.get("num_train_timesteps", 1000))
    (model / "scheduler").mkdir()
    (model / "scheduler" / "scheduler_config.json").write_text(json.dumps(config))
    assert check_model_folder(model).num_train_timesteps == config.get("num_train_timesteps", 1000)
