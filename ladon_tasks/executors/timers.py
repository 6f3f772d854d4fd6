"""One thread for all delayed actions of a process: retries after backoff, timeouts.

A ``threading.Timer`` per task would cost a thread per running task; a heap and one
thread cost nothing while idle. Callbacks run on the timer thread and must be short.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from typing import Callable

log = logging.getLogger(__name__)


class Timers:
    """Delayed actions of one process on one thread, started on first use."""
    def __init__(self) -> None:
        self._heap: list[tuple[float, int, Callable[[], None]]] = []
        self._cancelled: set[int] = set()
        self._counter = itertools.count()
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._stopped = False

    def call_later(self, delay: float, action: Callable[[], None]) -> int:
        """Run ``action`` after ``delay`` seconds; returns a handle for :meth:`cancel`."""
        handle = next(self._counter)
        with self._cond:
            heapq.heappush(self._heap, (time.monotonic() + max(0.0, delay), handle, action))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="ladon-tasks-timers", daemon=True)
                self._thread.start()
            self._cond.notify()
        return handle

    def cancel(self, handle: int) -> None:
        with self._cond:
            self._cancelled.add(handle)

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._stopped:
                    if self._heap:
                        wait = self._heap[0][0] - time.monotonic()
                        if wait <= 0:
                            break
                        self._cond.wait(wait)
                    else:
                        self._cond.wait()
                if self._stopped:
                    return
                _, handle, action = heapq.heappop(self._heap)
                if handle in self._cancelled:
                    self._cancelled.discard(handle)
                    continue
            try:
                action()
            except Exception:  # a broken callback must not stop every later timer
                log.exception("timer callback failed")
