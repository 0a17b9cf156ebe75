"""Several trainings on one machine: a run alone, two runs at once, a run beside a busy process.

    python bench/contention.py --preset tiny --steps 60 --batch 2 --repeats 3
    python bench/contention.py --preset small --steps 8 --batch 2 --repeats 2
    python bench/contention.py --preset tiny --code /tmp/ti-before   # another checkout's ti-tui

Each repeat runs three scenarios, one after the other, with `ti-tui train --early_stopping none
--dvar_eval_every 0` (stdout a file, so plain lines, no periodic files):
- `alone`: one run;
- `two_at_once`: two runs started together (separate output folders, the same settings);
- `beside_cpu_hog`: one run while `--hogs` plain Python busy loops (default 1) spin on the CPU,
  as a compile, a test suite or another user's job would.
The runs get this process's environment without OMP_NUM_THREADS, OMP_WAIT_POLICY and
MKL_NUM_THREADS, so ti-tui's own thread plan applies (trainer/threads.py); `--keep_env` keeps
them. `--code DIR` runs the ti-tui of another checkout (e.g. `git archive COMMIT | tar -x -C
DIR`) with the same presets, to compare before and after a change on the same machine.

A step time is the gap between consecutive `step` events (bench/runs.py). For two runs at once
only the steps that both runs spent stepping count (`overlap`: from the later first step to the
earlier last step), so neither run's time alone at either end flatters the figure. Prints one
JSON object: per scenario the median, p90 and mean s/step pooled over runs and repeats, the
trainer's CPU thread plan as its `run_started` event reports it, how many timed steps ran on
each thread count (`threads_ran`, from the step events), the UI process's CPU use, and
`two_vs_alone` / `hog_vs_alone` (ratios of medians); the machine's load before and after.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import presets, runs  # noqa: E402
from bench.bare_loop import percentile  # noqa: E402

THREAD_ENV = ("OMP_NUM_THREADS", "OMP_WAIT_POLICY", "MKL_NUM_THREADS", "TI_TUI_THREADS_SOURCE")
FLAGS = ("--early_stopping", "none", "--dvar_eval_every", "0")
HOG = "while True:\n    pass\n"


def run_env(code: Path, keep_env: bool) -> dict[str, str]:
    """The runs' environment: the chosen checkout first on the path, no thread settings."""
    env = runs.bench_env()
    env["PYTHONPATH"] = os.pathsep.join([str(code), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    if not keep_env:
        for name in THREAD_ENV:
            env.pop(name, None)
    return env


def start_runs(preset: presets.Preset, count: int, steps: int, batch: int, extra: list[str],
               code: Path, env: dict[str, str]) -> list[dict]:
    """Start `count` `ti-tui train` runs at once, wait for all, return each one's record."""
    work = Path(tempfile.mkdtemp(prefix=f"ti-contention-{preset.name}-"))
    records: list[dict] = [{} for _ in range(count)]
    errors: list[BaseException] = []

    def one(i: int) -> None:
        out = work / f"run{i}"
        command = [sys.executable, "-m", "ti_tui.cli", "train",
                   *runs.titui_flags(preset, out, steps, batch, [*FLAGS, *extra])]
        try:
            proc = runs.run_process(command, out, env=env, cwd=code)
            if proc["exit_code"] != 0:
                log = out / "trainer.log"
                tail = log.read_text(errors="replace")[-1500:] if log.is_file() else ""
                raise RuntimeError(f"run {i} exited with {proc['exit_code']}: {tail}")
            records[i] = {"proc": proc,
                          "events": list(runs.read_events(out / "events.jsonl"))}
        except BaseException as exc:  # noqa: BLE001 - reported after the join
            errors.append(exc)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(count)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if errors:
        raise errors[0]
    return records


def step_times(events: list[dict], warmup: int, window: tuple[float, float] | None = None):
    """(end time, seconds, CPU threads) of each step after the first `warmup`, inside `window`
    if given; the threads are what the step event says it ran on (None from older code)."""
    steps = [e for e in events if e.get("type") == "step"]
    timed = [(b["time"], b["time"] - a["time"], b.get("cpu_threads"))
             for a, b in zip(steps, steps[1:])]
    timed = timed[max(0, warmup - 1):]
    if window is not None:
        timed = [(t, s, n) for t, s, n in timed if window[0] <= t - s and t <= window[1]]
    return timed


def scenario(preset, count: int, steps: int, batch: int, extra: list[str], code: Path,
             env: dict[str, str], warmup: int, hogs: int = 0) -> dict:
    """One scenario once: its step times (overlap only, for several runs) and facts."""
    hog_procs = [subprocess.Popen([sys.executable, "-c", HOG]) for _ in range(hogs)]
    try:
        records = start_runs(preset, count, steps, batch, extra, code, env)
    finally:
        for p in hog_procs:
            p.kill()
            p.wait()
    window = None
    if count > 1:
        firsts, lasts = [], []
        for r in records:
            t = [e["time"] for e in r["events"] if e.get("type") == "step"]
            firsts.append(t[min(warmup, len(t) - 1)])
            lasts.append(t[-1])
        window = (max(firsts), min(lasts))
    times, ui_cpu, plans, ran = [], [], [], []
    for r in records:
        timed = step_times(r["events"], warmup, window)
        times.extend(s for _, s, _ in timed)
        ran.extend(n for _, _, n in timed)
        started = next((e for e in r["events"] if e.get("type") == "run_started"), {})
        plans.append(started.get("cpu_threads"))
        span = (timed[0][0] - timed[0][1], timed[-1][0]) if timed else None
        ui_cpu.append(runs._ui_cpu_pct(r["proc"]["ui_cpu_samples"], span))
    return {"times": times, "threads_ran": ran, "cpu_threads": plans, "ui_cpu_pct": ui_cpu,
            "overlap_s": (window[1] - window[0]) if window else None}


def pooled(parts: list[dict]) -> dict:
    """One scenario's repeats pooled: median/p90/mean s/step, per-repeat medians, facts."""
    times = [t for p in parts for t in p["times"]]
    if not times:  # e.g. two runs that never stepped at the same time: no overlap to time
        return {"median_s": None, "steps_measured": 0,
                "cpu_threads": parts[-1]["cpu_threads"][0] if parts else None}
    return {"median_s": statistics.median(times), "p90_s": percentile(times, 0.9),
            "mean_s": statistics.fmean(times), "steps_measured": len(times),
            "per_repeat_median_s": [statistics.median(p["times"]) if p["times"] else None
                                    for p in parts],
            "cpu_threads": parts[-1]["cpu_threads"][0],
            "threads_ran": _counts(n for p in parts for n in p["threads_ran"]),
            "ui_cpu_pct": [round(u, 2) for p in parts for u in p["ui_cpu_pct"] if u is not None],
            "overlap_s": [p["overlap_s"] for p in parts if p["overlap_s"] is not None] or None}


def _counts(values) -> dict[str, int]:
    """How many timed steps ran on each CPU thread count, e.g. {"1": 30, "2": 8}."""
    return {str(k): v for k, v in sorted(Counter(values).items(), key=lambda kv: str(kv[0]))}


def main(argv: list[str] | None = None) -> dict:
    def more(p):
        p.add_argument("--repeats", type=int, default=2)
        p.add_argument("--hogs", type=int, default=1,
                       help="busy-looping processes beside the run in beside_cpu_hog")
        p.add_argument("--code", default=str(runs.ROOT),
                       help="the checkout whose ti-tui runs (default: this one)")
        p.add_argument("--keep_env", action="store_true",
                       help="keep OMP_NUM_THREADS / OMP_WAIT_POLICY from this environment")
        p.add_argument("--scenarios", default="alone,two_at_once,beside_cpu_hog")

    args, extra = runs.parse_args(__doc__, argv, warmup=2, more=more)
    preset = presets.from_args(args)
    steps, batch = args.steps or preset.steps, args.batch or preset.batch
    code = Path(args.code).resolve()
    env = run_env(code, args.keep_env)
    wanted = args.scenarios.split(",")
    load_before = runs.machine_load()
    parts: dict[str, list[dict]] = {name: [] for name in wanted}
    for _ in range(args.repeats):
        for name in wanted:
            count, hogs = {"alone": (1, 0), "two_at_once": (2, 0),
                           "beside_cpu_hog": (1, args.hogs)}[name]
            parts[name].append(scenario(preset, count, steps, batch, extra, code, env,
                                        args.warmup, hogs))
    result: dict = {"preset": preset.name, "resolution": preset.resolution, "batch": batch,
                    "steps": steps, "repeats": args.repeats, "warmup": args.warmup,
                    "code": str(code), "cores": len(os.sched_getaffinity(0)),
                    "flags": [*FLAGS, *extra]}
    for name in wanted:
        result[name] = pooled(parts[name])
    alone = result.get("alone", {}).get("median_s")
    for name, key in (("two_at_once", "two_vs_alone"), ("beside_cpu_hog", "hog_vs_alone")):
        other = result.get(name, {}).get("median_s")
        result[key] = other / alone if alone and other else None
    result["machine_before"] = load_before
    result["machine_after"] = runs.machine_load()
    return result


if __name__ == "__main__":
    print(json.dumps(main()))
