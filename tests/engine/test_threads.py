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
from trainer.event_file import read_events
from trainer.threads import ThreadPlan, cgroup_cpu_quota, plan_threads

from tests.helpers import make_config

ROOT = Path(__file__).resolve().parents[2]
NO_THREAD_ENV: dict[str, str] = {}


# --- the rule ---------------------------------------------------------------------------------
def test_automatic_uses_every_core_for_one_process_and_waits_passively():
    plan = plan_threads(0, 1, cores=8, environ=NO_THREAD_ENV)
    assert plan == ThreadPlan(8, "PASSIVE", 8, 1, "cores")
    assert plan.env() == {"OMP_NUM_THREADS": "8", "MKL_NUM_THREADS": "8",
                          "OMP_WAIT_POLICY": "PASSIVE", "TI_TUI_THREADS_SOURCE": "cores"}
    assert plan.describe() == "8 threads, passive wait (8 cores / 1 process)"


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
    by_env = plan_threads(0, 1, cores=8, environ=env)
    assert (by_env.threads, by_env.source) == (3, "environment")
    assert "OMP_NUM_THREADS" in by_env.describe()
    # a value that is no positive integer is not a choice
    assert plan_threads(0, 1, cores=8, environ={"OMP_NUM_THREADS": "0"}).source == "cores"
    assert plan_threads(0, 1, cores=8, environ={"OMP_NUM_THREADS": "x"}).threads == 8


def test_a_plan_read_back_in_the_child_keeps_its_reason():
    """The runner puts the plan into the trainer's environment; the trainer, which then finds
    OMP_NUM_THREADS there, still reports why it has that count."""
    planned = plan_threads(0, 1, cores=4, environ=NO_THREAD_ENV)
    assert plan_threads(0, 1, cores=4, environ=planned.env()) == planned


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
    assert env["OMP_WAIT_POLICY"] == "PASSIVE"
    assert env["OMP_NUM_THREADS"] == env["MKL_NUM_THREADS"] == str(expected.threads)


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


@pytest.mark.slow
def test_a_started_trainer_runs_with_the_thread_settings(tiny_model_dir, demo_images_dir,
                                                         tmp_path, monkeypatch):
    """`ti-tui train`'s way of starting a trainer: its process environment holds the plan
    (read from /proc while it runs) and its run_started event reports it."""
    for name in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY", "MKL_NUM_THREADS"):
        monkeypatch.delenv(name, raising=False)
    config = make_config(tiny_model_dir, demo_images_dir, tmp_path, max_train_steps=2,
                         save_steps=0, checkpointing_steps=0, dvar_window=50, cpu_threads=1)
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
    if environ:  # Linux: the process's own environment, as the kernel holds it
        assert environ["OMP_WAIT_POLICY"] == "PASSIVE"
        assert environ["OMP_NUM_THREADS"] == environ["MKL_NUM_THREADS"] == "1"
    started = next(e for e in read_events(run.events_path) if e["type"] == "run_started")
    plan = started["cpu_threads"]
    assert (plan["threads"], plan["wait_policy"], plan["source"]) == (1, "PASSIVE",
                                                                     "cpu_threads")
    assert plan["torch_threads"] == 1  # what torch itself uses in the trainer
    assert json.dumps(plan)  # plain JSON for any reader


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
    from trainer.events import RunStarted

    plan = plan_threads(0, 1, cores=2, environ=NO_THREAD_ENV)
    started = RunStarted(config={"model": "m"}, model={}, dataset={}, device="cpu",
                         precision="no", num_processes=1, start_step=0, max_steps=10,
                         learning_rate=5e-3, lr_scale=1.0, trigger="<x>", tokens=["<x>"],
                         output_dir="/tmp/out", cpu_threads=plan.as_dict() | {"torch_threads": 2})
    state = RunState()
    fold_all([started], state)
    assert state.cpu_threads == "2 threads, passive wait (2 cores / 1 process)"
    console = Console(width=140, record=True, file=io.StringIO(), color_system=None)
    console.print(header_panel(state, 140, 4))
    assert "1 process x 2 threads, passive wait" in console.export_text()
    line = event_line(started, state, log_every=10)
    assert "CPU 2 threads, passive wait (2 cores / 1 process)" in line
