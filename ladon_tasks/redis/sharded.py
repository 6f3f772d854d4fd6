"""Task records on Redis Cluster: one deployment as ``shards`` Redis stores, one per hash
slot, over one cluster client (:mod:`.cluster` says how keys and tasks are cut).

Each shard is a whole :class:`~ladon_tasks.redis.store.RedisStore` under its own prefix,
so every step of a task is still one script on one node, with the same guarantees. What
spans shards, and how:

* **a task** lives on the shard its id names: every call about one task goes to that
  shard alone, as on one server;
* **idempotency keys**: the runtime asks :meth:`ShardedRedisStore.new_task_id` for the id
  of a task with a key, and gets one on the key's shard, so the key and its task are
  checked and written by the one create script. A caller that made its own id with a
  key on another shard gets two steps instead: the key is set on its own shard first
  (kept a day longer than the record's ``result_ttl``), then the task is made on its
  own shard;
* **listing** asks every shard for its first ``offset + limit`` records that pass the
  filters and merges them newest first: a page costs ``shards`` times what it costs on
  one server;
* **counts** add up every shard's ``stats`` hash; **purge** goes through every shard;
* **events** are read from every shard's stream and merged by time; an event's id
  carries the position in every shard (``<ms>-<seq>|<shard position>,...``), so reading
  on from it misses nothing;
* **owner leases** are renewed on every shard at once, none waiting for another
  (:mod:`.fanout`; each shard's owner-lease scripts see the tasks held there), taken
  over shard by shard, and merged for the caretaker; the node serving each shard
  (:meth:`ShardedRedisStore.placement`) tells a process that a shard failed over, so
  it judges no lease for one lease (:mod:`ladon_tasks.takeover`);
* **queues**: a job lives on its task's shard; workers read every shard, and wait on
  the job bell that says which shard just got a job (:mod:`.sharded_queue`,
  :mod:`.bell`); queue depths add up over shards;
* **workers** announce themselves on one shard (by their id); the dashboard's list
  merges every shard's;
* **finish messages** go on each shard's channel; each shard store subscribes to its
  own when it first waits (classic Pub/Sub, which a cluster delivers on every node).
"""

from __future__ import annotations

import functools
import json
import time
from typing import TYPE_CHECKING, Any, ContextManager, Iterable, Sequence

from redis.cluster import RedisCluster
from redis.crc import key_slot
from redis.exceptions import SlotNotCoveredError

from ladon_tasks import defaults
from ladon_tasks.model import TaskRecord, TaskState, new_task_id
from ladon_tasks.redis.bell import JobBell
from ladon_tasks.redis.cluster import (
    ClusterURL,
    id_on_shard,
    idempotency_shard,
    shard_of,
    shard_prefixes,
)
from ladon_tasks.redis.connection import (
    REDIS_ERRORS,
    connect_cluster,
    describe_location,
    as_store_errors,
)
from ladon_tasks.redis.replies import as_text, entry_order
from ladon_tasks.redis.keys import DEFAULT_PREFIX
from ladon_tasks.redis.owners import RedisOwnership
from ladon_tasks.redis.fanout import ShardLanes
from ladon_tasks.redis.fleet import RedisFleet
from ladon_tasks.redis.sharded_queue import ShardedQueue
from ladon_tasks.redis.store import KeyElsewhere, RedisStore
from ladon_tasks.stats import QueueDepth, TaskCounts, WebProcess, WorkerInfo, queue_depths
from ladon_tasks.steps import StepRecord
from ladon_tasks.stores.base import Fleet, Ownership, StoreError, TaskStore
from ladon_tasks.stores.queues import JobChange, JobEntry

if TYPE_CHECKING:
    from ladon_tasks.schedule_book import ScheduleBook

#: How much longer than its record's ``result_ttl`` an idempotency key set apart from its
#: task (a caller's own id on another shard) is kept, in seconds.
SEPARATE_KEY_MARGIN = 86_400.0


class ShardedRedisStore(TaskStore):
    """Task records spread over the shards of a Redis Cluster.

    ``connection``: a ``redis+cluster://`` URL, or an existing ``RedisCluster`` (used, not
    closed); ``shards``: how many (the URL's ``shards=``, else
    ``defaults.CLUSTER_SHARDS``) - every process of a deployment must say the same.
    ``max_queued`` and ``max_queued_bytes`` bound the whole deployment as
    :class:`RedisStore`'s do one server, spread evenly: each shard holds its share
    (rounded up), checked by its own create script, and a start whose shard is full is
    refused though another may have room - task ids are random, so shards fill alike.
    """

    def __init__(
        self,
        connection: str | RedisCluster,
        *,
        prefix: str = DEFAULT_PREFIX,
        shards: int | None = None,
        flush_interval: float = defaults.FLUSH_INTERVAL,
        wait_recheck: float = defaults.WAIT_RECHECK,
        socket_timeout: float | None = None,
        max_queued: int = defaults.REDIS_MAX_QUEUED_TASKS,
        max_queued_bytes: int = defaults.REDIS_MAX_QUEUED_BYTES,
    ) -> None:
        if not prefix:
            raise ValueError("prefix must not be empty: keys of other programs would mix with ours")
        if isinstance(connection, RedisCluster):
            if socket_timeout is not None:
                raise ValueError("socket_timeout applies to a URL; configure the given RedisCluster instead")
            self._redis = connection
            self._owns_connection = False
            count = shards or defaults.CLUSTER_SHARDS
        elif isinstance(connection, str):
            parsed = ClusterURL.parse(connection)
            count = shards or parsed.shards
            try:
                self._redis = connect_cluster(connection, socket_timeout)
            except REDIS_ERRORS as exc:
                raise StoreError(f"Redis Cluster at {parsed.describe()}: connecting failed: {exc}") from None
            self._owns_connection = True
        else:
            raise TypeError("connection must be a redis+cluster:// URL or a RedisCluster, "
                            f"not {type(connection).__name__}")
        self.prefix = prefix
        self.location = describe_location(self._redis)
        self.shards = [
            RedisStore(self._redis, prefix=shard_prefix, flush_interval=flush_interval, wait_recheck=wait_recheck,
                       max_queued=-(-max_queued // count), max_queued_bytes=-(-max_queued_bytes // count))
            for shard_prefix in shard_prefixes(prefix, count)
        ]
        self._slots = [key_slot(shard.prefix.encode()) for shard in self.shards]
        self._fleet = ShardedFleet([shard.fleet() for shard in self.shards])
        self._bell = JobBell(self._redis, [shard.keys.jobs_channel for shard in self.shards])
        self._ownership = ShardedOwnership(self, [shard.ownership() for shard in self.shards])

    @property
    def client(self) -> RedisCluster:
        """The cluster client every shard shares."""
        return self._redis

    def shard(self, task_id: str) -> RedisStore:
        """The shard task ``task_id`` lives on."""
        return self.shards[shard_of(task_id, len(self.shards))]

    def _errors(self, action: str) -> ContextManager[None]:
        return as_store_errors(self.location, action)

    # -- one task: its shard ---------------------------------------------------------

    def new_task_id(self, service: str, method: str, idempotency_key: str = "", principal: str = "") -> str:
        if not idempotency_key:
            return new_task_id()
        shard = idempotency_shard(service, method, idempotency_key, len(self.shards), principal)
        return id_on_shard(shard, len(self.shards))

    def create(self, record: TaskRecord, job: JobEntry | None = None,
               steps: Sequence[StepRecord] = ()) -> TaskRecord:
        home = self.shard(record.task_id)
        if record.idempotency_key:
            key_shard = self.shards[idempotency_shard(record.service, record.method, record.idempotency_key,
                                                      len(self.shards), record.principal)]
            if key_shard is not home:
                existing = self._claim_separate_key(key_shard, record)
                if existing is not None:
                    return existing
        try:
            return home.create(record, job, steps)
        except KeyElsewhere as elsewhere:  # the key was set apart for a task of another shard
            existing = self.current(elsewhere.task_id)
            if existing is not None:
                return existing
            with self._errors(f"creating task {record.task_id}"):
                self._redis.delete(home.keys.idempotency(record.service, record.method, record.idempotency_key,
                                                         record.principal))  # its task expired: the key is free
            return home.create(record, job, steps)

    def get(self, task_id: str) -> TaskRecord | None:
        return self.shard(task_id).get(task_id)

    def current(self, task_id: str) -> TaskRecord | None:
        return self.shard(task_id).current(task_id)

    def begin(self, task_id: str, attempt: int, started_at: float, where: str = "") -> bool:
        return self.shard(task_id).begin(task_id, attempt, started_at, where)

    def transition(self, task_id: str, target: TaskState, *, attempt: int | None = None, owner: str | None = None,
                   job: JobChange | None = None, where: str | None = None, **changes: Any) -> TaskRecord | None:
        return self.shard(task_id).transition(task_id, target, attempt=attempt, owner=owner, job=job, where=where,
                                              **changes)

    def transition_without_record(self, task_id: str, target: TaskState, *, attempt: int | None = None,
                                  owner: str | None = None, job: JobChange | None = None, where: str | None = None,
                                  **changes: Any) -> bool:
        return self.shard(task_id).transition_without_record(task_id, target, attempt=attempt, owner=owner, job=job,
                                                             where=where, **changes)

    def report(self, task_id: str, progress: float | None = None, message: str | None = None, *,
               attempt: int | None = None) -> bool:
        return self.shard(task_id).report(task_id, progress, message, attempt=attempt)

    def load_steps(self, task_id: str) -> dict[str, StepRecord]:
        return self.shard(task_id).load_steps(task_id)

    def record_step(self, task_id: str, attempt: int, step: StepRecord) -> bool:
        return self.shard(task_id).record_step(task_id, attempt, step)

    def take_rate(self, key: str, interval: float, tolerance: float) -> float:
        return self.shard(key).take_rate(key, interval, tolerance)  # one key, on one shard

    def request_cancel(self, task_id: str) -> TaskRecord | None:
        return self.shard(task_id).request_cancel(task_id)

    def wait(self, task_id: str, timeout: float) -> TaskRecord | None:
        return self.shard(task_id).wait(task_id, timeout)

    # -- every shard -----------------------------------------------------------------

    def list_tasks(self, *, states: Iterable[TaskState] | None = None, method: str | None = None, limit: int = 100,
                   offset: int = 0, tag: str | None = None, id_prefix: str | None = None,
                   principal: str | None = None) -> list[TaskRecord]:
        if limit <= 0:
            return []
        wanted = None if states is None else list(states)
        offset = max(0, offset)
        merged: list[TaskRecord] = []
        for shard in self.shards:
            merged += shard.list_tasks(states=wanted, method=method, limit=offset + limit, offset=0, tag=tag,
                                       id_prefix=id_prefix, principal=principal)
        merged.sort(key=lambda record: record.submitted_at or 0.0, reverse=True)
        return merged[offset:offset + limit]

    def counts(self) -> TaskCounts:
        """Every shard's ``stats`` hash added up: one read per shard."""
        total: dict[str, float] = {}
        for shard in self.shards:
            for name, value in shard.count_fields().items():
                try:
                    total[name] = total.get(name, 0.0) + float(value)
                except ValueError:
                    continue
        return TaskCounts.from_fields({name: repr(value) for name, value in total.items()})

    def purge(self, states: Iterable[TaskState], method: str | None = None, dry_run: bool = False) -> int:
        wanted = list(states)
        return sum(shard.purge(wanted, method, dry_run) for shard in self.shards)

    def ping(self) -> None:
        with self._errors("ping"):
            self._redis.ping()

    def events(self, last_id: str = "$", block: float = 1.0, count: int = 100) -> list[tuple[str, dict[str, str]]]:
        """Lifecycle events of every shard after ``last_id`` (``"$"``, ``"0"``, or an id
        this returned), merged by time; waits up to ``block`` seconds for the first,
        asking the shards again every ``defaults.EVENTS_POLL_INTERVAL / 10``."""
        cursor = self._event_cursor(last_id)
        deadline = time.monotonic() + max(0.0, block)
        while True:
            found: list[tuple[tuple[int, int], int, str, dict[str, str]]] = []
            with self._errors("read events"):
                for index, shard in enumerate(self.shards):
                    answer: Any = self._redis.xread({shard.keys.events: cursor[index]}, count=count)
                    for _, entries in answer or []:
                        for event_id, fields in entries:
                            found.append((entry_order(as_text(event_id)), index, as_text(event_id), fields))
            if found or time.monotonic() >= deadline:
                break
            time.sleep(min(defaults.EVENTS_POLL_INTERVAL / 10, max(0.0, deadline - time.monotonic())))
        found.sort(key=lambda item: item[0])
        events = []
        for _, index, event_id, fields in found[:count]:
            cursor[index] = event_id
            events.append((f"{event_id}|{','.join(cursor)}", fields))
        return events

    def _event_cursor(self, last_id: str) -> list[str]:
        if last_id in ("$", "0", "0-0", ""):
            if last_id != "$":
                return ["0-0"] * len(self.shards)
            with self._errors("read events"):
                return [_last_entry(self._redis, shard.keys.events) for shard in self.shards]
        _, _, positions = last_id.partition("|")
        cursor = positions.split(",")
        if len(cursor) != len(self.shards):
            raise ValueError(f"not an event id of this deployment's {len(self.shards)} shards: {last_id[:60]!r}")
        return cursor

    def queue(self, name: str, *, lease_seconds: float = defaults.LEASE_SECONDS, levels: Iterable[int] = (),
              consumer: str | None = None) -> ShardedQueue:
        """Queue ``name`` on every shard; ``consumer``: the reading worker's id."""
        levels = list(levels)
        queues = [shard.queue(name, lease_seconds=lease_seconds, levels=levels, consumer=consumer)
                  for shard in self.shards]
        return ShardedQueue(queues, self._bell)

    def ownership(self) -> "ShardedOwnership":
        return self._ownership

    def fleet(self) -> "ShardedFleet":
        return self._fleet

    def schedule_book(self) -> "ScheduleBook":
        """On the first shard: a schedule's ticks are told apart by their tasks'
        idempotency keys, which the shards already route; the book is one place."""
        return self.shards[0].schedule_book()

    def placement(self) -> tuple[str, ...]:
        """The node that serves each shard's slot, as this process's cluster client last
        learned it (no round trip); ``""`` for a slot no node serves. A failover changes
        it: the promoted replica serves the dead primary's shards."""
        nodes = self._redis.nodes_manager
        placed = []
        for slot in self._slots:
            try:
                placed.append(nodes.get_node_from_slot(slot).name)
            except SlotNotCoveredError:
                placed.append("")
        return tuple(placed)

    def serve_worker(self) -> None:
        for shard in self.shards:
            shard.serve_worker()

    def close(self) -> None:
        self._bell.close()
        for shard in self.shards:
            shard.close()
        if self._owns_connection:
            self._redis.close()

    # -- helpers ---------------------------------------------------------------------

    def _claim_separate_key(self, key_shard: RedisStore, record: TaskRecord) -> TaskRecord | None:
        """An idempotency key on another shard than its task: set it to this task unless
        it names one still retained, which is returned instead."""
        key = key_shard.keys.idempotency(record.service, record.method, record.idempotency_key, record.principal)
        keep_ms = int((max(0.0, record.result_ttl) + SEPARATE_KEY_MARGIN) * 1000)
        mine = json.dumps([record.task_id])  # a list: the create script knows it is set apart
        with self._errors(f"creating task {record.task_id}"):
            for _ in range(3):
                if self._redis.set(key, mine, nx=True, px=keep_ms):
                    return None
                named = self._redis.get(key)
                if named is None:
                    continue  # expired meanwhile
                other = json.loads(as_text(named))
                existing = self.current(other[0] if isinstance(other, list) else other)
                if existing is not None:
                    return existing
                self._redis.set(key, mine, px=keep_ms)  # its task expired: the key is free
                return None
        return None


def _last_entry(client: Any, stream: str) -> str:
    newest = client.xrevrange(stream, count=1)
    return as_text(newest[0][0]) if newest else "0-0"


class ShardedOwnership(Ownership):
    """Owner leases on every shard: a process holds tasks on any of them."""

    def __init__(self, store: ShardedRedisStore, shards: list[RedisOwnership]) -> None:
        self._store = store
        self._shards = shards
        self._lanes = ShardLanes("owner leases", len(shards))

    def renew(self, owner: str, lease: float) -> None:
        """On every shard at once, none waiting for another (:mod:`.fanout`); a shard
        that does not answer within ``SLOW_CALL_SHARE`` of the lease is reported."""
        calls = {index: functools.partial(shard.renew, owner, lease) for index, shard in enumerate(self._shards)}
        self._lanes.run(calls, lease * defaults.SLOW_CALL_SHARE)

    def expired(self, owners: int = 10, tasks: int = 100) -> list[tuple[str, float, list[str]]]:
        merged: dict[str, tuple[float, list[str]]] = {}
        for shard in self._shards:
            for owner, since, ids in shard.expired(owners, tasks):
                before = merged.get(owner, (since, []))
                merged[owner] = (min(before[0], since), before[1] + ids)
        found = sorted(merged.items(), key=lambda item: -item[1][0])[:owners]
        return [(owner, since, ids[:tasks]) for owner, (since, ids) in found]

    def adopt(self, task_id: str, dead: str, new: str, max_lost: int, reason: str) -> TaskRecord | None:
        shard = shard_of(task_id, len(self._shards))
        return self._shards[shard].adopt(task_id, dead, new, max_lost, reason)

    def held(self, owner: str) -> list[str]:
        return sorted(task_id for shard in self._shards for task_id in shard.held(owner))

    def release(self, owner: str, max_lost: int, reason: str) -> int:
        return sum(shard.release(owner, max_lost, reason) for shard in self._shards)


class ShardedFleet(Fleet):
    """Queues and workers over every shard: depths add up, lists merge."""

    def __init__(self, shards: list[RedisFleet]) -> None:
        self._shards = shards

    def queues(self) -> list[QueueDepth]:
        streams: dict[tuple[str, int], tuple[int, int]] = {}
        delayed: dict[str, int] = {}
        for shard in self._shards:
            shard_streams, shard_delayed = shard.depth_figures()
            for name, level, waiting, running in shard_streams:
                before = streams.get((name, level), (0, 0))
                streams[(name, level)] = (before[0] + waiting, before[1] + running)
            for name, size in shard_delayed.items():
                delayed[name] = delayed.get(name, 0) + size
        return queue_depths(((name, level, w, r) for (name, level), (w, r) in streams.items()), delayed)

    def register_streams(self, members: list[str]) -> None:
        for shard in self._shards:
            shard.register_streams(members)

    def workers(self) -> tuple[list[WorkerInfo], list[WebProcess]]:
        workers: dict[str, WorkerInfo] = {}
        webs: dict[str, WebProcess] = {}
        for shard in self._shards:
            found, owners = shard.workers()
            for info in found:
                workers[info.worker_id] = info
            for web in owners:
                before = webs.get(web.owner)
                webs[web.owner] = web if before is None else WebProcess(
                    web.owner, min(before.lease_left, web.lease_left), before.holds + web.holds)
        return (sorted(workers.values(), key=lambda info: (info.host, info.started_at)),
                sorted(webs.values(), key=lambda web: web.owner))

    def beat(self, info: WorkerInfo, ttl: float) -> None:
        self._shards[shard_of(info.worker_id, len(self._shards))].beat(info, ttl)
