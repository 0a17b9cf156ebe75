"""The bare compute of textual inversion: the floor ti-tui's step time is compared against.

The same model folder, images and batch as `ti-tui train`, and nothing a TI step does not
need: load the four components (no pipeline), cache every image's and its mirror's VAE
posterior once under inference_mode, pre-tokenise the captions, then per step draw a batch
from the cache, noise it, run the text encoder and the UNet forward, backward to the one new
row only, and take an AdamW step on that row. No events, no files, no early stopping.

    python bench/bare_loop.py --preset tiny --steps 60 --batch 2
    python bench/bare_loop.py --preset small --steps 12 --batch 2 --channels_last
    python bench/bare_loop.py --model ~/sd15 --data ~/cat --resolution 512 --mixed_precision bf16

Prints one JSON object. Step times are wall-clock from the end of one step to the end of the
next (what `ti-tui train`'s events measure); the first `--warmup` steps are left out of the
median and p90. `first_step_s` runs from the process's start (its kernel start time) to the end
of the first step. The options (--channels_last, --compile, --gradient_checkpointing,
--attention, --threads) exist to measure what each would change in the trainer. On a machine
with CUDA it runs there (`--device` chooses, as in the trainer), with the trainer's device and
precision handling.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import statistics
import sys
import time
from pathlib import Path

PROCESS_START = None
"""Unix time at which this process started (from the kernel), read before the imports."""
try:
    import psutil

    PROCESS_START = psutil.Process().create_time()
except Exception:  # noqa: BLE001 - psutil is a dependency, but a benchmark must not die of it
    PROCESS_START = time.time()

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

CAPTIONS = ("a photo of a {}", "a rendering of a {}", "a cropped photo of the {}",
            "a close-up photo of a {}", "a bright photo of a {}")
TOKEN = "<bench-token>"


def rss_peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    k = (len(ordered) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def summarize(step_times: list[float], warmup: int) -> dict:
    """Median, p90 and mean of the steps after the warmup (all of them if that leaves none)."""
    kept = step_times[warmup:] or step_times
    return {"median_s": statistics.median(kept), "p90_s": percentile(kept, 0.9),
            "mean_s": statistics.fmean(kept), "steps_measured": len(kept)}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    from bench import presets

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    presets.add_arguments(p)
    p.add_argument("--steps", type=int, default=None, help="steps to run (default: preset's)")
    p.add_argument("--batch", type=int, default=None, help="images per step (default: 2)")
    p.add_argument("--warmup", type=int, default=1, help="first steps left out of the stats")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None,
                   help="torch.set_num_threads (default: torch's own, one per core)")
    p.add_argument("--channels_last", action="store_true", help="UNet in channels_last")
    p.add_argument("--compile", action="store_true", help="torch.compile(unet)")
    p.add_argument("--gradient_checkpointing", action="store_true")
    p.add_argument("--attention", choices=("default", "classic"), default="default",
                   help="default: whatever diffusers picks (SDPA on torch 2); classic: the "
                        "explicit softmax(QK^T)V processor")
    p.add_argument("--no_inference_mode", action="store_true",
                   help="encode the latent cache under no_grad instead of inference_mode")
    p.add_argument("--mixed_precision", choices=("no", "fp16", "bf16"), default="no",
                   help="as the trainer does it: on CUDA the UNet's weights in that dtype, "
                        "the forward under autocast (no loss scaling: timing only)")
    p.add_argument("--device", default=None,
                   help="auto, cpu, cuda or cuda:N, as ti-tui's --device (default: auto, or "
                        "$TI_TUI_DEVICE)")
    p.add_argument("--per_step", action="store_true", help="include every step time")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    import torch
    import torch.nn.functional as F
    from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
    from PIL import Image
    from transformers import CLIPTextModel, CLIPTokenizer
    from transformers.utils import logging as tf_logging

    from bench import presets

    class NewRowEmbedding(torch.nn.Module):
        """The token table, frozen, with one trainable row wherever the new id appears."""

        def __init__(self, table, new_id, start):
            super().__init__()
            self.table = table
            self.new_id = new_id
            self.row = torch.nn.Parameter(start.detach().clone())

        def forward(self, ids):
            return torch.where((ids == self.new_id).unsqueeze(-1), self.row, self.table(ids))

    tf_logging.set_verbosity_error()
    tf_logging.disable_progress_bar()
    imported = time.time()
    if args.threads:
        torch.set_num_threads(args.threads)
    preset = presets.from_args(args)
    steps = args.steps or preset.steps
    batch = args.batch or preset.batch
    res = preset.resolution
    folder = str(preset.model_dir)
    # The device and precision handling of trainer/setup.py, so the floor is comparable on a GPU.
    from trainer.devices import default_device, resolve_device

    device = resolve_device(args.device or default_device())
    amp_dtype = {"no": None, "fp16": torch.float16, "bf16": torch.bfloat16}[args.mixed_precision]
    unet_dtype = amp_dtype if amp_dtype is not None and device.type == "cuda" else torch.float32
    autocast = (torch.autocast(device.type, dtype=amp_dtype) if amp_dtype is not None
                else contextlib.nullcontext())

    # --- load the components (never a pipeline) ------------------------------------------
    t0 = time.time()
    tokenizer = CLIPTokenizer.from_pretrained(folder, subfolder="tokenizer",
                                              local_files_only=True)
    text_encoder = CLIPTextModel.from_pretrained(folder, subfolder="text_encoder",
                                                 local_files_only=True)
    vae = AutoencoderKL.from_pretrained(folder, subfolder="vae", local_files_only=True)
    unet = UNet2DConditionModel.from_pretrained(folder, subfolder="unet", local_files_only=True)
    scheduler = DDPMScheduler.from_pretrained(folder, subfolder="scheduler")
    for model in (text_encoder, vae, unet):
        model.requires_grad_(False)
        model.eval()
    load_s = time.time() - t0
    rss_after_load = rss_peak_mb()

    # --- the new token: one trainable row --------------------------------------------------
    tokenizer.add_tokens([TOKEN])
    new_id = tokenizer.convert_tokens_to_ids(TOKEN)
    init_id = tokenizer.encode(preset.initializer, add_special_tokens=False)[0]
    text_encoder.resize_token_embeddings(len(tokenizer), mean_resizing=False)
    table = text_encoder.get_input_embeddings()
    spliced = NewRowEmbedding(table, new_id, table.weight[init_id])
    text_encoder.set_input_embeddings(spliced)
    captions = [c.format(TOKEN) for c in CAPTIONS]
    caption_ids = tokenizer(captions, padding="max_length", truncation=True,
                            max_length=tokenizer.model_max_length,
                            return_tensors="pt").input_ids

    # --- the latent cache: every image and its mirror, once -------------------------------
    t0 = time.time()
    images = []
    for path in sorted(p for p in preset.data_dir.iterdir()
                       if p.suffix.lower() in (".png", ".jpg", ".jpeg", ".webp")):
        image = Image.open(path).convert("RGB").resize((res, res), Image.Resampling.BICUBIC)
        pixels = torch.frombuffer(bytearray(image.tobytes()), dtype=torch.uint8)
        images.append(pixels.view(res, res, 3).permute(2, 0, 1).float() / 127.5 - 1)
    pixels = torch.stack(images).to(device)
    vae.to(device)
    grad_mode = torch.no_grad() if args.no_inference_mode else torch.inference_mode()
    with grad_mode:
        dist = vae.encode(torch.cat([pixels, pixels.flip(-1)])).latent_dist
        n = pixels.shape[0]
        mean = torch.stack([dist.mean[:n], dist.mean[n:]], 1).clone().cpu()
        std = torch.stack([dist.std[:n], dist.std[n:]], 1).clone().cpu()
    vae.to("cpu")  # the trainer's VAE leaves the GPU once the latents are cached
    scale = vae.config.scaling_factor
    cache_s = time.time() - t0
    rss_after_cache = rss_peak_mb()
    cache_peak_gpu = None
    if device.type == "cuda":
        # Peak GPU memory of start-up (the VAE encoding the images), then of the steps alone.
        cache_peak_gpu = torch.cuda.max_memory_allocated(device) / 2**20
        torch.cuda.reset_peak_memory_stats(device)

    # --- speed options ---------------------------------------------------------------------
    if args.attention == "classic":
        from diffusers.models.attention_processor import AttnProcessor

        unet.set_attn_processor(AttnProcessor())
    processors = sorted({type(p).__name__ for p in unet.attn_processors.values()})
    text_encoder.to(device)
    unet.to(device, dtype=unet_dtype)
    if args.channels_last or device.type == "cuda":  # the trainer uses it on CUDA
        unet.to(memory_format=torch.channels_last)
    if args.gradient_checkpointing:
        unet.enable_gradient_checkpointing()
        unet.train()  # diffusers only checkpoints in training mode; these models have no dropout
    step_unet = torch.compile(unet) if args.compile else unet

    optimizer = torch.optim.AdamW([spliced.row], lr=5e-3, weight_decay=0.0)
    gen = torch.Generator().manual_seed(args.seed)
    timesteps = scheduler.config.num_train_timesteps

    # --- the loop --------------------------------------------------------------------------
    step_times, first_step_end = [], None
    last = time.perf_counter()
    for step in range(steps):
        idx = torch.randint(0, n, (batch,), generator=gen)
        flip = torch.randint(0, 2, (batch,), generator=gen)
        ids = caption_ids[torch.randint(0, len(captions), (batch,), generator=gen)]
        m, s = mean[idx, flip], std[idx, flip]
        latents = ((m + s * torch.randn(m.shape, generator=gen)) * scale).to(device)
        noise = torch.randn(latents.shape, generator=gen).to(device)
        t = torch.randint(0, timesteps, (batch,), generator=gen).to(device)
        noisy = scheduler.add_noise(latents, noise, t)
        with autocast:
            hidden = text_encoder(ids.to(device))[0]
            prediction = step_unet(noisy.to(unet_dtype), t, hidden.to(unet_dtype)).sample
        loss = F.mse_loss(prediction.float(), noise, reduction="mean")
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        loss_value = float(loss.detach())  # what any loop that reports a loss pays
        now = time.perf_counter()
        step_times.append(now - last)
        last = now
        if first_step_end is None:
            first_step_end = time.time()
    if not (loss_value == loss_value):  # noqa: PLR0124 - NaN check
        raise SystemExit("bare loop: the loss is NaN")

    result = {"runner": "bare_loop", "preset": preset.name, "resolution": res, "batch": batch,
              "steps": steps, **summarize(step_times, args.warmup),
              "first_step_s": first_step_end - PROCESS_START,
              # the first step alone (with --compile: compiling, plus one step)
              "first_step_seconds": step_times[0],
              "import_s": imported - PROCESS_START, "load_s": load_s, "cache_latents_s": cache_s,
              "peak_rss_mb": rss_peak_mb(), "rss_after_load_mb": rss_after_load,
              "rss_after_cache_mb": rss_after_cache,
              "device": str(device), "mixed_precision": args.mixed_precision,
              "peak_gpu_mb": (max(cache_peak_gpu, torch.cuda.max_memory_allocated(device) / 2**20)
                              if device.type == "cuda" else None),
              "cache_peak_gpu_mb": cache_peak_gpu,
              "step_peak_gpu_mb": (torch.cuda.max_memory_allocated(device) / 2**20
                                   if device.type == "cuda" else None),
              "threads": torch.get_num_threads(), "attention_processors": processors,
              "options": {k: getattr(args, k) for k in ("channels_last", "compile",
                                                        "gradient_checkpointing", "attention",
                                                        "no_inference_mode")},
              "params_m": {name: round(sum(p.numel() for p in m.parameters()) / 1e6, 2)
                           for name, m in (("unet", unet), ("vae", vae),
                                           ("text_encoder", text_encoder))},
              "torch": torch.__version__}
    if args.per_step:
        result["step_times_s"] = step_times
    return result


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    print(json.dumps(main()))
