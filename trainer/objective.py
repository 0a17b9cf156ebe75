"""The diffusion loss of one batch, shared by training steps and the DVAR evaluation.

loss = MSE(target, UNet(z_t, t, c)), where z_t is the latent noised to timestep t, c the
conditioning the model family's conditioner builds from the caption (trainer/conditioner.py:
hidden states, plus SDXL's pooled output and time ids), and the target follows the scheduler's
prediction type: the noise for epsilon models (SD 1.x, SD 2.x-base, SDXL), the velocity for
v-prediction models (SD 2.x-768). The MSE is always computed in float32, whatever precision
the forward passes ran in.
"""

from __future__ import annotations

from contextlib import AbstractContextManager

import torch
import torch.nn.functional as F


def diffusion_target(scheduler, latents: torch.Tensor, noise: torch.Tensor,
                     timesteps: torch.Tensor) -> torch.Tensor:
    """What the UNet learns to predict for latents x0 and noise [B, C, h, w] at timesteps [B]:
    the noise for "epsilon", v = alpha_t * noise - sigma_t * x0 for "v_prediction"
    (Salimans & Ho 2022, sec. 4; diffusers' scheduler.get_velocity). ValueError for any other
    scheduler prediction type."""
    kind = scheduler.config.prediction_type
    if kind == "epsilon":
        return noise
    if kind == "v_prediction":
        return scheduler.get_velocity(latents, noise, timesteps)
    raise ValueError(f"unsupported prediction type {kind!r}")


def diffusion_loss(*, unet, conditioner, scheduler, latents: torch.Tensor,
                   noise: torch.Tensor, timesteps: torch.Tensor, input_ids: torch.Tensor,
                   time_ids: torch.Tensor | None, autocast: AbstractContextManager,
                   unet_dtype: torch.dtype) -> torch.Tensor:
    """Mean-squared error over all elements, as float32.

    latents, noise: [B, C, h, w]; timesteps: [B]; input_ids: [B, E, 77] (Conditioner.tokenize);
    time_ids: [B, 6] for SDXL (Conditioner.time_ids), else None.
    """
    noisy = scheduler.add_noise(latents, noise, timesteps)
    target = diffusion_target(scheduler, latents, noise, timesteps)
    return prediction_loss(unet=unet, conditioner=conditioner, noisy=noisy.to(unet_dtype),
                           target=target, timesteps=timesteps, input_ids=input_ids,
                           time_ids=time_ids, autocast=autocast, unet_dtype=unet_dtype)


def prediction_loss(*, unet, conditioner, noisy: torch.Tensor, target: torch.Tensor,
                    timesteps: torch.Tensor, input_ids: torch.Tensor,
                    time_ids: torch.Tensor | None, autocast: AbstractContextManager,
                    unet_dtype: torch.dtype) -> torch.Tensor:
    """The second half of `diffusion_loss`, from the noised latents `noisy` (already in
    `unet_dtype`) and the `target`, both [B, C, h, w]: what depends on the trained rows.
    Returns the 0-dim float32 mean-squared error. DVAR's fixed batch computes the first half
    once (trainer/evaluation.py)."""
    with autocast:
        cond = conditioner.encode(input_ids, time_ids)
        prediction = unet(noisy, timesteps, **cond.for_unet(unet_dtype)).sample
    return F.mse_loss(prediction.float(), target.float(), reduction="mean")
