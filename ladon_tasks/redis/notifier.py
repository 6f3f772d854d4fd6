"""Waiting for tasks to finish without polling, and finished records kept at hand.

Finishing a task publishes its id, with the finished record when it is under
``PUBLISH_MAX`` bytes, on ``<prefix>finished``; :class:`FinishNotifier` runs one
subscriber thread per store and wakes the local threads waiting for that task - each
waiting thread has its own event, so a finish wakes those and no others. A task made
by this store while subscribed needs no read at all (:meth:`FinishNotifier.follow`);
others are read once after subscribing, and every waiter reads again every
``wait_recheck`` seconds in case a message was lost while Redis was unreachable.

Finished records never change again, so up to ``defaults.FINISHED_CACHE`` small ones
(``defaults.FINISHED_CACHE_BYTES`` in all) are kept until their ``result_ttl`` runs out:
progress, result and wait calls on a finished task cost no Redis command. A purge
(``-<id>,<id>...`` on the same channel) takes its tasks out of every process's cache.
A cache is kept only while subscribed, and emptied at each (re)subscription: a purge
may have been missed meanwhile, and Redis may have lost finishes (a failover, a
restart) that would put a task back where it was.

On Redis Cluster the channel is a shard channel (``SPUBLISH``, ``SSUBSCRIBE``): its name
carries the shard's hash tag, so a message goes to the node of that shard (and its
replicas) only, not to every node of the cluster as a classic ``PUBLISH`` would.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from collections import OrderedDict
from typing import Any, Callable

import redis
from redis.cluster import RedisCluster

from ladon_tasks import defaults
from ladon_tasks.model import TaskRecord
from ladon_tasks.redis.connection import REDIS_ERRORS
from ladon_tasks.redis.replies import as_text

log = logging.getLogger(__name__)


class FinishNotifier:
    """Finish messages of one store's channel. ``read(task_id)`` reads a record from
    Redis; ``on_idle`` runs in the subscriber thread about once a ``defaults.WAIT_RECHECK`` (the
    store's housekeeping, kept out of the requests)."""

    def __init__(self, client: "redis.Redis | RedisCluster", channel: str, location: str,
                 read: Callable[[str], "TaskRecord | None"],
                 wait_recheck: float = defaults.WAIT_RECHECK, on_idle: Callable[[], None] = lambda: None) -> None:
        if wait_recheck <= 0:
            raise ValueError("wait_recheck must be > 0")
        self._redis = client
        self.channel = channel
        self.location = location
        self.wait_recheck = wait_recheck
        self._read = read
        self._on_idle = on_idle
        self._stopping = threading.Event()
        self._finished: OrderedDict[str, tuple[float, TaskRecord, int]] = OrderedDict()
        self._finished_bytes = 0
        self._finished_lock = threading.Lock()
        # tasks made here while finish messages were being received: no need to read
        # the record before waiting for its message
        self._followed: OrderedDict[str, None] = OrderedDict()
        self._finishes = threading.Lock()
        self._watchers: dict[str, list[threading.Event]] = {}
        self._notified: dict[str, int] = {}
        self._notified_records: dict[str, TaskRecord] = {}
        self._subscribed = threading.Event()
        self._subscriber: threading.Thread | None = None
        self._sharded = isinstance(client, RedisCluster)
        #: Whether records this process writes are kept too (:meth:`remember`'s ``written``);
        #: a worker's are not (``RedisStore.serve_worker``).
        self.keep_written = True

    # -- the finished-record cache -----------------------------------------------------

    def cached(self, task_id: str) -> TaskRecord | None:
        """A finished record seen before: it never changes again, only expires, so it is
        handed out as kept, not copied (a store's finished records are read-only)."""
        with self._finished_lock:
            entry = self._finished.get(task_id)
            if entry is None:
                return None
            if time.time() >= entry[0]:
                del self._finished[task_id]
                self._finished_bytes -= entry[2]
                return None
            return entry[1]

    def forget_finished(self) -> None:
        """Drop every finished record kept: after Redis was away. A failover to a replica
        that had not received a finish, or a restart that lost it, puts the task back
        where it was - and it runs again; a kept copy would go on saying it finished."""
        with self._finished_lock:
            self._finished.clear()
            self._finished_bytes = 0

    def remember(self, record: TaskRecord, size: int, written: bool = False) -> TaskRecord:
        """Keep a small finished record until it expires; ``size``: its JSON's length;
        ``written``: this process wrote it (kept only while :attr:`keep_written`)."""
        if written and not self.keep_written:
            return record
        if record.finished and record.result_ttl > 0 and size <= defaults.PUBLISH_MAX:
            expires = min(record.finished_at or time.time(), time.time()) + record.result_ttl
            with self._finished_lock:
                previous = self._finished.pop(record.task_id, None)
                if previous is not None:
                    self._finished_bytes -= previous[2]
                self._finished[record.task_id] = (expires, record.copy(), size)
                self._finished_bytes += size
                while (
                    len(self._finished) > defaults.FINISHED_CACHE
                    or self._finished_bytes > defaults.FINISHED_CACHE_BYTES
                ):
                    self._finished_bytes -= self._finished.popitem(last=False)[1][2]
            self._ensure_subscriber()  # a purge must reach this cache
        return record

    def forget(self, task_ids: list[str]) -> None:
        """Purged tasks: out of the cache, and their waiters read again (and find none)."""
        with self._finished_lock:
            for task_id in task_ids:
                entry = self._finished.pop(task_id, None)
                if entry is not None:
                    self._finished_bytes -= entry[2]
        for task_id in task_ids:
            self._wake(task_id)

    # -- tasks made here -----------------------------------------------------------------

    def follow(self, task_id: str) -> None:
        """A task is about to be made here: its finish message, should it come before the
        create call's answer, must not be missed."""
        self._ensure_subscriber()
        with self._finishes:
            if self._subscribed.is_set():
                self._followed[task_id] = None
                while len(self._followed) > defaults.FINISHED_CACHE:
                    self._followed.popitem(last=False)

    def unfollow(self, task_id: str) -> None:
        """The task was not made here after all (an error, a known idempotency key)."""
        with self._finishes:
            self._followed.pop(task_id, None)

    # -- waiting -------------------------------------------------------------------------

    def wait(self, task_id: str, timeout: float) -> TaskRecord | None:
        """The record as soon as the task has finished, or once ``timeout`` has passed;
        ``None`` when the task is unknown."""
        deadline = time.monotonic() + max(0.0, timeout)
        cached = self.cached(task_id)
        if cached is not None:
            return cached
        self._ensure_subscriber()
        # a finish published before we subscribed is caught by the read that follows
        self._subscribed.wait(min(max(0.0, timeout), self.wait_recheck))
        told = threading.Event()
        with self._finishes:
            self._watchers.setdefault(task_id, []).append(told)
            seen = self._notified.get(task_id, 0)
            # made here while subscribed: its finish message cannot have been missed
            read_first = task_id not in self._followed
            self._followed.pop(task_id, None)
        next_read = time.monotonic() + (0.0 if read_first else self.wait_recheck)
        try:
            while True:
                with self._finishes:
                    count = self._notified.get(task_id, 0)
                    record = self._notified_records.get(task_id)
                now = time.monotonic()
                # read when told (a message without the record, a resubscription), and
                # every wait_recheck in case a message was lost - not on others' wake-ups
                if record is None and (count != seen or now >= next_read):
                    record = self._read(task_id)
                    next_read = now + self.wait_recheck
                    if record is None:
                        return None
                seen = count
                remaining = deadline - now
                if record is not None and (record.finished or remaining <= 0):
                    return record.copy()
                if remaining <= 0:
                    return self._read(task_id)
                with self._finishes:
                    if self._notified.get(task_id, 0) != seen:
                        continue  # told meanwhile
                    told.clear()  # under the lock: a later finish sets it again
                told.wait(max(0.001, min(remaining, next_read - now)))
        finally:
            with self._finishes:
                watchers = self._watchers[task_id]
                watchers.remove(told)
                if not watchers:
                    del self._watchers[task_id]
                    self._notified.pop(task_id, None)
                    self._notified_records.pop(task_id, None)

    def close(self) -> None:
        """Stop the subscriber and let every waiter go."""
        self._stopping.set()
        if self._subscriber is not None and self._subscriber.is_alive():
            with contextlib.suppress(*REDIS_ERRORS):
                # wake the subscriber so it sees the stop
                if self._sharded:
                    self._redis.spublish(self.channel, "")
                else:
                    self._redis.publish(self.channel, "")
            self._subscriber.join(timeout=2 * defaults.WAIT_RECHECK)
        with self._finishes:
            for watchers in self._watchers.values():
                for told in watchers:
                    told.set()

    # -- the subscriber thread -----------------------------------------------------------

    def _ensure_subscriber(self) -> None:
        if self._subscriber is not None or self._stopping.is_set():
            return
        with self._finishes:
            if self._subscriber is None:
                self._subscriber = threading.Thread(
                    target=self._subscribe_loop, name="ladon-tasks-redis-finished", daemon=True
                )
                self._subscriber.start()

    def _subscribe_loop(self) -> None:
        backoff = 0.05
        while not self._stopping.is_set():
            pubsub = self._redis.pubsub()
            try:
                if self._sharded:
                    pubsub.ssubscribe(self.channel)
                else:
                    pubsub.subscribe(self.channel)
                while not self._stopping.is_set():
                    message = self._next_message(pubsub)
                    self._on_idle()
                    if not _still_primary(self._redis, pubsub):
                        log.info("finish notifications: the primary moved; subscribing there")
                        break
                    if message is None:
                        continue
                    if message["type"] in ("subscribe", "ssubscribe"):
                        backoff = 0.05
                        self.forget_finished()  # a purge, or a finish Redis lost, may have been missed
                        # (re)subscribed: the waiters so far read their records again; then
                        # the later ones, which read first anyway, may begin (not the other
                        # way round: one that began in between would read twice)
                        self._wake(None)
                        self._subscribed.set()
                    elif message["type"] in ("message", "smessage"):
                        data = as_text(message["data"])
                        if data.startswith("-"):
                            self.forget(data[1:].split(","))
                        else:
                            self._wake(*data.partition("\n")[::2])
            except REDIS_ERRORS + (OSError, ValueError) as exc:
                log.debug("finish notifications from Redis at %s interrupted: %s", self.location, exc)
            finally:
                self._subscribed.clear()
                with self._finishes:
                    self._followed.clear()
                with contextlib.suppress(Exception):
                    pubsub.close()
            self._stopping.wait(backoff)
            backoff = min(backoff * 2, 2.0)

    def _next_message(self, pubsub: Any) -> Any:
        if self._sharded:
            return pubsub.get_sharded_message(timeout=defaults.WAIT_RECHECK)
        return pubsub.get_message(timeout=defaults.WAIT_RECHECK)

    def _wake(self, task_id: str | None, document: str = "") -> None:
        """A finish message (``None``: resubscribed, so every waiter reads again)."""
        with self._finishes:
            if task_id is None:
                targets = list(self._watchers)
                self._followed.clear()  # messages may have been missed meanwhile
            else:
                targets = [task_id] if task_id in self._watchers else []
                # made here and not waited for yet: the waiter will find it cached, or
                # (no record in the message) read it
                early = task_id in self._followed
                self._followed.pop(task_id, None)
            if not targets and (task_id is None or not early):
                return
        record = self.cached(task_id) if task_id is not None else None  # finished here: decoded already
        if record is None and document and task_id is not None:
            try:
                record = self.remember(TaskRecord.from_json(json.loads(document)), len(document))
            except (ValueError, TypeError):
                record = None  # read from Redis instead
        with self._finishes:
            for watched in targets:
                self._notified[watched] = self._notified.get(watched, 0) + 1
                if record is not None:
                    self._notified_records[watched] = record
                for told in self._watchers[watched]:
                    told.set()


def _still_primary(client: "redis.Redis | RedisCluster", pubsub: redis.client.PubSub) -> bool:
    """Whether the subscription's connection goes where the client's pool sends writes
    (with Sentinel, the pool learns of a new primary before this connection breaks)."""
    pool = getattr(client, "connection_pool", None)
    if pool is None:  # a cluster client: its pubsub follows the channel's node itself
        return True
    connection = pubsub.connection
    return connection is None or bool(pool.owns_connection(connection))
