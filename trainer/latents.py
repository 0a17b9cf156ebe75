"""VAE latents, computed once per image and per flipped image, then sampled every step.

Encoding through the VAE every step is the largest avoidable cost of a TI step (it doubles the
step time at SD 1.5 size), and the VAE never changes. So each image and its mirror are encoded
once, in batches, without autograd, and the posterior's mean and std are kept. A step then
draws z = mean + std * noise, which is exactly a fresh posterior sample, at no VAE cost.
"""

from __future__ import annotations

import torch

from trainer.errors import ConfigError, ModelError

ENCODE_BATCH = 2
"""Images per VAE call (each goes with its mirror). Small on purpose: the encoder's activations
for many images at once, not its weights, make the peak memory of the whole start-up, and the
time does not depend on it (bench/startup.py, small preset, 6 images: 8 per call 12.2 s and
+799 MB over the loaded models, 1 per call 11.9 s and +252 MB)."""


class LatentCache:
    """Posterior mean and std for every (image, flip) pair: tensors [n, 2, C, h, w]."""

    def __init__(self, mean: torch.Tensor, std: torch.Tensor, scaling_factor: float):
        self.mean = mean
        self.std = std
        self.scaling_factor = scaling_factor

    @property
    def num_images(self) -> int:
        return self.mean.shape[0]

    @classmethod
    @torch.inference_mode()
    def encode(cls, vae, pixels: torch.Tensor, device: torch.device,
               dtype: torch.dtype = torch.float32) -> LatentCache:
        """Encode [n, 3, H, W] pixels in [-1, 1] and their horizontal mirrors."""
        means, stds = [], []
        for start in range(0, pixels.shape[0], ENCODE_BATCH):
            chunk = pixels[start:start + ENCODE_BATCH]
            both = torch.cat([chunk, chunk.flip(-1)]).to(device, dtype)
            dist = vae.encode(both).latent_dist
            n = chunk.shape[0]
            means.append(torch.stack([dist.mean[:n], dist.mean[n:]], dim=1).float())
            stds.append(torch.stack([dist.std[:n], dist.std[n:]], dim=1).float())
        scaling = float(getattr(vae.config, "scaling_factor", 0.18215))
        mean, std = torch.cat(means), torch.cat(stds)
        if not (torch.isfinite(mean).all() and torch.isfinite(std).all()):
            # Every update would then be NaN: say so before the first one.
            if dtype != torch.float32:
                raise ConfigError(f"The VAE overflowed in {str(dtype).removeprefix('torch.')} "
                                  "(NaN or infinite latents; SDXL's VAE does in fp16); use "
                                  "--vae_precision fp32.", field="vae_precision")
            raise ModelError("The VAE gave NaN or infinite latents in fp32; its weights may "
                             "be damaged, so re-download or re-convert the model.",
                             field="model")
        # Clone out of inference mode so later autograd code may read these tensors.
        return cls(mean.clone(), std.clone(), scaling)

    def sample(self, indices: torch.Tensor, flips: torch.Tensor,
               generator: torch.Generator) -> torch.Tensor:
        """Scaled latents for the given images (flip 1 = mirrored), one fresh posterior draw."""
        mean = self.mean[indices, flips]
        std = self.std[indices, flips]
        noise = torch.randn(mean.shape, generator=generator).to(mean.device)
        return (mean + std * noise) * self.scaling_factor

    def to(self, device: torch.device) -> LatentCache:
        return LatentCache(self.mean.to(device), self.std.to(device), self.scaling_factor)
