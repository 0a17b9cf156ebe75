"""A diffusers folder holding only a variant's weights (model.fp16.safetensors,
diffusion_pytorch_model.fp16.safetensors): what `from_pretrained(variant="fp16")` downloads
and what InvokeAI installs from the Hub. Every check passed, then the load failed with "no
file named model.safetensors" and advice to re-download (issue 15 kinds 3 and b: found late,
and advice that does not apply). It now loads, in fp32 like every other source, and trains.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from trainer import models

from tests.helpers import make_config


@pytest.fixture(scope="module")
def fp16_folder(tiny_model_dir, tmp_path_factory) -> Path:
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextModel

    out = tmp_path_factory.mktemp("variant") / "tiny-fp16"
    shutil.copytree(tiny_model_dir, out,
                    ignore=shutil.ignore_patterns("*.safetensors", "*.bin"))
    for cls, part in ((UNet2DConditionModel, "unet"), (AutoencoderKL, "vae"),
                      (CLIPTextModel, "text_encoder")):
        model = cls.from_pretrained(str(tiny_model_dir), subfolder=part)
        model.to(torch.float16).save_pretrained(out / part, variant="fp16")
    return out


def test_the_variant_is_read_from_the_file_names(fp16_folder, tiny_model_dir, tmp_path):
    assert models.weights_variant(fp16_folder / "text_encoder") == "fp16"
    assert models.weights_variant(fp16_folder / "unet") == "fp16"
    assert models.weights_variant(tiny_model_dir / "unet") is None
    both = tmp_path / "both"
    shutil.copytree(tiny_model_dir / "unet", both)
    (both / "diffusion_pytorch_model.fp16.safetensors").write_bytes(b"")
    assert models.weights_variant(both) is None  # plain weights win
    sharded = tmp_path / "sharded"
    sharded.mkdir()
    (sharded / "diffusion_pytorch_model.fp16-00001-of-00002.safetensors").write_bytes(b"")
    assert models.weights_variant(sharded) == "fp16"


def test_a_variant_only_folder_loads_its_weights_in_fp32(fp16_folder):
    components = models.load_components(fp16_folder)
    encoder = components.conditioner.encoders[0]
    assert {components.unet.dtype, components.vae.dtype, encoder.dtype} == {torch.float32}
    from safetensors.torch import load_file

    saved = load_file(fp16_folder / "text_encoder" / "model.fp16.safetensors")
    key = next(k for k in saved if k.endswith("token_embedding.weight"))
    assert torch.equal(encoder.get_input_embeddings().weight, saved[key].float())


def test_a_variant_only_folder_trains(fp16_folder, demo_images_dir, tmp_path):
    from trainer import train

    result = train(make_config(fp16_folder, demo_images_dir, tmp_path, max_train_steps=2,
                               save_steps=0, checkpointing_steps=0, dvar_eval_every=0))
    assert result.reason == "max_steps" and result.step == 2
