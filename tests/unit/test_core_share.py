"""How many CPU threads fit beside other processes (trainer/core_share.py), measured from
/proc/stat-shaped text and a clock the test drives: no timing, no real load."""

from __future__ import annotations

import pytest

from trainer import core_share
from trainer.core_share import SharedCores, busy_seconds, threads_for

STAT = """cpu  300 0 100 900 5 0 0 0 0 0
cpu0 100 20 30 400 1 4 5 6 0 0
cpu1 200 0 70 500 4 0 0 0 7 0
cpu12 1000 0 0 0 0 0 0 0 0 0
intr 12345 0 0
ctxt 999
"""


def test_busy_time_sums_the_busy_fields_of_the_chosen_cpus():
    ticks = core_share._CLOCK_TICKS
    # cpu0: user 100 + nice 20 + system 30 + irq 4 + softirq 5 + steal 6; idle and iowait out
    assert busy_seconds(STAT, {0}) == pytest.approx(165 / ticks)
    # the machine's total line and other CPUs are not summed; guest (inside user) not twice
    assert busy_seconds(STAT, {0, 1}) == pytest.approx((165 + 270) / ticks)
    assert busy_seconds(STAT, {12}) == pytest.approx(1000 / ticks)  # cpu12 is not cpu1
    assert busy_seconds(STAT, {5}) is None
    assert busy_seconds("", {0}) is None


def test_this_machine_can_be_read_where_there_is_proc_stat():
    import os
    if os.path.exists("/proc/stat"):
        assert core_share.can_watch()
        assert core_share.read_busy_seconds(core_share.own_cpus()) > 0
    assert not core_share.can_watch(core_share.Path("/nonexistent/stat"))


@pytest.mark.parametrize(("others", "cpus", "ceiling", "expected"), [
    (0.0, 2, 2, 2), (0.2, 2, 2, 2), (0.4, 2, 2, 1), (1.0, 2, 2, 1), (3.0, 2, 2, 1),
    (0.0, 16, 8, 8), (9.5, 16, 8, 6), (15.9, 16, 8, 1)])
def test_threads_fit_the_cores_others_leave(others, cpus, ceiling, expected):
    assert threads_for(others, cpus, ceiling) == expected


class Machine:
    """A clock, this process's CPU time and the CPUs' busy time, advanced by the test."""

    def __init__(self):
        self.wall = self.own = self.busy = 0.0

    def run(self, seconds: float, own_cores: float, other_cores: float) -> None:
        self.wall += seconds
        self.own += seconds * own_cores
        self.busy += seconds * (own_cores + other_cores)

    def shared(self, ceiling: int, cpus: int) -> SharedCores:
        return SharedCores(ceiling, cpus=range(cpus), read_busy=lambda: self.busy,
                           clock=lambda: self.wall, own_cpu=lambda: self.own)


def test_a_run_alone_keeps_every_thread():
    machine = Machine()
    cores = machine.shared(2, 2)
    for _ in range(10):
        machine.run(0.5, own_cores=1.9, other_cores=0.05)  # the UI, the kernel
        assert cores.threads() is None
    assert cores.current == 2 and cores.others == pytest.approx(0.05)


def test_another_busy_process_takes_a_thread_at_once_and_gives_it_back_when_gone():
    machine = Machine()
    cores = machine.shared(2, 2)
    machine.run(3.0, own_cores=1.0, other_cores=1.0)  # both loading their models
    assert cores.threads() == 1
    machine.run(0.3, own_cores=1.0, other_cores=1.0)
    assert cores.threads() is None  # less than an interval since the last measurement
    for _ in range(5):
        machine.run(1.0, own_cores=1.0, other_cores=0.9)
        assert cores.threads() is None and cores.current == 1
    machine.run(1.0, own_cores=1.0, other_cores=0.0)  # the other run ended
    assert cores.threads() is None  # one quiet interval is not enough
    machine.run(1.0, own_cores=1.0, other_cores=0.0)
    assert cores.threads() == 2


def test_a_neighbour_between_two_of_its_steps_does_not_give_its_cores_back():
    machine = Machine()
    cores = machine.shared(4, 4)
    machine.run(1.0, own_cores=1.0, other_cores=2.0)
    assert cores.threads() == 2
    for others in (0.0, 2.0, 0.0, 2.0):  # quiet, busy, quiet, busy: never two quiet in a row
        machine.run(1.0, own_cores=2.0, other_cores=others)
        assert cores.threads() is None
    assert cores.current == 2


def test_without_proc_stat_nothing_changes():
    machine = Machine()
    cores = SharedCores(2, cpus=range(2), read_busy=lambda: None, clock=lambda: machine.wall,
                        own_cpu=lambda: machine.own)
    machine.run(5.0, own_cores=1.0, other_cores=1.0)
    assert cores.threads() is None and cores.others is None
