"""How many request threads ``_wait`` calls may hold at once, in one process.

A ``_wait`` (or ``_wait_result``) holds its request thread until the task ends or its
seconds pass, and a web server has a fixed number of threads (``serve``: ``--threads``;
mod_wsgi: ``threads=`` per daemon). Without a bound, a crowd of clients following
their tasks takes every thread and every other call - plain methods included - queues
behind them. :class:`WaitBudget` bounds the waits a process holds at once (by default
half its request threads, :func:`budget_for`); the rest stay free for everything else.

A wait that finds the budget spent is not queued: it is answered at once with the
task's state and ``poll_after``, the seconds after which the client should ask again
(AIP-151 lets a wait return before its deadline). Following a task stays correct either
way - a held wait sees the end at once, a refused one at the next ask.

``poll_after`` is ``POLL_AFTER`` (0.75 s), except early in a running task whose method's
run times this process knows (:class:`RunTimes`): until its task has run as long as
the 1 % quantile of its method's recent run times, a client is told to ask again about
then (at most ``POLL_AFTER_LEARNED_MAX``). Each request a follower makes costs a
request's CPU (about 2 ms under Apache); asks that could not have seen an end are the
ones saved, and the ends seen late are those of tasks shorter than nearly all before.
"""

from __future__ import annotations

import threading
from collections import deque

from ladon_tasks import defaults
from ladon_tasks.model import TaskRecord, TaskState


def budget_for(request_threads: int) -> int:
    """Waits a process with ``request_threads`` request threads lets hold one at once:
    ``defaults.WAIT_SHARE`` of them, rounded down (a one-thread server holds none: its
    thread must stay free for every other call)."""
    if request_threads < 1:
        raise ValueError(f"a server has at least 1 request thread, got {request_threads}")
    return int(request_threads * defaults.WAIT_SHARE)


class WaitBudget:
    """Places for waits that hold a request thread; ``places`` of them (0: no wait ever
    holds one: every wait answers at once)."""

    def __init__(self, places: int, poll_after: float = defaults.POLL_AFTER) -> None:
        if places < 0:
            raise ValueError(f"the wait budget is a number of threads >= 0, got {places}")
        if not poll_after > 0:
            raise ValueError(f"poll_after must be a number of seconds > 0, got {poll_after!r}")
        self.places = places
        self.poll_after = float(poll_after)
        self._held = 0
        self._refused = 0
        self._lock = threading.Lock()

    def advice(self, record: TaskRecord, now: float) -> float:
        """``poll_after`` for ``record``, not finished: until its attempt has run as long
        as its method's short runs, ask again about then; else :attr:`poll_after`."""
        if record.state is TaskState.RUNNING and record.started_at:
            ahead = run_times.low(record.service, record.method) - (now - record.started_at)
            if ahead > self.poll_after:
                return min(ahead, defaults.POLL_AFTER_LEARNED_MAX)
        return self.poll_after

    def enter(self) -> bool:
        """Take a place, if one is free; a caller that got one must :meth:`leave`."""
        with self._lock:
            if self._held >= self.places:
                self._refused += 1
                return False
            self._held += 1
            return True

    def leave(self) -> None:
        with self._lock:
            self._held -= 1

    @property
    def held(self) -> int:
        """Waits holding a request thread now."""
        return self._held

    @property
    def refused(self) -> int:
        """Waits answered at once since the process started, for want of a place."""
        return self._refused


class RunTimes:
    """Recent run times of each method's tasks, as this process answered their ends:
    ``RUN_TIMES_KEPT`` per method, and their ``RUN_TIMES_QUANTILE`` quantile, made
    again at each one noted (a sort of a few hundred numbers, once per task end)."""

    def __init__(self, kept: int = defaults.RUN_TIMES_KEPT, least: int = defaults.RUN_TIMES_MIN,
                 quantile: float = defaults.RUN_TIMES_QUANTILE) -> None:
        if kept < 1 or not 1 <= least <= kept or not 0.0 <= quantile < 1.0:
            raise ValueError("run times: kept >= 1, 1 <= least <= kept, 0 <= quantile < 1")
        self.kept, self.least, self.quantile = kept, least, quantile
        self._recent: dict[tuple[str, str], deque[float]] = {}
        self._low: dict[tuple[str, str], float] = {}
        self._lock = threading.Lock()

    def note(self, record: TaskRecord) -> None:
        """``record`` has ended, and this process answers for it the first time."""
        if not (record.finished and record.started_at and record.finished_at):
            return  # never started (cancelled while queued): no run time
        key = (record.service, record.method)
        with self._lock:
            recent = self._recent.get(key)
            if recent is None:
                recent = self._recent[key] = deque(maxlen=self.kept)
            recent.append(max(0.0, record.finished_at - record.started_at))
            if len(recent) >= self.least:
                self._low[key] = sorted(recent)[int(len(recent) * self.quantile)]

    def low(self, service: str, method: str) -> float:
        """The method's short run time, in seconds; 0.0 while too few are known."""
        return self._low.get((service, method), 0.0)


#: This process's run times, noted where a task's end is first answered
#: (:mod:`ladon_tasks.answers`).
run_times = RunTimes()
