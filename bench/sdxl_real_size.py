"""SDXL at full size, no download: a random-weight SDXL base model at 1024 px, steps timed.

    python bench/sdxl_real_size.py                       # CUDA when present: 1024 px, bf16
    python bench/sdxl_real_size.py --smoke               # the tiny SDXL model at 64 px, on a CPU
    python bench/sdxl_real_size.py --steps 20 --batch 2 --mixed_precision fp16

Builds the model from the SDXL base configs ti-tui ships for single files
(assets/model-configs/sdxl: the UNet of 2.6 B parameters with its "text_time" embedding,
CLIP-L and OpenCLIP-bigG with projection, the VAE) and the shipped CLIP vocabulary, random
weights initialised on the GPU when there is one, saved once as an fp32 diffusers folder
under --work (default /dev/shm when it exists: the 14 GB are written and read at memory
speed). Then runs the real trainer in this process (`trainer.train`: the conditioner, DVAR's
L_det every `--dvar_eval_every` updates, one preview at the end) on `--images` generated
pictures, and prints one JSON object: seconds per update (median and p90 of the intervals
between `step` events, the first `--warmup` left out), the first update, the model load, the
latent caching and the preview, the peak GPU memory, and whether every loss and L_det was
finite. `--smoke` does the same on trainer/tiny_sdxl.py's model at 64 px (what CI-less
machines can run; tests/system/test_sdxl_run.py runs it).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

MODEL_DIRNAME = "sdxl-real-size-random-v1"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def build_real_size(out: Path, device: str) -> Path:
    """SDXL base's shapes with random weights, saved as an fp32 diffusers folder at `out`."""
    import shutil

    import torch
    from diffusers import AutoencoderKL, EulerDiscreteScheduler, UNet2DConditionModel
    from transformers import (CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection)

    from trainer.assets import asset_path
    from trainer.demo import TOKENIZER_FILES
    from trainer.fsutil import atomic_dir
    from trainer.tiny_sdxl import sdxl_model_index

    configs = asset_path("model-configs", "sdxl")
    with atomic_dir(out) as tmp, torch.device(device):
        torch.manual_seed(0)
        for name, make in (
                ("unet", lambda d: UNet2DConditionModel.from_config(
                    UNet2DConditionModel.load_config(d))),
                ("vae", lambda d: AutoencoderKL.from_config(AutoencoderKL.load_config(d))),
                ("text_encoder", lambda d: CLIPTextModel(CLIPTextConfig.from_pretrained(d))),
                ("text_encoder_2", lambda d: CLIPTextModelWithProjection(
                    CLIPTextConfig.from_pretrained(d)))):
            model = make(str(configs / name))
            model.save_pretrained(tmp / name, safe_serialization=True)
            del model
            if device == "cuda":
                torch.cuda.empty_cache()
        EulerDiscreteScheduler.from_config(EulerDiscreteScheduler.load_config(
            str(configs / "scheduler"))).save_pretrained(tmp / "scheduler")
        for name in ("tokenizer", "tokenizer_2"):
            (tmp / name).mkdir()
            for file in TOKENIZER_FILES:
                shutil.copyfile(asset_path("clip-tokenizer", file), tmp / name / file)
            for file in ("special_tokens_map.json", "tokenizer_config.json"):
                shutil.copyfile(configs / name / file, tmp / name / file)
        import diffusers

        index = json.dumps(sdxl_model_index(diffusers.__version__), indent=2) + "\n"
        (tmp / "model_index.json").write_text(index, encoding="utf-8")
    return out


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--smoke", action="store_true",
                   help="the tiny SDXL-shaped model at 64 px on the CPU")
    p.add_argument("--model", help="an SDXL diffusers folder to use instead of building one")
    p.add_argument("--work", help="where the model, images and run go (default: /dev/shm or "
                                  "the temp folder)")
    p.add_argument("--steps", type=int, default=None, help="updates (default 12; smoke 4)")
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--images", type=int, default=4)
    p.add_argument("--resolution", type=int, default=None,
                   help="default: the model's native size (1024; smoke 64)")
    p.add_argument("--mixed_precision", choices=("no", "fp16", "bf16"), default=None,
                   help="default bf16 on CUDA, no on a CPU")
    p.add_argument("--dvar_eval_every", type=int, default=1)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--no_preview", action="store_true")
    p.add_argument("--gradient_checkpointing", action="store_true")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    from trainer import train
    from trainer.config import TrainConfig
    from trainer.demo import write_demo_images

    device = "cuda" if torch.cuda.is_available() and not args.smoke else "cpu"
    shm = Path("/dev/shm")
    work = Path(args.work or (shm if shm.is_dir() and not args.smoke
                              else tempfile.gettempdir())) / "ti-tui-sdxl-bench"
    work.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    if args.model:
        model = Path(args.model)
    elif args.smoke:
        from trainer.tiny_sdxl import build_tiny_sdxl

        model = work / "tiny-sdxl"
        if not (model / "model_index.json").is_file():
            build_tiny_sdxl(model)
    else:
        model = work / MODEL_DIRNAME
        if not (model / "model_index.json").is_file():
            build_real_size(model, device)
    build_s = time.perf_counter() - started
    from trainer.models import check_model_folder

    resolution = args.resolution or check_model_folder(model).native_resolution
    images = write_demo_images(work / f"images-{resolution}", count=args.images,
                               size=resolution)
    steps = args.steps or (4 if args.smoke else 12)
    precision = args.mixed_precision or ("bf16" if device == "cuda" else "no")
    out = work / "run"
    import shutil

    shutil.rmtree(out, ignore_errors=True)
    config = TrainConfig(
        model=str(model), root=str(work), placeholder_token="<bench-token>",
        initializer_token="star", train_data_dir=str(images[0].parent), output_dir=str(out),
        resolution=resolution, train_batch_size=args.batch, max_train_steps=steps,
        learning_rate="5e-3", scale_lr=False, seed=0, early_stopping="none",
        dvar_window=max(2, steps // 2), dvar_eval_every=args.dvar_eval_every,
        dvar_eval_batch_size=min(4, args.images), save_steps=0, checkpointing_steps=0,
        validation_steps=0 if args.no_preview else steps, copy_to_embeddings=False,
        mixed_precision=precision, gradient_checkpointing=args.gradient_checkpointing,
        device=device)
    events: list[tuple[float, object]] = []
    startup_peak: list[float] = []

    def emit(event) -> None:
        events.append((time.perf_counter(), event))
        if event.type == "run_started" and device == "cuda":
            # Loading and latent caching are done: their peak apart from the updates'.
            startup_peak.append(torch.cuda.max_memory_allocated() / 2**20)
            torch.cuda.reset_peak_memory_stats()

    train(config, emit=emit)
    result = report(args, events, started, build_s, device, precision, resolution, steps, model)
    result["startup_peak_gpu_mb"] = startup_peak[0] if startup_peak else None
    print(json.dumps(result))
    return result


def report(args, events, started, build_s, device, precision, resolution, steps, model) -> dict:
    """The JSON: step intervals, phases, memory and finiteness, from the timed events."""
    import torch

    def first(kind: str, **match):
        return next((t for t, e in events if e.type == kind
                     and all(getattr(e, k) == v for k, v in match.items())), None)

    step_events = [(t, e) for t, e in events if e.type == "step"]
    times = [b[0] - a[0] for a, b in zip(step_events, step_events[1:])][args.warmup:]
    loading = first("phase", name="loading model")
    caching = first("phase", name="caching latents")
    run_started = first("run_started")
    preview_t = [t for t, e in events if e.type == "preview" and e.step == steps]
    stopped = next(e for _, e in events if e.type == "stopped")
    result = {
        "model": "tiny SDXL (trainer/tiny_sdxl.py)" if args.smoke and not args.model
        else str(model), "device": device,
        "gpu": torch.cuda.get_device_name() if device == "cuda" else None,
        "precision": precision, "resolution": resolution, "batch": args.batch,
        "steps": steps, "dvar_eval_every": args.dvar_eval_every,
        "gradient_checkpointing": args.gradient_checkpointing,
        "stopped": stopped.reason, "build_or_reuse_s": round(build_s, 2),
        "load_s": round(caching - loading, 2) if caching and loading else None,
        "latents_s": round(run_started - caching, 2) if run_started and caching else None,
        # From the step-0 preview (when there is one) to the end of the first update.
        "first_update_s": round(step_events[0][0] - (first("preview", step=0) or run_started),
                                3) if step_events else None,
        "median_s_per_update": statistics.median(times) if times else None,
        "p90_s_per_update": percentile(times, 0.9) if times else None,
        "updates_measured": len(times),
        "preview_s": round(preview_t[0] - step_events[-1][0], 2) if preview_t else None,
        # On CUDA the peak since the start of the updates (the previews' included); on a CPU
        # the process's resident memory.
        "peak_memory_mb": max((e.memory_mb or 0) for _, e in step_events) if step_events
        else None,
        "losses_finite": all(math.isfinite(e.loss) for _, e in step_events),
        "l_det_finite": all(e.l_det is None or math.isfinite(e.l_det) for _, e in step_events),
        "total_s": round(time.perf_counter() - started, 1),
    }
    return result


if __name__ == "__main__":
    main()
