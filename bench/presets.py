"""The models and images the benchmarks run on, built once and cached.

- `tiny`: the demo model of trainer/demo.py (UNet blocks 32,64; CLIP 32-d, 5 layers; VAE 32,64)
  with the six 64 px demo images, at 64 px.
- `small`: an SD-1.5-shaped text encoder (CLIPTextModel, hidden 768, 12 layers, 12 heads,
  intermediate 3072, the real 49408-token vocabulary, 123M parameters), a UNet with blocks
  (64, 128, 256) and cross-attention 768 (24M), and a VAE with blocks (64, 128) (2.6M), with
  the same six demo images drawn at 256 px, trained at 256 px.
- `sd15`: Stable Diffusion 1.5's exact shapes with random weights (UNet 860M, VAE 84M, text
  encoder 123M; 4.3 GB of fp32 safetensors) and eight demo images at 512 px, batch 8: the
  GPU benchmark (bench/gpu_check.sh). Built on the GPU when there is one (random init of 1.07B
  parameters takes a minute on a CPU).

Both are random-weight diffusers folders written like `trainer.demo.build_tiny_model` writes the
demo (one seed per component, the shipped CLIP tokenizer files, a hand-written
model_index.json), under $TI_TUI_CACHE_DIR or the user cache (`trainer.demo.cache_root()`),
through `trainer.fsutil.atomic_dir` so an interrupted build never leaves a half folder.

    python bench/presets.py small     # build (once) and print the folders as JSON
"""

from __future__ import annotations

import json
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

PRESETS = ("tiny", "small", "sd15")
SMALL_MODEL_DIRNAME = "bench-small-model-v1"
"""Bump the suffix whenever `build_small_model` changes, so stale caches are not reused."""
SMALL_IMAGES_DIRNAME = "bench-images-256-v1"
SD15_MODEL_DIRNAME = "bench-sd15-model-v1"
SD15_IMAGES_DIRNAME = "bench-images-512x8-v1"
SD15_IMAGE_COUNT = 8


@dataclass(frozen=True)
class Preset:
    name: str
    model_dir: Path
    data_dir: Path
    resolution: int
    batch: int
    """The default batch of the benchmarks."""
    steps: int
    """The default number of measured steps."""
    initializer: str = "star"

    def cli_args(self) -> list[str]:
        """The options that choose this preset again, for a benchmark run as a subprocess."""
        if self.name != CUSTOM:
            return ["--preset", self.name]
        return ["--model", str(self.model_dir), "--data", str(self.data_dir),
                "--resolution", str(self.resolution), "--initializer", self.initializer]


CUSTOM = "custom"
"""The name of a preset made from --model/--data/--resolution (a real model, e.g. on a GPU)."""


def add_arguments(parser) -> None:
    """--preset, or a model folder of your own with --data and --resolution."""
    parser.add_argument("--preset", choices=PRESETS, default="tiny")
    parser.add_argument("--model", default=None,
                        help="a diffusers model folder of your own instead of a preset "
                             "(with --data and --resolution), e.g. SD 1.5 on a GPU")
    parser.add_argument("--data", default=None, help="with --model: a folder of images")
    parser.add_argument("--resolution", type=int, default=None, help="with --model")
    parser.add_argument("--initializer", default="star", help="with --model")


def from_args(args) -> Preset:
    """The preset the options of `add_arguments` chose."""
    if args.model is None:
        return get(args.preset)
    if args.data is None or args.resolution is None:
        raise SystemExit("--model needs --data (a folder of images) and --resolution")
    return Preset(CUSTOM, Path(args.model).expanduser(), Path(args.data).expanduser(),
                  resolution=args.resolution, batch=2, steps=12, initializer=args.initializer)


def _components(seed: int) -> dict:
    """The small preset's components, created from configs (random weights)."""
    import torch
    from diffusers import AutoencoderKL, UNet2DConditionModel

    torch.manual_seed(seed)
    # Cross-attention only at the lowest (32x32) level, as the demo model does: the TI
    # gradient reaches the new row through every cross-attention layer either way, and
    # self-attention over 64x64 latents doubled the step time on 2 CPU cores (31 s vs 13 s,
    # batch 2, measured while the machine was loaded).
    unet = UNet2DConditionModel(
        sample_size=128, in_channels=4, out_channels=4, block_out_channels=(64, 128, 256),
        layers_per_block=2,
        down_block_types=("DownBlock2D", "DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D", "UpBlock2D"),
        cross_attention_dim=768, attention_head_dim=8, norm_num_groups=32)
    torch.manual_seed(seed + 1)
    vae = AutoencoderKL(
        in_channels=3, out_channels=3, block_out_channels=(64, 128),
        down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
        layers_per_block=1, latent_channels=4, norm_num_groups=32, sample_size=256,
        scaling_factor=0.18215)
    torch.manual_seed(seed + 2)
    text_encoder = _sd15_text_encoder()
    return {"unet": unet, "vae": vae, "text_encoder": text_encoder, "scheduler": _sd_scheduler()}


def _sd15_components(seed: int, device: str = "cpu") -> dict:
    """SD 1.5's components (runwayml/stable-diffusion-v1-5's configs), random weights.

    Created on `device` (random init is much faster on a GPU), returned on the CPU.
    """
    import torch
    from diffusers import AutoencoderKL, UNet2DConditionModel

    with torch.device(device):
        torch.manual_seed(seed)
        unet = UNet2DConditionModel(
            sample_size=64, in_channels=4, out_channels=4, layers_per_block=2,
            block_out_channels=(320, 640, 1280, 1280),
            down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
            up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
            cross_attention_dim=768, attention_head_dim=8, norm_num_groups=32).to("cpu")
        torch.manual_seed(seed + 1)
        vae = AutoencoderKL(
            in_channels=3, out_channels=3, block_out_channels=(128, 256, 512, 512),
            down_block_types=("DownEncoderBlock2D",) * 4,
            up_block_types=("UpDecoderBlock2D",) * 4, layers_per_block=2, latent_channels=4,
            norm_num_groups=32, sample_size=512, scaling_factor=0.18215).to("cpu")
        torch.manual_seed(seed + 2)
        text_encoder = _sd15_text_encoder().to("cpu")
    return {"unet": unet, "vae": vae, "text_encoder": text_encoder, "scheduler": _sd_scheduler()}


def _sd15_text_encoder():
    """SD 1.5's text encoder exactly (openai/clip-vit-large-patch14's text tower), random."""
    from transformers import CLIPTextConfig, CLIPTextModel

    return CLIPTextModel(CLIPTextConfig(
        vocab_size=49408, hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
        num_attention_heads=12, max_position_embeddings=77, projection_dim=768,
        hidden_act="quick_gelu", bos_token_id=49406, eos_token_id=49407, pad_token_id=49407))


def _sd_scheduler():
    """SD 1.x's training noise schedule."""
    from diffusers import DDPMScheduler

    return DDPMScheduler(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012,
                         beta_schedule="scaled_linear", prediction_type="epsilon",
                         clip_sample=False, steps_offset=1)


def build_small_model(out_dir: Path, *, seed: int = 0) -> Path:
    """Write the small preset's diffusers folder at `out_dir` (about 600 MB, ~20 s)."""
    return _write_model(Path(out_dir), _components(seed))


def build_sd15_model(out_dir: Path, *, seed: int = 0, device: str | None = None) -> Path:
    """Write the sd15 preset's diffusers folder at `out_dir` (4.3 GB); `device` defaults to
    CUDA when available."""
    if device is None:
        import torch

        device = "cuda" if torch.cuda.is_available() else "cpu"
    return _write_model(Path(out_dir), _sd15_components(seed, device))


def _write_model(out_dir: Path, parts: dict) -> Path:
    """A diffusers folder of `parts` with the shipped CLIP tokenizer, written atomically."""
    import diffusers

    from trainer import demo
    from trainer.assets import asset_path
    from trainer.fsutil import atomic_dir
    from trainer.models import quiet_progress_bars

    with atomic_dir(out_dir) as tmp, quiet_progress_bars():
        for name in ("unet", "vae", "text_encoder"):
            parts[name].save_pretrained(tmp / name, safe_serialization=True)
        parts["scheduler"].save_pretrained(tmp / "scheduler")
        (tmp / "tokenizer").mkdir()
        for name in demo.TOKENIZER_FILES:
            shutil.copyfile(asset_path("clip-tokenizer", name), tmp / "tokenizer" / name)
        index = json.dumps(demo._model_index(diffusers.__version__), indent=2) + "\n"
        (tmp / "model_index.json").write_text(index, encoding="utf-8")
    return out_dir


def small_model_dir() -> Path:
    from trainer.demo import cache_root, is_complete_model

    path = cache_root() / SMALL_MODEL_DIRNAME
    if not is_complete_model(path):
        build_small_model(path)
    return path


def sd15_model_dir() -> Path:
    from trainer.demo import cache_root, is_complete_model

    path = cache_root() / SD15_MODEL_DIRNAME
    if not is_complete_model(path):
        build_sd15_model(path)
    return path


def images_256_dir() -> Path:
    """The six demo images drawn at 256 px (the same stars as the 64 px demo set)."""
    from trainer.demo import DEMO_IMAGE_COUNT

    return _images(SMALL_IMAGES_DIRNAME, DEMO_IMAGE_COUNT, 256)


def _images(dirname: str, count: int, size: int) -> Path:
    """`count` demo stars drawn at `size` px, cached under `dirname`."""
    from trainer.demo import cache_root, write_demo_images
    from trainer.fsutil import atomic_dir

    path = cache_root() / dirname
    if len(list(path.glob("demo-star-*.png"))) >= count:
        return path
    with atomic_dir(path) as tmp:
        write_demo_images(tmp, count=count, size=size)
    return path


def get(name: str) -> Preset:
    """The preset `name`, building its model and images first if they are not cached."""
    if name == "tiny":
        from trainer.demo import demo_data_dir, demo_model_dir

        return Preset("tiny", demo_model_dir(), demo_data_dir(), resolution=64, batch=2,
                      steps=60)
    if name == "small":
        return Preset("small", small_model_dir(), images_256_dir(), resolution=256, batch=2,
                      steps=12)
    if name == "sd15":
        return Preset("sd15", sd15_model_dir(), _images(SD15_IMAGES_DIRNAME, SD15_IMAGE_COUNT, 512),
                      resolution=512, batch=8, steps=24)
    raise ValueError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")


def ensure_importable() -> None:
    """Let `python bench/x.py` import `bench.*` and the project's packages from a checkout."""
    root = str(Path(__file__).resolve().parents[1])
    if root not in sys.path:
        sys.path.insert(0, root)


if __name__ == "__main__":
    ensure_importable()
    chosen = sys.argv[1:] or list(PRESETS)
    print(json.dumps({n: {k: str(v) for k, v in vars(get(n)).items()} for n in chosen},
                     indent=2))
