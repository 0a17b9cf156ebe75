"""Write tests/data/events_sample.jsonl: a realistic recorded run for the dashboard tests.

The run: phases, run_started, ~430 updates of a decaying noisy training loss with a smoothly
flattening L_det, DVAR (window 282, threshold 0.39) computed by trainer.stopping until it
fires, fp16 skipped updates, warnings, checkpoints and embedding snapshots every 100 steps,
previews every 200, and a `stopped` early_stop event. Events are built with the real
dataclasses of trainer.events, so the fixture follows the schema. Deterministic (seeded,
fixed clock), so snapshots of it never change.

    .venv/bin/python tests/data/make_events_sample.py
"""

from __future__ import annotations

import json
import math
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run as a script from anywhere

from trainer import events as ev  # noqa: E402
from trainer.stopping import DVAR, EMAPercentile, Hall, Trend  # noqa: E402

HERE = Path(__file__).resolve().parent
OUT = HERE / "events_sample.jsonl"
PREVIEW = HERE / "previews" / "step-000400-0.png"
RUN_DIR = "/home/ada/invokeai/text-inversion-output/my-cat"
T0 = 1_700_000_000.0
CONFIG = {
    "model": "stable-diffusion-1.5", "root": "/home/ada/invokeai", "revision": None,
    "train_data_dir": "/home/ada/pictures/cat", "output_dir": RUN_DIR,
    "placeholder_token": "<my-cat>", "initializer_token": "cat", "num_vectors": 1,
    "learnable_property": "object", "resolution": 512, "repeats": 100,
    "max_train_steps": 1000, "num_train_epochs": 100, "train_batch_size": 4,
    "gradient_accumulation_steps": 1, "seed": 59, "learning_rate": "5e-3:200, 2e-3:600, 1e-3",
    "scale_lr": False, "lr_scheduler": "constant", "lr_warmup_steps": 0,
    "clip_grad_mode": "norm", "clip_grad_value": "1.0", "mixed_precision": "fp16",
    "num_processes": 1, "early_stopping": "dvar", "dvar_window": 282, "dvar_threshold": 0.39,
    "dvar_ddof": 0, "dvar_eval_batch_size": 4, "dvar_eval_every": 1, "save_steps": 100,
    "checkpointing_steps": 100, "validation_steps": 200, "validation_prompt": None,
    "log_every": 50,
}


def lr_at(step: int) -> float:
    """The rate of update `step` under CONFIG's schedule string."""
    return 5e-3 if step < 200 else 2e-3 if step < 600 else 1e-3


def write_preview(path: Path) -> None:
    """A 48x48 picture: an orange 'cat' disc with two ears on a blue gradient."""
    from PIL import Image, ImageDraw

    img = Image.new("RGB", (48, 48))
    for y in range(48):
        for x in range(48):
            img.putpixel((x, y), (40 + x, 70 + y * 2, 160 + y))
    draw = ImageDraw.Draw(img)
    draw.polygon([(12, 18), (16, 6), (22, 16)], fill=(230, 130, 40))
    draw.polygon([(26, 16), (32, 6), (36, 18)], fill=(230, 130, 40))
    draw.ellipse((10, 12, 38, 40), fill=(240, 150, 50))
    draw.ellipse((17, 22, 21, 26), fill=(20, 20, 20))
    draw.ellipse((27, 22, 31, 26), fill=(20, 20, 20))
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path)


def events() -> list[ev.Event]:
    """The whole recorded run as event objects."""
    rng = random.Random(59)
    out: list[ev.Event] = [
        ev.Phase("loading_model", "stable-diffusion-1.5", time=T0),
        ev.Phase("caching_latents", "5 images, flipped too", time=T0 + 6.5),
        ev.Warning("Skipped IMG_0042.heic: not an image PIL can open.",
                   file="/home/ada/pictures/cat/IMG_0042.heic", time=T0 + 6.6),
        ev.Phase("building_eval_batch", "4 images, seed 59", time=T0 + 9.0),
        ev.RunStarted(
            config=CONFIG, time=T0 + 10.0, pid=999_999_999,
            model={"path": "/home/ada/invokeai/models/sd-1/main/stable-diffusion-1.5",
                   "token_dim": 768, "prediction_type": "epsilon", "native_resolution": 512},
            # The trainer's units (trainer/plan.py): passes over the 5 images, not epochs of
            # --repeats passes; the dashboard divides by repeats itself.
            dataset={"n_images": 5, "images_per_update": 4, "updates_per_epoch": 1.25,
                     "epochs_total": 800.0, "full_cycle": False, "skipped": 1},
            device="cuda:0 (NVIDIA GeForce RTX 3090)", precision="fp16", num_processes=1,
            start_step=0, max_steps=1000, learning_rate=5e-3, lr_scale=1.0,
            trigger="<my-cat>", tokens=["<my-cat>"], output_dir=RUN_DIR),
    ]
    dvar = DVAR(282, 0.39)
    ema, hall, trend = EMAPercentile(282), Hall(282), Trend(282)
    t, skipped = T0 + 10.0, 0
    for step in range(1, 1001):
        seconds = 0.52 + rng.random() * 0.08
        t += seconds
        skip = step in (3, 4)  # the fp16 scaler finds inf gradients while it calibrates
        skipped += skip
        loss = 0.16 + 0.10 * math.exp(-step / 90) + abs(rng.gauss(0, 0.07))
        l_det = 0.131 + 0.012 * math.exp(-step / 150) + rng.gauss(0, 0.002)
        stop = dvar.update(l_det)
        out.append(ev.Step(
            step=step, loss=round(loss, 5), lr=lr_at(step - 1), images_seen=4 * step,
            epoch=round(4 * step / 5, 4), micro_batches=step, grad_norm=round(0.35 * math.exp(
                -step / 300) + 0.05 + rng.random() * 0.05, 4), clip_value=1.0, skipped=skip,
            skipped_total=skipped, l_det=round(l_det, 6), dvar_ratio=dvar.ratio,
            ema_pct=ema.update(l_det), hall=hall.update(l_det), trend=trend.update(l_det),
            images_per_s=round(4 / seconds, 2), step_seconds=round(seconds, 3),
            memory_mb=6120.0, time=round(t, 3)))
        if step == 150:
            out.append(ev.Warning("Loss was inf at step 150; the update was skipped.", time=t))
        if step % 100 == 0:
            out.append(ev.CheckpointSaved(step, f"{RUN_DIR}/checkpoint-{step}", time=t + 0.4))
            out.append(ev.EmbeddingSaved(step, [
                f"{RUN_DIR}/embeddings/learned_embeds-steps-{step}.safetensors",
                f"{RUN_DIR}/embeddings/learned_embeds-steps-{step}.bin"], time=t + 0.5))
            t += 0.5
        if step % 200 == 0:
            t += 3.0
            out.append(ev.PreviewSaved(step, f"{RUN_DIR}/previews/step-{step:06d}-0.png",
                                       "a photo of <my-cat>", time=t))
        if stop:
            break
    files = [f"{RUN_DIR}/learned_embeds.safetensors", f"{RUN_DIR}/learned_embeds.bin"]
    out.append(ev.CheckpointSaved(step, f"{RUN_DIR}/checkpoint-{step}", time=t + 0.4))
    out.append(ev.EmbeddingSaved(step, files, final=True, time=t + 0.5))
    out.append(ev.Stopped(
        "early_stop", step, files=files, ratio=dvar.ratio, window=282, threshold=0.39, ddof=0,
        message=f"DVAR ratio {dvar.ratio:.3f} < 0.39 after {step} updates", time=t + 0.6))
    return out


def main() -> None:
    """Write the fixture and the preview picture it points to."""
    lines = [json.dumps(e.to_dict(), separators=(",", ":")) for e in events()]
    # One line of a newer writer's event type: readers must skip it.
    lines.insert(5, json.dumps({"type": "gpu_stats", "time": T0 + 10.0, "version": 2}))
    OUT.write_text("\n".join(lines) + "\n", encoding="utf-8")
    write_preview(PREVIEW)
    print(f"wrote {OUT} ({len(lines)} events) and {PREVIEW}")


if __name__ == "__main__":
    main()
