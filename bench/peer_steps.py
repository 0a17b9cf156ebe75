"""Time another training script, unmodified: every optimizer step, the first one, GPU memory.

    python bench/peer_steps.py OUT.json SCRIPT.py [the script's own arguments...]

Runs SCRIPT.py in this process as `__main__` (so it sees its own arguments) after registering a
global optimizer-step hook (torch.optim.optimizer.register_optimizer_step_post_hook), which
stamps the wall time after each `optimizer.step()` of any optimizer the script makes. At exit it
writes OUT.json: the process's start (its kernel start time), the stamps, the median and p90
seconds per step after the first `PEER_WARMUP` (default 2) steps, `first_step_s` from process
start to the end of the first step, and `peak_gpu_mb` (torch.cuda.max_memory_allocated). Used by
bench/gpu_check.sh to measure diffusers' examples/textual_inversion.py beside ti-tui; the
script itself is never copied into this project.
"""

from __future__ import annotations

import atexit
import json
import os
import runpy
import statistics
import sys
import time

try:
    import psutil

    PROCESS_START = psutil.Process().create_time()
except Exception:  # noqa: BLE001 - a timing aid must not stop the run
    PROCESS_START = time.time()


def summary(stamps: list[float], warmup: int) -> dict:
    """Median / p90 / mean seconds per step after `warmup` steps (gaps between stamps)."""
    gaps = [b - a for a, b in zip(stamps, stamps[1:])][max(0, warmup - 1):]
    if not gaps:
        return {"median_s": None, "steps_measured": 0}
    ordered = sorted(gaps)
    return {"median_s": statistics.median(gaps),
            "p90_s": ordered[min(len(ordered) - 1, int(0.9 * (len(ordered) - 1) + 0.5))],
            "mean_s": statistics.fmean(gaps), "steps_measured": len(gaps)}


def main() -> None:
    out_path, script, *rest = sys.argv[1:]
    warmup = int(os.environ.get("PEER_WARMUP", "2"))
    import torch
    from torch.optim.optimizer import register_optimizer_step_post_hook

    stamps: list[float] = []
    register_optimizer_step_post_hook(lambda optimizer, args, kwargs: stamps.append(time.time()))

    @atexit.register
    def write() -> None:
        cuda = torch.cuda.is_available() and torch.cuda.is_initialized()
        result = {"runner": os.path.basename(script), "steps": len(stamps),
                  **summary(stamps, warmup),
                  "first_step_s": (stamps[0] - PROCESS_START) if stamps else None,
                  "peak_gpu_mb": torch.cuda.max_memory_allocated() / 2**20 if cuda else None,
                  "stamps": stamps, "process_start": PROCESS_START}
        with open(out_path, "w", encoding="utf-8") as f:
            json.dump(result, f)

    sys.argv = [script, *rest]
    sys.path.insert(0, os.path.dirname(os.path.abspath(script)))
    runpy.run_path(script, run_name="__main__")


if __name__ == "__main__":
    main()
