"""bench/bare_loop.py runs and prints the JSON the other benchmarks read (never timed here)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
KEYS = {"runner", "preset", "resolution", "batch", "steps", "median_s", "p90_s", "mean_s",
        "first_step_s", "peak_rss_mb", "load_s", "cache_latents_s", "attention_processors"}


def test_bare_loop_tiny_prints_its_json():
    # conftest points TI_TUI_CACHE_DIR at a per-session folder: the demo model is built there.
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "bare_loop.py"), "--preset", "tiny",
         "--steps", "2", "--per_step"],
        capture_output=True, text=True, timeout=300, cwd=ROOT,
        env=dict(os.environ, HF_HUB_OFFLINE="1"))
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert KEYS <= result.keys()
    assert result["preset"] == "tiny" and result["resolution"] == 64
    assert result["steps"] == 2 and len(result["step_times_s"]) == 2
    assert result["median_s"] > 0 and result["peak_rss_mb"] > 0
