"""Train the toy model shipped in assets/toy-model: an SD-1.x-shaped pipeline that knows the
toy world of trainer/toyworld.py (32 px shapes, colours and places).

    nice -n 10 .venv/bin/python tools/train_toy_model.py --out assets/toy-model --seed 0

Two stages, all from scratch, on CPU (2 cores: ~35 min with the defaults):
1. AutoencoderKL, blocks (32, 64), 4 latent channels, x2 downsampling (32 px -> 16x16x4),
   trained on reconstruction (MSE + a tiny KL). Its scaling_factor is then set to
   0.25 / std(latents): deliberately more noise at every timestep than unit-variance latents,
   so the layout cannot be read off the noisy latent and the model must learn position words.
2. UNet2DConditionModel, blocks (32, 64, 64), and a CLIPTextModel (hidden 64, 2 layers, 4
   heads, the real 49408-token vocabulary), trained jointly on v-prediction with min-SNR loss
   weights (gamma 5, weight (min(SNR, 5) + 1) / (SNR + 1)), 10% caption dropout (for
   classifier-free guidance), AdamW lr 1e-3 with cosine decay, EMA 0.995 (the EMA weights are
   shipped).
3. The words "star", "heart" and "moon" are erased: their token rows are overwritten with
   fresh random vectors like those of never-trained words (normal, std 0.02). The model still
   draws those shapes from the right text features, but no word produces them any more: they
   are the textual-inversion targets. The original rows are kept in erased_words.safetensors
   as an answer key (bench and tests compare against them; nothing loads them by default).

The images and captions come from `trainer.toyworld.training_set(n, seed)`; captions are drawn
afresh at every step, so templates and dropped words vary. The output folder is a standard
diffusers StableDiffusionPipeline folder (safetensors), loadable with local_files_only=True;
training_info.json records the command, seed, time and losses.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from trainer import toyworld  # noqa: E402
from trainer.assets import asset_path  # noqa: E402

TOKENIZER_FILES = ("vocab.json", "merges.txt", "tokenizer_config.json",
                   "special_tokens_map.json", "LICENSE")
SNR_GAMMA = 5.0
LATENT_STD_TARGET = 0.25


def build_models(seed: int):
    from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    torch.manual_seed(seed)
    vae = AutoencoderKL(
        in_channels=3, out_channels=3, block_out_channels=(32, 64),
        down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
        layers_per_block=1, latent_channels=4, norm_num_groups=16, sample_size=32,
        scaling_factor=1.0)
    torch.manual_seed(seed + 1)
    unet = UNet2DConditionModel(
        sample_size=16, in_channels=4, out_channels=4, block_out_channels=(32, 64, 64),
        layers_per_block=1,
        # Attention at 8x8 and 4x4 only: at 16x16 it made a step 2-3x slower on 2 cores, and
        # 8x8 cross-attention is fine enough for five coarse places.
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=64, attention_head_dim=(4, 8, 8), norm_num_groups=16)
    torch.manual_seed(seed + 2)
    text_encoder = CLIPTextModel(CLIPTextConfig(
        vocab_size=49408, hidden_size=64, intermediate_size=256, num_hidden_layers=2,
        num_attention_heads=4, max_position_embeddings=77, projection_dim=64,
        hidden_act="quick_gelu", bos_token_id=49406, eos_token_id=49407, pad_token_id=49407))
    scheduler = DDPMScheduler(
        num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012,
        beta_schedule="scaled_linear", prediction_type="v_prediction", clip_sample=False,
        steps_offset=1)
    return vae, unet, text_encoder, scheduler


def load_tokenizer():
    from transformers import CLIPTokenizer

    return CLIPTokenizer.from_pretrained(str(asset_path("clip-tokenizer")), local_files_only=True)


def render_all(scenes) -> torch.Tensor:
    """uint8 [n, 3, 32, 32]."""
    arr = np.stack([np.asarray(toyworld.render(s), dtype=np.uint8) for s in scenes])
    return torch.from_numpy(arr).permute(0, 3, 1, 2).contiguous()


def to_pixels(batch_uint8: torch.Tensor) -> torch.Tensor:
    return batch_uint8.float().div(127.5).sub(1.0)


def cosine_lr(step: int, total: int, base: float, warmup: int) -> float:
    if step < warmup:
        return base * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return base * 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def train_vae(vae, images: torch.Tensor, steps: int, batch: int, lr: float, seed: int,
              log) -> list[float]:
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(vae.parameters(), lr=lr, weight_decay=0.0)
    vae.train()
    losses = []
    for step in range(steps):
        for group in opt.param_groups:
            group["lr"] = cosine_lr(step, steps, lr, 20)
        idx = torch.randint(0, images.shape[0], (batch,), generator=gen)
        x = to_pixels(images[idx])
        posterior = vae.encode(x).latent_dist
        z = posterior.mean + posterior.std * torch.randn(posterior.mean.shape, generator=gen)
        recon = vae.decode(z).sample
        rec = F.mse_loss(recon, x)
        kl = posterior.kl().mean() / (x[0].numel())
        loss = rec + 1e-4 * kl
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(vae.parameters(), 1.0)
        opt.step()
        losses.append(rec.item())
        if step % 50 == 0 or step == steps - 1:
            log(f"vae step {step:5d} recon_mse {rec.item():.5f} kl {kl.item():.4f}")
    vae.eval()
    vae.requires_grad_(False)
    return losses


@torch.no_grad()
def encode_all(vae, images: torch.Tensor, chunk: int = 512):
    means, stds = [], []
    for start in range(0, images.shape[0], chunk):
        dist = vae.encode(to_pixels(images[start:start + chunk])).latent_dist
        means.append(dist.mean.clone())
        stds.append(dist.std.clone())
    return torch.cat(means), torch.cat(stds)


class EMA:
    def __init__(self, modules, decay: float):
        self.decay = decay
        self.params = [p for m in modules for p in m.parameters()]
        self.shadow = [p.detach().clone() for p in self.params]

    @torch.no_grad()
    def update(self, step: int) -> None:
        decay = min(self.decay, (1 + step) / (10 + step))
        for s, p in zip(self.shadow, self.params):
            s.lerp_(p.detach(), 1.0 - decay)

    @torch.no_grad()
    def copy_to(self) -> None:
        for s, p in zip(self.shadow, self.params):
            p.copy_(s)


def v_loss_weights(scheduler, timesteps: torch.Tensor) -> torch.Tensor:
    ac = scheduler.alphas_cumprod[timesteps]
    snr = ac / (1.0 - ac)
    return (snr.clamp(max=SNR_GAMMA) + 1.0) / (snr + 1.0)


def train_diffusion(unet, text_encoder, scheduler, tokenizer, scenes, means, stds, scaling,
                    args, log) -> list[float]:
    gen = torch.Generator().manual_seed(args.seed + 10)
    rng = random.Random(f"captions:{args.seed}")
    params = list(unet.parameters()) + list(text_encoder.parameters())
    opt = torch.optim.AdamW(params, lr=args.lr, weight_decay=0.01)
    ema = EMA([unet, text_encoder], args.ema)
    empty_ids = tokenizer("", padding="max_length", max_length=77,
                          return_tensors="pt").input_ids[0]
    unet.train()
    text_encoder.train()
    losses = []
    started = time.perf_counter()
    total = args.steps
    step = 0
    while step < total:
        if args.deadline and step in (args.warmup, 4 * args.warmup):
            # Re-plan once warmup is over (the schedule so far does not depend on the total):
            # fit the cosine decay into the time left, never lengthen it.
            per_step = (time.perf_counter() - started) / step
            fits = int((args.deadline - time.time()) / per_step) + step
            if fits < total:
                log(f"re-planned: {total} -> {fits} steps to finish within the budget")
                total = max(fits, step + 1)
        lr = cosine_lr(step, total, args.lr, args.warmup)
        for group in opt.param_groups:
            group["lr"] = lr
        idx = torch.randint(0, len(scenes), (args.batch,), generator=gen)
        captions = [toyworld.caption(scenes[i], rng) for i in idx.tolist()]
        ids = tokenizer(captions, padding="max_length", truncation=True, max_length=77,
                        return_tensors="pt").input_ids
        drop = torch.rand(args.batch, generator=gen) < args.caption_dropout
        ids[drop] = empty_ids
        latents = (means[idx] + stds[idx] * torch.randn(means[idx].shape, generator=gen))
        latents = latents * scaling
        noise = torch.randn(latents.shape, generator=gen)
        t = torch.randint(0, scheduler.config.num_train_timesteps, (args.batch,), generator=gen)
        noisy = scheduler.add_noise(latents, noise, t)
        target = scheduler.get_velocity(latents, noise, t)
        hidden = text_encoder(ids)[0]
        pred = unet(noisy, t, hidden).sample
        per_item = F.mse_loss(pred, target, reduction="none").mean(dim=(1, 2, 3))
        loss = (per_item * v_loss_weights(scheduler, t)).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        ema.update(step)
        losses.append(loss.item())
        if step % 25 == 0 or step == total - 1:
            elapsed = time.perf_counter() - started
            recent = float(np.mean(losses[-25:]))
            log(f"unet step {step:5d}/{total} loss {recent:.4f} lr {lr:.2e} "
                f"{elapsed / (step + 1):.2f} s/step elapsed {elapsed / 60:.1f} min")
        step += 1
    args.steps_done = total
    raw = ({k: v.clone() for k, v in unet.state_dict().items()},
           {k: v.clone() for k, v in text_encoder.state_dict().items()})
    ema.copy_to()
    args.raw_state = raw
    unet.eval()
    text_encoder.eval()
    return losses


@torch.no_grad()
def save_reconstructions(vae, images: torch.Tensor, target: Path) -> None:
    from PIL import Image

    x = to_pixels(images)
    recon = vae.decode(vae.encode(x).latent_dist.mean).sample
    both = torch.cat([x, recon]).clamp(-1, 1).add(1).mul(127.5).round().byte()
    grid = both.view(2, -1, 3, 32, 32).permute(0, 3, 1, 4, 2).reshape(64, -1, 3)
    target.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(grid.numpy()).resize((grid.shape[1] * 3, 64 * 3), Image.NEAREST).save(target)


def save_samples(model_dir: Path, target: Path) -> None:
    """One row per colour, one column per shape (erased words draw at random)."""
    from diffusers import DPMSolverMultistepScheduler, StableDiffusionPipeline
    from PIL import Image

    pipe = StableDiffusionPipeline.from_pretrained(str(model_dir), local_files_only=True)
    pipe.scheduler = DPMSolverMultistepScheduler.from_config(pipe.scheduler.config)
    pipe.set_progress_bar_config(disable=True)
    words = list(toyworld.SHAPES)
    places = list(toyworld.POSITIONS)
    prompts = [f"a {c} {w} {toyworld.POSITION_PHRASES[places[(i + j) % 5]]}"
               for i, c in enumerate(toyworld.COLOURS) for j, w in enumerate(words)]
    images = pipe(prompts, num_inference_steps=20, guidance_scale=4.0,
                  generator=torch.Generator().manual_seed(0)).images
    sheet = Image.new("RGB", (32 * len(words), 32 * len(toyworld.COLOURS)), "white")
    for k, img in enumerate(images):
        sheet.paste(img, ((k % len(words)) * 32, (k // len(words)) * 32))
    sheet.resize((sheet.width * 3, sheet.height * 3), Image.NEAREST).save(target)
    (target.parent / "samples.txt").write_text("\n".join(prompts) + "\n")


ERASE_STD = 0.02
"""CLIPTextModel's init std for token rows (initializer_range): what never-trained words hold."""


@torch.no_grad()
def erase_words(text_encoder, tokenizer, words, seed: int) -> dict[str, torch.Tensor]:
    """Overwrite each word's token row with a fresh random one; returns the original rows."""
    table = text_encoder.get_input_embeddings().weight
    gen = torch.Generator().manual_seed(seed)
    originals = {}
    for word in words:
        ids = tokenizer.encode(word, add_special_tokens=False)
        if len(ids) != 1:
            raise ValueError(f"{word!r} is not one token")
        originals[word] = table[ids[0]].clone()
        table[ids[0]] = torch.randn(table.shape[1], generator=gen) * ERASE_STD
    return originals


def write_folder(out: Path, vae, unet, text_encoder, scheduler, info: dict,
                 erased: dict[str, torch.Tensor] | None = None) -> None:
    import diffusers

    tmp = out.with_name(f".{out.name}.tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    unet.save_pretrained(tmp / "unet", safe_serialization=True)
    vae.save_pretrained(tmp / "vae", safe_serialization=True)
    text_encoder.save_pretrained(tmp / "text_encoder", safe_serialization=True)
    scheduler.save_pretrained(tmp / "scheduler")
    (tmp / "tokenizer").mkdir()
    for name in TOKENIZER_FILES:
        shutil.copyfile(asset_path("clip-tokenizer", name), tmp / "tokenizer" / name)
    index = {
        "_class_name": "StableDiffusionPipeline", "_diffusers_version": diffusers.__version__,
        "feature_extractor": [None, None], "image_encoder": [None, None],
        "requires_safety_checker": False, "safety_checker": [None, None],
        "scheduler": ["diffusers", "DDPMScheduler"],
        "text_encoder": ["transformers", "CLIPTextModel"],
        "tokenizer": ["transformers", "CLIPTokenizer"],
        "unet": ["diffusers", "UNet2DConditionModel"], "vae": ["diffusers", "AutoencoderKL"]}
    (tmp / "model_index.json").write_text(json.dumps(index, indent=2) + "\n")
    (tmp / "training_info.json").write_text(json.dumps(info, indent=2) + "\n")
    if erased:
        from safetensors.torch import save_file

        save_file({k: v.contiguous() for k, v in erased.items()},
                  str(tmp / "erased_words.safetensors"))
    # Keep a scorer trained earlier (tools/toy_scorer.py writes it into the same folder).
    if (out / "scorer.safetensors").is_file():
        shutil.copyfile(out / "scorer.safetensors", tmp / "scorer.safetensors")
    if out.exists():
        shutil.rmtree(out)
    tmp.rename(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=REPO / "assets" / "toy-model")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--images", type=int, default=16000)
    parser.add_argument("--vae-steps", type=int, default=300)
    parser.add_argument("--vae-batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--warmup", type=int, default=100)
    parser.add_argument("--ema", type=float, default=0.995)
    parser.add_argument("--vae-from", type=Path, default=None,
                        help="reuse the VAE of an earlier output folder instead of training one")
    parser.add_argument("--raw-out", type=Path, default=None,
                        help="also write the final non-EMA weights as a second folder")
    parser.add_argument("--caption-dropout", type=float, default=0.1)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--budget-minutes", type=float, default=0.0,
                        help="if > 0, shorten the UNet stage (fewer steps, same schedule "
                        "shape) so that the whole script ends within this many minutes")
    parser.add_argument("--debug-dir", type=Path, default=None,
                        help="write VAE reconstructions and sample generations here")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    started = time.perf_counter()
    args.deadline = time.time() + args.budget_minutes * 60 if args.budget_minutes > 0 else 0.0

    def log(message: str) -> None:
        print(f"[{(time.perf_counter() - started) / 60:6.1f} min] {message}", flush=True)

    data = toyworld.training_set(args.images, args.seed)
    scenes = [scene for scene, _ in data]
    images = render_all(scenes)
    log(f"rendered {len(scenes)} training images")
    vae, unet, text_encoder, scheduler = build_models(args.seed)
    tokenizer = load_tokenizer()
    counts = {name: sum(p.numel() for p in m.parameters())
              for name, m in (("vae", vae), ("unet", unet), ("text_encoder", text_encoder))}
    log(f"parameters {counts}")

    t0 = time.perf_counter()
    if args.vae_from:
        from diffusers import AutoencoderKL

        vae = AutoencoderKL.from_pretrained(str(args.vae_from), subfolder="vae",
                                            local_files_only=True)
        vae.register_to_config(scaling_factor=1.0)
        vae.eval()
        vae.requires_grad_(False)
        vae_losses = []
        log(f"VAE taken from {args.vae_from}")
    else:
        vae_losses = train_vae(vae, images, args.vae_steps, args.vae_batch, 1e-3,
                               args.seed + 5, log)
    vae_seconds = time.perf_counter() - t0
    if args.debug_dir:
        save_reconstructions(vae, images[:16], args.debug_dir / "vae-recon.png")
    means, stds = encode_all(vae, images)
    gen = torch.Generator().manual_seed(args.seed + 7)
    sample = means[:4096] + stds[:4096] * torch.randn(means[:4096].shape, generator=gen)
    latent_std = float(sample.std())
    scaling = LATENT_STD_TARGET / latent_std
    vae.register_to_config(scaling_factor=scaling)
    log(f"latent std {latent_std:.4f} -> scaling_factor {scaling:.5f}")

    t0 = time.perf_counter()
    losses = train_diffusion(unet, text_encoder, scheduler, tokenizer, scenes, means, stds,
                             scaling, args, log)
    unet_seconds = time.perf_counter() - t0
    info = {
        "command": "python tools/train_toy_model.py " + " ".join(argv or sys.argv[1:]),
        "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "parameters": counts, "torch": torch.__version__,
        "vae_seconds": round(vae_seconds, 1), "unet_seconds": round(unet_seconds, 1),
        "steps_done": args.steps_done,
        "seconds_per_step": round(unet_seconds / max(1, args.steps_done), 3),
        "vae_recon_mse_final": float(np.mean(vae_losses[-50:])) if vae_losses else None,
        "latent_std": latent_std, "scaling_factor": scaling,
        "loss_first_100": float(np.mean(losses[:100])),
        "loss_final_100": float(np.mean(losses[-100:])),
        "loss_every_100": [round(float(np.mean(losses[i:i + 100])), 5)
                           for i in range(0, len(losses), 100)],
        "held_out_pairs": [list(p) for p in toyworld.HELD_OUT_PAIRS],
    }
    info["args"].pop("deadline", None)
    info["args"].pop("raw_state", None)
    info["erased_words"] = list(toyworld.ERASED_SHAPES)
    erased = erase_words(text_encoder, tokenizer, toyworld.ERASED_SHAPES, args.seed + 99)
    write_folder(args.out, vae, unet, text_encoder, scheduler, info, erased)
    if args.raw_out:
        unet.load_state_dict(args.raw_state[0])
        text_encoder.load_state_dict(args.raw_state[1])
        erased_raw = erase_words(text_encoder, tokenizer, toyworld.ERASED_SHAPES, args.seed + 99)
        write_folder(args.raw_out, vae, unet, text_encoder, scheduler,
                     info | {"weights": "raw (no EMA)"}, erased_raw)
    if args.debug_dir:
        save_samples(args.out, args.debug_dir / "samples.png")
    log(f"wrote {args.out}; loss first/last 100: {info['loss_first_100']:.4f} / "
        f"{info['loss_final_100']:.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
