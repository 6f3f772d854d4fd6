"""How much of the machine a bench really had: the CPU time the hypervisor stole and the
CPU time processes other than the bench's own used, over the windows it measured.

Figures on a shared machine mean little when half of it was busy elsewhere, and a run
cannot tell that from its own rates. So every measured window is wrapped in a
:class:`CpuAccount` sample, read from ``/proc``:

- ``/proc/stat``'s ``cpu`` line counts the whole machine's time by kind since boot:
  busy (user, nice, system, irq, softirq; guest time is inside user), idle, iowait and
  steal (time the hypervisor gave another guest while this one wanted to run);
- ``/proc/PID/stat`` counts each process's user and system time, with that of the
  children it has waited for. The bench's own CPU is that of its process trees: the
  bench itself and everything below it, and the roots it names (an Apache that detached
  from the shell that started it).

``others`` is the machine's busy time less the bench's own. The bench's own is summed
process by process, from its first to its last sample in the window (a process that
exits inside a window - an Apache of an earlier window still shutting down - leaves
with what it used before; a child a bench process waits for adds its whole time to its
parent's). Windows are summed rather than taken from the start and the end of a run,
so that what happens between them counts for neither. Limits: one read of ``/proc``
costs a few milliseconds, so samples go around windows, not inside them; a process that
starts and exits inside one window without a bench process waiting for it is counted as
someone else's.
"""

from __future__ import annotations

import os
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterable, Iterator

#: Clock ticks per second of both ``/proc/stat`` and ``/proc/PID/stat``.
TICKS = os.sysconf("SC_CLK_TCK")
#: Share of the machine's CPU time stolen by the hypervisor above which a run is too
#: noisy to judge: on a small guest 5 % stolen already moves rates by about as much as
#: the differences the benches look for.
STEAL_LIMIT = 0.05
#: Share of the machine's CPU time used by other processes above which a run is too
#: noisy to judge: the bench's clients, servers and workers compete for the same cores,
#: and one busy neighbour on a 2-core machine takes half of one of them.
OTHERS_LIMIT = 0.10


@dataclass
class CpuShare:
    """CPU seconds over one or more measured windows, by whom."""

    wall: float = 0.0
    capacity: float = 0.0
    busy: float = 0.0
    steal: float = 0.0
    own: float = 0.0

    @property
    def others(self) -> float:
        return max(0.0, self.busy - self.own)

    @property
    def steal_share(self) -> float:
        return self.steal / self.capacity if self.capacity else 0.0

    @property
    def others_share(self) -> float:
        return self.others / self.capacity if self.capacity else 0.0

    @property
    def noisy(self) -> bool:
        """Whether the figures measured in these windows are too noisy to judge."""
        return self.steal_share > STEAL_LIMIT or self.others_share > OTHERS_LIMIT

    def __add__(self, other: "CpuShare") -> "CpuShare":
        return CpuShare(self.wall + other.wall, self.capacity + other.capacity, self.busy + other.busy,
                        self.steal + other.steal, self.own + other.own)

    def describe(self) -> str:
        """One line: stolen and others' shares of the machine, and the verdict."""
        verdict = "too noisy to judge" if self.noisy else "quiet enough"
        return (f"CPU stolen {100 * self.steal_share:.1f} %, used by other processes "
                f"{100 * self.others_share:.1f} % of the machine over {self.wall:.0f} s measured "
                f"({verdict}: limits {100 * STEAL_LIMIT:.0f} % and {100 * OTHERS_LIMIT:.0f} %)")

    def to_json(self) -> dict[str, float | bool]:
        return {**asdict(self), "others": self.others, "steal_share": self.steal_share,
                "others_share": self.others_share, "noisy": self.noisy}


@dataclass(frozen=True)
class _Sample:
    at: float
    total: int
    busy: int
    steal: int
    #: Ticks of each of the bench's processes, by pid.
    own: dict[int, int]


class CpuAccount:
    """Samples the machine's and the bench's CPU time around measured windows."""

    def __init__(self, roots: Iterable[int] = ()) -> None:
        self.roots = {os.getpid(), *roots}
        self.total = CpuShare()

    def add_root(self, pid: int | None) -> None:
        """Count ``pid`` and everything below it as the bench's own from now on."""
        if pid:
            self.roots.add(pid)

    @contextmanager
    def window(self) -> Iterator[CpuShare]:
        """Measure one window: the share it yields is filled in when the block ends, and
        added to :attr:`total`."""
        share = CpuShare()
        before = self._sample()
        try:
            yield share
        finally:
            after = self._sample()
            share.wall = after.at - before.at
            share.capacity = (after.total - before.total) / TICKS
            share.busy = (after.busy - before.busy) / TICKS
            share.steal = (after.steal - before.steal) / TICKS
            share.own = sum(max(0, ticks - before.own.get(pid, 0)) for pid, ticks in after.own.items()) / TICKS
            self.total = self.total + share

    def _sample(self) -> _Sample:
        fields = [int(value) for value in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        user, nice, system, idle, iowait, irq, softirq, steal = (fields + [0] * 8)[:8]
        busy = user + nice + system + irq + softirq
        return _Sample(time.monotonic(), busy + idle + iowait + steal, busy, steal, self._own_ticks())

    def _own_ticks(self) -> dict[int, int]:
        """User and system ticks of each process of the bench's trees, waited-for children
        included."""
        ticks, children = process_ticks()
        return {pid: ticks[pid] for pid in processes_below(self.roots, ticks, children)}


def process_ticks() -> tuple[dict[int, int], dict[int, list[int]]]:
    """User and system ticks of every process (its waited-for children's included), and
    each process's children."""
    children: dict[int, list[int]] = {}
    ticks: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            text = (entry / "stat").read_text()
        except OSError:  # gone since the listing
            continue
        fields = text.rsplit(")", 1)[1].split()  # the name in parentheses may hold spaces
        pid = int(entry.name)
        children.setdefault(int(fields[1]), []).append(pid)
        ticks[pid] = sum(int(value) for value in fields[11:15])  # utime stime cutime cstime
    return ticks, children


def processes_below(roots: Iterable[int], ticks: dict[int, int], children: dict[int, list[int]]) -> set[int]:
    """``roots`` and every living process below them."""
    found: set[int] = set()
    todo = [pid for pid in roots if pid in ticks]
    while todo:
        pid = todo.pop()
        if pid not in found:
            found.add(pid)
            todo += children.get(pid, [])
    return found


def own_ticks() -> int:
    """User and system ticks of this process alone: its threads, not its children."""
    fields = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


class CpuSplit:
    """CPU seconds by part of a system (the producing process, its web servers, workers,
    Redis) over a window: where a task's CPU goes, by process, for one row.

    ``groups`` names each part's root pids; a part counts its roots and every process
    below them; ``producer`` is this process alone (its children are other parts)."""

    def __init__(self, groups: dict[str, list[int]]) -> None:
        self.groups = {name: pids for name, pids in groups.items() if pids}
        self.seconds: dict[str, float] = {}

    def _snapshot(self) -> dict[str, int]:
        ticks, children = process_ticks()
        counts = {name: sum(ticks[pid] for pid in processes_below(pids, ticks, children))
                  for name, pids in self.groups.items()}
        counts["producer"] = own_ticks()
        return counts

    @contextmanager
    def window(self) -> Iterator["CpuSplit"]:
        before = self._snapshot()
        try:
            yield self
        finally:
            after = self._snapshot()
            self.seconds = {name: max(0, after[name] - before.get(name, 0)) / TICKS for name in after}
