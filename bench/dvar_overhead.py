"""What DVAR's L_det evaluation costs per step, and how `--dvar_eval_every` trades it away.

    python bench/dvar_overhead.py --preset tiny --steps 65 --batch 2
    python bench/dvar_overhead.py --preset small --steps 15 --batch 2

Three `ti-tui train` runs (stdout a file) on the same preset, batch and steps:
`--early_stopping none --dvar_eval_every 0` (no evaluation), `--early_stopping dvar
--dvar_eval_every 1` (the default: L_det after every update) and `--dvar_eval_every 5`.
The DVAR window is set above the step count so no run stops early. Prints one JSON object
with each run's median and mean seconds per step (the mean is the honest figure for
"every 5", whose steps are bimodal), the overhead against no evaluation in % of the mean, and
the cost of one evaluation in seconds, two ways: from the means, and from the trainer's own
`step_seconds` of updates followed by an evaluation against those that were not (in the
every-5 run; `seconds_per_evaluation_inner`). Extra trainer flags go after `--`
(e.g. `-- --dvar_eval_batch_size 2`).

Warm-up: the first evaluation of a process pays one-off set-up for the evaluation batch's shape
(on CUDA: kernel selection and allocator growth for a batch of 4 beside the training batch of
8; it showed as 1.26 s per evaluation in a 16-step run with `--dvar_eval_every 5`). So each
run leaves out its first steps up to and including its first evaluation (`--warmup`, at least
K for every K), and the steps measured span whole cycles of K updates when `--steps` allows:
use a step count of warm-up + a multiple of 5 (e.g. 30 with the default warm-up of 5).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import presets, runs  # noqa: E402

EVERY = {"off": 0, "every_1": 1, "every_5": 5}
SETTINGS = {
    "off": ["--early_stopping", "none", "--dvar_eval_every", "0"],
    "every_1": ["--early_stopping", "dvar", "--dvar_eval_every", "1"],
    "every_5": ["--early_stopping", "dvar", "--dvar_eval_every", "5"],
}


def main(argv: list[str] | None = None) -> dict:
    def more(p):
        p.add_argument("--settings", default=",".join(SETTINGS),
                       help="which runs, of off,every_1,every_5 (without off, the updates "
                            "of the every-5 run that had no evaluation are the base)")

    args, extra = runs.parse_args(__doc__, argv, warmup=5, more=more)
    wanted = [name for name in args.settings.split(",") if name]
    unknown = set(wanted) - set(SETTINGS)
    if unknown or "every_5" not in wanted:
        raise SystemExit(f"--settings takes off, every_1, every_5 (every_5 always); got "
                         f"{args.settings!r}")
    preset = presets.from_args(args)
    steps, batch = args.steps or preset.steps, args.batch or preset.batch
    window = ["--dvar_window", str(steps + 10)]
    load_before = runs.machine_load()
    results = {}
    for name, flags in SETTINGS.items():
        if name not in wanted:
            continue
        every = EVERY[name]
        warmup = max(args.warmup, every)  # the first evaluation is one-off set-up
        r = runs.run_titui(preset, steps, batch, [*flags, *window, *extra], warmup=warmup)
        results[name] = {k: r[k] for k in ("median_s", "p90_s", "mean_s", "steps_per_s",
                                           "steps_measured", "evaluations",
                                           "trainer_step_seconds_median",
                                           "step_seconds_with_eval_mean",
                                           "step_seconds_without_eval_mean",
                                           "max_step_memory_mb", "flags")}
        results[name]["warmup"] = warmup
    base = (results["off"]["mean_s"] if "off" in results
            else results["every_5"]["step_seconds_without_eval_mean"])
    for name in ("every_1", "every_5"):
        if name not in results:
            continue
        r = results[name]
        r["overhead_pct_of_mean"] = 100 * (r["mean_s"] / base - 1)
        r["seconds_per_evaluation"] = (r["mean_s"] - base) * EVERY[name]
    inner = results["every_5"]
    if inner["step_seconds_with_eval_mean"] and inner["step_seconds_without_eval_mean"]:
        cost = inner["step_seconds_with_eval_mean"] - inner["step_seconds_without_eval_mean"]
        results["seconds_per_evaluation_inner"] = cost
        results["evaluation_pct_of_update_inner"] = (
            100 * cost / inner["step_seconds_without_eval_mean"])
    return {"preset": preset.name, "resolution": preset.resolution, "batch": batch,
            "steps": steps, "eval_batch_size": _eval_batch(extra), **results,
            "machine_before": load_before, "machine_after": runs.machine_load()}


def _eval_batch(extra: list[str]) -> int:
    if "--dvar_eval_batch_size" in extra:
        return int(extra[extra.index("--dvar_eval_batch_size") + 1])
    from trainer.config import TrainConfig

    return TrainConfig.__dataclass_fields__["dvar_eval_batch_size"].default


if __name__ == "__main__":
    print(json.dumps(main()))
