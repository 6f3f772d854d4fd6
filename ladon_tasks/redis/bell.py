"""The job bell of a Redis Cluster deployment: which shard just got a job, for the
workers waiting for one.

Redis cannot block on the streams of several slots in one command, so a worker cannot
simply wait on every shard at once. Instead, every script that adds a job to a stream
on a cluster also rings its shard's bell - ``SPUBLISH`` on the shard channel ``jobs``
(:mod:`ladon_tasks.redis.keys`) of ``<queue>:<NNN>`` - and a worker's
:class:`JobBell` listens to every shard's bell. A slot with nothing to do waits on the
bell in its own process (no Redis command while it waits) and, woken, reads the shard
that rang. Each message wakes one waiting slot in every worker process of the queue
that has one waiting: one of them gets the job, the others read nothing (an empty read
costs Redis a few microseconds). So a job costs a read per idle worker process when
there is capacity to spare, and about one when the workers are busy - when it counts.
A look at every shard drops the bells heard before it.

One thread per primary listens (a shard channel is served by the node of its slot, and
redis-py reads one node's subscription at a time). A bell missed - while the listener
reconnects, or when a slot moves to another node - only delays a job until the
queue's next look at every shard (:mod:`.sharded_queue`, once per
``defaults.CLAIM_BLOCK``).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from typing import Any

from redis.cluster import RedisCluster

from ladon_tasks import defaults
from ladon_tasks.redis.connection import REDIS_ERRORS
from ladon_tasks.redis.replies import as_text

log = logging.getLogger(__name__)


class JobBell:
    """The bells of every shard (``channels``, in shard order) over one cluster client;
    listening starts with the first :meth:`wait`."""

    def __init__(self, client: RedisCluster, channels: list[str]) -> None:
        self._client = client
        self._channels = channels
        self._shard_of = {channel: index for index, channel in enumerate(channels)}
        self._rung: dict[str, set[int]] = {}  # queue name -> shards that rang, not yet read
        self._changed = threading.Condition()
        self._stopping = threading.Event()
        self._listeners: list[threading.Thread] = []
        self._listening: dict[str, bool] = {}  # node name -> subscribed now
        self._started = False
        self._start_lock = threading.Lock()

    @property
    def listening(self) -> bool:
        """Whether every shard's bell is heard now (else a waiter must look for itself)."""
        return bool(self._listening) and all(self._listening.values())

    def wait(self, queue: str, timeout: float) -> int | None:
        """A shard whose bell rang for ``queue`` since it was last handed out, or ``None``
        after ``timeout`` seconds."""
        self._start()
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                rung = self._rung.get(queue)
                if rung:
                    return rung.pop()
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._stopping.is_set():
                    return None
                self._changed.wait(remaining)

    def forget(self, queue: str) -> None:
        """Drop the bells rung for ``queue``: every shard was just looked at."""
        with self._changed:
            self._rung.pop(queue, None)

    def close(self) -> None:
        self._stopping.set()
        with self._changed:
            self._changed.notify_all()
        for listener in self._listeners:
            listener.join(timeout=2 * defaults.WAIT_RECHECK)

    # -- listening ---------------------------------------------------------------------

    def _start(self) -> None:
        if self._started:
            return
        with self._start_lock:
            if self._started or self._stopping.is_set():
                return
            by_node: dict[str, list[str]] = {}
            for channel in self._channels:
                by_node.setdefault(self._client.get_node_from_key(channel).name, []).append(channel)
            for node, channels in sorted(by_node.items()):
                self._listening[node] = False
                listener = threading.Thread(target=self._listen, args=(node, channels), daemon=True,
                                            name="ladon-tasks-redis-jobs")
                listener.start()
                self._listeners.append(listener)
            self._started = True

    def _listen(self, node: str, channels: list[str]) -> None:
        backoff = 0.05
        while not self._stopping.is_set():
            pubsub: Any = self._client.pubsub()
            try:
                pubsub.ssubscribe(*channels)
                while not self._stopping.is_set():
                    message = pubsub.get_sharded_message(timeout=defaults.WAIT_RECHECK)
                    if message is None:
                        continue
                    if message["type"] == "ssubscribe":
                        backoff = 0.05
                        self._listening[node] = True
                    elif message["type"] == "smessage":
                        self._ring(as_text(message["channel"]), as_text(message["data"]))
            except REDIS_ERRORS + (OSError, ValueError) as exc:
                log.debug("job bells of %s interrupted: %s", node, exc)
            finally:
                self._listening[node] = False
                with contextlib.suppress(Exception):
                    pubsub.close()
            self._stopping.wait(backoff)
            backoff = min(backoff * 2, 2.0)

    def _ring(self, channel: str, member: str) -> None:
        shard = self._shard_of.get(channel)
        queue = member.rpartition(":")[0]
        if shard is None or not queue:
            return
        with self._changed:
            self._rung.setdefault(queue, set()).add(shard)
            self._changed.notify()
