"""Fewer CPU threads while other processes use this run's cores, all of them while they are free.

Why (issue 20; figures in docs/PERFORMANCE.md): torch's OpenMP threads either spin while they
wait for the next parallel region (libgomp's default: about 3 ms, then they sleep) or sleep at
once (`OMP_WAIT_POLICY=PASSIVE`). Spinning threads that share their cores with another busy
process steal its time slices and wait for each other's: two tiny runs on 2 cores took 45x the
time of one. Sleeping threads cost a wake-up per parallel region: a tiny run alone took about
30% longer. Neither wait policy can change once torch is loaded, but the thread count can
(torch.set_num_threads). So a trainer whose count is automatic keeps the runtime's default
waiting and never runs more threads than the cores other processes leave it: spinning then
steals from nobody, and alone it is as fast as it ever was.

How the cores left are measured: over at least `INTERVAL_S` of wall time, the busy time of this
process's CPUs in /proc/stat (user, nice, system, irq, softirq and steal, the last being a
hypervisor running other guests on them), minus this process's own CPU time: the cores other
processes used. A core counts as taken once they used more than `OTHERS_TOLERATED` of one.
The count drops at once (an oversubscribed spinning pool is the costly case) and rises again
only after `RAISE_AFTER` intervals in a row allowed it (a neighbour between two of its own
steps is not gone). The trainer asks before each update (trainer/loop.py), so a run with long
updates reacts late; its parallel regions are long too, and there spinning costs little (the
small preset under load: 2.3x, not 45x).

The price: on the CPU a different thread count rounds differently (about 1e-6 in the loss), so
two runs with the same seed agree bit for bit only with a fixed count (`--cpu_threads N`, or
OMP_NUM_THREADS), which turns this off. Linux only; elsewhere threads.plan_threads falls back
to a fixed count waiting passively.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Collection
from pathlib import Path

PROC_STAT = Path("/proc/stat")
INTERVAL_S = 1.0
"""The shortest wall time one measurement spans: /proc/stat counts in clock ticks (10 ms)."""
OTHERS_TOLERATED = 0.3
"""Of one core, what other processes may use before it no longer counts as free."""
RAISE_AFTER = 2
"""Intervals in a row that must allow more threads before the count rises."""
# /proc/stat's per-CPU fields (proc(5)): user nice system idle iowait irq softirq steal ...;
# guest time is already inside user and nice.
BUSY_FIELDS = (0, 1, 2, 5, 6, 7)
try:
    _CLOCK_TICKS = os.sysconf("SC_CLK_TCK")  # /proc/stat's unit: ticks a second (usually 100)
except (AttributeError, ValueError, OSError):  # not POSIX
    _CLOCK_TICKS = 100


def busy_seconds(stat_text: str, cpus: Collection[int]) -> float | None:
    """Seconds the CPUs `cpus` were busy since boot, from the text of /proc/stat.

    Sums the user, nice, system, irq, softirq and steal ticks of each `cpuN` line whose N is in
    `cpus`, divided by the clock tick rate (SC_CLK_TCK). None when no such line exists.
    """
    ticks, found = 0, False
    for line in stat_text.splitlines():
        name, _, rest = line.partition(" ")
        if not name.startswith("cpu") or not name[3:].isdigit() or int(name[3:]) not in cpus:
            continue
        fields = rest.split()
        ticks += sum(int(fields[i]) for i in BUSY_FIELDS if i < len(fields))
        found = True
    return ticks / _CLOCK_TICKS if found else None


def read_busy_seconds(cpus: Collection[int], path: Path = PROC_STAT) -> float | None:
    """`busy_seconds` of this machine now; None where /proc/stat cannot be read."""
    try:
        return busy_seconds(path.read_text(), cpus)
    except (OSError, ValueError):
        return None


def own_cpus() -> frozenset[int]:
    """The CPUs this process may run on (its affinity); every CPU where that is unknown."""
    try:
        return frozenset(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return frozenset(range(os.cpu_count() or 1))


def can_watch(path: Path = PROC_STAT) -> bool:
    """Whether other processes' CPU use can be measured here (Linux: /proc/stat readable)."""
    return read_busy_seconds(own_cpus(), path) is not None


def threads_for(others: float, cpus: int, ceiling: int) -> int:
    """How many threads fit beside other processes using `others` cores of `cpus`.

    floor(cpus - others + OTHERS_TOLERATED), at most `ceiling` (the plan's count), at least 1:
    with 2 CPUs, others at 0.2 cores leave 2 threads, at 0.4 or at 1.0 one thread.
    """
    free = math.floor(cpus - others + OTHERS_TOLERATED)
    return max(1, min(ceiling, free))


class SharedCores:
    """Decides, before each update, how many threads this process should run now.

    `ceiling` is the plan's count (threads.ThreadPlan.threads), the most it ever returns.
    `read_busy`, `clock` and `own_cpu` default to /proc/stat over this process's CPUs,
    time.monotonic and time.process_time (seconds); tests pass their own. Construct it before
    the model loads: the first measurement then spans the loading, so a run started beside
    another busy one begins with the right count.
    """

    def __init__(self, ceiling: int, *, cpus: Collection[int] | None = None,
                 read_busy: Callable[[], float | None] | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 own_cpu: Callable[[], float] = time.process_time):
        self.ceiling = ceiling
        chosen = own_cpus() if cpus is None else frozenset(cpus)
        self.cpus = len(chosen)
        self._read_busy = read_busy or (lambda: read_busy_seconds(chosen))
        self._clock, self._own_cpu = clock, own_cpu
        self.current = ceiling
        self.others: float | None = None
        """Cores other processes used over the last interval (None before the first)."""
        self._raise_votes = 0
        self._last = self._sample()

    def _sample(self) -> tuple[float, float | None, float]:
        return self._clock(), self._read_busy(), self._own_cpu()

    def threads(self) -> int | None:
        """The thread count to switch to now, or None to keep the current one.

        Cheap between measurements (one clock read); a measurement reads /proc/stat once.
        """
        if self._clock() - self._last[0] < INTERVAL_S:
            return None
        now = self._sample()
        wall, busy, own = now
        last_wall, last_busy, last_own = self._last
        self._last = now
        if busy is None or last_busy is None or wall <= last_wall:
            return None
        self.others = max(0.0, (busy - last_busy) - (own - last_own)) / (wall - last_wall)
        wanted = threads_for(self.others, self.cpus, self.ceiling)
        if wanted < self.current:
            self._raise_votes = 0
        elif wanted > self.current:
            self._raise_votes += 1
            if self._raise_votes < RAISE_AFTER:
                return None
            self._raise_votes = 0
        else:
            self._raise_votes = 0
            return None
        self.current = wanted
        return wanted

