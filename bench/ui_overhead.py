"""What watching a run costs the trainer: steps/s with plain lines, Rich live, Textual live.

    python bench/ui_overhead.py --preset tiny --steps 150 --batch 2 --repeats 2
    python bench/ui_overhead.py --preset small --steps 12 --batch 2

The trainer is its own process; the UI process competes with it for the cores. Each repeat
runs, in turn: (a) `ti-tui train` with stdout a file (plain lines, one per step with
--log_every 1), (b) `ti-tui train` on a pseudo-terminal of --columns x --lines (the Rich live
dashboard), (c) bench/textual_live.py on the same pty size (the Textual TrainScreen attached to
a run started by `ti_tui.runner.start_run`). Each pty's output is read and discarded. Steps/s
come from the trainer's events.jsonl (1 / mean time between step events, first `--warmup`
steps left out), pooled over repeats. Prints one JSON object with each mode's steps/s and its
difference from plain in %. Early stopping is on with its default L_det every step (the
setting a user watches); extra trainer flags go after `--`.
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import presets, runs  # noqa: E402
from bench.bare_loop import percentile  # noqa: E402

MODES = ("plain", "rich", "textual")


def main(argv: list[str] | None = None) -> dict:
    def more(p):
        p.add_argument("--repeats", type=int, default=1)
        p.add_argument("--columns", type=int, default=120)
        p.add_argument("--lines", type=int, default=40)
        p.add_argument("--modes", default=",".join(MODES),
                       help="comma-separated subset of plain,rich,textual")

    args, extra = runs.parse_args(__doc__, argv, warmup=3, more=more)
    preset = presets.from_args(args)
    steps = args.steps or preset.steps * 2
    batch = args.batch or preset.batch
    modes = [m for m in args.modes.split(",") if m]
    load_before = runs.machine_load()
    times: dict[str, list[float]] = {m: [] for m in modes}
    per_run: dict[str, list[float]] = {m: [] for m in modes}
    tty_bytes: dict[str, list[int]] = {m: [] for m in modes}
    ui_cpu: dict[str, list[float]] = {m: [] for m in modes}
    flags = ["--dvar_window", str(steps + 10), *extra]
    for _ in range(args.repeats):
        for mode in modes:
            r = runs.run_titui(preset, steps, batch, flags, mode=mode, warmup=args.warmup,
                               size=(args.columns, args.lines), per_step=True)
            times[mode] += r["step_times_s"]
            per_run[mode].append(r["steps_per_s"])
            if r["ui_cpu_pct"] is not None:
                ui_cpu[mode].append(r["ui_cpu_pct"])
            if r["tty_bytes"] is not None:
                tty_bytes[mode].append(r["tty_bytes"])
    result = {"preset": preset.name, "resolution": preset.resolution, "batch": batch,
              "steps": steps, "repeats": args.repeats, "terminal": [args.columns, args.lines]}
    base = 1 / statistics.fmean(times[modes[0]])
    for mode in modes:
        rate = 1 / statistics.fmean(times[mode])
        result[mode] = {"steps_per_s": rate, "median_s": statistics.median(times[mode]),
                        "mean_s": statistics.fmean(times[mode]),
                        "p90_s": percentile(times[mode], 0.9),
                        "max_s": max(times[mode]),
                        "per_run_steps_per_s": per_run[mode],
                        "diff_vs_" + modes[0] + "_pct": 100 * (rate / base - 1),
                        "tty_bytes_per_run": tty_bytes[mode] or None,
                        "ui_cpu_pct_of_a_core": ui_cpu[mode] or None}
    result["machine_before"] = load_before
    result["machine_after"] = runs.machine_load()
    return result


if __name__ == "__main__":
    print(json.dumps(main()))
