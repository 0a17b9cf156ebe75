"""What DVAR's L_det evaluation costs per step, and how `--dvar_eval_every` trades it away.

    python bench/dvar_overhead.py --preset tiny --steps 60 --batch 2
    python bench/dvar_overhead.py --preset small --steps 10 --batch 2

Three `ti-tui train` runs (stdout a file) on the same preset, batch and steps:
`--early_stopping none --dvar_eval_every 0` (no evaluation), `--early_stopping dvar
--dvar_eval_every 1` (the default: L_det after every update) and `--dvar_eval_every 5`.
The DVAR window is set above the step count so no run stops early. Prints one JSON object
with each run's median and mean seconds per step (the mean is the honest figure for
"every 5", whose steps are bimodal), the overhead against no evaluation in % of the mean, and
the cost of one evaluation in seconds. Extra trainer flags go after `--`
(e.g. `-- --dvar_eval_batch_size 2`).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import presets, runs  # noqa: E402

SETTINGS = {
    "off": ["--early_stopping", "none", "--dvar_eval_every", "0"],
    "every_1": ["--early_stopping", "dvar", "--dvar_eval_every", "1"],
    "every_5": ["--early_stopping", "dvar", "--dvar_eval_every", "5"],
}


def main(argv: list[str] | None = None) -> dict:
    args, extra = runs.parse_args(__doc__, argv, warmup=1)
    preset = presets.from_args(args)
    steps, batch = args.steps or preset.steps, args.batch or preset.batch
    window = ["--dvar_window", str(steps + 10)]
    load_before = runs.machine_load()
    results = {}
    for name, flags in SETTINGS.items():
        r = runs.run_titui(preset, steps, batch, [*flags, *window, *extra], warmup=args.warmup)
        results[name] = {k: r[k] for k in ("median_s", "p90_s", "mean_s", "steps_per_s",
                                           "steps_measured", "evaluations",
                                           "trainer_step_seconds_median", "flags")}
    base = results["off"]["mean_s"]
    for name, every in (("every_1", 1), ("every_5", 5)):
        r = results[name]
        r["overhead_pct_of_mean"] = 100 * (r["mean_s"] / base - 1)
        r["seconds_per_evaluation"] = (r["mean_s"] - base) * every
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
