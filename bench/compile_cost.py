"""What `ti-tui train --compile` costs and gains: seconds to compile, seconds per step after.

    python bench/compile_cost.py --preset tiny --steps 8
    python bench/compile_cost.py --preset sd15 --steps 30 -- --mixed_precision bf16   # a GPU

One `ti-tui train --compile --early_stopping none --dvar_eval_every 0` run, and with `--plain`
also the same run without `--compile`. The first update of a compiled run holds the
compilation (torch.compile compiles lazily, at the first call); `compile_s` is that update's
time (from the `run_started` event to the first `step` event) minus the plain run's first
update when both ran, else the first update alone (an upper bound). Later updates can
recompile too (a new batch shape), so the step-time statistics leave out `--warmup` updates
(default 3) and
`recompile_suspects` lists later updates slower than 3x the median. `pays_back_after_steps`:
how many updates at the measured gain repay the compile time (None when it does not gain).
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import presets, runs  # noqa: E402

FLAGS = ["--early_stopping", "none", "--dvar_eval_every", "0"]


def one(preset, steps: int, batch: int, extra: list[str], warmup: int) -> dict:
    """One `ti-tui train` run: its first update (run_started to step 1) and later steps."""
    r = runs.run_titui(preset, steps, batch, [*FLAGS, *extra], warmup=warmup, per_step=True)
    times = r["step_times_s"]
    median = statistics.median(times)
    return {"run_started_to_step1_s": r["startup"]["run_started_to_step1_s"],
            "first_step_s": r["first_step_s"], "median_s": median, "p90_s": r["p90_s"],
            "mean_s": r["mean_s"], "steps_measured": r["steps_measured"],
            "recompile_suspects": [round(t, 3) for t in times if t > 3 * median],
            "max_step_memory_mb": r["max_step_memory_mb"], "flags": r["flags"]}


def main(argv: list[str] | None = None) -> dict:
    def more(p):
        p.add_argument("--plain", action="store_true",
                       help="also run without --compile, for the gain and the compile time")

    args, extra = runs.parse_args(__doc__, argv, warmup=3, more=more)
    preset = presets.from_args(args)
    steps, batch = args.steps or preset.steps, args.batch or preset.batch
    load_before = runs.machine_load()
    compiled = one(preset, steps, batch, ["--compile", *extra], args.warmup)
    result = {"preset": preset.name, "resolution": preset.resolution, "batch": batch,
              "steps": steps, "compiled": compiled}
    first = compiled["run_started_to_step1_s"]
    if args.plain:
        plain = one(preset, steps, batch, extra, args.warmup)
        result["plain"] = plain
        result["compile_s"] = first - plain["run_started_to_step1_s"]
        gain = plain["median_s"] - compiled["median_s"]
        result["gain_s_per_step"] = gain
        result["pays_back_after_steps"] = (result["compile_s"] / gain) if gain > 0 else None
    else:
        result["compile_s"] = first
    result["machine_before"] = load_before
    result["machine_after"] = runs.machine_load()
    return result


if __name__ == "__main__":
    print(json.dumps(main()))
