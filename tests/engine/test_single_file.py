"""Single-file checkpoints (trainer/single_file.py) and damaged weights found before anything is
written (trainer/weights_check.py; issue 14 section 1, issue 15 item 3).

The files are the tiny session models written in the original layout by tests/ldm_layout.py.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from trainer import models, single_file, weights_check
from trainer.errors import ModelError
from trainer.weights_check import TensorInfo

from tests.helpers import link_model
from tests.ldm_layout import write_single_file

TI_TUI = [sys.executable, "-m", "ti_tui.cli"]


@pytest.fixture(scope="module")
def sd1_file(tiny_model_dir, tmp_path_factory) -> Path:
    return write_single_file(tiny_model_dir, tmp_path_factory.mktemp("ckpt") / "tiny.safetensors")


@pytest.fixture(scope="module")
def sdxl_dir(tmp_path_factory) -> Path:
    from trainer.tiny_sdxl import build_tiny_sdxl

    return build_tiny_sdxl(tmp_path_factory.mktemp("models") / "tiny-sdxl", seed=0)


@pytest.fixture(scope="module")
def sdxl_file(sdxl_dir, tmp_path_factory) -> Path:
    return write_single_file(sdxl_dir, tmp_path_factory.mktemp("ckpt") / "tiny-xl.safetensors")


class Thing:
    """Any class: a pickle that names it needs code to load."""


def _same_weights(a, b) -> None:
    for left, right in ((a.unet, b.unet), (a.vae, b.vae),
                        *zip(a.conditioner.encoders, b.conditioner.encoders, strict=True)):
        ours, theirs = left.state_dict(), right.state_dict()
        assert ours.keys() == theirs.keys()
        assert all(torch.equal(ours[k], theirs[k]) for k in ours)


# --- detection -----------------------------------------------------------------------------------


def test_detects_the_family_of_tiny_files(sd1_file, sdxl_file):
    for path, family in ((sd1_file, "sd1"), (sdxl_file, "sdxl")):
        assert single_file.detect(weights_check.read_shapes(path)).family == family


@pytest.mark.parametrize("keys, words", [
    ({"double_blocks.0.img_attn.norm.key_norm.scale": (8,)}, "a Flux model"),
    ({"model.diffusion_model.input_blocks.0.0.weight": (32, 9, 3, 3),
      "cond_stage_model.transformer.text_model.embeddings.token_embedding.weight": (49408, 32)},
     "inpainting"),
    ({"model.diffusion_model.input_blocks.0.0.weight": (32, 4, 3, 3),
      "conditioner.embedders.0.model.text_projection": (32, 32),
      "first_stage_model.encoder.conv_in.weight": (32, 3, 3, 3)}, "SDXL refiner"),
    ({"lora_unet_down_blocks_0.alpha": (1,)}, "no UNet"),
])
def test_unsupported_kinds_are_named(keys, words):
    shapes = {k: TensorInfo("F32", v) for k, v in keys.items()}
    detected = single_file.detect(shapes)
    assert detected.family is None and words in detected.what


def test_sd2_prediction_guess_follows_comfyui_rule(tmp_path):
    key = single_file._SD2_VPRED_KEY
    wide = tmp_path / "v.safetensors"
    save_file({key: torch.linspace(-1, 1, 320)}, str(wide))
    narrow = tmp_path / "eps.safetensors"
    save_file({key: torch.linspace(-0.01, 0.01, 320)}, str(narrow))
    for path, expected in ((wide, "v_prediction"), (narrow, "epsilon")):
        shapes = weights_check.read_shapes(path)
        assert single_file.guess_sd2_prediction(path, shapes) == expected


# --- checking and loading ----------------------------------------------------------------------


def test_single_file_loads_the_folders_exact_weights(sd1_file, tiny_model_dir):
    facts = models.check_model(sd1_file, model_config=tiny_model_dir)
    assert (facts.family, facts.format, facts.token_dim) == ("sd1", "checkpoint", 32)
    _same_weights(models.load_components(sd1_file, facts=facts),
                  models.load_components(tiny_model_dir))


def test_sdxl_single_file_loads_both_encoders(sdxl_file, sdxl_dir):
    facts = models.check_model(sdxl_file, model_config=sdxl_dir)
    assert facts.family == "sdxl" and facts.parts == {"clip_l": 768, "clip_g": 1280}
    _same_weights(models.load_components(sdxl_file, facts=facts),
                  models.load_components(sdxl_dir))


def test_ckpt_of_plain_tensors_loads(tiny_model_dir, tmp_path):
    ckpt = write_single_file(tiny_model_dir, tmp_path / "tiny.ckpt")
    facts = models.check_model(ckpt, model_config=tiny_model_dir)
    assert models.load_components(ckpt, facts=facts).unet is not None


def test_prediction_type_flag_reaches_the_scheduler(sd1_file, tiny_model_dir):
    facts = models.check_model(sd1_file, model_config=tiny_model_dir,
                               prediction_type="v_prediction")
    parts = models.load_components(sd1_file, facts=facts)
    assert parts.noise_scheduler.config.prediction_type == "v_prediction"


def test_shipped_config_that_does_not_fit_asks_for_model_config(sd1_file):
    with pytest.raises(ModelError, match="--model_config") as caught:
        models.check_model(sd1_file)  # the shipped SD 1.x config is 768 wide, tiny is 32
    assert "32" in str(caught.value) and "768" in str(caught.value)


def test_pickle_needing_code_is_refused(tmp_path):
    path = tmp_path / "model.ckpt"
    torch.save({"state_dict": {"x": torch.zeros(1)}, "callback": Thing()}, path)
    with pytest.raises(ModelError, match="needs code"):
        models.check_model(path)


@pytest.mark.parametrize("cut", [4, 100, 0.5])
def test_truncated_single_file_is_refused(sd1_file, tmp_path, cut):
    data = sd1_file.read_bytes()
    size = int(len(data) * cut) if isinstance(cut, float) else cut
    broken = tmp_path / "cut.safetensors"
    broken.write_bytes(data[:size])
    with pytest.raises(ModelError, match="damaged"):
        models.check_model(broken)


# --- damaged diffusers folders: found by preflight (issue 15 item 3) ----------------------------


def _broken(kind: str, model: Path, tiny: Path, tmp: Path) -> Path:
    unet = model / "unet"
    unet.unlink()
    link_model(tiny / "unet", unet)
    weights = unet / "diffusion_pytorch_model.safetensors"
    data = weights.read_bytes()
    weights.unlink()
    if kind == "truncated":
        weights.write_bytes(data[: len(data) // 2])
    elif kind == "lfs":
        weights.write_text("version https://git-lfs.github.com/spec/v1\noid sha256:"
                           + "0" * 64 + "\nsize 12345\n")
    elif kind == "wrong-shapes":
        state = {k: torch.zeros(3) if k == "conv_in.bias" else torch.zeros(1) for k in
                 ("conv_in.bias",)}
        save_file(state, str(weights))
    else:  # a .bin pickle that needs code, the only weights of the component
        torch.save({"conv_in.bias": torch.zeros(32), "x": Thing()},
                   unet / "diffusion_pytorch_model.bin")
    return model


@pytest.mark.parametrize("kind, words", [("truncated", "cut off"),
                                         ("wrong-shapes", "conv_in.bias"),
                                         ("lfs", "git lfs pull"),
                                         ("pickle", "needs code")])
def test_damaged_weights_refused_before_anything_is_written(kind, words, tmp_path,
                                                            tiny_model_dir, demo_images_dir):
    model = _broken(kind, link_model(tiny_model_dir, tmp_path / "model"), tiny_model_dir,
                    tmp_path)
    out = tmp_path / "out"
    run = subprocess.run(
        [*TI_TUI, "train", "--model", str(model), "--train_data_dir", str(demo_images_dir),
         "--output_dir", str(out), "--placeholder_token", "star", "--max_train_steps", "2",
         "--device", "cpu"], capture_output=True, text=True, timeout=300,
        env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert run.returncode == 2, run.stderr
    assert words in run.stderr and "unet" in run.stderr
    assert len(run.stderr.strip().splitlines()) == 1 and "Traceback" not in run.stderr
    assert run.stdout == ""
    assert not out.exists()


# --- training from single files, headless -------------------------------------------------------


def _train(model: Path, config_dir: Path, images: Path, out: Path, *extra: str):
    return subprocess.run(
        [*TI_TUI, "train", "--model", str(model), "--model_config", str(config_dir),
         "--train_data_dir", str(images), "--output_dir", str(out), "--placeholder_token",
         "star", "--max_train_steps", "2", "--train_batch_size", "1", "--device", "cpu",
         "--save_steps", "0", "--checkpointing_steps", "0", "--early_stopping", "none",
         *extra], capture_output=True, text=True, timeout=600,
        env={**os.environ, "HF_HUB_OFFLINE": "1"})


def final_tensors(out: Path) -> dict[str, tuple[int, ...]]:
    """Shapes in the final .safetensors embedding the run announced (embedding_saved)."""
    from safetensors.torch import load_file

    from trainer.event_file import read_events

    final = [e for e in read_events(out / "events.jsonl")
             if e.get("type") == "embedding_saved" and e.get("final")]
    path = next(p for p in final[-1]["paths"] if p.endswith(".safetensors"))
    return {k: tuple(v.shape) for k, v in load_file(path).items()}


def test_sd1_single_file_trains_headless(sd1_file, tiny_model_dir, demo_images_dir, tmp_path):
    run = _train(sd1_file, tiny_model_dir, demo_images_dir, tmp_path / "out")
    assert run.returncode == 0, run.stdout + run.stderr
    assert list(final_tensors(tmp_path / "out").values()) == [(1, 32)]


def test_sdxl_single_file_trains_headless(sdxl_file, sdxl_dir, demo_images_dir, tmp_path):
    run = _train(sdxl_file, sdxl_dir, demo_images_dir, tmp_path / "out", "--resolution", "64")
    assert run.returncode == 0, run.stdout + run.stderr
    shapes = final_tensors(tmp_path / "out")
    assert shapes["clip_l"] == (1, 768) and shapes["clip_g"] == (1, 1280)


@pytest.mark.parametrize("name, family", [("sd1", "sd1"), ("sd2", "sd2"), ("sd2-v", "sd2"),
                                          ("sdxl", "sdxl")])
def test_shipped_configs_fit_real_shaped_checkpoints(name, family):
    """A full-size checkpoint header (meta tensors in the original layout, built from the
    shipped config) is detected as its family by diffusers' real keys and fits every tensor."""
    from trainer.assets import asset_path

    from tests.ldm_layout import clip_to_ldm, open_clip_to_ldm, unet_to_ldm, vae_to_ldm

    config = asset_path("model-configs", name)
    state = {}
    for component in ("unet", "vae", "text_encoder", "text_encoder_2"):
        if (config / component).is_dir():
            _, _, shapes = weights_check._model_shapes(component, config)
            meta = {k: torch.empty(v, device="meta") for k, v in shapes.items()}
            folder = config / component
            state.update({
                "unet": lambda: unet_to_ldm(folder, meta),
                "vae": lambda: vae_to_ldm(folder, meta),
                "text_encoder": lambda: (
                    open_clip_to_ldm(folder, "cond_stage_model.model.", meta) if family == "sd2"
                    else clip_to_ldm(folder, "conditioner.embedders.0.transformer." if
                                     family == "sdxl" else "cond_stage_model.transformer.", meta)),
                "text_encoder_2": lambda: open_clip_to_ldm(folder, "conditioner.embedders.1.model.",
                                                           meta),
            }[component]())
    header = {k: TensorInfo("F16", tuple(v.shape)) for k, v in state.items()}
    detected = single_file.detect(header)
    assert detected.family == family
    assert detected.kind == {"sd1": "v1", "sd2": "v2", "sdxl": "xl_base"}[family]
    weights_check.check_single_file_shapes(Path("x.safetensors"), header, config, family)
    assert single_file.shipped_config(family, "v_prediction" if name == "sd2-v"
                                      else "epsilon") == config


def test_missing_shard_is_refused(tmp_path, tiny_model_dir):
    model = link_model(tiny_model_dir, tmp_path / "model")
    (model / "unet").unlink()
    unet = link_model(tiny_model_dir / "unet", model / "unet")
    (unet / "diffusion_pytorch_model.safetensors.index.json").write_text(
        '{"metadata": {}, "weight_map": {"conv_in.weight": "diffusion_pytorch_model-00001-of-'
        '00002.safetensors", "conv_in.bias": "diffusion_pytorch_model-00002-of-00002.safetensors"}}')
    with pytest.raises(ModelError, match="00001-of-00002.safetensors is missing"):
        weights_check.check_model_weights(models.check_model(model))


def test_healthy_folders_pass_the_weight_check(tiny_model_dir, sdxl_dir):
    for model in (tiny_model_dir, sdxl_dir):
        weights_check.check_model_weights(models.check_model(model))


def test_a_start_up_failure_in_the_trainer_goes_to_stderr_and_leaves_nothing(
        tmp_path, tiny_model_dir, demo_images_dir):
    """Whatever preflight cannot see (here: loading the model fails in the trainer process,
    injected with a sitecustomize on PYTHONPATH) still ends in one sentence on stderr, exit 2,
    and no output folder, as the README promises."""
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    (hooks / "sitecustomize.py").write_text(
        "import os\n"
        "if os.environ.get('TI_TUI_TEST_BREAK_LOAD'):\n"
        "    import trainer.models as m\n"
        "    from trainer.errors import ModelError\n"
        "    def broken(*a, **k):\n"
        "        raise ModelError('Could not load unet weights from /x/unet (injected); "
        "re-download the model.', field='model')\n"
        "    m.load_components = broken\n")
    out = tmp_path / "out"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TI_TUI_TEST_BREAK_LOAD": "1",
           "PYTHONPATH": os.pathsep.join([str(hooks), os.environ.get("PYTHONPATH", "")])}
    run = subprocess.run(
        [*TI_TUI, "train", "--model", str(tiny_model_dir), "--train_data_dir",
         str(demo_images_dir), "--output_dir", str(out), "--placeholder_token", "star",
         "--max_train_steps", "2", "--device", "cpu"],
        capture_output=True, text=True, timeout=300, env=env)
    assert run.returncode == 2, run.stdout + run.stderr
    assert run.stderr.strip().splitlines() == [
        "ti-tui: Could not load unet weights from /x/unet (injected); re-download the model."]
    assert not out.exists()


def test_truncated_ckpt_is_refused_as_damaged_not_as_code(tiny_model_dir, tmp_path):
    ckpt = write_single_file(tiny_model_dir, tmp_path / "tiny.ckpt")
    data = ckpt.read_bytes()
    ckpt.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelError, match="is damaged") as caught:
        models.check_model(ckpt)
    assert "needs code" not in str(caught.value)


@pytest.fixture(scope="module")
def sd2_file(tiny_vpred_model_dir, tmp_path_factory) -> Path:
    """The tiny model as an SD 2.x-layout file: its text encoder in OpenCLIP names."""
    from tests.ldm_layout import open_clip_to_ldm, unet_to_ldm, vae_to_ldm

    model = tiny_vpred_model_dir
    state = {**unet_to_ldm(model / "unet"), **vae_to_ldm(model / "vae"),
             **open_clip_to_ldm(model / "text_encoder", "cond_stage_model.model.")}
    path = tmp_path_factory.mktemp("ckpt") / "tiny-sd2.safetensors"
    save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    return path


def test_sd2_file_without_the_flag_is_a_guess_with_a_warning(sd2_file, tiny_vpred_model_dir,
                                                             monkeypatch, tmp_path,
                                                             demo_images_dir):
    """No silent guess: the shipped SD 2.x config (here the tiny one standing in for it) gets
    a prediction type from the weights and a warning naming --prediction_type, which the run
    reports; the flag, when given, is used as it is and nothing is said."""
    from trainer import train

    from tests.helpers import make_config

    monkeypatch.setattr(single_file, "shipped_config",
                        lambda family, prediction: tiny_vpred_model_dir)
    facts = models.check_model(sd2_file)
    assert facts.family == "sd2" and facts.prediction_type == "v_prediction"
    assert "--prediction_type" in facts.warning and "guessed v_prediction" in facts.warning
    told = models.check_model(sd2_file, prediction_type="epsilon")
    assert told.prediction_type == "epsilon" and told.warning is None
    events: list = []
    result = train(make_config(sd2_file, demo_images_dir, tmp_path, max_train_steps=2),
                   emit=events.append)
    assert result.step == 2
    warnings = [e.message for e in events if getattr(e, "type", "") == "warning"]
    assert any("--prediction_type" in w for w in warnings)


def test_an_a1111_yaml_beside_the_file_decides_the_prediction_type(tmp_path):
    key = single_file._SD2_VPRED_KEY
    path = tmp_path / "model.safetensors"
    save_file({key: torch.linspace(-0.01, 0.01, 320)}, str(path))  # weights say epsilon
    shapes = weights_check.read_shapes(path)
    (tmp_path / "model.yaml").write_text(
        "model:\n  target: ldm.models.diffusion.ddpm.LatentDiffusion\n"
        "  params:\n    parameterization: \"v\"\n")
    assert single_file.guess_sd2_prediction(path, shapes) == "v_prediction"
    (tmp_path / "model.yaml").write_text("model:\n  params:\n    linear_start: 0.00085\n")
    assert single_file.guess_sd2_prediction(path, shapes) == "epsilon"


def test_a_text_encoder_under_old_names_is_refused_in_one_sentence(tiny_model_dir, tmp_path):
    from safetensors.torch import load_file

    state = load_file(str(write_single_file(tiny_model_dir, tmp_path / "a.safetensors")))
    old = {k.replace("cond_stage_model.transformer.text_model.", "cond_stage_model.transformer."):
           v for k, v in state.items()}
    path = tmp_path / "old.safetensors"
    save_file(old, str(path))
    with pytest.raises(ModelError, match="names diffusers cannot read"):
        models.check_model(path, model_config=tiny_model_dir)


def test_a_model_config_folder_without_a_vae_config_is_named(sd1_file, tiny_model_dir,
                                                            tmp_path):
    config = link_model(tiny_model_dir, tmp_path / "config", skip=("vae",))
    (config / "vae").mkdir()
    with pytest.raises(ModelError, match="vae/config.json") as caught:
        models.check_model(sd1_file, model_config=config)
    assert caught.value.field == "model_config"


def test_the_config_copy_falls_back_to_a_temporary_folder(tmp_path, monkeypatch):
    from trainer import model_configs

    blocked = tmp_path / "cache"
    blocked.write_text("a file where the cache folder should be")
    monkeypatch.setenv("TI_TUI_CACHE_DIR", str(blocked))
    folder = model_configs.complete_config(model_configs.shipped_config("sdxl", "epsilon"))
    assert (folder / "tokenizer_2" / "vocab.json").is_file()
    assert models.load_tokenizer(folder / "tokenizer_2").pad_token == "!"
