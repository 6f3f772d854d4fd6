"""The web-server side of ``executor='queue'``: a task's record and its job are written
together - one step, in a store that keeps job queues (``TaskStore.queue``) - and
workers on any host run it (:mod:`ladon_tasks.worker`)."""

from __future__ import annotations

from typing import Sequence

from ladon_tasks.executors.base import Executor, Unfinished
from ladon_tasks.jobs import Job
from ladon_tasks.model import TaskRecord
from ladon_tasks.steps import StepRecord
from ladon_tasks.stores.base import TaskStore
from ladon_tasks.stores.queues import JobQueue


class QueueExecutor(Executor):
    """Records and enqueues in one step, and returns. Bodies run in ``ladon-tasks
    worker`` processes on any host; cancel reaches them through the store (the worker
    checks the record while the body runs)."""

    name = "queue"

    def __init__(self, store: TaskStore) -> None:
        self.store = store
        self._queues: dict[str, JobQueue] = {"default": store.queue("default")}  # a store without queues says so now

    def start(self, record: TaskRecord, job: Job, steps: Sequence[StepRecord] = ()) -> TaskRecord:
        queue = self._queues.get(job.queue)
        if queue is None:
            queue = self._queues[job.queue] = self.store.queue(job.queue)
        return self.store.create(record, job=queue.entry(job.priority, job.dumps()), steps=steps)

    def close(self, grace: float) -> list[Unfinished]:
        return []  # nothing runs here: queued jobs wait in Redis for any worker
