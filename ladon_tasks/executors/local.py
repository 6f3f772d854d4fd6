"""The in-process executors, ``executor='thread'`` and ``executor='process'``: tasks
started in this process wait in a priority queue in memory and run on a bounded pool of
slots here - bodies in the slots' threads, or in child processes they supervise.

With a store that several processes share (Redis), this process is the *owner* of the
tasks it holds: the create call names it in the record, and its owner lease (kept by
the runtime, :mod:`ladon_tasks.redis.owners`) says it is alive. An attempt begins only
while the record still names this process, so a task another process adopted after
this one stopped answering never starts here twice. With the in-process store there is
no one else to hand tasks to: a clean shutdown ends what is left.

The executor knows which tasks it has in hand (:meth:`LocalExecutor.holds`): from before
their record is created until their outcome is written (a retry waiting in the timers
included). Whatever the store says this process holds beyond that, the store lost the
write that let it go - a failover, a restart - and the caretaker runs it again.
"""

from __future__ import annotations

import itertools
import queue
import threading
import time
from typing import Sequence

from ladon_tasks import crashpoints
from ladon_tasks.executors.base import Executor, Unfinished
from ladon_tasks.executors.settle import Settled
from ladon_tasks.executors.slots import JobSource, Runner, SlotPool, Ticket
from ladon_tasks.executors.timers import Timers
from ladon_tasks.jobs import Job
from ladon_tasks.model import TaskRecord, TaskState
from ladon_tasks.steps import StepRecord
from ladon_tasks.stores.base import TaskStore

_STOP = object()


class LocalTicket(Ticket):
    """A job started in this process. A retry waits in this process's timers."""

    def __init__(self, source: "LocalSource", job: Job) -> None:
        self.source = source
        self.job = job

    def begin(self, store: TaskStore) -> int | None:
        record = store.transition(
            self.job.task_id, TaskState.RUNNING, owner=self.source.owner or None, where=self.source.where or None,
            message="",
        )
        return None if record is None else record.attempts

    def wait_for_slot(self, delay: float) -> None:
        self.source.put_later(self.job, delay)  # held meanwhile, as a retry is

    def end(self, settled: Settled | None) -> None:
        if settled is not None and settled.kind == "retry":
            self.source.put_later(self.job, settled.delay)
        else:
            self.source.let_go(self.job.task_id)


class LocalSource(JobSource[LocalTicket]):
    """Jobs of this process: higher priority first, first come first served among equals."""

    def __init__(self, timers: Timers, owner: str = "", where: str = "") -> None:
        self.timers = timers
        self.owner = owner
        self.where = where or owner
        self._queue: queue.PriorityQueue = queue.PriorityQueue()
        self._order = itertools.count()
        self._closed = threading.Event()
        self._held: set[str] = set()
        self._held_lock = threading.Lock()

    def hold(self, task_id: str) -> None:
        """The task is in hand here from now on (before its record names this process)."""
        with self._held_lock:
            self._held.add(task_id)

    def let_go(self, task_id: str) -> None:
        """The task is not in hand here any more (its outcome is written, or it may not run)."""
        with self._held_lock:
            self._held.discard(task_id)

    def holds(self, task_id: str) -> bool:
        with self._held_lock:
            return task_id in self._held

    def put(self, job: Job) -> None:
        if self._closed.is_set():
            raise RuntimeError("the executor is shut down")
        self.hold(job.task_id)
        self._queue.put((-job.priority, next(self._order), job))

    def put_later(self, job: Job, delay: float) -> None:
        self.timers.call_later(delay, lambda: None if self._closed.is_set() else self.put(job))

    def take(self, slot: int) -> LocalTicket | None:
        _, _, job = self._queue.get()
        if job is _STOP or self._closed.is_set():
            if job is not _STOP:  # not taken after all: it stays queued for whoever takes over
                self._queue.put((-job.priority, next(self._order), job))
            self._queue.put((float("inf"), next(self._order), _STOP))  # wake the next slot too
            return None
        return LocalTicket(self, job)

    def close(self) -> None:
        self._closed.set()
        self._queue.put((float("inf"), next(self._order), _STOP))

    def waiting(self) -> list[Job]:
        """Jobs never taken (after :meth:`close`)."""
        jobs: list[Job] = []
        while True:
            try:
                _, _, job = self._queue.get_nowait()
            except queue.Empty:
                return jobs
            if job is not _STOP:
                jobs.append(job)


class LocalExecutor(Executor):
    """A bounded pool of slots in this process, fed by the jobs started here. ``owner``:
    this process's owner id in a shared store (else ``""``); ``where``: this process's
    name in the records' ``ran_on`` (the owner id by default)."""

    def __init__(self, store: TaskStore, runner: Runner, workers: int, timers: Timers, owner: str = "",
                 where: str = "") -> None:
        self.name = runner.name
        self.store = store
        self.owner = owner
        self.source = LocalSource(timers, owner, where)
        self.pool = SlotPool(runner.name, store, self.source, runner, workers, timers)

    def start(self, record: TaskRecord, job: Job, steps: Sequence[StepRecord] = ()) -> TaskRecord:
        record.owner = self.owner
        self.source.hold(record.task_id)  # before the store says this process holds it
        try:
            stored = self.store.create(record, steps=steps)
            crashpoints.reach("web.created")
            if stored.task_id == record.task_id:
                self.submit(job)
        except BaseException:
            self.source.let_go(record.task_id)
            raise
        if stored.task_id != record.task_id:  # a known idempotency key: nothing new here
            self.source.let_go(record.task_id)
        return stored

    def holds(self, task_id: str) -> bool:
        return self.source.holds(task_id)

    def submit(self, job: Job) -> None:
        """Queue the job here - a new task's, or one taken over from a process that
        died; a delayed start waits in the timers until its time (held meanwhile: the
        caretaker must not take it for a task the store lost). Must not block on the
        body."""
        delay = job.not_before - time.time() if job.not_before else 0.0
        if delay > 0:
            self.source.hold(job.task_id)
            self.source.put_later(job, delay)
        else:
            self.source.put(job)
        self.pool.ensure_started()

    def cancel(self, task_id: str) -> None:
        self.pool.cancel(task_id)

    def close(self, grace: float) -> list[Unfinished]:
        unfinished = []
        for slot, ticket in self.pool.close(grace).items():
            self.pool.runner.stop(slot, ticket.job.task_id)
            unfinished.append(Unfinished(ticket.job, ticket.attempt))
        return unfinished + [Unfinished(job, None) for job in self.source.waiting()]
