"""CPU threads that share the cores politely (issue 20): the rule, and that it reaches the
trainer process before torch loads. No timing is asserted here; bench/contention.py measures."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ti_tui.runner import start_run, trainer_command
from trainer import threads
from trainer.config import TrainConfig
from trainer.errors import UserError
from trainer.event_file import read_events
from trainer.threads import ThreadPlan, cgroup_cpu_quota, plan_threads

from tests.helpers import make_config

ROOT = Path(__file__).resolve().parents[2]
NO_THREAD_ENV: dict[str, str] = {}


# --- the rule ---------------------------------------------------------------------------------
def test_automatic_uses_every_core_and_steps_aside_for_other_processes():
    plan = plan_threads(0, 1, cores=8, environ=NO_THREAD_ENV, watchable=True)
    assert plan == ThreadPlan(8, "", 8, 1, "cores", adapts=True)
    # the runtime's default waiting: nothing is set for it
    assert plan.env() == {"OMP_NUM_THREADS": "8", "MKL_NUM_THREADS": "8",
                          "TI_TUI_THREADS_SOURCE": "cores"}
    assert plan.describe() == "up to 8 threads (8 cores / 1 process)"


def test_a_count_that_cannot_step_aside_waits_passively():
    """Where other processes' use cannot be measured (not Linux), and for a fixed count."""
    plan = plan_threads(0, 1, cores=8, environ=NO_THREAD_ENV, watchable=False)
    assert plan == ThreadPlan(8, "PASSIVE", 8, 1, "cores", adapts=False)
    assert plan.env()["OMP_WAIT_POLICY"] == "PASSIVE"
    assert plan.describe() == "8 threads, passive wait (8 cores / 1 process)"
    fixed = plan_threads(1, 1, cores=8, environ=NO_THREAD_ENV, watchable=True)
    assert (fixed.adapts, fixed.wait_policy) == (False, "PASSIVE")
    assert fixed.describe() == "1 thread, passive wait (--cpu_threads)"


def test_processes_share_the_cores_and_a_fractional_quota_rounds_down():
    assert plan_threads(0, 2, cores=8, environ=NO_THREAD_ENV).threads == 4
    assert plan_threads(0, 3, cores=8, environ=NO_THREAD_ENV).threads == 2
    assert plan_threads(0, 1, cores=2.5, environ=NO_THREAD_ENV).threads == 2
    # never zero threads, even with more processes than cores
    assert plan_threads(0, 4, cores=2, environ=NO_THREAD_ENV).threads == 1


def test_the_flag_wins_then_the_users_environment():
    env = {"OMP_NUM_THREADS": "3", "OMP_WAIT_POLICY": "active"}
    by_flag = plan_threads(5, 1, cores=8, environ=env)
    assert (by_flag.threads, by_flag.source, by_flag.wait_policy) == (5, "cpu_threads", "ACTIVE")
    by_env = plan_threads(0, 1, cores=8, environ=env, watchable=True)
    assert (by_env.threads, by_env.source, by_env.adapts) == (3, "environment", False)
    assert "OMP_NUM_THREADS" in by_env.describe()
    # the user's wait policy is kept for an automatic count too (any case)
    chosen = plan_threads(0, 1, cores=8, environ={"OMP_WAIT_POLICY": "passive"}, watchable=True)
    assert (chosen.adapts, chosen.wait_policy) == (True, "PASSIVE")
    assert chosen.describe() == "up to 8 threads, passive wait (8 cores / 1 process)"
    for blank in ("", " "):
        plan = plan_threads(0, 1, cores=8, environ={"OMP_WAIT_POLICY": blank}, watchable=True)
        assert plan.wait_policy == "" and "wait" not in plan.describe()
    # blank is unset; OpenMP's nested list gives the outer level's count
    assert plan_threads(0, 1, cores=8, environ={"OMP_NUM_THREADS": " "}).source == "cores"
    assert plan_threads(0, 1, cores=8, environ={"OMP_NUM_THREADS": "4,2"}).threads == 4


@pytest.mark.parametrize("name, value", [
    ("OMP_NUM_THREADS", "0"), ("OMP_NUM_THREADS", "abc"), ("OMP_NUM_THREADS", "-2"),
    ("OMP_NUM_THREADS", "2.5"), ("OMP_NUM_THREADS", "4,x"),
    ("OMP_WAIT_POLICY", "bogus"), ("OMP_WAIT_POLICY", "spin")])
def test_an_environment_value_openmp_would_ignore_is_refused(name, value):
    """libgomp ignores such a value (with a notice on stderr); the user believes it applies."""
    with pytest.raises(UserError, match=f"^{name} in the environment is '{value}'") as caught:
        plan_threads(0, 1, cores=8, environ={name: value})
    assert caught.value.field == "cpu_threads"
    if name == "OMP_NUM_THREADS":  # a count given by the flag makes the variable irrelevant
        assert plan_threads(2, 1, cores=8, environ={name: value}).threads == 2


def test_a_plan_read_back_in_the_child_keeps_its_reason():
    """The runner puts the plan into the trainer's environment; the trainer, which then finds
    OMP_NUM_THREADS there, still reports why it has that count."""
    for watchable in (True, False):
        planned = plan_threads(0, 1, cores=4, environ=NO_THREAD_ENV, watchable=watchable)
        assert plan_threads(0, 1, cores=4, environ=planned.env(), watchable=watchable) == planned


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="cpu_threads"):
        plan_threads(-1, 1, cores=2, environ=NO_THREAD_ENV)
    with pytest.raises(ValueError, match="processes"):
        plan_threads(0, 0, cores=2, environ=NO_THREAD_ENV)


def test_cpu_threads_is_a_config_field_with_limits():
    assert TrainConfig(placeholder_token="x").cpu_threads == 0
    assert TrainConfig(placeholder_token="x", cpu_threads="3").cpu_threads == 3
    with pytest.raises(Exception, match="--cpu_threads"):
        TrainConfig(placeholder_token="x", cpu_threads=-1)


# --- cgroup quotas -----------------------------------------------------------------------------
def test_cgroup_v2_quota(tmp_path):
    (tmp_path / "job").mkdir()
    (tmp_path / "job" / "cpu.max").write_text("150000 100000\n")
    assert cgroup_cpu_quota(tmp_path, "0::/job\n") == 1.5
    (tmp_path / "job" / "cpu.max").write_text("max 100000\n")
    assert cgroup_cpu_quota(tmp_path, "0::/job\n") is None


def test_cgroup_v2_in_a_container_reads_the_mount_root(tmp_path):
    (tmp_path / "cpu.max").write_text("200000 100000\n")
    assert cgroup_cpu_quota(tmp_path, "0::/\n") == 2.0


def test_cgroup_v1_quota(tmp_path):
    folder = tmp_path / "cpu,cpuacct" / "docker" / "abc"
    folder.mkdir(parents=True)
    (folder / "cpu.cfs_quota_us").write_text("50000\n")
    (folder / "cpu.cfs_period_us").write_text("100000\n")
    text = "4:memory:/docker/abc\n3:cpu,cpuacct:/docker/abc\n"
    assert cgroup_cpu_quota(tmp_path, text) == 0.5
    (folder / "cpu.cfs_quota_us").write_text("-1\n")
    assert cgroup_cpu_quota(tmp_path, text) is None


def test_no_cgroup_files_means_no_quota(tmp_path):
    assert cgroup_cpu_quota(tmp_path, "0::/\n1:cpu:/\n") is None


def test_the_quota_caps_the_affinity(tmp_path):
    (tmp_path / "cpu.max").write_text("100000 100000\n")
    assert threads.available_cores(tmp_path, "0::/\n") == 1
    empty = tmp_path / "no-cgroup-files"
    empty.mkdir()
    assert threads.available_cores(empty, "0::/\n") == len(os.sched_getaffinity(0))


# --- reaching the trainer process ---------------------------------------------------------------
def test_the_runner_puts_the_plan_into_the_trainers_environment(tmp_path, monkeypatch):
    for name in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY", "MKL_NUM_THREADS"):
        monkeypatch.delenv(name, raising=False)
    config = TrainConfig(placeholder_token="x", output_dir=str(tmp_path))
    command, env = trainer_command(config, tmp_path / "run.toml")
    expected = plan_threads(0, 1)
    assert command[1:3] == ["-m", "trainer"]
    assert env.get("OMP_WAIT_POLICY", "") == expected.wait_policy
    assert env["OMP_NUM_THREADS"] == env["MKL_NUM_THREADS"] == str(expected.threads)
    assert env["TI_TUI_THREADS_SOURCE"] == "cores"


def test_accelerate_launch_gets_the_per_process_count(tmp_path, monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    config = TrainConfig(placeholder_token="x", output_dir=str(tmp_path), num_processes=2,
                         cpu_threads=3, device="cpu")
    command, env = trainer_command(config, tmp_path / "run.toml")
    # accelerate sets OMP_NUM_THREADS in each process from this option (default 1)
    i = command.index("--num_cpu_threads_per_process")
    assert command[i + 1] == "3" and env["OMP_NUM_THREADS"] == "3"
    assert env["OMP_WAIT_POLICY"] == "PASSIVE" and env["ACCELERATE_USE_CPU"] == "true"


def test_python_m_trainer_sets_the_plan_before_torch_loads(tmp_path):
    """Started by hand (no runner), the trainer still plans before its first torch import."""
    code = ("import os, sys\n"
            "from trainer.__main__ import _plan_threads_before_torch\n"
            "from trainer.config import TrainConfig\n"
            "_plan_threads_before_torch(TrainConfig(placeholder_token='x', cpu_threads=1))\n"
            "print(os.environ['OMP_WAIT_POLICY'], os.environ['OMP_NUM_THREADS'],\n"
            "      'torch' in sys.modules)\n"
            "import torch\n"
            "print(torch.get_num_threads())\n")
    env = {k: v for k, v in os.environ.items()
           if k not in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY", "MKL_NUM_THREADS")}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, cwd=ROOT, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    # torch took the count from the environment (its own default is one thread per core)
    assert done.stdout.split() == ["PASSIVE", "1", "False", "1"]


def _run_started_by_the_runner(config) -> tuple[dict[str, str], list[dict]]:
    """Start `config` as `ti-tui train` does; the trainer's environment (read from /proc while
    it runs; empty where there is none) and its events."""
    run = start_run(config)
    environ = {}
    try:
        environ_file = Path(f"/proc/{run.process.pid}/environ")
        if environ_file.exists():
            raw = environ_file.read_bytes()
            environ = dict(item.split("=", 1) for item in raw.decode(errors="replace")
                           .split("\0") if "=" in item)
        assert run.wait(timeout=300) == 0, (run.output_dir / "trainer.log").read_text()[-3000:]
    finally:
        run.kill()
    return environ, list(read_events(run.events_path))


@pytest.mark.slow
def test_a_started_trainer_runs_with_the_thread_settings(tiny_model_dir, demo_images_dir,
                                                         tmp_path, monkeypatch):
    """`ti-tui train`'s way of starting a trainer: its process environment holds the plan
    and its run_started event reports it; an automatic count follows the other processes."""
    for name in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY", "MKL_NUM_THREADS"):
        monkeypatch.delenv(name, raising=False)
    fixed = make_config(tiny_model_dir, demo_images_dir, tmp_path / "fixed", max_train_steps=2,
                        save_steps=0, checkpointing_steps=0, dvar_window=50, cpu_threads=1)
    environ, events = _run_started_by_the_runner(fixed)
    if environ:  # Linux: the process's own environment, as the kernel holds it
        assert environ["OMP_WAIT_POLICY"] == "PASSIVE"
        assert environ["OMP_NUM_THREADS"] == environ["MKL_NUM_THREADS"] == "1"
    plan = next(e for e in events if e["type"] == "run_started")["cpu_threads"]
    assert (plan["threads"], plan["wait_policy"], plan["source"], plan["adapts"]) == (
        1, "PASSIVE", "cpu_threads", False)
    assert plan["torch_threads"] == 1  # what torch itself uses in the trainer
    assert json.dumps(plan)  # plain JSON for any reader

    automatic = fixed.replace(output_dir=str(tmp_path / "auto" / "out"), cpu_threads=0)
    environ, events = _run_started_by_the_runner(automatic)
    plan = next(e for e in events if e["type"] == "run_started")["cpu_threads"]
    expected = plan_threads(0, 1)
    assert (plan["threads"], plan["source"], plan["adapts"]) == (expected.threads, "cores",
                                                                 expected.adapts)
    if environ:
        assert "OMP_WAIT_POLICY" not in environ  # libgomp's own: spin briefly, then sleep
        assert environ["OMP_NUM_THREADS"] == str(expected.threads)
        assert environ["TI_TUI_THREADS_SOURCE"] == "cores"
    ran = [e["cpu_threads"] for e in events if e["type"] == "step"]
    assert len(ran) == 2 and all(1 <= n <= expected.threads for n in ran)


def test_in_process_training_sets_and_restores_the_thread_count(tiny_model_dir,
                                                                demo_images_dir, tmp_path):
    import torch

    from trainer import train

    before = torch.get_num_threads()
    config = make_config(tiny_model_dir, demo_images_dir, tmp_path, max_train_steps=1,
                         save_steps=0, checkpointing_steps=0, cpu_threads=2)
    events = []
    seen = {}

    def emit(event):
        events.append(event)
        if event.type == "run_started":
            seen["threads"] = torch.get_num_threads()

    train(config, emit=emit)
    started = next(e for e in events if e.type == "run_started")
    assert started.cpu_threads["threads"] == 2 and seen["threads"] == 2
    assert torch.get_num_threads() == before  # a library call leaves the caller's setting


def test_the_run_header_and_the_log_line_say_what_was_chosen():
    import io

    from rich.console import Console

    from ti_tui.text_panels import header_panel
    from ti_tui.headless import event_line
    from ti_tui.state import RunState, fold_all
    from trainer.events import RunStarted, Step

    plan = plan_threads(0, 1, cores=2, environ=NO_THREAD_ENV, watchable=True)
    started = RunStarted(config={"model": "m"}, model={}, dataset={}, device="cpu",
                         precision="no", num_processes=1, start_step=0, max_steps=10,
                         learning_rate=5e-3, lr_scale=1.0, trigger="<x>", tokens=["<x>"],
                         output_dir="/tmp/out", cpu_threads=plan.as_dict() | {"torch_threads": 2})
    state = RunState()
    fold_all([started], state)
    assert state.cpu_threads == "up to 2 threads (2 cores / 1 process)"

    def header() -> str:
        console = Console(width=140, record=True, file=io.StringIO(), color_system=None)
        console.print(header_panel(state, 140, 4))
        return console.export_text()

    assert "1 process x up to 2 threads" in header()
    line = event_line(started, state, log_every=10)
    assert "CPU up to 2 threads (2 cores / 1 process)" in line
    # each update says how many threads it ran: fewer while other processes use the cores
    for step, count in ((1, 2), (2, 1)):
        event = Step(step=step, loss=0.1, lr=5e-3, images_seen=2 * step, epoch=step / 4,
                     micro_batches=step, cpu_threads=count)
        fold_all([event], state)
        assert f"1 process x {count} of 2 threads" in header()
        said = event_line(event, state, log_every=1)
        assert ("CPU 1 of 2 threads" in said) == (count == 1)


def test_an_automatic_count_steps_aside_while_others_use_the_cores(tiny_model_dir,
                                                                  demo_images_dir, tmp_path,
                                                                  monkeypatch):
    """In a real run, each update runs on what trainer/core_share.py decides: one thread while
    the (simulated) other processes fill 3 cores, all 3 again two quiet intervals later."""
    import time

    from trainer import core_share, train

    others = {"cores": 3.0}
    start = time.monotonic()

    def busy_seconds(cpus, path=None) -> float:
        # this process's own CPU time plus other processes busy at others["cores"] since start
        return time.process_time() + others["cores"] * (time.monotonic() - start)

    monkeypatch.setattr(core_share, "INTERVAL_S", 0.0)  # measure before every update
    monkeypatch.setattr(core_share, "own_cpus", lambda: frozenset({0, 1, 2}))
    monkeypatch.setattr(core_share, "read_busy_seconds", busy_seconds)
    monkeypatch.setattr(threads, "available_cores", lambda *a, **k: 3.0)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    config = make_config(tiny_model_dir, demo_images_dir, tmp_path, max_train_steps=5,
                         save_steps=0, checkpointing_steps=0, cpu_threads=0)
    events = []

    def emit(event):
        events.append(event)
        if event.type == "step" and event.step == 2:
            others["cores"] = 0.0  # the other processes are gone

    train(config, emit=emit)
    started = next(e for e in events if e.type == "run_started")
    assert started.cpu_threads["adapts"] and started.cpu_threads["threads"] == 3
    # update 3 sees the first quiet interval, update 4 the second: the count rises there
    assert [e.cpu_threads for e in events if e.type == "step"] == [1, 1, 1, 3, 3]


def test_ti_tui_train_refuses_a_bad_openmp_variable_before_writing(tiny_model_dir,
                                                                  demo_images_dir, tmp_path):
    """One sentence on stderr, exit 2, no folder: as for a bad --cpu_threads."""
    out = tmp_path / "out"
    env = dict(os.environ, OMP_NUM_THREADS="abc")
    done = subprocess.run(
        [sys.executable, "-m", "ti_tui.cli", "train", "--model", str(tiny_model_dir),
         "--train_data_dir", str(demo_images_dir), "--placeholder_token", "star",
         "--output_dir", str(out), "--root", str(tmp_path / "root"), "--max_train_steps", "1"],
        capture_output=True, text=True, timeout=300, cwd=ROOT, env=env)
    assert done.returncode == 2, done.stdout[-2000:] + done.stderr[-2000:]
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "OMP_NUM_THREADS in the environment is 'abc'" in lines[0]
    assert "Traceback" not in done.stderr and not out.exists()
