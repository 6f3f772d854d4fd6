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
"""

from __future__ import annotations

import threading

from ladon_tasks import defaults


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
