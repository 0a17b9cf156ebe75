"""The tiny demo model and the demo images (trainer/toy/demo.py)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from PIL import Image

from trainer.toy import demo
from trainer.models import check_model_folder

COMPONENT_FILES = [
    "text_encoder/model.safetensors",
    "vae/diffusion_pytorch_model.safetensors",
    "unet/diffusion_pytorch_model.safetensors",
]


def test_tiny_model_is_a_diffusers_folder(tiny_model_dir: Path):
    index = json.loads((tiny_model_dir / "model_index.json").read_text())
    assert index["_class_name"] == "StableDiffusionPipeline"
    assert index["safety_checker"] == [None, None]
    for sub in ("tokenizer", "text_encoder", "vae", "unet", "scheduler"):
        assert (tiny_model_dir / sub).is_dir()
    # Real SD folders carry vocab.json + merges.txt, so the demo does too.
    assert (tiny_model_dir / "tokenizer" / "vocab.json").is_file()
    assert not list(tiny_model_dir.parent.glob(".tiny.*"))  # no temp folder left behind


def test_tiny_model_facts(tiny_model_dir: Path, tiny_vpred_model_dir: Path):
    facts = check_model_folder(tiny_model_dir)
    assert facts.native_resolution == 64
    assert facts.token_dim == 32 and facts.vocab_size == 49408
    assert facts.prediction_type == "epsilon"
    assert check_model_folder(tiny_vpred_model_dir).prediction_type == "v_prediction"


def test_pipeline_loads_offline_and_generates(tiny_model_dir: Path):
    import torch
    from diffusers import StableDiffusionPipeline

    pipe = StableDiffusionPipeline.from_pretrained(
        tiny_model_dir, local_files_only=True, safety_checker=None, requires_safety_checker=False
    )
    pipe.set_progress_bar_config(disable=True)
    assert pipe.vae_scale_factor * pipe.unet.config.sample_size == 64
    out = pipe(
        "a photo of a cat",
        num_inference_steps=1,
        output_type="np",
        generator=torch.Generator().manual_seed(0),
    )
    assert out.images.shape == (1, 64, 64, 3)


def test_rebuild_is_reproducible(tiny_model_dir: Path, tmp_path: Path):
    again = demo.build_tiny_model(tmp_path / "again", seed=0)
    for name in COMPONENT_FILES:
        assert (again / name).read_bytes() == (tiny_model_dir / name).read_bytes(), name


def test_demo_model_dir_builds_once(tmp_path: Path):
    # A half-built folder (no weights) must not count as the cache.
    (tmp_path / demo.MODEL_DIRNAME).mkdir()
    (tmp_path / demo.MODEL_DIRNAME / "model_index.json").write_text("{}")
    path = demo.demo_model_dir(tmp_path)
    assert path == tmp_path / demo.MODEL_DIRNAME
    assert demo.is_complete_model(path)
    stamp = (path / "model_index.json").stat().st_mtime_ns
    assert demo.demo_model_dir(tmp_path) == path
    assert (path / "model_index.json").stat().st_mtime_ns == stamp


def test_cache_root_honours_env(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("TI_TUI_CACHE_DIR", str(tmp_path))
    assert demo.cache_root() == tmp_path
    assert demo.cache_root(tmp_path / "x") == tmp_path / "x"
    monkeypatch.delenv("TI_TUI_CACHE_DIR")
    assert demo.cache_root().name == "ti-tui"


def test_demo_images(demo_images_dir: Path):
    paths = sorted(demo_images_dir.glob("*.png"))
    assert len(paths) == 6
    images = [Image.open(p) for p in paths]
    assert all(im.size == (64, 64) and im.mode == "RGB" for im in images)
    assert len({im.tobytes() for im in images}) == 6  # six different views of one concept


def test_write_demo_images_is_idempotent_and_seeded(tmp_path: Path):
    first = demo.write_demo_images(tmp_path / "a", count=3, size=32)
    stamps = [p.stat().st_mtime_ns for p in first]
    second = demo.write_demo_images(tmp_path / "a", count=3, size=32)
    assert second == first
    assert [p.stat().st_mtime_ns for p in second] == stamps
    other = demo.write_demo_images(tmp_path / "b", count=3, size=32, seed=1)
    assert other[0].read_bytes() != first[0].read_bytes()
    assert not [p for p in os.listdir(tmp_path / "a") if p.startswith(".")]


def test_demo_data_dir_caches(tmp_path: Path):
    path = demo.demo_data_dir(tmp_path)
    assert path == tmp_path / demo.IMAGES_DIRNAME
    assert len(list(path.glob("*.png"))) == demo.DEMO_IMAGE_COUNT
    stamp = path.stat().st_mtime_ns
    assert demo.demo_data_dir(tmp_path) == path
    assert path.stat().st_mtime_ns == stamp
