"""bench/dvar_outcome.py in its seconds-long smoke mode: the table, the plot, and resuming.

The real bench is hours of CPU and runs by hand (docs/RESULTS.md); this only checks that the
script works end to end on the shipped toy model and continues where it stopped.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "bench" / "dvar_outcome.py"

pytestmark = pytest.mark.slow


def _run(out: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(BENCH), "--out", str(out), "--smoke"],
                          capture_output=True, text=True, timeout=600, cwd=ROOT,
                          env=dict(os.environ, HF_HUB_OFFLINE="1"))


def test_smoke_writes_the_table_and_resumes(tmp_path):
    out = tmp_path / "dvo"
    done = _run(out)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout)
    rows = {r["rule"]: r for r in report["rates"]["5e-3"]["table"]}
    assert {"baseline", "baseline_best", "fixed_few", "dvar-paper-v1", "dvar-ti-v2"} <= set(rows)
    assert rows["baseline"]["steps"] == [60, 60]
    # The best snapshot is never worse than the final one, and never later than the baseline.
    assert rows["baseline_best"]["score_mean"] >= rows["baseline"]["score_mean"]
    assert all(s <= 60 for s in rows["baseline_best"]["steps"])
    # A window longer than the run cannot stop it: the published settings end with the run.
    assert rows["dvar-paper-v1"]["steps"] == [60, 60]
    assert set(report["rates"]["5e-3"]["goal"]) >= {"dvar-paper-v1", "dvar-ti-v2"}
    assert (out / "tables.md").read_text().startswith("#### Rate 5e-3")
    assert (out / "report.json").is_file()

    # Interrupted after training, before scoring: the rerun scores without training again.
    (out / "5e-3" / "blue-moon" / "scores.json").unlink()
    trajectory = out / "5e-3" / "blue-moon" / "trajectory.pt"
    before = trajectory.stat().st_mtime_ns
    again = _run(out)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "1 already done; running 1" in again.stderr
    assert trajectory.stat().st_mtime_ns == before
    assert json.loads(again.stdout)["rates"]["5e-3"]["table"] == report["rates"]["5e-3"]["table"]
