"""A body's soft timeout (``soft_timeout``): :class:`~ladon_tasks.policy.SoftTimeout`
raised inside it once it has run that long, once per attempt.

In a thread nothing can interrupt a body from outside, so the exception comes at its
next ``update_progress``, ``set_message`` or ``step`` call (:meth:`SoftDeadline.check`).
In a child process a ``SIGALRM`` timer raises it at once, wherever the body is - but
never in the middle of a message to the parent: while the pipe is written or read
(:meth:`SoftDeadline.shielded`) the alarm is held and raised right after.
"""

from __future__ import annotations

import contextlib
import signal
import time
from types import FrameType
from typing import Iterator

from ladon_tasks.policy import SoftTimeout


class SoftDeadline:
    """The soft timeout of one attempt. ``alarm``: raise it at once by ``SIGALRM`` (the
    main thread of a child process only)."""

    def __init__(self, seconds: float | None, alarm: bool = False) -> None:
        self.seconds = seconds
        self.alarm = alarm and bool(seconds)
        self._due = 0.0
        self._fired = False
        self._shield = 0
        self._held = False

    def start(self) -> None:
        """The body begins: the soft timeout counts from here."""
        if not self.seconds:
            return
        self._due = time.monotonic() + self.seconds
        if self.alarm:
            signal.signal(signal.SIGALRM, self._ring)
            signal.setitimer(signal.ITIMER_REAL, self.seconds)

    def stop(self) -> None:
        """The body returned or raised: no alarm after this."""
        self._fired = True
        if self.alarm:
            signal.setitimer(signal.ITIMER_REAL, 0)

    def check(self) -> None:
        """Raise :class:`SoftTimeout` if the time has come and it was not raised yet."""
        if self._due and not self._fired and time.monotonic() >= self._due:
            self._fire()

    @contextlib.contextmanager
    def shielded(self) -> Iterator[None]:
        """No alarm raised inside (a message to the parent must go whole); one that rang
        meanwhile is raised on the way out."""
        self._shield += 1
        try:
            yield
        finally:
            self._shield -= 1
        if not self._shield and self._held:
            self._held = False
            self._fire()

    def _ring(self, signum: int, frame: FrameType | None) -> None:
        if self._fired:
            return
        if self._shield:
            self._held = True
            return
        self._fire()

    def _fire(self) -> None:
        self._fired = True
        raise SoftTimeout(f"the task passed its soft timeout of {self.seconds:g}s")
