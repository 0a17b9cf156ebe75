"""bench/contention.py runs and prints the JSON docs/PERFORMANCE.md quotes (issue 20): one run
alone and two at once, each trainer with the thread plan it reported. Nothing is timed here;
the 2.5x bound is measured on a quiet machine by the benchmark itself."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_contention_tiny_prints_its_json():
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY")}
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "contention.py"), "--preset", "tiny",
         "--steps", "6", "--batch", "1", "--repeats", "1", "--scenarios", "alone,two_at_once"],
        capture_output=True, text=True, timeout=600, cwd=ROOT,
        env=dict(env, HF_HUB_OFFLINE="1"))
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["preset"] == "tiny" and result["repeats"] == 1
    assert result["alone"]["steps_measured"] > 0 and result["alone"]["median_s"] > 0
    for name in ("alone", "two_at_once"):
        plan = result[name]["cpu_threads"]  # what each trainer's run_started said it chose
        assert plan["source"] == "cores" and plan["threads"] >= 1
        assert plan["adapts"] == (sys.platform == "linux")  # follows the other processes
    # Two short runs on a loaded machine may not step at the same time at all: then there is
    # no overlap to time, and no ratio (never a made-up one).
    two = result["two_at_once"]
    assert (two["median_s"] is None) == (result["two_vs_alone"] is None)
    assert result["two_vs_alone"] is None or result["two_vs_alone"] > 0
    assert result["hog_vs_alone"] is None  # not asked for
