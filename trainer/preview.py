"""Preview images rendered with the embedding as it is now, and an optional full pipeline.

A preview reuses the loaded, frozen components (no second copy of the model): it wraps them
in a StableDiffusionPipeline with a DPM-Solver scheduler, renders with a fixed seed so
successive previews differ only by what the embedding learned, and writes a PNG atomically.
"""

from __future__ import annotations

from pathlib import Path

import torch
from PIL import Image

from trainer import embeddings
from trainer.fsutil import atomic_save

PREVIEW_STEPS = 20
PREVIEW_SEED = 37


def _pipeline(session):
    from diffusers import DPMSolverMultistepScheduler, StableDiffusionPipeline

    c = session.components
    scheduler = DPMSolverMultistepScheduler.from_config(c.noise_scheduler.config)
    pipe = StableDiffusionPipeline(vae=c.vae, text_encoder=c.text_encoder, tokenizer=c.tokenizer,
                                   unet=c.unet, scheduler=scheduler, safety_checker=None,
                                   feature_extractor=None, requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    return pipe


@torch.inference_mode()
def render_images(session, prompt: str, count: int, seed: int = PREVIEW_SEED) -> list[Image.Image]:
    """`count` images of `prompt` with the embedding as it is now (fixed seed)."""
    c = session.components
    vae_device = next(c.vae.parameters()).device
    c.vae.to(session.device)  # the VAE may have been moved off the GPU after caching latents
    try:
        generator = torch.Generator().manual_seed(seed)
        with session.autocast:
            result = _pipeline(session)(
                [prompt] * count, height=session.preflight.resolution,
                width=session.preflight.resolution, num_inference_steps=PREVIEW_STEPS,
                guidance_scale=session.config.validation_guidance, generator=generator)
    finally:
        c.vae.to(vae_device)
    return list(result.images)


def contact_sheet(images: list[Image.Image]) -> Image.Image:
    """Side by side, so one PNG holds every preview image of a step."""
    width, height = images[0].size
    sheet = Image.new("RGB", (width * len(images), height), "white")
    for i, img in enumerate(images):
        sheet.paste(img, (i * width, 0))
    return sheet


def render_preview(session, prompt: str, target: Path, count: int = 1) -> Path:
    sheet = contact_sheet(render_images(session, prompt, count))
    atomic_save(target, lambda tmp: sheet.save(tmp, format="PNG"))
    return target


def save_pipeline(session, target: Path) -> Path:
    """A complete diffusers folder whose tokenizer and text encoder know the new word."""
    from trainer.fsutil import atomic_dir

    c = session.components
    embeddings.unsplice(c.text_encoder, session.spliced)
    try:
        with atomic_dir(target) as tmp:
            _pipeline(session).save_pretrained(str(tmp))
    finally:
        c.text_encoder.set_input_embeddings(session.spliced)
    return target
