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


def test_bare_loop_on_a_model_folder_of_your_own(tiny_model_dir, demo_images_dir):
    """--model/--data/--resolution instead of a preset (how a GPU user benchmarks SD 1.5),
    here with bf16 autocast on the CPU."""
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "bare_loop.py"), "--model", str(tiny_model_dir),
         "--data", str(demo_images_dir), "--resolution", "32", "--steps", "2",
         "--mixed_precision", "bf16"],
        capture_output=True, text=True, timeout=300, cwd=ROOT,
        env=dict(os.environ, HF_HUB_OFFLINE="1"))
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["preset"] == "custom" and result["resolution"] == 32
    assert result["device"] == "cpu" and result["mixed_precision"] == "bf16"
    assert result["peak_gpu_mb"] is None and result["steps"] == 2


def test_a_custom_preset_round_trips_through_its_options(tiny_model_dir, demo_images_dir):
    import argparse

    import pytest

    sys.path.insert(0, str(ROOT))
    from bench import presets

    parser = argparse.ArgumentParser()
    presets.add_arguments(parser)
    chosen = presets.from_args(parser.parse_args(
        ["--model", str(tiny_model_dir), "--data", str(demo_images_dir), "--resolution", "48",
         "--initializer", "cat"]))
    assert (chosen.name, chosen.resolution, chosen.initializer) == ("custom", 48, "cat")
    assert presets.from_args(parser.parse_args(chosen.cli_args())) == chosen
    with pytest.raises(SystemExit, match="--model needs --data"):
        presets.from_args(parser.parse_args(["--model", str(tiny_model_dir)]))
