"""Start the trainer as its own process and talk to it through the output folder.

The trainer runs `python -m trainer --start FD` (it checks the settings, writes
OUTPUT_DIR/run.toml and answers: trainer/start.py), or for several processes
`accelerate launch ... -m trainer OUTPUT_DIR/run.toml`, in a new session (setsid), so closing
the terminal or losing the SSH connection does not kill it; `ti-tui watch OUTPUT_DIR`
re-attaches later. Its stdout and stderr go to OUTPUT_DIR/trainer.log, its events to
OUTPUT_DIR/events.jsonl. The UI asks it to stop with SIGINT to its process group, and to save
or preview through trainer.control's request files.

The views (the Textual TrainScreen and the headless Rich view) talk to a trainer only through
the `RunHandle` protocol defined here, and ask `run_alive` whether a run they re-attached to is
still going; neither needs the other's module.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from trainer import control, devices, threads
from trainer.config import TrainConfig
from trainer.events import EVENTS_FILE
from trainer.errors import write_failed
from trainer.lock import LOCK_NAME, read_lock
from trainer.start import LOG_FILE, RUN_FILE


class RunHandle(Protocol):
    """What a view needs of a trainer it started: where its events are, how to ask it to save,
    preview or stop, and whether it still runs. `TrainerProcess` is the real one; tests pass
    fakes."""

    output_dir: Path
    events_path: Path

    def request(self, action: str) -> None:
        """Ask for "save" or "preview" at the next update boundary (trainer/control.py)."""

    def stop(self) -> None:
        """Ask for a clean stop: finish the update, save, exit."""

    def is_alive(self) -> bool:
        """True while the trainer process runs."""

    def wait(self, timeout: float | None = None) -> int | None:
        """The exit code, waiting up to `timeout` seconds; None if it still runs."""


def run_alive(output_dir: str | os.PathLike[str]) -> bool:
    """Whether a trainer still trains into `output_dir`, for a view that did not start it.

    Decided by the folder's run lock (trainer/lock.py), as a second trainer would decide it:
    the lock's pid runs AND started when the lock says, so a pid reused after a reboot is not
    taken for the run. No lock (or an unreadable one) means no run.
    """
    owner = read_lock(Path(output_dir) / LOCK_NAME)
    return owner is not None and owner.is_running()


def watch_hint(output_dir: str | os.PathLike[str]) -> str:
    """The line that tells people how to come back to a run they left running."""
    return f"The run goes on in the background. Come back to it with: ti-tui watch {output_dir}"


@dataclass
class TrainerProcess:
    """A running trainer started by `start_run` (the RunHandle the views talk to)."""

    output_dir: Path
    """The run's output folder."""
    events_path: Path
    """OUTPUT_DIR/events.jsonl, which the views tail."""
    process: subprocess.Popen
    """The trainer child process (`python -m trainer`, in its own session so that it
    outlives the UI)."""

    def request(self, action: str) -> None:
        """Ask for "save" or "preview" at the next update boundary (a control file)."""
        control.send(self.output_dir, action)

    def stop(self) -> None:
        """Ask for a clean stop: finish the step, save checkpoint and embedding, exit 0."""
        self._signal(signal.SIGINT)

    def kill(self) -> None:
        """End the trainer's process group at once (SIGKILL); nothing is saved."""
        self._signal(signal.SIGKILL)

    def _signal(self, signum: int) -> None:
        try:
            os.killpg(self.process.pid, signum)
        except ProcessLookupError:
            pass

    def is_alive(self) -> bool:
        """True while the trainer process runs."""
        return self.process.poll() is None

    def wait(self, timeout: float | None = None) -> int | None:
        """The exit code, waiting up to `timeout` seconds; None if it still runs."""
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            return None


def prepare_output(config: TrainConfig) -> TrainConfig:
    """Check everything, then create the output folder and write run.toml (in this process).

    Raises UserError before anything is written; returns the config with its seed fixed, so
    that run.toml reruns the same run. (`start_run` leaves this to the trainer process when it
    is one process: trainer/start.py.)
    """
    from trainer.start import prepare_output as check_and_write

    return check_and_write(config)[0]


def discard_failed_start(output_dir: Path) -> bool:
    """Remove the folder of a run refused before its first update; True if it was removed.

    Only a folder holding nothing but what a start writes (run.toml, events, trainer.log,
    the control folder, the lock and the space reserve) is removed: anything else in it
    means it is not ours alone, and it is left as it is.
    """
    import shutil

    from trainer.fsutil import RESERVE_NAME

    ours = {RUN_FILE, EVENTS_FILE, LOG_FILE, control.CONTROL_DIR, LOCK_NAME, RESERVE_NAME}
    try:
        names = {p.name for p in Path(output_dir).iterdir()}
        if not names <= ours:
            return False
        shutil.rmtree(output_dir)
    except OSError:
        return False
    return True


def trainer_command(config: TrainConfig, run_file: Path) -> tuple[list[str], dict[str, str]]:
    """The command that starts the trainer for `config`, and its environment.

    The environment carries the CPU thread plan (trainer/threads.py): libgomp reads
    OMP_WAIT_POLICY and OMP_NUM_THREADS only when torch loads, so they must be there before the
    child starts. `accelerate launch` sets OMP_NUM_THREADS in each process from
    --num_cpu_threads_per_process, which is therefore given the same number.
    """
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    # The child must import this very copy of `trainer`, wherever it is started from.
    package_root = str(Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
    plan = threads.plan_threads(config.cpu_threads, config.num_processes)
    env.update(plan.env())
    if config.num_processes == 1:
        return [sys.executable, "-m", "trainer", str(run_file)], env
    if devices.device_type(config.device) == "cpu":
        # `--cpu` alone silently runs one process; this gives real gloo data parallelism.
        env["ACCELERATE_USE_CPU"] = "true"
    command = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu",
               "--num_processes", str(config.num_processes), "--num_machines", "1",
               "--num_cpu_threads_per_process", str(plan.threads),
               "--mixed_precision", "no", "--dynamo_backend", "no",
               "--main_process_port", str(free_port()), "-m", "trainer", str(run_file)]
    return command, env


def free_port() -> int:
    """A TCP port free on this machine now, for accelerate's main process."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_run(config: TrainConfig) -> TrainerProcess:
    """Validate, write run.toml, and start the trainer detached from this terminal.

    One process: the trainer itself runs the checks and writes the folder, answering before it
    loads anything (trainer/start.py), so torch and the checks are paid for once; a refused run
    raises its UserError here with nothing written. Several processes: this process checks
    and writes run.toml, then `accelerate launch` starts them.
    """
    if config.num_processes == 1:
        from trainer.start import launch

        out = config.output_path
        fresh = not os.path.exists(out)
        command, env = trainer_command(config, out / RUN_FILE)
        try:
            process = launch(config, command[:3], env)  # [python, -m, trainer]
        except KeyboardInterrupt:
            # Ended while checking: a folder it had just written holds only a start's files.
            if fresh and os.path.isdir(out):
                discard_failed_start(out)
            raise
        return TrainerProcess(output_dir=out, events_path=out / EVENTS_FILE, process=process)
    # The command first: its thread plan may refuse the environment before anything is written.
    command, env = trainer_command(config, config.output_path / RUN_FILE)
    config = prepare_output(config)
    out = config.output_path
    try:
        log = open(out / LOG_FILE, "ab")
    except OSError as exc:
        raise write_failed(out / LOG_FILE, exc, out) from None
    with log:
        process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log,
                                   stderr=subprocess.STDOUT, env=env, cwd=out,
                                   start_new_session=True)
    return TrainerProcess(output_dir=out, events_path=out / EVENTS_FILE, process=process)
