"""The embedded demo: a tiny random-weight SD-1.x-shaped model and a few sample images.

`ti-tui demo` and the tests need a model on a machine with no model, no GPU and no network.
`build_tiny_model` makes one from configs (about 18 MB, a few seconds): every component has
the shapes and file layout of a real Stable Diffusion 1.x diffusers folder, only far smaller,
and the tokenizer is the real CLIP vocabulary shipped in assets/, so prompts tokenise exactly
as they would for SD 1.5. The weights are random: training an embedding on it exercises every
code path, but the previews are noise.

Both the model and the images are built once into the user's cache folder
(`TI_TUI_CACHE_DIR` overrides it) through `fsutil.atomic_dir`, so a build that is interrupted
never leaves a half-built folder under the cached name.
"""

from __future__ import annotations

import io
import json
import math
import random
import shutil
from pathlib import Path

from trainer.assets import asset_path, cache_root  # noqa: F401  (callers use demo.cache_root)
from trainer.fsutil import atomic_dir, atomic_write_bytes

MODEL_DIRNAME = "demo-model-v1"
"""Bump the suffix whenever `build_tiny_model` changes, so stale caches are not reused."""
IMAGES_DIRNAME = "demo-images-v1"
DEMO_IMAGE_COUNT = 6

_COMPONENT_WEIGHTS = {
    "text_encoder": "model.safetensors",
    "vae": "diffusion_pytorch_model.safetensors",
    "unet": "diffusion_pytorch_model.safetensors",
}
TOKENIZER_FILES = (
    "vocab.json",
    "merges.txt",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "LICENSE",
)


def _model_index(diffusers_version: str) -> dict:
    # Written by hand rather than through StableDiffusionPipeline.save_pretrained so that
    # building needs no pipeline import; `[null, null]` marks optional parts as absent, which
    # is what save_pretrained writes for safety_checker=None.
    return {
        "_class_name": "StableDiffusionPipeline",
        "_diffusers_version": diffusers_version,
        "feature_extractor": [None, None],
        "image_encoder": [None, None],
        "requires_safety_checker": False,
        "safety_checker": [None, None],
        "scheduler": ["diffusers", "DDPMScheduler"],
        "text_encoder": ["transformers", "CLIPTextModel"],
        "tokenizer": ["transformers", "CLIPTokenizer"],
        "unet": ["diffusers", "UNet2DConditionModel"],
        "vae": ["diffusers", "AutoencoderKL"],
    }


def tiny_vae(scaling_factor: float = 0.18215):
    """The demo's VAE: SD's layout at 32/64 channels, 2x downsampling (random weights)."""
    from diffusers import AutoencoderKL

    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        block_out_channels=(32, 64),
        down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
        up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"),
        layers_per_block=1,
        latent_channels=4,
        norm_num_groups=32,
        sample_size=64,
        scaling_factor=scaling_factor,
    )


def _write_components(out: Path, seed: int, prediction_type: str) -> None:
    """Create every component from its config and save it under `out`."""
    import diffusers
    import torch
    from diffusers import DDPMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    # One seed per component, so changing one component's shape does not reshuffle the others.
    torch.manual_seed(seed)
    # Attention sits at the 16x16 level, not at 32x32 as SD's order would put it: self-attention
    # over 1024 positions with tiny heads made a step 6x slower (0.32 s vs 0.05 s fwd+bwd,
    # batch 2, 2 CPU cores), and the cross-attention path TI trains through is the same.
    unet = UNet2DConditionModel(
        sample_size=32,
        in_channels=4,
        out_channels=4,
        block_out_channels=(32, 64),
        layers_per_block=2,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=32,
        attention_head_dim=(2, 4),  # heads per block (diffusers' SD-1.x naming)
        norm_num_groups=32,
    )
    torch.manual_seed(seed + 1)
    vae = tiny_vae()
    torch.manual_seed(seed + 2)
    text_config = CLIPTextConfig(
        vocab_size=49408,
        hidden_size=32,
        intermediate_size=37,
        num_hidden_layers=5,
        num_attention_heads=4,
        max_position_embeddings=77,
        projection_dim=32,
        hidden_act="quick_gelu",  # SD 1.x's text encoder activation
        bos_token_id=49406,
        eos_token_id=49407,
        pad_token_id=49407,
    )
    text_encoder = CLIPTextModel(text_config)
    scheduler = DDPMScheduler(
        num_train_timesteps=1000,
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        prediction_type=prediction_type,
        clip_sample=False,
        steps_offset=1,
    )

    unet.save_pretrained(out / "unet", safe_serialization=True)
    vae.save_pretrained(out / "vae", safe_serialization=True)
    text_encoder.save_pretrained(out / "text_encoder", safe_serialization=True)
    scheduler.save_pretrained(out / "scheduler")
    # Copy the vocab.json + merges.txt layout that real SD folders carry (save_pretrained in
    # transformers 5 would write tokenizer.json only).
    (out / "tokenizer").mkdir()
    for name in TOKENIZER_FILES:
        shutil.copyfile(asset_path("clip-tokenizer", name), out / "tokenizer" / name)
    index = json.dumps(_model_index(diffusers.__version__), indent=2) + "\n"
    (out / "model_index.json").write_text(index, encoding="utf-8")


def build_tiny_model(out_dir: Path, *, seed: int = 0, prediction_type: str = "epsilon") -> Path:
    """Build the tiny SD-1.x-shaped diffusers folder at `out_dir` and return it.

    Same seed, same weights. Native resolution is 64 px (UNet sample 32 x VAE factor 2);
    prediction_type is "epsilon", "v_prediction" or "sample" (ValueError otherwise). An
    existing folder is replaced whole.
    """
    if prediction_type not in ("epsilon", "v_prediction", "sample"):
        raise ValueError(f"unknown prediction_type {prediction_type!r}")
    out_dir = Path(out_dir)
    from trainer.models import quiet_progress_bars

    with atomic_dir(out_dir) as tmp, quiet_progress_bars():
        _write_components(tmp, seed, prediction_type)
    return out_dir


def is_complete_model(path: Path) -> bool:
    """True when `path` holds every file the demo builder writes (a cheap existence check)."""
    files = [path / "model_index.json", path / "scheduler" / "scheduler_config.json"]
    files += [path / "tokenizer" / n for n in ("vocab.json", "merges.txt")]
    files += [path / c / "config.json" for c in _COMPONENT_WEIGHTS]
    files += [path / c / w for c, w in _COMPONENT_WEIGHTS.items()]
    return all(f.is_file() for f in files)


def demo_model_dir(cache_dir: Path | None = None) -> Path:
    """The cached demo model folder, built on first use (a few seconds) and reused after."""
    path = cache_root(cache_dir) / MODEL_DIRNAME
    if not is_complete_model(path):
        build_tiny_model(path)
    return path


# --- sample images -------------------------------------------------------------------------

_TEAL = (0, 150, 140)
_TEAL_DARK = (0, 90, 85)
_GOLD = (240, 180, 40)


def _star_points(cx: float, cy: float, r: float, turn: float, points: int = 5) -> list[tuple]:
    inner = r * 0.45
    out = []
    for k in range(points * 2):
        radius = r if k % 2 == 0 else inner
        angle = turn + k * math.pi / points - math.pi / 2
        out.append((cx + radius * math.cos(angle), cy + radius * math.sin(angle)))
    return out


def render_demo_image(index: int, size: int = 64, seed: int = 0):
    """One sample image: the same teal star with a gold core, placed and tinted differently.

    The star's size, position, rotation and the pastel background vary per index, so the
    images read as one concept seen several times, which is what TI learns from.
    """
    from PIL import Image, ImageDraw

    rng = random.Random(f"{seed}:{index}")
    scale = 4  # draw large and downsample: cheap antialiasing with PIL alone
    big = size * scale
    background = tuple(rng.randint(200, 245) for _ in range(3))
    image = Image.new("RGB", (big, big), background)
    draw = ImageDraw.Draw(image)
    # A soft horizon line gives each background a little structure, like a real photo would.
    ground = tuple(max(0, c - rng.randint(15, 40)) for c in background)
    draw.rectangle([0, int(big * rng.uniform(0.6, 0.85)), big, big], fill=ground)
    r = big * rng.uniform(0.22, 0.36)
    cx = rng.uniform(r, big - r)
    cy = rng.uniform(r, big - r)
    turn = rng.uniform(0, 2 * math.pi / 5)
    draw.polygon(_star_points(cx, cy, r, turn), fill=_TEAL, outline=_TEAL_DARK, width=scale * 2)
    core = r * 0.2
    draw.ellipse([cx - core, cy - core, cx + core, cy + core], fill=_GOLD)
    return image.resize((size, size), Image.Resampling.LANCZOS)


def write_demo_images(
    folder: Path, count: int = DEMO_IMAGE_COUNT, size: int = 64, seed: int = 0
) -> list[Path]:
    """Write `count` sample PNGs into `folder` and return their paths.

    Deterministic for (count, size, seed); a file that already holds the same bytes is left
    untouched, so calling it twice changes nothing. Each file is written atomically.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        buf = io.BytesIO()
        render_demo_image(i, size, seed).save(buf, format="PNG")
        data = buf.getvalue()
        path = folder / f"demo-star-{i:02d}.png"
        if not (path.is_file() and path.read_bytes() == data):
            atomic_write_bytes(path, data)
        paths.append(path)
    return paths


def demo_data_dir(cache_dir: Path | None = None) -> Path:
    """The cached folder of demo training images, written on first use."""
    path = cache_root(cache_dir) / IMAGES_DIRNAME
    if len(list(path.glob("demo-star-*.png"))) >= DEMO_IMAGE_COUNT:
        return path
    with atomic_dir(path) as tmp:
        write_demo_images(tmp)
    return path
