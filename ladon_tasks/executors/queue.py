"""The web-server side of ``executor='queue'``: a task's record and its job are written
together (one script, see :mod:`ladon_tasks.redis.queue`), and workers on any host run
it."""

from __future__ import annotations

from typing import Any

from ladon_tasks.executors.base import Executor, Job, Unfinished
from ladon_tasks.model import TaskRecord
from ladon_tasks.redis.queue import RedisQueue
from ladon_tasks.stores.base import TaskStore


class QueueExecutor(Executor):
    """The web-server side of ``executor='queue'``: record and enqueue in one step, return.

    Bodies run in ``ladon-tasks worker`` processes on any host; cancel reaches them
    through the store (the worker checks the record while the body runs)."""

    name = "queue"

    def __init__(self, queues: dict[str, RedisQueue] | None = None, make_queue: Any = None) -> None:
        self._queues = dict(queues or {})
        self._make_queue = make_queue

    def queue(self, name: str) -> RedisQueue:
        queue = self._queues.get(name)
        if queue is None:
            if self._make_queue is None:
                raise RuntimeError(f"no queue {name!r}")
            queue = self._queues[name] = self._make_queue(name)
        return queue

    def start(self, store: TaskStore, record: TaskRecord, job: Job) -> TaskRecord:
        return store.create(record, enqueue=self.queue(job.queue).entry_for(job))  # type: ignore[call-arg]

    def submit(self, job: Job) -> None:
        self.queue(job.queue).requeue(job)

    def close(self, grace: float) -> list[Unfinished]:
        return []  # nothing runs here: queued jobs wait in Redis for any worker
