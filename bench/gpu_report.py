"""The one JSON of bench/gpu_check.sh: each stage's result as it finishes, and the summary table.

    python bench/gpu_report.py add REPORT.json STAGE --rc RC --seconds S [--file STAGE.json]
    python bench/gpu_report.py add REPORT.json STAGE --rc RC --seconds S --junit RESULTS.xml
    python bench/gpu_report.py summary REPORT.json

`add` records one stage: its exit code (124/137: its `timeout` stopped it), its wall seconds and
the JSON it wrote (the last line of the file that parses as a JSON object), or a pytest JUnit
file's counts and failed test names. The report is rewritten atomically after every stage, so a
run stopped at any point still leaves every finished stage behind. `summary` adds the issue's
table (ti-tui, the bare loop and the peer side by side: s/step without and with L_det, first
step, peak GPU memory split into latent caching and steps, compile) from whatever stages ran;
a figure whose stage did not run is null.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path

TIMEOUT_CODES = (124, 137)


def load(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {"stages": {}}


def save(path: Path, report: dict) -> None:
    """Write atomically (a temporary beside it, then rename): never a half report."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(report, f, indent=1)
    os.replace(tmp, path)


def last_json(path: Path) -> dict | None:
    """The last line of `path` that is a JSON object (scripts print logs before it)."""
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return None
    for line in reversed(lines):
        line = line.strip()
        if line.startswith("{"):
            try:
                value = json.loads(line)
            except ValueError:
                continue
            if isinstance(value, dict):
                return value
    return None


def junit(path: Path) -> dict | None:
    """Counts and failing test ids from a pytest --junitxml file."""
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError):
        return None
    suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
    counts = {k: sum(int(s.get(k, 0)) for s in suites)
              for k in ("tests", "failures", "errors", "skipped")}
    failed = [f"{case.get('classname')}::{case.get('name')}" for case in root.iter("testcase")
              if case.find("failure") is not None or case.find("error") is not None]
    counts["passed"] = counts["tests"] - counts["failures"] - counts["errors"] - counts["skipped"]
    return {**counts, "failed": failed}


def add(report_path: Path, stage: str, rc: int, seconds: float, file: Path | None,
        junit_file: Path | None) -> dict:
    report = load(report_path)
    entry = {"rc": rc, "seconds": round(seconds, 1), "timed_out": rc in TIMEOUT_CODES}
    if file is not None:
        entry["result"] = last_json(file)
    if junit_file is not None:
        entry["tests"] = junit(junit_file)
    report.setdefault("stages", {})[stage] = entry
    report["summary"] = summary(report)
    save(report_path, report)
    return entry


def _get(report: dict, stage: str, *keys):
    value = (report.get("stages", {}).get(stage) or {}).get("result")
    for key in keys:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value


def summary(report: dict) -> dict:
    """The issue's table from the stages that ran (null where a stage is missing)."""
    ti = lambda *k: _get(report, "step_time", "ti_tui", *k)  # noqa: E731
    bare = lambda *k: _get(report, "step_time", "bare", *k)  # noqa: E731
    peer = lambda *k: _get(report, "peer", *k)  # noqa: E731
    dvar = lambda *k: _get(report, "dvar", *k)  # noqa: E731
    table = {
        "s_per_step_dvar_off": {"ti_tui": ti("median_s"), "peer": peer("median_s"),
                                "bare": bare("median_s")},
        "s_per_step_ldet_every_update": {"ti_tui": dvar("every_1", "mean_s")},
        "s_per_step_ldet_every_5": {"ti_tui": dvar("every_5", "mean_s")},
        "ldet_overhead_pct": {"every_1": dvar("every_1", "overhead_pct_of_mean"),
                              "every_5": dvar("every_5", "overhead_pct_of_mean"),
                              "one_evaluation_pct_of_update": dvar(
                                  "evaluation_pct_of_update_inner")},
        "seconds_per_evaluation": {"from_means_every_1": dvar("every_1",
                                                              "seconds_per_evaluation"),
                                   "inner_every_5": dvar("seconds_per_evaluation_inner")},
        "first_step_s": {"ti_tui": ti("first_step_s"), "peer": peer("first_step_s"),
                         "bare": bare("first_step_s")},
        "ti_tui_startup": ti("startup"),
        "peak_gpu_mb": {"ti_tui_latent_cache": ti("latent_cache_memory_mb"),
                        "ti_tui_steps": ti("max_step_memory_mb"),
                        "bare_latent_cache": bare("cache_peak_gpu_mb"),
                        "bare_steps": bare("step_peak_gpu_mb"),
                        "peer_whole_run": peer("peak_gpu_mb")},
        "compile": {"compile_s": _get(report, "compile", "compile_s"),
                    "s_per_step_after": _get(report, "compile", "compiled", "median_s"),
                    "recompile_suspects": _get(report, "compile", "compiled",
                                               "recompile_suspects")},
        "gpu_tests": (report.get("stages", {}).get("gpu_tests") or {}).get("tests"),
        "suite": (report.get("stages", {}).get("suite") or {}).get("tests"),
    }
    off_ti, off_peer = ti("median_s"), peer("median_s")
    table["speedup_vs_peer"] = (off_peer / off_ti) if off_ti and off_peer else None
    mem_ti = max(filter(None, [ti("latent_cache_memory_mb"), ti("max_step_memory_mb")]),
                 default=None)
    table["memory_vs_peer"] = (mem_ti / peer("peak_gpu_mb")) if mem_ti and peer(
        "peak_gpu_mb") else None
    return table


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    a = sub.add_parser("add")
    a.add_argument("report", type=Path)
    a.add_argument("stage")
    a.add_argument("--rc", type=int, required=True)
    a.add_argument("--seconds", type=float, required=True)
    a.add_argument("--file", type=Path, default=None)
    a.add_argument("--junit", type=Path, default=None)
    s = sub.add_parser("summary")
    s.add_argument("report", type=Path)
    args = p.parse_args(argv)
    if args.command == "add":
        entry = add(args.report, args.stage, args.rc, args.seconds, args.file, args.junit)
        shown = {k: v for k, v in entry.items() if k != "result"}
        print(f"stage {args.stage}: {json.dumps(shown)[:600]}")
    else:
        print(json.dumps(load(args.report).get("summary"), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
