"""Bodies in the slot's own thread: the default, in the web-server process (and in
``ladon-tasks worker --threads``).

Cancel and timeout are cooperative: the record is marked at once, and the body is
interrupted at its next ``update_progress`` (or sees ``kw['is_cancelled']()``). A body
that never reports keeps its thread until it returns; its late result is dropped by the
attempt fence. For bodies that must be stopped hard, or that hold the GIL, use
``executor='process'``.
"""

from __future__ import annotations

from ladon_tasks.executors.base import StoreReporter, run_body
from ladon_tasks.jobs import Outcome
from ladon_tasks.executors.slots import Attempt, Runner


class ThreadRunner(Runner):
    """Runs bodies in the slot's thread."""
    name = "thread"

    def run(self, slot: int, attempt: Attempt) -> Outcome:
        reporter = StoreReporter(attempt.store, attempt.job, attempt.number, attempt.started, attempt.touch)
        return run_body(attempt.job, attempt.number, reporter)
