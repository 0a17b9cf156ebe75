"""SDXL through the conditioner seam: facts, tokens in both tokenizers, the pooled output at
EOS, tokenizer 2's "!" padding, time ids, start rows from each encoder's own table, and the
DVAR batch carrying the time ids. Tiny SDXL-shaped model (trainer/tiny_sdxl.py), CPU."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from trainer import models
from trainer.conditioner import SDXLConditioner
from trainer.errors import ModelError
from trainer.preflight import preflight
from trainer.setup import prepare

from tests.helpers import link_model, make_config


@pytest.fixture(scope="module")
def session(tiny_sdxl_dir, demo_images_dir, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("sdxl-session")
    config = make_config(tiny_sdxl_dir, demo_images_dir, tmp, num_vectors=2,
                         initializer_token="star", dvar_eval_batch_size=3)
    checked = preflight(config)
    # A plain CPU device, not Accelerator(cpu=True): accelerate keeps one device per process, so
    # asking it for the CPU fails in a test process that already trained on CUDA.
    return prepare(config, checked, device=torch.device("cpu"), num_processes=1, seed=1,
                   emit=lambda event: None)


def test_an_sdxl_folder_checks_out_with_both_widths(tiny_sdxl_dir):
    facts = models.check_model_folder(tiny_sdxl_dir)
    assert facts.family == "sdxl"
    assert facts.parts == {"clip_l": 768, "clip_g": 1280} and facts.token_dim == 2048
    assert facts.native_resolution == 64 and facts.prediction_type == "epsilon"


def test_real_sdxl_configs_default_to_1024_pixels(tiny_sdxl_dir, tmp_path):
    """The default resolution (preflight: --resolution, else the native size) is 1024 for
    SDXL's configs: UNet sample 128 x VAE factor 8. Configs only: no weights are read."""
    model = link_model(tiny_sdxl_dir, tmp_path / "xl", skip=("unet", "vae"))
    for part, change in (("unet", {"sample_size": 128}),
                         ("vae", {"block_out_channels": [128, 256, 512, 512]})):
        (model / part).mkdir()
        config = json.loads((tiny_sdxl_dir / part / "config.json").read_text()) | change
        (model / part / "config.json").write_text(json.dumps(config))
        weights = tiny_sdxl_dir / part / "diffusion_pytorch_model.safetensors"
        (model / part / weights.name).symlink_to(weights)
    assert models.check_model_folder(model).native_resolution == 1024


def test_a_refiner_and_a_mismatched_unet_are_refused(tiny_sdxl_dir, tmp_path):
    refiner = link_model(tiny_sdxl_dir, tmp_path / "refiner", skip=("text_encoder", "tokenizer"))
    with pytest.raises(ModelError, match="SDXL refiner"):
        models.check_model_folder(refiner)
    odd = link_model(tiny_sdxl_dir, tmp_path / "odd", skip=("unet",))
    shutil.copytree(tiny_sdxl_dir / "unet", odd / "unet")
    config = json.loads((odd / "unet" / "config.json").read_text()) | {"cross_attention_dim": 768}
    (odd / "unet" / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelError, match="768 \\+ 1280 = 2048"):
        models.check_model_folder(odd)


def test_the_loader_builds_the_sdxl_conditioner(session):
    c = session.components.conditioner
    assert isinstance(c, SDXLConditioner) and c.family == "sdxl"
    assert c.parts == {"clip_l": 768, "clip_g": 1280}
    assert [type(e).__name__ for e in c.encoders] == ["CLIPTextModel",
                                                      "CLIPTextModelWithProjection"]
    assert c.tokenizers[1].pad_token_id == 0   # "!", as SDXL's tokenizer_2 pads


def test_pooled_output_is_taken_at_the_eos_token(session):
    """transformers pools at argmax(input_ids) for SDXL's legacy config (eos_token_id 2): the
    new token, whose id is the highest. The conditioner must pool at the first EOS."""
    c = session.conditioner
    ids = c.tokenize(["a photo of <star> <star>_1"])
    ids_2 = ids[:, 1]
    eos = int((ids_2[0] == c.tokenizers[1].eos_token_id).nonzero()[0])
    assert int(ids_2[0].argmax()) != eos            # the trap is there in this model
    with torch.no_grad():
        pooled = c.encode(ids, c.time_ids(1, 64)).added["text_embeds"]
        out = c.encoders[1](ids_2, output_hidden_states=True)
        at_eos = c.encoders[1].text_projection(out.last_hidden_state[0, eos])
        naive = out.text_embeds[0]                  # transformers' own pooling
    assert pooled.shape == (1, 1280)
    torch.testing.assert_close(pooled[0], at_eos)
    assert not torch.allclose(pooled[0], naive, atol=1e-4)


def test_hidden_states_are_both_penultimate_layers(session):
    c = session.conditioner
    ids = c.tokenize(["a painting of <star>"])
    with torch.no_grad():
        cond = c.encode(ids, c.time_ids(1, 64))
        first = c.encoders[0](ids[:, 0], output_hidden_states=True).hidden_states[-2]
        second = c.encoders[1](ids[:, 1], output_hidden_states=True).hidden_states[-2]
    assert cond.hidden.shape == (1, 77, 2048)
    torch.testing.assert_close(cond.hidden, torch.cat([first, second], dim=-1))


def test_captions_pad_each_tokenizer_its_own_way(session):
    ids = session.caption_ids
    assert ids.shape[1:] == (2, 77)
    first, second = ids[0, 0], ids[0, 1]
    assert first[-1] == 49407 and second[-1] == 0
    end = int((second == 49407).nonzero()[0])
    assert torch.equal(first[:end + 1], second[:end + 1])   # same words, same ids


def test_the_trigger_is_in_both_tokenizers_and_rows_start_from_each_table(session):
    c = session.conditioner
    for tokenizer in c.tokenizers:
        assert tokenizer.convert_tokens_to_ids(["<star>", "<star>_1"]) == [49408, 49409]
    assert session.vectors.shape == (2, 2048) and session.vectors.dtype == torch.float32
    star = c.tokenizers[0].encode("star", add_special_tokens=False)[0]
    halves = c.split(session.vectors.detach())
    assert list(halves) == ["clip_l", "clip_g"]
    for name, encoder in zip(("clip_l", "clip_g"), c.encoders, strict=True):
        row = encoder.get_input_embeddings().base.weight[star]   # the frozen table
        assert torch.equal(halves[name], row.expand(2, -1))
    assert torch.equal(c.join(halves), session.vectors.detach())


def test_one_parameter_feeds_both_encoders(session):
    c = session.conditioner
    ids = c.tokenize(["a photo of <star>"])
    c.encode(ids, c.time_ids(1, 64)).hidden.sum().backward()
    grad = session.vectors.grad
    assert grad is not None and grad[0, :768].abs().sum() > 0 and grad[0, 768:].abs().sum() > 0
    assert torch.count_nonzero(grad[1]) == 0        # <star>_1 was not in the prompt
    session.vectors.grad = None


def test_dvar_batch_carries_the_time_ids(session):
    batch = session.eval_batch
    assert batch.input_ids.shape == (3, 2, 77)
    assert batch.time_ids.tolist() == [[64.0, 64.0, 0.0, 0.0, 64.0, 64.0]] * 3
    assert session.time_ids(2).shape == (2, 6)


def test_an_sdxl_embedding_file_starts_each_half_in_its_own_encoder(
        tiny_sdxl_dir, demo_images_dir, tmp_path):
    """--initial_embedding with a clip_l + clip_g file (A1111/ComfyUI/InvokeAI 4+ layout):
    clip_l's rows go to CLIP-L's columns, clip_g's to bigG's, whatever the file's key order."""
    from safetensors.torch import save_file

    halves = {"clip_g": torch.full((2, 1280), 0.25), "clip_l": torch.full((2, 768), -0.5)}
    path = tmp_path / "start.safetensors"
    save_file(halves, str(path))
    config = make_config(tiny_sdxl_dir, demo_images_dir, tmp_path, num_vectors=2,
                         initial_embedding=str(path), dvar_eval_every=0)
    s = prepare(config, preflight(config), device=torch.device("cpu"), num_processes=1, seed=1,
                emit=lambda event: None)
    split = s.conditioner.split(s.vectors.detach())
    assert torch.equal(split["clip_l"], halves["clip_l"])
    assert torch.equal(split["clip_g"], halves["clip_g"])
    ids = s.conditioner.tokenize(["<star>"])
    rows = [enc.get_input_embeddings()(ids[:, i])[0, 1] for i, enc in
            enumerate(s.conditioner.encoders)]
    assert torch.equal(rows[0], halves["clip_l"][0]) and torch.equal(rows[1], halves["clip_g"][0])


def test_vae_precision_is_its_own_choice(tiny_model_dir, demo_images_dir, tmp_path):
    """--vae_precision (default fp32 whatever --mixed_precision says): bf16 is used for the
    latents when asked; fp16 on a CPU is refused before anything is written."""
    from trainer.errors import ConfigError

    config = make_config(tiny_model_dir, demo_images_dir, tmp_path, vae_precision="fp16")
    with pytest.raises(ConfigError, match="--vae_precision fp32") as err:
        preflight(config)
    assert err.value.field == "vae_precision" and not config.output_path.exists()
    assert make_config(tiny_model_dir, demo_images_dir, tmp_path).vae_precision == "fp32"
    config = make_config(tiny_model_dir, demo_images_dir, tmp_path, vae_precision="bf16",
                         dvar_eval_every=0)
    s = prepare(config, preflight(config), device=torch.device("cpu"), num_processes=1, seed=1,
                emit=lambda event: None)
    assert s.components.vae.dtype == torch.bfloat16
    cache = s.cache.to(torch.device("cpu"))  # on a CPU pictures are encoded when drawn
    assert cache.mean.dtype == torch.float32 and torch.isfinite(cache.mean).all()


def test_an_overflowing_vae_is_refused_before_the_first_update():
    from types import SimpleNamespace

    from trainer.errors import ConfigError
    from trainer.latents import LatentCache

    class OverflowingVAE:
        config = SimpleNamespace(scaling_factor=0.13025)

        def encode(self, pixels):
            inf = torch.full((pixels.shape[0], 4, 2, 2), float("inf"), dtype=pixels.dtype)
            return SimpleNamespace(latent_dist=SimpleNamespace(mean=inf, std=inf))

    with pytest.raises(ConfigError, match="overflowed in float16.*--vae_precision fp32"):
        LatentCache.encode(OverflowingVAE(), torch.zeros(1, 3, 4, 4), torch.device("cpu"),
                           dtype=torch.float16)


def test_large_pictures_are_encoded_one_per_vae_call(tiny_sdxl_dir, monkeypatch):
    """At SDXL's size each image and each mirror gets its own VAE call (the start-up's memory
    peak), with the same latents as encoding them all at once."""
    from diffusers import AutoencoderKL

    from trainer import latents

    assert latents.pictures_per_call(1024, 1024) == 1 and latents.pictures_per_call(512, 512) == 4
    vae = AutoencoderKL.from_pretrained(str(tiny_sdxl_dir), subfolder="vae")
    pixels = torch.rand(3, 3, 32, 32) * 2 - 1
    calls: list[int] = []
    encode = vae.encode
    monkeypatch.setattr(vae, "encode", lambda x: calls.append(x.shape[0]) or encode(x))
    monkeypatch.setattr(latents, "ENCODE_PIXELS", 32 * 32)
    one_by_one = latents.LatentCache.encode(vae, pixels, torch.device("cpu"))
    assert calls == [1] * 6
    monkeypatch.setattr(latents, "ENCODE_PIXELS", 10**9)
    monkeypatch.setattr(latents, "ENCODE_BATCH", 3)
    at_once = latents.LatentCache.encode(vae, pixels, torch.device("cpu"))
    assert calls[6:] == [6] and one_by_one.mean.shape == (3, 2, 4, 16, 16)
    torch.testing.assert_close(one_by_one.mean, at_once.mean)
    torch.testing.assert_close(one_by_one.std, at_once.std)
    mirrored = latents.LatentCache.encode(vae, pixels.flip(-1), torch.device("cpu"))
    torch.testing.assert_close(mirrored.mean[:, 0], at_once.mean[:, 1])
