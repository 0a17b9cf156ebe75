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
"""Images per VAE call at most (each goes with its mirror). Small on purpose: the encoder's
activations for many images at once, not its weights, make the peak memory of the whole
start-up, and the time does not depend on it (bench/startup.py, small preset, 6 images: 8 per
call 12.2 s and +799 MB over the loaded models, 1 per call 11.9 s and +252 MB)."""
ENCODE_PIXELS = 4 * 512 * 512
"""Pixels per VAE call at most, images and mirrors counted apart: 2 images with their mirrors
at 512 px, one picture per call from 768 px on. At SDXL's 1024 px the fp32 encoder's
activations for 4 pictures per call made the peak GPU memory of a whole run; one per call
(and the UNet moved and cast in one go, trainer/setup.py) took the start-up's peak from 20.9
to 11.6 GB, below the updates' 13-16 GB (bench/sdxl_real_size.py on an H200)."""


def pictures_per_call(height: int, width: int) -> int:
    """How many pictures (an image or a mirror) one VAE call encodes at this size."""
    return max(1, min(2 * ENCODE_BATCH, ENCODE_PIXELS // (height * width)))


class LatentCache:
    """Posterior mean and std for every (image, flip) pair: tensors [n, 2, C, h, w]."""

    def __init__(self, mean: torch.Tensor, std: torch.Tensor, scaling_factor: float):
        self.mean = mean
        self.std = std
        self.scaling_factor = scaling_factor

    @property
    def num_images(self) -> int:
        """n, the number of dataset images (each also has a mirrored entry)."""
        return self.mean.shape[0]

    @classmethod
    @torch.inference_mode()
    def encode(cls, vae, pixels: torch.Tensor, device: torch.device,
               dtype: torch.dtype = torch.float32) -> LatentCache:
        """Encode [n, 3, H, W] pixels in [-1, 1] and their horizontal mirrors."""
        n = pixels.shape[0]
        # [image 0, mirror 0, image 1, mirror 1, ...]: the (image, flip) layout of the cache.
        pictures = torch.stack([pixels, pixels.flip(-1)], dim=1).flatten(0, 1)
        step = pictures_per_call(pixels.shape[-2], pixels.shape[-1])
        means, stds = [], []
        for start in range(0, pictures.shape[0], step):
            dist = vae.encode(pictures[start:start + step].to(device, dtype)).latent_dist
            means.append(dist.mean.float())
            stds.append(dist.std.float())
        scaling = float(getattr(vae.config, "scaling_factor", 0.18215))
        mean = torch.cat(means).unflatten(0, (n, 2))
        std = torch.cat(stds).unflatten(0, (n, 2))
        _check_finite(mean, std, dtype)
        # Clone out of inference mode so later autograd code may read these tensors.
        return cls(mean.clone(), std.clone(), scaling)

    def sample(self, indices: torch.Tensor, flips: torch.Tensor,
               generator: torch.Generator) -> torch.Tensor:
        """Scaled latents [B, C, h, w] float32 for images `indices` [B] (flips [B]: 1 =
        mirrored): one fresh posterior draw from `generator`, times the VAE scaling factor."""
        mean = self.mean[indices, flips]
        std = self.std[indices, flips]
        noise = torch.randn(mean.shape, generator=generator).to(mean.device)
        return (mean + std * noise) * self.scaling_factor

    def to(self, device: torch.device) -> LatentCache:
        """A cache with the same mean, std and scaling factor on `device`."""
        return LatentCache(self.mean.to(device), self.std.to(device), self.scaling_factor)


def _check_finite(mean: torch.Tensor, std: torch.Tensor, dtype: torch.dtype) -> None:
    """Refuse NaN or infinite latents: every update that draws them would be NaN."""
    if torch.isfinite(mean).all() and torch.isfinite(std).all():
        return
    if dtype != torch.float32:
        raise ConfigError(f"The VAE overflowed in {str(dtype).removeprefix('torch.')} "
                          "(NaN or infinite latents; SDXL's VAE does in fp16); use "
                          "--vae_precision fp32.", field="vae_precision")
    raise ModelError("The VAE gave NaN or infinite latents in fp32; its weights may "
                     "be damaged, so re-download or re-convert the model.", field="model")


class LazyLatentCache(LatentCache):
    """The same cache, filled on demand: a picture (an image or its mirror) is encoded the first
    time a batch draws it, then kept.

    Why: on a CPU the VAE pass over every image and mirror before the first update was most of
    the start-up (small preset, 256 px, 6 images: 11-12 s of an 18.5 s launch-to-first-step),
    while diffusers' examples/textual_inversion.py encodes only the batch it trains on. Filled on
    demand, the first update waits for its own batch's pictures only, and the total VAE work is
    never more than the eager cache's (pictures never drawn are never encoded). On CUDA setup
    keeps the eager cache: there it costs under a second and lets the VAE leave the GPU.

    Each picture is encoded alone (one per VAE call), so its latents do not depend on which
    pictures were drawn before it: a resumed run reads the same numbers as a straight one.
    NaN or infinite latents raise the eager cache's errors when the picture is first drawn
    (for the first batch: before the first update).
    """

    def __init__(self, vae, pixels: torch.Tensor, device: torch.device,
                 dtype: torch.dtype = torch.float32):
        super().__init__(None, None, float(getattr(vae.config, "scaling_factor", 0.18215)))
        self._vae, self._pixels, self._device, self._dtype = vae, pixels, device, dtype
        self._done = torch.zeros(pixels.shape[0], 2, dtype=torch.bool)

    @property
    def num_images(self) -> int:
        """n, the number of dataset images (encoded or not)."""
        return self._pixels.shape[0]

    @property
    def encoded(self) -> int:
        """How many pictures (images and mirrors) were encoded so far."""
        return int(self._done.sum())

    def fill(self, indices: torch.Tensor, flips: torch.Tensor) -> None:
        """Encode the (image, flip) pairs not encoded yet, in image order."""
        wanted = sorted({(int(i), int(f)) for i, f in zip(indices.tolist(), flips.tolist())})
        for i, f in wanted:
            if self._done[i, f]:
                continue
            mean, std = self._encode_one(i, f)
            _check_finite(mean, std, self._dtype)
            if self.mean is None:
                shape = (self.num_images, 2, *mean.shape[1:])
                self.mean = torch.zeros(shape, device=mean.device)
                self.std = torch.zeros(shape, device=mean.device)
            self.mean[i, f] = mean[0]
            self.std[i, f] = std[0]
            self._done[i, f] = True

    @torch.inference_mode()
    def _encode_one(self, index: int, flip: int) -> tuple[torch.Tensor, torch.Tensor]:
        picture = self._pixels[index:index + 1]
        picture = picture.flip(-1) if flip else picture
        dist = self._vae.encode(picture.to(self._device, self._dtype)).latent_dist
        return dist.mean.float(), dist.std.float()

    def sample(self, indices: torch.Tensor, flips: torch.Tensor,
               generator: torch.Generator) -> torch.Tensor:
        """As LatentCache.sample, encoding first what this batch draws for the first time."""
        self.fill(indices, flips)
        return super().sample(indices, flips, generator)

    def to(self, device: torch.device) -> LatentCache:
        """An eager cache on `device` (every picture encoded first)."""
        every = torch.arange(self.num_images)
        self.fill(every.repeat_interleave(2), torch.tensor([0, 1]).repeat(self.num_images))
        return super().to(device)
