"""Where the time before the first step goes, piece by piece, in one fresh process.

    python bench/startup.py --preset small

Times, in the order the trainer does them: the imports (torch, diffusers, transformers,
accelerate), `Accelerator()`, `preflight(config)` (configs, image list, tokenizer), each
component's `from_pretrained` (trainer.models; the tokenizer is the preflight's), splicing
the new row, opening the images, and caching the latents
(trainer.latents.LatentCache.encode, under inference_mode, batches of ENCODE_BATCH).
Also what `StableDiffusionPipeline.from_pretrained` on the same folder takes, for comparison
(`--pipeline`). Prints one JSON object; `--steps` and `--batch` are accepted for a uniform
command line and unused.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from pathlib import Path

T0 = time.perf_counter()
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--preset", choices=("tiny", "small"), default="tiny")
    p.add_argument("--steps", type=int, default=None, help="unused")
    p.add_argument("--batch", type=int, default=None, help="unused")
    p.add_argument("--encode_batch", type=int, default=None,
                   help="images per VAE call when caching latents (trainer.latents."
                        "ENCODE_BATCH; each is encoded with its mirror)")
    p.add_argument("--pipeline", action="store_true",
                   help="time StableDiffusionPipeline.from_pretrained instead")
    args = p.parse_args(argv)
    times: dict[str, float] = {}
    mark = [time.perf_counter()]

    def lap(name: str) -> None:
        now = time.perf_counter()
        times[name] = round(now - mark[0], 4)
        mark[0] = now

    import torch  # noqa: F401

    lap("import_torch")
    import diffusers  # noqa: F401
    import transformers  # noqa: F401

    lap("import_diffusers_transformers")
    from bench import presets

    preset = presets.get(args.preset)
    lap("preset_ready")
    if args.pipeline:
        from diffusers import StableDiffusionPipeline

        StableDiffusionPipeline.from_pretrained(str(preset.model_dir), local_files_only=True,
                                                safety_checker=None)
        lap("pipeline_from_pretrained")
        return {"preset": preset.name, "times_s": times, "peak_rss_mb": rss_mb()}

    from accelerate import Accelerator

    lap("import_accelerate")
    accelerator = Accelerator(mixed_precision="no")
    lap("accelerator")
    from trainer import data, embeddings, models
    from trainer.config import TrainConfig
    from trainer.latents import LatentCache
    from trainer.preflight import preflight

    lap("import_trainer")
    out = Path(os.environ.get("TMPDIR", "/tmp")) / "ti-bench-startup"
    config = TrainConfig(model=str(preset.model_dir), train_data_dir=str(preset.data_dir),
                         root=str(out), output_dir=str(out / "run"),
                         placeholder_token="<bench-token>", initializer_token="star",
                         resolution=preset.resolution, seed=0)
    checked = preflight(config)
    lap("preflight")
    models.check_model_folder(checked.model_path)
    lap("check_model_folder")
    te = models._load_model(transformers.CLIPTextModel, checked.model_path, "text_encoder")
    lap("load_text_encoder")
    vae = models._load_model(diffusers.AutoencoderKL, checked.model_path, "vae")
    lap("load_vae")
    unet = models._load_model(diffusers.UNet2DConditionModel, checked.model_path, "unet")
    lap("load_unet")
    diffusers.DDPMScheduler.from_pretrained(str(checked.model_path), subfolder="scheduler")
    lap("load_scheduler")
    rss_loaded = rss_mb()
    placeholder = embeddings.add_placeholder(checked.tokenizer, config.trigger, 1)
    ids = embeddings.initializer_ids(checked.tokenizer, "star", 1, 0)
    start = te.get_input_embeddings().weight[torch.tensor(ids)].detach().float().clone()
    embeddings.splice_into(te, checked.tokenizer, placeholder, start)
    lap("splice")
    loaded = data.load_images(config.data_path, checked.resolution, config.center_crop)
    pixels = data.to_tensor_batch(loaded.images)
    lap("open_images")
    if args.encode_batch:
        import trainer.latents

        trainer.latents.ENCODE_BATCH = args.encode_batch
    rss_before_cache = rss_mb()
    from trainer.devices import resolve_device

    LatentCache.encode(vae, pixels, resolve_device(config.device, accelerator))
    lap("cache_latents")
    return {"preset": preset.name, "resolution": preset.resolution,
            "images": len(loaded.images), "times_s": times,
            "total_s": round(time.perf_counter() - T0, 3), "rss_after_load_mb": rss_loaded,
            "rss_before_cache_mb": rss_before_cache, "encode_batch": _encode_batch(),
            "peak_rss_mb": rss_mb(),
            "unet_params_m": sum(p.numel() for p in unet.parameters()) / 1e6}


def _encode_batch() -> int:
    import trainer.latents

    return trainer.latents.ENCODE_BATCH


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    print(json.dumps(main()))
