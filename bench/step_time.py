"""`ti-tui train` against the bare loop: step time, time to the first step, peak RSS.

    python bench/step_time.py --preset tiny --steps 60 --batch 2
    python bench/step_time.py --preset small --steps 12 --batch 2 --repeats 2

Runs bench/bare_loop.py and `ti-tui train ... --early_stopping none --dvar_eval_every 0`
(stdout a file, so plain lines; no periodic snapshots or checkpoints) one after the other on
the same preset, batch and step count, `--repeats` times alternating, and prints one JSON
object: each side's median and p90 seconds per step (pooled over repeats, first `--warmup`
steps of each run left out), first-step seconds (process start to the first step), peak RSS,
and `ratio` = ti-tui median / bare median. `pipeline_peak_rss_mb` is what merely loading the
whole StableDiffusionPipeline from the same folder takes, for comparison with the trainer's.
Extra trainer flags go after `--`, e.g. `-- --gradient_checkpointing`. On a GPU, point it at
a real model: `--model ~/sd15 --data ~/cat --resolution 512 --mixed_precision bf16` (both sides
then run on CUDA; `peak_gpu_mb` / `max_step_memory_mb` hold the GPU memory).
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import presets, runs  # noqa: E402
from bench.bare_loop import percentile  # noqa: E402

PIPELINE_RSS = """
import json, resource, sys
from diffusers import StableDiffusionPipeline
from diffusers.utils import logging
logging.set_verbosity_error(); logging.disable_progress_bar()
pipe = StableDiffusionPipeline.from_pretrained(sys.argv[1], local_files_only=True,
                                               safety_checker=None)
print(json.dumps({"pipeline_peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def pipeline_rss(model_dir: Path) -> float | None:
    done = subprocess.run([sys.executable, "-c", PIPELINE_RSS, str(model_dir)],
                          env=runs.bench_env(), capture_output=True, text=True, check=False)
    if done.returncode != 0:
        return None
    return json.loads(done.stdout.strip().splitlines()[-1])["pipeline_peak_rss_mb"]


def pooled(runs_: list[dict], key: str = "step_times_s") -> dict:
    times = [t for r in runs_ for t in r[key]]
    return {"median_s": statistics.median(times), "p90_s": percentile(times, 0.9),
            "mean_s": statistics.fmean(times), "steps_measured": len(times)}


def main(argv: list[str] | None = None) -> dict:
    def more(p):
        p.add_argument("--repeats", type=int, default=1)
        p.add_argument("--no_pipeline_rss", action="store_true")
        p.add_argument("--mixed_precision", choices=("no", "fp16", "bf16"), default="no",
                       help="for both sides (on a GPU)")

    args, extra = runs.parse_args(__doc__, argv, warmup=1, more=more)
    preset = presets.from_args(args)
    steps, batch = args.steps or preset.steps, args.batch or preset.batch
    load_before = runs.machine_load()
    bare_runs, ti_runs = [], []
    for _ in range(args.repeats):
        precision = ["--mixed_precision", args.mixed_precision]
        bare = runs.run_bare(preset, steps, batch, ["--per_step", *precision],
                             warmup=args.warmup)
        bare["step_times_s"] = bare["step_times_s"][args.warmup:]
        bare_runs.append(bare)
        ti = runs.run_titui(preset, steps, batch, ["--early_stopping", "none",
                                                   "--dvar_eval_every", "0", *precision,
                                                   *extra],
                            warmup=args.warmup, per_step=True)
        ti_runs.append(ti)
    bare_stats, ti_stats = pooled(bare_runs), pooled(ti_runs)
    result = {
        "preset": preset.name, "resolution": preset.resolution, "batch": batch, "steps": steps,
        "repeats": args.repeats, "warmup": args.warmup,
        "ti_tui": {**ti_stats,
                   "first_step_s": statistics.median(r["first_step_s"] for r in ti_runs),
                   "peak_rss_mb": max(r["peak_rss_mb"] for r in ti_runs),
                   "trainer_peak_rss_mb": max(r["trainer_peak_rss_mb"] or 0 for r in ti_runs),
                   "ui_peak_rss_mb": max(r["ui_peak_rss_mb"] or 0 for r in ti_runs),
                   # the step events' memory: peak GPU memory on CUDA, the RSS on a CPU
                   "max_step_memory_mb": max(r["max_step_memory_mb"] for r in ti_runs),
                   "trainer_step_seconds_median": statistics.median(
                       r["trainer_step_seconds_median"] for r in ti_runs),
                   "startup": ti_runs[-1]["startup"], "flags": ti_runs[-1]["flags"]},
        "bare": {**bare_stats,
                 "first_step_s": statistics.median(r["first_step_s"] for r in bare_runs),
                 "peak_rss_mb": max(r["peak_rss_mb"] for r in bare_runs),
                 "import_s": bare_runs[-1]["import_s"], "load_s": bare_runs[-1]["load_s"],
                 "cache_latents_s": bare_runs[-1]["cache_latents_s"],
                 "params_m": bare_runs[-1]["params_m"], "threads": bare_runs[-1]["threads"],
                 "device": bare_runs[-1]["device"], "peak_gpu_mb": bare_runs[-1]["peak_gpu_mb"],
                 "attention_processors": bare_runs[-1]["attention_processors"]},
        "ratio": ti_stats["median_s"] / bare_stats["median_s"],
        "ratio_mean": ti_stats["mean_s"] / bare_stats["mean_s"],
        "per_repeat_ratio": [t["median_s"] / b["median_s"] for t, b in zip(ti_runs, bare_runs)],
        "machine_before": load_before, "machine_after": runs.machine_load(),
    }
    if not args.no_pipeline_rss:
        result["pipeline_peak_rss_mb"] = pipeline_rss(preset.model_dir)
    return result


if __name__ == "__main__":
    print(json.dumps(main()))
