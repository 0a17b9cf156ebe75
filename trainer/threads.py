"""How many CPU threads a trainer process uses, and how they wait: polite on a shared machine.

torch runs its CPU kernels on an OpenMP pool (GNU libgomp in the Linux wheels). By default an
idle libgomp thread spins for about 3 ms before it sleeps, so two busy torch processes on the
same cores steal each other's time slices while spinning: on a 2-core machine two tiny runs at
once took 7.4 s/step each against 0.17 s alone (issue 20). With `OMP_WAIT_POLICY=PASSIVE` the
waiting threads sleep at once and the same pair ran at 0.24 s/step, but a run alone pays a
wake-up per parallel region (about 30% at the tiny preset). So an automatic count keeps the
default waiting and follows the cores other processes leave free (trainer/core_share.py); a
fixed count, which cannot step aside, waits passively.

libgomp reads OMP_WAIT_POLICY (and OMP_NUM_THREADS) once, when the library is loaded by
`import torch`: setting it later changes nothing (checked with torch 2.13: a process that set it
after the import still burned a core while idle between parallel regions). So the plan is put in
the environment of a trainer process before it starts (ti_tui/runner.py) or before its first
torch import (trainer/__main__.py); in a process that already imported torch only the thread
count can still change (torch.set_num_threads).

The rule (`plan_threads`):
- `--cpu_threads N` (N > 0): N threads, the user's choice, fixed;
- else OMP_NUM_THREADS from the environment, when it holds a positive integer (the user's
  choice, made outside ti-tui), fixed;
- else the cores this process may use, divided among the processes of the run: the CPU affinity
  (os.sched_getaffinity), capped by a cgroup CPU quota when one is set (cgroup v2 `cpu.max`,
  v1 `cpu.cfs_quota_us / cpu.cfs_period_us`), floor(cores / processes), at least 1; and fewer
  while other processes use those cores (`adapts`), where their use can be measured (Linux).
- The wait policy is OMP_WAIT_POLICY when it is set; else the OpenMP runtime's default for an
  adapting count ("", nothing set) and PASSIVE for a fixed one.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

from trainer import core_share
from trainer.errors import UserError

WAIT_POLICY = "PASSIVE"
"""A fixed count's default: waiting threads sleep instead of spinning (libgomp and libomp)."""
WAIT_POLICIES = ("ACTIVE", "PASSIVE")
"""The two values the OpenMP specification gives OMP_WAIT_POLICY (read in any case)."""
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")
"""The thread-count variables of torch's two CPU pools (OpenMP and MKL's BLAS)."""
CGROUP_ROOT = Path("/sys/fs/cgroup")
SOURCE_VARIABLE = "TI_TUI_THREADS_SOURCE"
"""Set beside OMP_NUM_THREADS by whoever planned it (the runner), so that the trainer process,
which then finds the count in its environment, still reports why it has that value."""


@dataclass(frozen=True)
class ThreadPlan:
    """What one trainer process uses: `threads` intra-op threads waiting per `wait_policy`.

    `wait_policy` is OMP_WAIT_POLICY's value, "" for the runtime's default (not set). `cores`
    is what the run may use in all (affinity capped by quota; a float, since a quota can be
    fractional), `processes` how many trainer processes share it, `source` why `threads` has
    its value: "cpu_threads" (the flag), "environment" (OMP_NUM_THREADS) or "cores". `adapts`:
    `threads` is a ceiling, lowered while other processes use the cores (core_share.py).
    """

    threads: int
    wait_policy: str
    cores: float
    processes: int
    source: str
    adapts: bool = False

    def env(self) -> dict[str, str]:
        """The environment variables that carry this plan into a process before torch loads."""
        values = {name: str(self.threads) for name in THREAD_VARIABLES}
        if self.wait_policy:
            values["OMP_WAIT_POLICY"] = self.wait_policy
        values[SOURCE_VARIABLE] = self.source
        return values

    def describe(self) -> str:
        """One line for a run's header and log.

        E.g. 'up to 2 threads (2 cores / 1 process)', '1 thread, passive wait (--cpu_threads)'.
        """
        why = {"cpu_threads": "--cpu_threads", "environment": "OMP_NUM_THREADS"}.get(
            self.source, f"{_fmt_cores(self.cores)} / {self.processes} process"
            + ("es" if self.processes != 1 else ""))
        words = [thread_words(self.threads, self.adapts)]
        if self.wait_policy:
            words.append(f"{self.wait_policy.lower()} wait")
        return f"{', '.join(words)} ({why})"

    def as_dict(self) -> dict:
        """The plan as the `run_started` event carries it (`cpu_threads`)."""
        return asdict(self) | {"summary": self.describe()}


def plan_threads(requested: int = 0, processes: int = 1, *, cores: float | None = None,
                 environ: Mapping[str, str] | None = None,
                 watchable: bool | None = None) -> ThreadPlan:
    """The thread plan of one trainer process of a run (the rule in the module docstring).

    `requested` is TrainConfig.cpu_threads (0: automatic); `processes` the run's trainer
    processes on this machine; `cores` overrides what `available_cores()` finds; `environ`
    (default os.environ) is read for OMP_NUM_THREADS and OMP_WAIT_POLICY; `watchable` overrides
    whether other processes' CPU use can be measured (core_share.can_watch). Pure apart from
    those reads. Raises ValueError for a negative `requested` or a `processes` below 1, and
    UserError (field cpu_threads) when OMP_WAIT_POLICY is set to neither ACTIVE nor PASSIVE, or
    OMP_NUM_THREADS to no thread count while `requested` is 0: the user believes a setting that
    libgomp ignores (it only prints a notice) and that ti-tui would silently replace.
    """
    if requested < 0:
        raise ValueError(f"cpu_threads must be 0 (automatic) or more, got {requested}")
    if processes < 1:
        raise ValueError(f"processes must be at least 1, got {processes}")
    env = os.environ if environ is None else environ
    cores = available_cores() if cores is None else cores
    chosen_policy = env.get("OMP_WAIT_POLICY", "").strip().upper()
    if chosen_policy and chosen_policy not in WAIT_POLICIES:
        raise UserError(f"OMP_WAIT_POLICY in the environment is {env['OMP_WAIT_POLICY']!r}, "
                        "which OpenMP does not know; set it to ACTIVE or PASSIVE, or unset it.",
                        field="cpu_threads")
    if requested > 0:
        source, threads = "cpu_threads", requested
    elif (given := _environment_count(env.get("OMP_NUM_THREADS", ""))) is not None:
        source = env.get(SOURCE_VARIABLE, "environment")
        source, threads = (source if source in SOURCES else "environment"), given
    else:
        source, threads = "cores", max(1, math.floor(cores / processes))
    adapts = source == "cores" and (core_share.can_watch() if watchable is None else watchable)
    policy = chosen_policy or ("" if adapts else WAIT_POLICY)
    return ThreadPlan(threads, policy, cores, processes, source, adapts)


def available_cores(cgroup_root: Path = CGROUP_ROOT, proc_cgroup: str | None = None) -> float:
    """The CPUs this process may run on (its affinity), capped by a cgroup CPU quota if any."""
    try:
        cores: float = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        cores = os.cpu_count() or 1
    quota = cgroup_cpu_quota(cgroup_root, proc_cgroup)
    if quota is not None:
        cores = min(cores, quota)
    return cores


def cgroup_cpu_quota(root: Path = CGROUP_ROOT, proc_cgroup: str | None = None) -> float | None:
    """The CPU quota of this process's cgroup in cores (e.g. 1.5), or None when unlimited.

    `proc_cgroup` is the text of /proc/self/cgroup (read when None). cgroup v2 keeps
    "QUOTA PERIOD" (or "max PERIOD") in cpu.max; v1 keeps cpu.cfs_quota_us (-1: none) and
    cpu.cfs_period_us in the cpu controller's folder. Inside a container the process's own
    cgroup is usually the mount's root, so the root's files are read when the path has none.
    """
    if proc_cgroup is None:
        try:
            proc_cgroup = Path("/proc/self/cgroup").read_text()
        except OSError:
            proc_cgroup = ""
    for line in proc_cgroup.splitlines():
        hierarchy, _, rest = line.partition(":")
        controllers, _, path = rest.partition(":")
        rel = path.lstrip("/")
        if hierarchy == "0" and controllers == "":
            for folder in (root / rel, root):
                found = _read_v2(folder / "cpu.max")
                if found is not _MISSING:
                    return found
        elif "cpu" in controllers.split(","):
            for base in (root / "cpu", root / "cpu,cpuacct", root / "cpuacct,cpu"):
                for folder in (base / rel, base):
                    found = _read_v1(folder)
                    if found is not _MISSING:
                        return found
    return None


_MISSING = object()
SOURCES = ("cpu_threads", "environment", "cores")


def _read_v2(path: Path):
    try:
        quota, period = path.read_text().split()[:2]
    except (OSError, ValueError):
        return _MISSING
    if quota == "max":
        return None
    return _ratio(quota, period)


def _read_v1(folder: Path):
    try:
        quota = (folder / "cpu.cfs_quota_us").read_text().strip()
        period = (folder / "cpu.cfs_period_us").read_text().strip()
    except OSError:
        return _MISSING
    if quota.startswith("-"):
        return None
    return _ratio(quota, period)


def _ratio(quota: str, period: str) -> float | None:
    try:
        q, p = int(quota), int(period)
    except ValueError:
        return None
    return q / p if q > 0 and p > 0 else None


def _environment_count(text: str) -> int | None:
    """OMP_NUM_THREADS as a count: None when unset or blank; the first number of a list ("4,2":
    4 at the outer level, OpenMP's nested form); UserError for anything else (0, "abc")."""
    if not text.strip():
        return None
    first = _positive_int(text.split(",")[0])
    if first is None or not all(part.strip().isdigit() for part in text.split(",")):
        raise UserError(f"OMP_NUM_THREADS in the environment is {text!r}, which is no thread "
                        "count; set it to a whole number above 0, unset it to use the cores "
                        "this process may use, or pass --cpu_threads N.", field="cpu_threads")
    return first


def _positive_int(text: str | None) -> int | None:
    try:
        value = int(str(text).strip())
    except ValueError:
        return None
    return value if value > 0 else None


def thread_words(count: int, up_to: bool = False) -> str:
    """'1 thread', '2 threads', 'up to 4 threads'."""
    return ("up to " if up_to else "") + f"{count} thread" + ("" if count == 1 else "s")


def _fmt_cores(cores: float) -> str:
    whole = float(cores).is_integer()
    text = str(int(cores)) if whole else f"{cores:.2f}".rstrip("0")
    return f"{text} core" + ("" if text == "1" else "s")


def local_processes(environ: Mapping[str, str] | None = None) -> int:
    """How many trainer processes share this machine: LOCAL_WORLD_SIZE under `accelerate
    launch` / torchrun (which set it in every process), else 1."""
    env = os.environ if environ is None else environ
    return _positive_int(env.get("LOCAL_WORLD_SIZE")) or 1


def set_before_torch(plan: ThreadPlan, environ: dict[str, str] | None = None) -> None:
    """Put `plan` into this process's environment; only effective before torch is imported."""
    env = os.environ if environ is None else environ
    env.update(plan.env())
