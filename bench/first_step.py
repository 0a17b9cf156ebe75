"""Launch to first step of `ti-tui train`, and the CPU seconds that start costs, A against B.

    python bench/first_step.py --preset small --repeats 2
    python bench/first_step.py --preset small --repeats 2 --compare /tmp/old-checkout

Runs `ti-tui train ... --max_train_steps 1` (DVAR off, no snapshots or checkpoints) `--repeats`
times and prints one JSON object: per run the seconds from launch to the first `step` event
(`first_step_s`), the whole run's wall seconds, and `cpu_s`, the user + system CPU seconds of
the `ti-tui` process and the trainer it reaps (os.wait4), which drifts far less than wall time
when other processes share the cores. With `--compare DIR` (another checkout of this
repository, e.g. `git archive OLD | tar -x -C DIR`) the two trees take turns in every repeat,
each run with its own tree first on PYTHONPATH, so both see the same machine; `medians` holds
each side's medians. The 1-minute load average before each run is recorded beside it.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import presets, runs  # noqa: E402


def one_run(tree: Path, preset: presets.Preset) -> dict:
    """One `ti-tui train` of one update from `tree`; its first-step and CPU seconds."""
    out = Path(tempfile.mkdtemp(prefix="ti-first-step-")) / "run"
    env = dict(runs.bench_env(), PYTHONPATH=str(tree))
    flags = runs.titui_flags(preset, out, 1, 2, ["--dvar_eval_every", "0",
                                                 "--early_stopping", "none"])
    load = os.getloadavg()[0]
    launched = time.time()
    proc = subprocess.Popen([sys.executable, "-m", "ti_tui.cli", "train", *flags], env=env,
                            cwd=str(tree), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.time() - launched
    events = runs.read_events(out / "events.jsonl") if (out / "events.jsonl").exists() else []
    step = next((e for e in events if e.get("type") == "step"), None)
    if step is None:
        raise RuntimeError(f"{tree}: no step event; see {out / 'trainer.log'}")
    return {"tree": str(tree), "load1": round(load, 2),
            "first_step_s": round(step["time"] - launched, 3), "wall_s": round(wall, 3),
            "cpu_s": round(usage.ru_utime + usage.ru_stime, 3),
            "exit_code": os.waitstatus_to_exitcode(status)}


def main(argv: list[str] | None = None) -> dict:
    import argparse

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--preset", choices=("tiny", "small"), default="tiny")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--compare", type=Path, default=None,
                   help="another checkout to run in turn with this one")
    args = p.parse_args(argv)
    preset = presets.get(args.preset)
    trees = [ROOT] + ([args.compare.resolve()] if args.compare else [])
    rows = [one_run(tree, preset) for _ in range(args.repeats) for tree in trees]
    medians = {str(tree): {key: statistics.median(r[key] for r in rows if r["tree"] == str(tree))
                           for key in ("first_step_s", "cpu_s")} for tree in trees}
    return {"preset": preset.name, "runs": rows, "medians": medians}


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    print(json.dumps(main()))
