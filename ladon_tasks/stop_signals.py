"""SIGTERM and SIGINT as a request to stop, taken once.

A process is often sent its stop signal twice in a row: a process-group kill reaches
both ``make`` (or a shell, or a supervisor) and the server, and the parent forwards its
own copy to its child a moment later. Python runs a signal handler in the main thread
between two bytecodes - possibly in the middle of the first handler, while it holds a
lock (``threading.Event.set`` takes one). A second handler that takes the same lock
waits for itself forever, and the process never stops. So the handler installed here
claims the stop with a non-blocking lock, which never waits: the first signal runs
``on_stop``, every later one returns at once.
"""

from __future__ import annotations

import signal
import threading
from typing import Callable


def stop_on_signals(on_stop: Callable[[int], None]) -> None:
    """Call ``on_stop(signum)`` at the first SIGTERM or SIGINT; ignore the rest (main
    thread only, as ``signal.signal`` requires)."""
    claimed = threading.Lock()

    def handler(signum: int, frame: object) -> None:
        if claimed.acquire(blocking=False):
            on_stop(signum)

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, handler)
