"""The benchmarks run and print the JSON the others read (never timed here): bench/bare_loop.py,
and bench/gpu_check.sh in its CPU smoke mode."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
KEYS = {"runner", "preset", "resolution", "batch", "steps", "median_s", "p90_s", "mean_s",
        "first_step_s", "peak_rss_mb", "load_s", "cache_latents_s", "attention_processors"}


def test_bare_loop_tiny_prints_its_json():
    # conftest points TI_TUI_CACHE_DIR at a per-session folder: the demo model is built there.
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "bare_loop.py"), "--preset", "tiny",
         "--steps", "2", "--per_step", "--device", "cpu"],
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
         "--mixed_precision", "bf16", "--device", "cpu"],
        capture_output=True, text=True, timeout=300, cwd=ROOT,
        env=dict(os.environ, HF_HUB_OFFLINE="1"))
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["preset"] == "custom" and result["resolution"] == 32
    assert result["device"] == "cpu" and result["mixed_precision"] == "bf16"
    assert result["peak_gpu_mb"] is None and result["steps"] == 2


def test_a_custom_preset_round_trips_through_its_options(tiny_model_dir, demo_images_dir):
    import argparse

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


FAKE_PEER = """
import argparse, torch
p = argparse.ArgumentParser()
p.add_argument("--max_train_steps", type=int, default=3)
args, _ = p.parse_known_args()
w = torch.nn.Parameter(torch.zeros(4))
opt = torch.optim.AdamW([w])
for _ in range(args.max_train_steps):
    (w - 1).pow(2).sum().backward()
    opt.step()
    opt.zero_grad()
"""


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_gpu_check_runs_in_smoke_mode(tmp_path):
    """bench/gpu_check.sh's stages on the tiny model on this CPU (what CI runs of it): one
    JSON with every stage's result and the summary table, and a log. A stand-in peer script
    takes the place of diffusers' example (which is never part of this project)."""
    peer = tmp_path / "peer.py"
    peer.write_text(FAKE_PEER)
    out = tmp_path / "out"
    env = dict(os.environ, SMOKE="1", OUT=str(out), PEER_SCRIPT=str(peer), PY=sys.executable,
               SKIP_STAGES="compile", WORK_DIR=str(tmp_path / "work"))
    done = subprocess.run(["bash", str(ROOT / "bench" / "gpu_check.sh")], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=1700)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    report = json.loads((out / "gpu_check.json").read_text())
    stages = report["stages"]
    for name in ("info", "model", "step_time", "peer", "dvar", "gpu_tests"):
        assert stages[name]["rc"] == 0, (name, stages[name])
    assert stages["info"]["result"]["torch"]
    assert stages["step_time"]["result"]["ti_tui"]["median_s"] > 0
    assert stages["peer"]["result"]["steps"] == 8  # the smoke's step count, all stamped
    assert stages["dvar"]["result"]["every_5"]["evaluations"] > 0
    assert stages["gpu_tests"]["tests"]["failures"] == 0
    table = report["summary"]
    assert table["s_per_step_dvar_off"]["ti_tui"] > 0 and table["first_step_s"]["peer"] > 0
    assert "compile" not in stages  # left out by SKIP_STAGES
    log = (out / "gpu_check.log").read_text()
    assert "step_time (limit" in log and "done:" in log
