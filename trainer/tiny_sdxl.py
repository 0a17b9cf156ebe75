"""A tiny random-weight SDXL-shaped diffusers folder, for tests and benchmarks (CPU, seconds).

What makes SDXL different for textual inversion is kept at full size: two CLIP text encoders
with the real token widths (CLIP-L 768, OpenCLIP-bigG 1280, the second with a 1280-wide text
projection), a UNet whose cross-attention reads the 2048-wide concatenation and whose
`addition_embed_type="text_time"` embedding reads the pooled output and the six time ids, and
the real CLIP vocabulary (assets/clip-tokenizer) in both tokenizers, the second padding with
"!" (id 0) as SDXL's tokenizer_2 does. Everything else (layers, channels, the VAE) is as small
as the demo model's, so a step takes well under a second on two CPU cores.

The text encoder configs keep SDXL's legacy `eos_token_id: 2`, as the published
stabilityai/stable-diffusion-xl-base-1.0 configs do: with it transformers pools the projected
output at `argmax(input_ids)`, which is the placeholder token once one is added
(transformers#21029, diffusers#10754), so the tests see the same pooling trap real models set.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from trainer.assets import asset_path
from trainer.toy.demo import TOKENIZER_FILES, tiny_vae
from trainer.fsutil import atomic_dir

ADDITION_TIME_EMBED_DIM = 8
"""Width of each of the six Fourier-embedded time ids (real SDXL: 256)."""
POOLED_DIM = 1280
"""Width of text_encoder_2's projected pooled output, `text_embeds` (as in SDXL)."""
PAD_TOKEN_2 = "!"
"""tokenizer_2 pads with "!" (id 0): SDXL's published tokenizer_2, A1111 and ComfyUI."""


def sdxl_model_index(diffusers_version: str) -> dict:
    """model_index.json of an SDXL base folder, written without importing the pipeline."""
    return {
        "_class_name": "StableDiffusionXLPipeline",
        "_diffusers_version": diffusers_version,
        "feature_extractor": [None, None],
        "force_zeros_for_empty_prompt": True,
        "image_encoder": [None, None],
        "scheduler": ["diffusers", "EulerDiscreteScheduler"],
        "text_encoder": ["transformers", "CLIPTextModel"],
        "text_encoder_2": ["transformers", "CLIPTextModelWithProjection"],
        "tokenizer": ["transformers", "CLIPTokenizer"],
        "tokenizer_2": ["transformers", "CLIPTokenizer"],
        "unet": ["diffusers", "UNet2DConditionModel"],
        "vae": ["diffusers", "AutoencoderKL"],
    }


def _text_config(hidden: int, heads: int, act: str, projection: int):
    from transformers import CLIPTextConfig

    return CLIPTextConfig(
        vocab_size=49408, hidden_size=hidden, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=heads, max_position_embeddings=77, projection_dim=projection,
        hidden_act=act,
        # SDXL's published configs: legacy ids, so transformers pools at argmax(input_ids).
        bos_token_id=0, eos_token_id=2, pad_token_id=1)


def _copy_tokenizer(folder: Path, pad_token: str | None) -> None:
    folder.mkdir()
    for name in TOKENIZER_FILES:
        shutil.copyfile(asset_path("clip-tokenizer", name), folder / name)
    if pad_token is None:
        return
    for name in ("special_tokens_map.json", "tokenizer_config.json"):
        data = json.loads((folder / name).read_text(encoding="utf-8"))
        data["pad_token"] = pad_token
        (folder / name).write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


def _write_components(out: Path, seed: int) -> None:
    import diffusers
    import torch
    from diffusers import EulerDiscreteScheduler, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTextModelWithProjection

    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        sample_size=32, in_channels=4, out_channels=4, block_out_channels=(32, 64),
        layers_per_block=1,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=768 + 1280, attention_head_dim=(2, 4), norm_num_groups=32,
        use_linear_projection=True, transformer_layers_per_block=(1, 1),
        addition_embed_type="text_time", addition_time_embed_dim=ADDITION_TIME_EMBED_DIM,
        projection_class_embeddings_input_dim=6 * ADDITION_TIME_EMBED_DIM + POOLED_DIM)
    torch.manual_seed(seed + 1)
    vae = tiny_vae(scaling_factor=0.13025)
    torch.manual_seed(seed + 2)
    text_encoder = CLIPTextModel(_text_config(768, 12, "quick_gelu", 768))
    torch.manual_seed(seed + 3)
    text_encoder_2 = CLIPTextModelWithProjection(_text_config(1280, 20, "gelu", POOLED_DIM))
    scheduler = EulerDiscreteScheduler(
        num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012,
        beta_schedule="scaled_linear", prediction_type="epsilon", steps_offset=1,
        timestep_spacing="leading", interpolation_type="linear", use_karras_sigmas=False)

    unet.save_pretrained(out / "unet", safe_serialization=True)
    vae.save_pretrained(out / "vae", safe_serialization=True)
    text_encoder.save_pretrained(out / "text_encoder", safe_serialization=True)
    text_encoder_2.save_pretrained(out / "text_encoder_2", safe_serialization=True)
    scheduler.save_pretrained(out / "scheduler")
    _copy_tokenizer(out / "tokenizer", None)
    _copy_tokenizer(out / "tokenizer_2", PAD_TOKEN_2)
    index = json.dumps(sdxl_model_index(diffusers.__version__), indent=2) + "\n"
    (out / "model_index.json").write_text(index, encoding="utf-8")


def build_tiny_sdxl(out_dir: Path, *, seed: int = 0) -> Path:
    """Build the tiny SDXL-shaped diffusers folder at `out_dir` and return it.

    Same seed, same weights; native resolution 64 px (UNet sample 32 x VAE factor 2); about
    460 MB and 10 s on two cores, most of it the two encoders' 49408-row fp32 token tables at
    the real widths (405 MB). An existing folder is replaced whole.
    """
    from trainer.models import quiet_progress_bars

    out_dir = Path(out_dir)
    with atomic_dir(out_dir) as tmp, quiet_progress_bars():
        _write_components(tmp, seed)
    return out_dir
