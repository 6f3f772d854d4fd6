"""When a process may take over the work of others: not while its store is away, and not
until one lease after the store answers again.

Leases live in the store and run by its clock. While the store cannot be reached - a
Sentinel failover, a Redis restart - no process can renew its leases, so when it comes
back every lease may have run out, those of live processes too. A process that took
over at once would take the tasks of processes that are merely reconnecting, and run
them a second time. So after an outage a process first renews its own leases and then
waits one lease before it takes over anything: by then every live process has renewed
(they do so every third of a lease), and only the work of processes that are really gone
is left to take.
"""

from __future__ import annotations

import threading
import time


class TakeoverGate:
    """Tracks one process's view of one store: reachable or not, and since when.

    ``lease``: the longest lease of the work it may take over, in seconds."""

    def __init__(self, lease: float) -> None:
        if lease <= 0:
            raise ValueError("lease must be > 0")
        self.lease = lease
        self._away = False
        self._open_at = 0.0
        self._lock = threading.Lock()

    def failed(self) -> None:
        """A call to the store failed: it is away."""
        with self._lock:
            self._away = True

    def answered(self) -> bool:
        """A call to the store succeeded; ``True`` if it had been away (the caller
        renews its own leases now, if it did not just do so)."""
        with self._lock:
            if not self._away:
                return False
            self._away = False
            self._open_at = time.monotonic() + self.lease
            return True

    @property
    def away(self) -> bool:
        with self._lock:
            return self._away

    def open(self) -> bool:
        """Whether taking over is allowed now."""
        with self._lock:
            return not self._away and time.monotonic() >= self._open_at
