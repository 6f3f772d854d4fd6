"""Crash points: named places where a test makes this process die on the spot, as a
power cut would, to prove that nothing between two steps can lose a task.

``LADON_TASKS_CRASH_AT`` holds a comma-separated list of point names; reaching one ends
the process at once with exit code :data:`CRASH_EXIT_CODE` (``os._exit``: no cleanup,
no flush, no hand-over). Unset - always, outside such tests - a point costs one lookup
in an empty set.

==========================  ===========================================================
point                       where
==========================  ===========================================================
``web.created``             a start call recorded its task, before handing it over
``worker.claimed``          a worker read a job, before running it
``slot.finished``           a body returned, before its outcome is written
``slot.settled``            an outcome was written (and its entry acknowledged)
``reaper.claimed``          a reaper took over expired entries, before reissuing them
``reaper.reissued``         a reaper reissued one entry
``worker.handed_back``      a stopping worker handed one task back
==========================  ===========================================================
"""

from __future__ import annotations

import os

#: The exit status of a process that reached an armed crash point.
CRASH_EXIT_CODE = 86

_ARMED = frozenset(name.strip() for name in os.environ.get("LADON_TASKS_CRASH_AT", "").split(",") if name.strip())


def reach(point: str) -> None:
    """Die here if ``point`` is armed."""
    if point in _ARMED:
        os._exit(CRASH_EXIT_CODE)
