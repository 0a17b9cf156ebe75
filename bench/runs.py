"""Shared by the benchmarks: run `ti-tui train` or the bare loop as a process and measure it.

A ti-tui run's step times come from its events.jsonl: the `time` of one `step` event to the
next, i.e. everything the trainer does per update (the update, DVAR's evaluation, the event,
file checks), which is what a user waits for. The first `warmup` steps are left out.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import pty
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import termios
import threading
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(ROOT))

from bench.bare_loop import percentile  # noqa: E402
from bench.presets import Preset  # noqa: E402
from trainer.event_file import read_events  # noqa: E402  (raw lines: extra fields are kept)

_ENTRY = Path(sys.executable).with_name("ti-tui")
TI_TUI = [str(_ENTRY)] if _ENTRY.is_file() else [sys.executable, "-m", "ti_tui.cli"]
"""The `ti-tui` command as a user runs it: the venv's entry point, else the module (e.g. on a
machine where the wheels were unpacked onto PYTHONPATH, as bench/gpu_check.sh does)."""
TRIGGER = "<bench-token>"


def parse_args(doc: str, argv: list[str] | None, *, warmup: int,
               more=lambda parser: None) -> tuple[argparse.Namespace, list[str]]:
    """The options every ti-tui benchmark takes, plus `more(parser)`'s; returns the parsed
    options and the `ti-tui train` flags given after `--`."""
    argv = list(sys.argv[1:] if argv is None else argv)
    extra = argv[argv.index("--") + 1:] if "--" in argv else []
    argv = argv[:argv.index("--")] if "--" in argv else argv
    from bench import presets

    p = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    presets.add_arguments(p)
    p.add_argument("--steps", type=int, default=None)
    p.add_argument("--batch", type=int, default=None)
    p.add_argument("--warmup", type=int, default=warmup)
    more(p)
    return p.parse_args(argv), extra


def bench_env() -> dict[str, str]:
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_HUB_DISABLE_TELEMETRY="1")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    return env


def titui_flags(preset: Preset, out: Path, steps: int, batch: int,
                extra: list[str] | tuple[str, ...] = ()) -> list[str]:
    """`ti-tui train` flags for a benchmark run: no periodic files, no copy to a root."""
    return ["--model", str(preset.model_dir), "--train_data_dir", str(preset.data_dir),
            "--root", str(out.parent), "--output_dir", str(out),
            "--placeholder_token", TRIGGER, "--initializer_token", preset.initializer,
            "--resolution", str(preset.resolution), "--train_batch_size", str(batch),
            "--max_train_steps", str(steps), "--learning_rate", "5e-3", "--no_scale_lr",
            "--lr_warmup_steps", "0", "--seed", "0", "--save_steps", "0",
            "--checkpointing_steps", "0", "--no_copy_to_embeddings",
            *extra]


def step_stats(events: list[dict], warmup: int, launched: float) -> dict:
    """Step-time statistics and the start-up breakdown from a run's events."""
    steps = [e for e in events if e.get("type") == "step"]
    if len(steps) < 2:
        raise RuntimeError(f"the run logged {len(steps)} step events; see its trainer.log")
    periods = [b["time"] - a["time"] for a, b in zip(steps, steps[1:])]
    # periods[i] is step i+2; step 1's own time is its step_seconds.
    all_steps = [steps[0]["step_seconds"]] + periods
    kept = all_steps[warmup:] or all_steps
    phases = {e["name"]: e["time"] for e in events if e.get("type") == "phase"}
    started = next((e for e in events if e.get("type") == "run_started"), {})
    first_event = events[0]["time"] if events else None
    inner = [s["step_seconds"] for s in steps[warmup:] or steps]
    evaluated = [s for s in steps if s.get("l_det") is not None]
    # The trainer's own time per update, split by whether L_det was evaluated after it: their
    # difference is one evaluation's cost, free of whatever happens between updates.
    with_eval = [s["step_seconds"] for s in steps[warmup:] if s.get("l_det") is not None]
    without_eval = [s["step_seconds"] for s in steps[warmup:] if s.get("l_det") is None]

    return {
        "median_s": statistics.median(kept), "p90_s": percentile(kept, 0.9),
        "mean_s": statistics.fmean(kept), "steps_measured": len(kept),
        "steps_per_s": 1 / statistics.fmean(kept),
        "trainer_step_seconds_median": statistics.median(inner),
        "evaluations": len(evaluated),
        "step_seconds_with_eval_mean": statistics.fmean(with_eval) if with_eval else None,
        "step_seconds_without_eval_mean": (statistics.fmean(without_eval) if without_eval
                                           else None),
        "first_step_s": steps[0]["time"] - launched,
        "startup": {
            "to_first_event_s": (first_event - launched) if first_event else None,
            "load_model_s": _between(phases, "loading model", "caching latents"),
            "cache_latents_s": (started["time"] - phases["caching latents"])
            if started and "caching latents" in phases else None,
            "run_started_to_step1_s": (steps[0]["time"] - started["time"]) if started else None,
        },
        "trainer_pid": started.get("pid"),
        "max_step_memory_mb": max((s.get("memory_mb") or 0) for s in steps),
        # on CUDA: the peak while caching latents (the steps' peak is then max_step_memory_mb)
        "latent_cache_memory_mb": started.get("latent_cache_memory_mb"),
        "cpu_threads": started.get("cpu_threads"),
        "step_times_s": kept,
    }


def _between(phases: dict, a: str, b: str) -> float | None:
    return phases[b] - phases[a] if a in phases and b in phases else None


def _ui_cpu_pct(samples: list[tuple[float, float]], span) -> float | None:
    """The UI process's CPU use while the trainer stepped, in % of one core."""
    if not span:
        return None
    inside = [(t, c) for t, c in samples if span[0] <= t <= span[1]]
    if len(inside) < 2 or inside[-1][0] - inside[0][0] < 1:
        return None
    return 100 * (inside[-1][1] - inside[0][1]) / (inside[-1][0] - inside[0][0])


def _create_time(pid: int) -> float | None:
    try:
        import psutil

        return psutil.Process(pid).create_time()
    except Exception:  # noqa: BLE001 - the process may be gone already
        return None


def _cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of `pid` itself (not of its children)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


def _vm_hwm_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


class PtyDrain:
    """A pseudo-terminal of a given size whose output is read and thrown away (counted)."""

    def __init__(self, columns: int, lines: int):
        self.master, self.slave = pty.openpty()
        fcntl.ioctl(self.slave, termios.TIOCSWINSZ, struct.pack("HHHH", lines, columns, 0, 0))
        self.bytes = 0
        self.thread = threading.Thread(target=self._drain, daemon=True)
        self.thread.start()

    def _drain(self) -> None:
        while True:
            try:
                chunk = os.read(self.master, 65536)
            except OSError:
                return
            if not chunk:
                return
            self.bytes += len(chunk)

    def close(self) -> None:
        os.close(self.slave)
        self.thread.join(timeout=2)
        try:
            os.close(self.master)
        except OSError:
            pass


def run_process(command: list[str], out: Path, *, tty: tuple[int, int] | None = None,
                timeout: float = 3600, env: dict[str, str] | None = None,
                cwd: Path = ROOT) -> dict:
    """Run `command` (which starts a trainer writing out/events.jsonl) to its end.

    Returns the launch time, the exit code, the peak RSS of the process and everything it
    waited for (os.wait4), the trainer's own peak RSS (VmHWM polled from /proc while it ran)
    and, for a pty, the bytes drawn to the terminal. `env` defaults to `bench_env()`. Safe to
    call from several threads at once (each waits for its own process).
    """
    env = dict(bench_env() if env is None else env)
    drain = None
    if tty is not None:
        columns, lines = tty
        drain = PtyDrain(columns, lines)
        env.update(TERM="xterm-256color", COLUMNS=str(columns), LINES=str(lines),
                   COLORTERM="truecolor")
        io = {"stdin": drain.slave, "stdout": drain.slave, "stderr": drain.slave}
    else:
        log = open(out.parent / f"{out.name}.stdout.log", "wb")  # noqa: SIM115
        io = {"stdin": subprocess.DEVNULL, "stdout": log, "stderr": subprocess.STDOUT}
    launched = time.time()
    proc = subprocess.Popen(command, env=env, cwd=str(cwd), **io)
    trainer_pid, trainer_hwm, trainer_created, ui_hwm, ui_cpu = None, None, None, None, None
    ui_samples: list[tuple[float, float]] = []
    deadline = launched + timeout
    events_path = out / "events.jsonl"
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        if trainer_pid is None and events_path.is_file():
            trainer_pid = next((e.get("pid") for e in read_events(events_path)
                                if e.get("type") == "run_started"), None)
        if trainer_pid:
            trainer_hwm = _vm_hwm_mb(trainer_pid) or trainer_hwm
            if trainer_created is None:
                trainer_created = _create_time(trainer_pid)
        ui_hwm = _vm_hwm_mb(proc.pid) or ui_hwm
        ui_cpu = _cpu_seconds(proc.pid) or ui_cpu
        if ui_cpu is not None:
            ui_samples.append((time.time(), ui_cpu))
        if time.time() > deadline:
            proc.kill()
            raise TimeoutError(f"{command[:3]} ran past {timeout} s")
        time.sleep(0.25)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if drain is not None:
        drain.close()
    else:
        log.close()
    return {"launched": launched, "exit_code": proc.returncode,
            "peak_rss_mb": usage.ru_maxrss / 1024, "trainer_peak_rss_mb": trainer_hwm,
            "ui_peak_rss_mb": ui_hwm, "trainer_created": trainer_created,
            "ui_cpu_samples": ui_samples,
            "tty_bytes": drain.bytes if drain else None}


def run_titui(preset: Preset, steps: int, batch: int, extra: list[str] | tuple[str, ...] = (),
              *, mode: str = "plain", warmup: int = 1, size: tuple[int, int] = (120, 40),
              keep: bool = False, per_step: bool = False) -> dict:
    """One `ti-tui train` run; mode plain (stdout a file), rich (a pty) or textual (the
    TrainScreen in a Textual app on a pty, bench/textual_live.py)."""
    work = Path(tempfile.mkdtemp(prefix=f"ti-bench-{preset.name}-"))
    out = work / "run"
    flags = titui_flags(preset, out, steps, batch, extra)
    if mode == "textual":
        command = [sys.executable, str(BENCH / "textual_live.py"), *flags]
    else:
        command = [*TI_TUI, "train", *flags]
    try:
        proc = run_process(command, out, tty=None if mode == "plain" else size)
        if proc["exit_code"] != 0:
            log = (out / "trainer.log").read_text(errors="replace")[-2000:] if (
                out / "trainer.log").is_file() else ""
            raise RuntimeError(f"ti-tui ({mode}) exited with {proc['exit_code']}: {log}")
        stats = step_stats(list(read_events(out / "events.jsonl")), warmup, proc["launched"])
        if proc["trainer_created"]:
            # launch -> trainer process: the UI's own start, its preflight, run.toml.
            stats["startup"]["ui_until_trainer_starts_s"] = (proc["trainer_created"]
                                                             - proc["launched"])
            first = stats["startup"]["to_first_event_s"]
            if first is not None:
                stats["startup"]["trainer_start_to_first_event_s"] = (
                    first - stats["startup"]["ui_until_trainer_starts_s"])
        if not per_step:
            stats.pop("step_times_s")
        events = list(read_events(out / "events.jsonl"))
        times = [e["time"] for e in events if e.get("type") == "step"]
        stats["span"] = (times[min(warmup, len(times) - 1)], times[-1])
    finally:
        if not keep:
            shutil.rmtree(work, ignore_errors=True)
    return {"runner": f"ti-tui train ({mode})", "preset": preset.name,
            "resolution": preset.resolution, "batch": batch, "steps": steps, **stats,
            "peak_rss_mb": proc["peak_rss_mb"], "trainer_peak_rss_mb": proc["trainer_peak_rss_mb"],
            "ui_peak_rss_mb": proc["ui_peak_rss_mb"],
            "ui_cpu_pct": _ui_cpu_pct(proc["ui_cpu_samples"], stats.get("span")),
            "tty_bytes": proc["tty_bytes"], "flags": list(extra)}


def run_bare(preset: Preset, steps: int, batch: int, extra: list[str] | tuple[str, ...] = (),
             *, warmup: int = 1) -> dict:
    command = [sys.executable, str(BENCH / "bare_loop.py"), *preset.cli_args(),
               "--steps", str(steps), "--batch", str(batch), "--warmup", str(warmup), *extra]
    done = subprocess.run(command, env=bench_env(), cwd=str(ROOT), capture_output=True,
                          text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"bare_loop failed ({done.returncode}): {done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def machine_load() -> dict:
    """The 1-minute load average and the busiest other processes, to judge a measurement."""
    load1 = os.getloadavg()[0]
    busy = []
    try:
        import psutil

        me = {os.getpid()} | {p.pid for p in psutil.Process().parents()}
        for p in psutil.process_iter(["pid", "name", "cmdline", "cpu_percent"]):
            if p.info["pid"] in me:
                continue
            cmd = " ".join(p.info["cmdline"] or [])[:80]
            if "python" in cmd:
                busy.append(cmd)
    except Exception:  # noqa: BLE001 - informational only
        pass
    return {"load1": round(load1, 2), "other_python": busy[:5]}
