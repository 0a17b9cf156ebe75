"""bench/dvar_outcome.py's report: the per-rate tables, the project's goal check, the plot.

Pure functions of the scored pairs (one dict per concept, as dvar_outcome.score_pair returns),
so the report can be redrawn from saved scores without training or scoring again.
"""

from __future__ import annotations

import statistics
import sys
from pathlib import Path

PUBLISHED = {"dvar-paper-v1": (282, 0.39), "dvar-ti-v2": (310, 0.15)}
"""The paper's setting (arXiv 2302.04841 v1, Sec. 4) and the authors' later textual-inversion
setting; specs/dvar-and-schedules.md."""


def summarise(pairs: dict[str, dict], baseline_steps: int) -> list[dict]:
    """One row per rule over a rate's concepts: mean score, steps, saved vs kept."""
    rows = []
    names = list(next(iter(pairs.values())).keys())
    best_mean = statistics.mean(p["baseline_best"]["score"] for p in pairs.values())
    for name in names:
        if name in ("curve", "l_det", "step_seconds"):
            continue
        items = [p[name] for p in pairs.values()]
        steps = [i["steps"] for i in items]
        mean = statistics.mean(i["score"] for i in items)
        rows.append({"rule": name, "score_mean": mean,
                     "scores": [round(i["score"], 3) for i in items],
                     "steps": steps, "steps_mean": statistics.mean(steps),
                     "steps_saved_x": baseline_steps / statistics.mean(steps),
                     "score_kept_x": mean / best_mean if best_mean else None,
                     "minutes_mean": statistics.mean(i["seconds"] for i in items) / 60})
    return rows


LABELS = {"baseline": "Baseline (all steps)", "baseline_best": "Baseline, best snapshot",
          "fixed_few": "Fixed few steps", "dvar-paper-v1": "DVAR 282 / 0.39 (paper v1)",
          "dvar-ti-v2": "DVAR 310 / 0.15 (later)"}


def table(rate: str, rows: list[dict], concepts: list[str], full: bool = False) -> str:
    lines = [f"#### Rate {rate}", "",
             "| Rule | Score (mean) | Scores (" + ", ".join(concepts) + ") | Steps | "
             "Steps saved (x) | Score kept (x best) | Time, min (mean) |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        if not full and r["rule"].startswith("grid-"):
            continue
        label = LABELS.get(r["rule"], r["rule"].replace("grid-", "window ").replace("-", " / "))
        kept = "-" if r["score_kept_x"] is None else f"{r['score_kept_x']:.2f}"
        lines.append(f"| {label} | {r['score_mean']:.2f} | "
                     f"{', '.join(f'{s:.2f}' for s in r['scores'])} | "
                     f"{', '.join(str(s) for s in r['steps'])} | {r['steps_saved_x']:.1f} | "
                     f"{kept} | {r['minutes_mean']:.2f} |")
    return "\n".join(lines)


def goal_check(rows: list[dict]) -> dict:
    """The project's goal: >= 5x fewer updates than the baseline, >= 0.95x its best score."""
    out = {}
    for r in rows:
        if r["rule"] in PUBLISHED or r["rule"].startswith("grid-"):
            out[r["rule"]] = {"steps_saved_x": round(r["steps_saved_x"], 2),
                              "score_kept_x": None if r["score_kept_x"] is None
                              else round(r["score_kept_x"], 3),
                              "meets_goal": bool(r["steps_saved_x"] >= 5 and
                                                 (r["score_kept_x"] or 0) >= 0.95)}
    return out


def plot(results: dict[str, dict[str, dict]], path: Path) -> Path | None:
    """Score against updates, one panel per rate, a line per concept, DVAR stops marked.

    Drawn with matplotlib (the optional `bench` extra: `pip install -e .[bench]`); without it
    the tables are still written and this says how to draw the plot later (`--plot-only`).
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no plot drawn; pip install matplotlib, then rerun "
              "with the same --out (nothing is trained or scored again)", file=sys.stderr)
        return None
    fig, axes = plt.subplots(1, len(results), figsize=(5.2 * len(results), 4.2), sharey=True,
                             squeeze=False)
    for ax, (rate, pairs) in zip(axes[0], results.items(), strict=True):
        for i, (concept, pair) in enumerate(pairs.items()):
            colour = f"C{i}"
            xs, ys = zip(*pair["curve"], strict=True)
            ax.plot(xs, ys, color=colour, label=concept, linewidth=1.2)
            for name, mark in (("dvar-paper-v1", "x"), ("dvar-ti-v2", "o")):
                stop = pair[name]
                if stop["stopped_early"]:
                    ax.plot([stop["steps"]], [stop["score"]], mark, color=colour,
                            markersize=7, fillstyle="none")
        ax.set_title(f"learning rate {rate}")
        ax.set_xlabel("updates")
        ax.set_ylim(-0.03, 1.05)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("score (fraction of images right)")
    axes[0][-1].plot([], [], "kx", label="DVAR 282/0.39 stop")
    axes[0][-1].plot([], [], "ko", fillstyle="none", label="DVAR 310/0.15 stop")
    axes[0][-1].legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
