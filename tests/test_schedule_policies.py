"""The ``missed`` and ``overlap`` policies of periodic tasks, on a clock the test
controls: a real :class:`~ladon_tasks.runtime.TaskRuntime` over the in-process store
(thread executor) whose scheduler is asked to look at a schedule at chosen moments
(``Scheduler.run_due(spec, now)``) - the call its loop makes every ``SCHEDULE_POLL``.
The bodies hold until the test lets them go, so "still running" is a fact, not a race."""

from __future__ import annotations

import threading

import pytest

from ladon_tasks import ladonize
from ladon_tasks.model import TaskRecord
from ladon_tasks.runtime import TaskRuntime
from ladon_tasks.spec import TaskSpec
from ladon_tasks.stores.memory import MemoryStore
from support.servers import wait_until

#: The schedules' period (a day: should another in-process test start this process's
#: scheduler, none of them comes due while it runs); their ticks are its multiples
#: since the epoch.
DAY = 86400.0
#: A tick of every schedule here, some time ago.
T = 19675 * DAY

#: Each run takes one permit before it returns: the test decides when a run ends.
permits = threading.Semaphore(0)


def _hold(**kw) -> int:
    permits.acquire(timeout=30)  # never held past the test, whatever it asserts
    return 1


def _done(**kw) -> int:
    return 1


class SchedulePolicyService(object):
    @ladonize(rtype=int, tasktype=dict(every=DAY, missed='last', overlap='run'))
    def missedLast(self, **kw):
        return _done(**kw)

    @ladonize(rtype=int, tasktype=dict(every=DAY, missed='skip', overlap='run'))
    def missedSkip(self, **kw):
        return _done(**kw)

    @ladonize(rtype=int, tasktype=dict(every=DAY, overlap='skip'))
    def overlapSkip(self, **kw):
        return _hold(**kw)

    @ladonize(rtype=int, tasktype=dict(every=DAY, overlap='queue'))
    def overlapQueue(self, **kw):
        return _hold(**kw)

    @ladonize(rtype=int, tasktype=dict(every=DAY, overlap='run'))
    def overlapRun(self, **kw):
        return _hold(**kw)

    @ladonize(rtype=int, tasktype=dict(every=DAY, overlap='queue', missed='skip'))
    def overlapQueueMissedSkip(self, **kw):
        return _hold(**kw)


def spec_of(method: str) -> TaskSpec:
    return getattr(SchedulePolicyService, method).spec


@pytest.fixture
def runtime():
    made = TaskRuntime(MemoryStore(), thread_workers=4)
    yield made
    for _ in range(8):
        permits.release()  # no body left holding
    made.shutdown(grace=5)
    while permits.acquire(blocking=False):
        pass


def tick_tasks(runtime: TaskRuntime, method: str) -> dict[float, TaskRecord]:
    """The schedule's tasks, by the tick their idempotency key names."""
    ticks = {}
    for record in runtime.store.list_tasks(method=method, limit=500):
        assert record.idempotency_key.startswith("schedule:"), record.idempotency_key
        ticks[float(record.idempotency_key.split(":", 1)[1])] = record
    return ticks


def finished(runtime: TaskRuntime, record: TaskRecord) -> TaskRecord:
    return wait_until(lambda: (lambda r: r if r is not None and r.finished else None)(
        runtime.store.get(record.task_id)), timeout=30, what=f"task {record.task_id} to finish")


def begin(runtime: TaskRuntime, spec: TaskSpec) -> None:
    """A first look: a new schedule begins at its next tick, T + DAY."""
    assert runtime.scheduler.run_due(spec, T + 1) == 0
    assert tick_tasks(runtime, spec.name) == {}


@pytest.mark.parametrize("method, expected_missed", [("missedLast", [T + 4 * DAY]), ("missedSkip", [])])
def test_ticks_missed_past_the_grace_follow_the_missed_policy(runtime, method, expected_missed):
    spec = spec_of(method)
    assert runtime.scheduler.grace == 60.0  # SCHEDULE_GRACE
    begin(runtime, spec)
    # every process was away for five days: ticks T+1d .. T+4d are more than the grace
    # late, T+5d (30 s ago) less
    now = T + 5 * DAY + 30
    runtime.scheduler.run_due(spec, now)
    assert sorted(tick_tasks(runtime, spec.name)) == expected_missed + [T + 5 * DAY]
    # a second look (another process's, say) starts nothing more
    runtime.scheduler.run_due(spec, now + 0.5)
    assert sorted(tick_tasks(runtime, spec.name)) == expected_missed + [T + 5 * DAY]


def test_overlap_skip_skips_a_tick_whose_previous_run_still_runs(runtime):
    spec = spec_of("overlapSkip")
    begin(runtime, spec)
    runtime.scheduler.run_due(spec, T + 1 * DAY + 0.1)
    (first,) = tick_tasks(runtime, spec.name).values()
    runtime.scheduler.run_due(spec, T + 2 * DAY + 0.1)  # tick T+2d: the run of T+1d holds
    runtime.scheduler.run_due(spec, T + 2 * DAY + 0.6)  # and a second look does not take it up again
    runtime.scheduler.run_due(spec, T + 3 * DAY + 0.1)  # nor does the tick after a skipped one run
    assert sorted(tick_tasks(runtime, spec.name)) == [T + 1 * DAY]
    permits.release()
    finished(runtime, first)
    runtime.scheduler.run_due(spec, T + 4 * DAY + 0.1)
    assert sorted(tick_tasks(runtime, spec.name)) == [T + 1 * DAY, T + 4 * DAY], "T+2d, T+3d skipped, T+4d runs"


def test_overlap_queue_runs_a_held_tick_once_the_previous_run_ended(runtime):
    spec = spec_of("overlapQueue")
    # the ticks here are a day apart: a grace of days keeps the held ones within it, so
    # the overlap policy decides, not the missed one
    runtime.scheduler.grace = 10 * DAY
    begin(runtime, spec)
    runtime.scheduler.run_due(spec, T + 1 * DAY + 0.1)
    (first,) = tick_tasks(runtime, spec.name).values()
    runtime.scheduler.run_due(spec, T + 2 * DAY + 0.1)
    runtime.scheduler.run_due(spec, T + 3 * DAY + 0.1)  # T+2d and T+3d wait for the run of T+1d
    assert sorted(tick_tasks(runtime, spec.name)) == [T + 1 * DAY]
    permits.release()
    first = finished(runtime, first)
    runtime.scheduler.run_due(spec, T + 3 * DAY + 0.2)  # T+2d runs, late; T+3d waits for it in turn
    ticks = tick_tasks(runtime, spec.name)
    assert sorted(ticks) == [T + 1 * DAY, T + 2 * DAY]
    second = ticks[T + 2 * DAY]
    assert second.submitted_at >= first.finished_at
    permits.release()
    second = finished(runtime, second)
    runtime.scheduler.run_due(spec, T + 3 * DAY + 0.3)
    ticks = tick_tasks(runtime, spec.name)
    assert sorted(ticks) == [T + 1 * DAY, T + 2 * DAY, T + 3 * DAY], "every tick ran, none skipped"
    assert ticks[T + 3 * DAY].submitted_at >= second.finished_at


def test_overlap_run_starts_a_tick_while_the_previous_run_still_runs(runtime):
    spec = spec_of("overlapRun")
    begin(runtime, spec)
    runtime.scheduler.run_due(spec, T + 1 * DAY + 0.1)
    runtime.scheduler.run_due(spec, T + 2 * DAY + 0.1)
    ticks = tick_tasks(runtime, spec.name)
    assert sorted(ticks) == [T + 1 * DAY, T + 2 * DAY]
    assert not runtime.store.get(ticks[T + 1 * DAY].task_id).finished, "both run at once"
    permits.release()
    permits.release()
    for record in ticks.values():
        finished(runtime, record)


def test_a_tick_held_by_overlap_queue_past_the_grace_follows_the_missed_policy(runtime):
    spec = spec_of("overlapQueueMissedSkip")
    begin(runtime, spec)
    runtime.scheduler.run_due(spec, T + 1 * DAY + 0.1)
    (first,) = tick_tasks(runtime, spec.name).values()
    runtime.scheduler.run_due(spec, T + 2 * DAY + 0.1)  # T+2d waits for the run of T+1d
    permits.release()
    finished(runtime, first)
    # the run ended a day late: T+2d is now past the grace (missed='skip'), T+3d is not
    runtime.scheduler.run_due(spec, T + 3 * DAY + 0.1)
    assert sorted(tick_tasks(runtime, spec.name)) == [T + 1 * DAY, T + 3 * DAY]
