"""Preview images rendered with the embedding as it is now, and an optional full pipeline.

A preview reuses the loaded, frozen components (no second copy of the model): the model's
conditioner wraps them in its family's diffusers pipeline (StableDiffusionPipeline or
StableDiffusionXLPipeline) with a DPM-Solver scheduler and hands it the conditioning it
builds itself, exactly as training sees it (for SDXL the pooled output at the EOS token, not
transformers' default pooling). It renders with a fixed seed so successive previews differ
only by what the embedding learned, decodes the latents in float32 outside autocast (the SDXL
VAE overflows in fp16), and writes a PNG atomically.
"""

from __future__ import annotations

from contextlib import nullcontext
from pathlib import Path

import torch
from PIL import Image

from trainer.fsutil import atomic_save

PREVIEW_STEPS = 20
PREVIEW_SEED = 37


def _pipeline(session):
    from diffusers import DPMSolverMultistepScheduler

    components = session.components
    scheduler = DPMSolverMultistepScheduler.from_config(components.noise_scheduler.config)
    pipe = components.conditioner.pipeline(vae=components.vae, unet=components.unet,
                                           scheduler=scheduler)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def decode_latents(vae, latents: torch.Tensor) -> torch.Tensor:
    """Latents [B, C, h, w] (scaled, as the UNet sees them) -> pixels [B, 3, H, W] in [-1, 1].

    Runs in the VAE's own dtype (float32 as loaded) with autocast off, so an fp16 run never
    decodes in half precision; undoes `latents_mean/std` when the VAE config has them (as
    diffusers' SDXL pipeline does).
    """
    config = vae.config
    param = next(vae.parameters())
    latents = latents.to(param.device, param.dtype)
    mean, std = getattr(config, "latents_mean", None), getattr(config, "latents_std", None)
    if mean is not None and std is not None:
        shape = (1, len(mean), 1, 1)
        mean = torch.tensor(mean, device=latents.device, dtype=latents.dtype).view(shape)
        std = torch.tensor(std, device=latents.device, dtype=latents.dtype).view(shape)
        latents = latents * std / config.scaling_factor + mean
    else:
        latents = latents / config.scaling_factor
    off = (torch.autocast(latents.device.type, enabled=False)
           if latents.device.type in ("cuda", "cpu") else nullcontext())
    with off:
        return vae.decode(latents).sample


@torch.inference_mode()
def render_images(session, prompt: str, count: int, seed: int = PREVIEW_SEED) -> list[Image.Image]:
    """`count` images of `prompt` with the embedding as it is now (fixed seed)."""
    components = session.components
    vae_device = next(components.vae.parameters()).device
    # The VAE may have been moved off the GPU after caching latents.
    components.vae.to(session.device)
    size = session.preflight.resolution
    try:
        generator = torch.Generator().manual_seed(seed)
        pipe = _pipeline(session)
        with session.autocast:
            embeds = components.conditioner.prompt_embeds([prompt] * count, size)
            latents = pipe(height=size, width=size, num_inference_steps=PREVIEW_STEPS,
                           guidance_scale=session.config.validation_guidance,
                           generator=generator, output_type="latent", **embeds).images
        pixels = decode_latents(components.vae, latents)
        images = pipe.image_processor.postprocess(pixels.float(), output_type="pil")
    finally:
        components.vae.to(vae_device)
    return list(images)


def contact_sheet(images: list[Image.Image]) -> Image.Image:
    """Side by side, so one PNG holds every preview image of a step."""
    width, height = images[0].size
    sheet = Image.new("RGB", (width * len(images), height), "white")
    for i, img in enumerate(images):
        sheet.paste(img, (i * width, 0))
    return sheet


def render_preview(session, prompt: str, target: Path, count: int = 1) -> Path:
    """Render `count` images of `prompt` (render_images) side by side into the PNG `target`,
    written atomically; returns `target`. OSError when the disk refuses."""
    sheet = contact_sheet(render_images(session, prompt, count))
    atomic_save(target, lambda tmp: sheet.save(tmp, format="PNG"))
    return target


def save_pipeline(session, target: Path) -> Path:
    """A complete diffusers folder whose tokenizer(s) and text encoder(s) know the new word."""
    from trainer.fsutil import atomic_dir

    with session.conditioner.unspliced(), atomic_dir(target) as tmp:
        _pipeline(session).save_pretrained(str(tmp))
    return target
