"""The fixed evaluation batch of DVAR and the deterministic loss L_det (spec A2-A4).

The batch E = (images, captions, latents, noise, timesteps) is drawn once, before the first
update, from its own generator seeded with `dvar_eval_seed`, so it never moves the training
random streams and a resumed run rebuilds exactly the same batch:
- images: dataset items 0..B-1 in sorted-filename order, cycling i mod n;
- flips: the training augmentation (a coin per item), drawn once;
- captions: template i mod T with the placeholder filled in;
- latents: one posterior sample per item, times the VAE scaling factor;
- noise: one standard-normal draw; timesteps: B distinct values, a permutation prefix of
  range(num_train_timesteps);
- time ids (SDXL's added conditioning, Conditioner.time_ids), fixed like everything else.
L_det(theta) is then the diffusion loss on E, computed without autograd and in float32.

Only the conditioning depends on theta, so the noised latents (in the UNet's dtype, and in
channels_last on CUDA like the UNet's weights) and the target are computed at the first
evaluation and kept (`EvalBatch.prepared`): each later evaluation is the text encoder, the UNet
forward and the MSE, with one host sync (the value DVAR needs). The values are those of
`diffusion_loss` on the same batch, bit for bit on the CPU (tests/engine/test_dvar_run.py).
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass

import torch

from trainer.latents import LatentCache
from trainer.objective import diffusion_target, prediction_loss


@dataclass
class EvalBatch:
    """DVAR's fixed evaluation batch E (build_eval_batch draws it; see the module docstring)."""

    latents: torch.Tensor
    """[B, C, h, w] float32 VAE latents, already times the VAE scaling factor."""
    noise: torch.Tensor
    """[B, C, h, w] standard-normal noise, drawn once."""
    timesteps: torch.Tensor
    """[B] int64 distinct timesteps in range(num_train_timesteps)."""
    input_ids: torch.Tensor
    """[B, E, 77]: one row of token ids per text encoder."""
    time_ids: torch.Tensor | None
    """[B, 6] SDXL time ids, or None for families without added conditioning."""
    image_indices: list[int]
    """Dataset item of each row (i mod n, sorted-filename order)."""
    template_indices: list[int]
    """Caption template of each row (i mod T)."""
    prepared: tuple[torch.dtype, torch.Tensor, torch.Tensor] | None = None
    """(unet dtype, noised latents, target), made at the first evaluation."""

    def inputs(self, scheduler, unet_dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        """The noised latents [B, C, h, w] in `unet_dtype` and the float32 target, made once."""
        if self.prepared is None or self.prepared[0] != unet_dtype:
            noisy = scheduler.add_noise(self.latents, self.noise, self.timesteps).to(unet_dtype)
            if noisy.device.type == "cuda":
                # The UNet's weights are channels_last on CUDA (trainer/setup.py): spare its
                # first convolution the layout change at every evaluation.
                noisy = noisy.contiguous(memory_format=torch.channels_last)
            target = diffusion_target(scheduler, self.latents, self.noise, self.timesteps)
            self.prepared = (unet_dtype, noisy, target.float())
        return self.prepared[1], self.prepared[2]


def build_eval_batch(cache: LatentCache, caption_ids: torch.Tensor, batch_size: int,
                     num_train_timesteps: int, seed: int, device: torch.device,
                     time_ids: torch.Tensor | None = None) -> EvalBatch:
    """Draw E once. `caption_ids` is [T, E, 77]: the tokenized templates, in template order;
    `time_ids` [batch_size, 6] or None is carried as it is (it draws nothing). ValueError
    when `batch_size` exceeds `num_train_timesteps` (the timesteps are distinct)."""
    generator = torch.Generator().manual_seed(seed)
    n = cache.num_images
    images = [i % n for i in range(batch_size)]
    templates = [i % caption_ids.shape[0] for i in range(batch_size)]
    flips = torch.randint(0, 2, (batch_size,), generator=generator)
    latents = cache.sample(torch.tensor(images), flips, generator)
    noise = torch.randn(latents.shape, generator=generator)
    if batch_size > num_train_timesteps:
        raise ValueError("evaluation batch larger than the number of timesteps")
    timesteps = torch.randperm(num_train_timesteps, generator=generator)[:batch_size]
    return EvalBatch(latents=latents.to(device), noise=noise.to(device),
                     timesteps=timesteps.to(device), input_ids=caption_ids[templates].to(device),
                     time_ids=None if time_ids is None else time_ids.to(device),
                     image_indices=images, template_indices=templates)


@torch.inference_mode()
def deterministic_loss(batch: EvalBatch, *, unet, conditioner, scheduler,
                       autocast: AbstractContextManager, unet_dtype: torch.dtype) -> float:
    """L_det for the current embedding: same inputs every time, no gradient, float64 out."""
    noisy, target = batch.inputs(scheduler, unet_dtype)
    loss = prediction_loss(unet=unet, conditioner=conditioner, noisy=noisy, target=target,
                           timesteps=batch.timesteps, input_ids=batch.input_ids,
                           time_ids=batch.time_ids, autocast=autocast, unet_dtype=unet_dtype)
    return float(loss.item())
