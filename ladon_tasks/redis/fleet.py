"""The queues and workers of a Redis deployment, as an operator sees them.

* **Queue depths** come from the job streams themselves, so nothing is counted per task
  (``scripts/depths.lua``): per stream, the consumer group's lag (jobs no worker has read)
  and pending entries (jobs a worker holds), per queue the size of its delayed set. The
  streams are found in the ``queues`` set (written by the create script once a minute
  per process and method, and by each worker for the levels it reads), never by a scan
  of the key space.
* **Workers** announce themselves (``scripts/worker_beat.lua``): a JSON description
  under ``worker:<id>`` that expires unless renewed, so a worker killed with SIGKILL
  leaves the list once its heartbeat's time-to-live passes. Web processes that run
  tasks in process are the live owner leases (:mod:`.owners`).
"""

from __future__ import annotations

import hashlib
import json
import logging
from typing import Any, Callable, ContextManager

from ladon_tasks.redis import lua
from ladon_tasks.redis.replies import as_text
from ladon_tasks.redis.keys import Keys
from ladon_tasks.stats import QueueDepth, WebProcess, WorkerInfo, queue_depths
from ladon_tasks.stores.base import Fleet

log = logging.getLogger(__name__)

#: Damaged worker entries a process logs at most: one line each, not one per listing.
DAMAGED_LOGGED_MAX = 100


class RedisFleet(Fleet):
    """Queues and workers of one deployment (prefix). ``errors(action)`` turns Redis
    errors into ``StoreError``."""

    def __init__(self, client: Any, prefix: str, errors: Callable[[str], ContextManager[None]]) -> None:
        self.client = client
        self.prefix = prefix
        self.keys = Keys(prefix)
        self._errors = errors
        self._depths = lua.register(client, "depths", prefix)
        self._beat = lua.register(client, "worker_beat", prefix)
        self._workers = lua.register(client, "workers", prefix)
        self._logged: set[str] = set()

    def queues(self) -> list[QueueDepth]:
        return queue_depths(*self.depth_figures())

    def depth_figures(self) -> tuple[list[tuple[str, int, int, int]], dict[str, int]]:
        """Per stream (queue, priority, waiting, running), and per queue its delayed
        jobs: what :func:`~ladon_tasks.stats.queue_depths` makes the queues of (and a
        sharded deployment adds up first)."""
        with self._errors("reading queue depths"):
            streams, delayed = self._depths(args=[self.prefix])
        figures = []
        for member, waiting, running in streams:
            name, _, level = as_text(member).rpartition(":")  # <queue>:<NNN>, as keys.py lists them
            if name and level.isdigit():
                figures.append((name, int(level), int(waiting), int(running)))
        return figures, {as_text(name): int(size) for name, size in delayed}

    def register_streams(self, members: list[str]) -> None:
        """``<queue>:<NNN>`` of streams a worker reads, so an idle queue is listed too."""
        if members:
            with self._errors("registering queues"):
                self.client.sadd(self.keys.queues, *members)

    def workers(self) -> tuple[list[WorkerInfo], list[WebProcess]]:
        with self._errors("listing workers"):
            found, owners = self._workers(args=[self.prefix])
        workers = []
        for doc in found:
            text = as_text(doc)
            try:
                workers.append(WorkerInfo.from_json(json.loads(text)))
            except ValueError as exc:  # never let it hide the others, nor fail the listing
                self._damaged(text, exc)
        workers.sort(key=lambda info: (info.host, info.started_at))
        webs = [WebProcess(as_text(owner), int(left) / 1000.0, int(held)) for owner, left, held in owners]
        return workers, sorted(webs, key=lambda web: web.owner)

    def _damaged(self, text: str, exc: ValueError) -> None:
        """Log a damaged worker entry once per process (the listing runs at every
        dashboard refresh and metrics scrape), then leave it out."""
        digest = hashlib.sha1(text.encode("utf-8", "surrogatepass")).hexdigest()
        if digest in self._logged or len(self._logged) >= DAMAGED_LOGGED_MAX:
            return
        self._logged.add(digest)
        log.warning("a worker entry in Redis (%s...) is damaged and left out of the workers: %s",
                    self.keys.worker(""), exc)

    def beat(self, info: WorkerInfo, ttl: float) -> None:
        with self._errors(f"heartbeat of worker {info.worker_id}"):
            self._beat(args=[self.prefix, info.worker_id, json.dumps(info.to_json()), str(int(ttl * 1000))])
