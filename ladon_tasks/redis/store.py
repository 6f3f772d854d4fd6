"""Task records in Redis: one store shared by every web-server process and worker.

Contract (the one of :class:`~ladon_tasks.stores.base.TaskStore`, as ``MemoryStore``
keeps it), and how this backend keeps it:

* **JSON only.** A record is a Redis hash whose fields are the :class:`TaskRecord`
  fields, each value the JSON text of that field (``TaskRecord.to_json``). Lua scripts
  read only small scalar fields (state, attempts, method...) and never re-encode user
  data, so results such as ``[]``, ``{}`` or big integers come back exactly as stored.
  Nothing is ever pickled.
* **Atomic transitions.** Every state change is one Lua script (read, check against
  :data:`ladon_tasks.model.TRANSITIONS` - embedded from the Python table - fence by
  ``attempt``, write). Whoever loses a race gets ``None``. A queue worker's attempt
  that is not recorded yet (see below) counts as running for its own fenced writes.
* **One script per step.** Creating a task writes the record, its index entry and -
  for ``executor='queue'`` - its job (``create(record, job=...)``); creates of many
  threads that arrive while one is in flight go together in the next script call
  (:mod:`.group_commit`), each checked and answered on its own; finishing one
  writes the outcome, acknowledges the job, sets the TTL, appends the event and tells
  waiters (``transition`` with a :class:`~ladon_tasks.stores.queues.JobChange`).
* **Starts written late.** :meth:`RedisStore.begin` (queue workers) records a start
  only once the attempt has run ``flush_interval`` or reports progress; a shorter body
  goes from queued to its outcome in one write, with attempts and start time.
* **Bounded lifetime.** A finished record gets a Redis TTL of ``result_ttl``, and so do
  its idempotency key and its steps. Queued and running records do not expire (as in
  memory).
* **Steps** (:mod:`ladon_tasks.steps`) live in a hash of their own beside the record
  (``steps:<id>``), so reading a record never reads step results; each step record is
  one fenced script (``step.lua``) that also sets the record's ``step`` and
  ``steps_done``. A record without steps holds neither field, and its scripts touch
  no steps key.
* **Cheap progress.** Progress writes are coalesced (:mod:`.progress`): one script
  call per ``flush_interval`` for all tasks, written before any state change of the task.
* **Waiting without polling**, and finished records at hand (:mod:`.notifier`): a
  finish message wakes the waiters of that task, and finished records are kept in
  memory until they expire.
* **Listing by index.** One sorted set per method, scored by ``submitted_at``, written
  by the create script; a listing merges the methods' sets (their names are in
  ``<prefix>methods``), so an unfiltered page costs what the page holds, and a state
  filter skips what it does not want. Entries of expired records are dropped when a
  listing meets them, and by a sweep of a window of each index every
  ``defaults.SWEEP_INTERVAL`` seconds, done by the finish-message thread of a store that makes tasks.

* **Starts survive a failover.** Behind Sentinel, a start and a cancel are answered
  once a replica has them (``WAIT``, bounded: :mod:`.replication`, which also says what
  else a failover can undo).

Every redis-py error becomes :class:`~ladon_tasks.stores.base.StoreError`.

Records are encoded and decoded by :mod:`.records`; the owner leases of in-process
executors are :mod:`.owners`.

Keys are built inside the scripts from the prefix, so one store is one Redis server
(with replicas, and Sentinel to promote one) - or one shard of a Redis Cluster: a prefix
with a hash tag keeps every key of the store in one slot (:mod:`.cluster`,
:mod:`.sharded`, which makes a deployment of many). Record times come from the clock of
the host that writes them; expiry bookkeeping uses the Redis server's clock.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any, ContextManager, Iterable, Mapping, Sequence

import redis
from redis.client import NEVER_DECODE
from redis.cluster import RedisCluster

from ladon_tasks import codec, defaults
from ladon_tasks.model import TaskRecord, TaskState
from ladon_tasks.redis import lua
from ladon_tasks.redis.connection import (
    DEFAULT_URL,
    REDIS_ERRORS,
    connect,
    describe_location,
    as_store_errors,
    url_from_environment,
)
from ladon_tasks.redis.cluster import is_cluster_url
from ladon_tasks.redis.fleet import RedisFleet
from ladon_tasks.redis.group_commit import GroupCommit
from ladon_tasks.redis.replies import as_text
from ladon_tasks.redis.keys import DEFAULT_PREFIX, Keys
from ladon_tasks.redis.notifier import FinishNotifier
from ladon_tasks.redis.owners import RedisOwnership
from ladon_tasks.redis.progress import PENDING_WIDTH, Pending, ProgressWriter
from ladon_tasks.redis.queue import RedisQueue
from ladon_tasks.redis.records import (
    JOB_OP_WIDTH,
    STEP_WIDTH,
    decode_listed,
    decode_record,
    decode_steps,
    dumps,
    encode_changes,
    encode_new,
    encode_steps,
    flat_size,
    job_ops,
)
from ladon_tasks.stats import TaskCounts
from ladon_tasks.steps import StepRecord, summary
from ladon_tasks.stores.base import CorruptRecord, StoreError, StoreFull, TaskStore
from ladon_tasks.stores.queues import JobChange, JobEntry
from ladon_tasks.redis.replication import ReplicaWait, replica_wait_for

if TYPE_CHECKING:
    from ladon_tasks.schedule_book import ScheduleBook

log = logging.getLogger(__name__)


#: Largest bounds a store takes: the create script keeps both figures in one integer,
#: tasks * 2^32 + bytes, which Lua reads exactly below 2^53 (``HELD`` in common.lua).
MAX_QUEUED_LIMIT = 1_000_000
MAX_QUEUED_BYTES_LIMIT = 2 ** 31


class KeyElsewhere(Exception):
    """Raised by ``create`` when the task's idempotency key names a task of another shard
    of a Redis Cluster deployment, which :mod:`.sharded` looks up there."""

    def __init__(self, task_id: str) -> None:
        super().__init__(task_id)
        self.task_id = task_id


class RedisStore(TaskStore):
    """Task records in a Redis server, shared by every process that connects to it.

    ``connection`` is a URL (``redis://``, ``rediss://``, ``unix://``, with user,
    password and database as redis-py reads them; ``redis+sentinel://``) or an existing
    :class:`redis.Redis`, which the store uses but does not disconnect. One connection
    pool per store. An existing ``RedisCluster`` makes the store one shard of a cluster
    deployment (:class:`~ladon_tasks.redis.sharded.ShardedRedisStore`): its prefix
    must then hold a hash tag.

    ``max_queued`` and ``max_queued_bytes`` bound the unfinished tasks and the bytes of
    their arguments: past either, ``create`` raises :class:`StoreFull` (``ServerBusy``
    on the wire), checked in the create script itself, while finishes, progress and
    steps of the tasks held go on.
    """

    def __init__(
        self,
        connection: str | redis.Redis | RedisCluster = DEFAULT_URL,
        *,
        prefix: str = DEFAULT_PREFIX,
        flush_interval: float = defaults.FLUSH_INTERVAL,
        wait_recheck: float = defaults.WAIT_RECHECK,
        socket_timeout: float | None = None,
        max_queued: int = defaults.REDIS_MAX_QUEUED_TASKS,
        max_queued_bytes: int = defaults.REDIS_MAX_QUEUED_BYTES,
    ) -> None:
        if flush_interval <= 0 or wait_recheck <= 0:
            raise ValueError("flush_interval and wait_recheck must be > 0")
        if not 1 <= max_queued <= MAX_QUEUED_LIMIT or not 1 <= max_queued_bytes <= MAX_QUEUED_BYTES_LIMIT:
            raise ValueError(f"max_queued is 1 to {MAX_QUEUED_LIMIT:,} tasks and max_queued_bytes 1 to "
                             f"{MAX_QUEUED_BYTES_LIMIT:,} bytes")
        self.max_queued, self.max_queued_bytes = int(max_queued), int(max_queued_bytes)
        if not prefix:
            raise ValueError("prefix must not be empty: keys of other programs would mix with ours")
        self._replica_wait: ReplicaWait | None = None
        if isinstance(connection, RedisCluster) and "{" not in prefix:
            raise ValueError("on Redis Cluster a store's prefix holds a hash tag ({...}), so its keys share one "
                             "slot: open a cluster deployment with ShardedRedisStore")
        if isinstance(connection, (redis.Redis, RedisCluster)):
            if socket_timeout is not None:
                raise ValueError("socket_timeout applies to a URL; configure the given redis.Redis instead")
            self._redis = connection
            self._owns_connection = False
        elif isinstance(connection, str):
            if is_cluster_url(connection):
                raise ValueError("a redis+cluster:// URL is many shards: open it with "
                                 "ladon_tasks.redis.open_store (or ShardedRedisStore)")
            self._redis = connect(connection, socket_timeout)
            self._owns_connection = True
            self._replica_wait = replica_wait_for(connection, self._redis)
        else:
            raise TypeError("connection must be a URL, a redis.Redis or a RedisCluster, "
                            f"not {type(connection).__name__}")
        self.prefix = prefix
        self.keys = Keys(prefix)
        self.flush_interval = flush_interval
        self.wait_recheck = wait_recheck
        self.channel = self.keys.finished_channel
        self.location = describe_location(self._redis)
        self._create = lua.register(self._redis, "create", prefix)
        self._creates: GroupCommit[list[str], Any] = GroupCommit(self._create_together, defaults.CREATE_BATCH)
        self._transition = lua.register(self._redis, "transition", prefix)
        self._report = lua.register(self._redis, "report", prefix)
        self._cancel = lua.register(self._redis, "cancel", prefix)
        self._list = lua.register(self._redis, "list", prefix)
        self._sweep = lua.register(self._redis, "sweep", prefix)
        self._purge = lua.register(self._redis, "purge", prefix)
        self._step = lua.register(self._redis, "step", prefix)
        self._slot_take = lua.register(self._redis, "slot_take", prefix)
        self._rate_take = lua.register(self._redis, "rate_take", prefix)
        self._fleet = RedisFleet(self._redis, prefix, self._errors)
        self._ownership = RedisOwnership(self._redis, prefix, self._errors, decode_record)
        self._progress = ProgressWriter(self._write_reports, flush_interval)
        self._notifier = FinishNotifier(self._redis, self.channel, self.location, self._read,
                                        wait_recheck, on_idle=self._sweep_when_due)
        self._next_sweep = time.monotonic() + defaults.SWEEP_INTERVAL
        self._sweep_cursors: dict[str, int] = {}
        self._methods_registered: dict[str, float] = {}

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None, **options: Any) -> "RedisStore":
        """A store configured the way deployments usually say it: ``LADON_TASKS_REDIS_URL``
        if set, else ``REDIS_HOST`` (localhost), ``REDIS_PORT`` (6379), ``REDIS_USERNAME``
        and ``REDIS_PASSWORD``, the names other Redis integrations use too."""
        url = url_from_environment(environ)
        return cls(url, **options)

    @property
    def client(self) -> redis.Redis | RedisCluster:
        """The connection (pool) of this store, for parts that keep their own keys under
        :attr:`prefix` in the same Redis, such as the worker queues. Blocking commands on
        it must time out within the socket timeout (5 s unless configured)."""
        return self._redis

    def ownership(self) -> RedisOwnership:
        return self._ownership

    def queue(self, name: str, *, lease_seconds: float = defaults.LEASE_SECONDS, levels: Iterable[int] = (),
              consumer: str | None = None) -> RedisQueue:
        """The job queue ``name`` in this store's Redis, over this store's connection;
        ``consumer``: the reading worker's id."""
        return RedisQueue(self._redis, self.prefix, name, lease_seconds=lease_seconds, levels=levels,
                          consumer=consumer)

    def fleet(self) -> RedisFleet:
        return self._fleet

    def schedule_book(self) -> "ScheduleBook":
        book = self.__dict__.get("_schedule_book")
        if book is None:
            from ladon_tasks.redis.schedules import RedisScheduleBook

            book = self.__dict__["_schedule_book"] = RedisScheduleBook(self._redis, self.prefix)
        return book

    def _errors(self, action: str) -> ContextManager[None]:
        # Redis away: the finished records this process keeps may be ones it lost
        return as_store_errors(self.location, action, self._notifier.forget_finished)

    # -- contract ------------------------------------------------------------------

    def create(self, record: TaskRecord, job: JobEntry | None = None,
               steps: Sequence[StepRecord] = ()) -> TaskRecord:
        """Write a new record; with ``job`` also add the job to its stream in the same
        script, so a task is never recorded without its job or queued without its record
        (and its ``steps``, when it starts with some)."""
        if not record.submitted_at:
            record.submitted_at = time.time()
        if steps:
            record.step, record.steps_done = summary(steps)
        fields = encode_new(record)
        now = time.monotonic()
        register = now >= self._methods_registered.get(record.method, 0.0)
        queue, priority, payload = (job.queue, str(int(job.priority)), job.payload) if job is not None else ("", "", "")
        self._notifier.follow(record.task_id)  # its finish message may come before the answer
        try:
            with self._errors(f"creating task {record.task_id}"):
                existing = self._creates.submit([
                    record.task_id, repr(float(record.submitted_at)), record.method,
                    "1" if register else "", queue, priority, payload, str(self.max_queued), str(self.max_queued_bytes),
                    *lua.counted(encode_steps(steps), STEP_WIDTH), *fields,
                ])
                kind = existing[0] if existing and len(existing) == 2 else b""  # bytes: _create_together
                if kind == b"error":  # refused in this create alone
                    raise redis.ResponseError(as_text(existing[1]))
        except StoreError:
            self._notifier.unfollow(record.task_id)
            raise
        if register:
            self._methods_registered[record.method] = now + defaults.METHOD_REGISTRATION
        if existing:
            self._notifier.unfollow(record.task_id)
            if kind == b"elsewhere":
                raise KeyElsewhere(as_text(existing[1]))
            if kind == b"full":
                raise StoreFull(as_text(existing[1]))
            return decode_record(existing)  # as bytes: one not UTF-8 is CorruptRecord
        return record

    def _create_together(self, creates: list[list[str]]) -> list[Any]:
        """One create script call for the creates of many callers (:mod:`.group_commit`):
        each answers as if it came alone. The answer is read as bytes and each caller
        decodes its own: an existing record that is not UTF-8 fails the create that met
        it, not the decoding of the whole answer and with it every create of the call."""
        args = [self.prefix]
        for values in creates:
            args += lua.counted(values)
        return list(self._replicated(self._create, args, undecoded=True))

    def get(self, task_id: str) -> TaskRecord | None:
        cached = self._notifier.cached(task_id)
        if cached is not None:
            return cached
        return self._read(task_id)

    def current(self, task_id: str) -> TaskRecord | None:
        return self._read(task_id)

    def _read(self, task_id: str) -> TaskRecord | None:
        with self._errors(f"reading task {task_id}"):
            try:
                flat = self._redis.hgetall(self.keys.task(task_id))
            except UnicodeDecodeError:
                raise CorruptRecord(task_id, "it holds bytes that are not UTF-8") from None
        return self._notifier.remember(decode_record(flat, task_id), flat_size(flat)) if flat else None

    def serve_worker(self) -> None:
        """A worker's outcomes are not kept at hand: nobody in its process reads them,
        and keeping them would subscribe it to every finish of the deployment - a
        message to receive and parse per task, whoever ran it."""
        self._notifier.keep_written = False

    def begin(self, task_id: str, attempt: int, started_at: float, where: str = "") -> bool:
        """A queue worker starts an attempt. Written only if the attempt is still running
        ``flush_interval`` later (or reports progress first): a short body's start goes
        to Redis with its outcome, in the same script call."""
        self._progress.begin(task_id, attempt, started_at, where)
        return True

    keeps_slots = True

    def take_slot(self, key: str, limit: int, task_id: str, attempt: int | None = None) -> bool:
        with self._errors(f"taking a place of {key} for task {task_id}"):
            return bool(self._slot_take(args=[
                self.prefix, key, str(limit), task_id, "" if attempt is None else str(attempt), repr(time.time()),
                repr(defaults.SLOT_CREATE_GRACE), str(int(defaults.SLOT_TTL)),
            ]))

    def take_rate(self, key: str, interval: float, tolerance: float) -> float:
        """By Redis's clock (``TIME`` in the script), not this host's: see ``rate_take.lua``."""
        with self._errors(f"taking a begin of {key} at its rate"):
            return float(self._rate_take(args=[
                self.prefix, key, repr(interval), repr(tolerance), repr(defaults.RATE_TTL_EXTRA),
            ]))

    def transition(
        self,
        task_id: str,
        target: TaskState,
        *,
        attempt: int | None = None,
        owner: str | None = None,
        job: JobChange | None = None,
        where: str | None = None,
        **changes: Any,
    ) -> TaskRecord | None:
        flat = self._move(task_id, target, attempt, owner, job, where, changes, record=True)
        return self._notifier.remember(decode_record(flat), flat_size(flat), written=True) if flat else None

    def transition_without_record(
        self,
        task_id: str,
        target: TaskState,
        *,
        attempt: int | None = None,
        owner: str | None = None,
        job: JobChange | None = None,
        where: str | None = None,
        **changes: Any,
    ) -> bool:
        """The script answers without the record, unless this process keeps the records
        it writes at hand (a web process: its waiters read them from there)."""
        if self._notifier.keep_written:
            return self.transition(task_id, target, attempt=attempt, owner=owner, job=job, where=where,
                                   **changes) is not None
        return bool(self._move(task_id, target, attempt, owner, job, where, changes, record=False))

    def _move(self, task_id: str, target: TaskState, attempt: int | None, owner: str | None,
              job: JobChange | None, where: str | None, changes: dict[str, Any], record: bool) -> Any:
        """One transition script call: the record's fields as it answers them (flat) with
        ``record``, else ``1``; falsy when the move was refused."""
        target = TaskState(target)
        encoded = encode_changes(changes)
        ops = job_ops(job, self.keys)
        with self._progress.pending_for(task_id) as pending, \
                self._errors(f"moving task {task_id} to {target.value}"):
            answer = self._transition(
                args=[
                    self.prefix, task_id, target.value, "" if attempt is None else str(attempt),
                    owner or "", repr(time.time()), where or "", "1" if record else "",
                    *lua.counted(pending, PENDING_WIDTH), *lua.counted(ops, JOB_OP_WIDTH), *encoded,
                ]
            )
        if job is not None and job.read is not None:  # the slot's next jobs came with the answer
            answer, handed = answer
            job.read.handed.extend(handed or ())
        return answer

    def report(
        self,
        task_id: str,
        progress: float | None = None,
        message: str | None = None,
        *,
        attempt: int | None = None,
    ) -> bool:
        # convert here, so a bad value fails its caller and never the background writer
        progress = None if progress is None else float(progress)
        message = None if message is None else str(message)
        return self._progress.report(task_id, progress, message, attempt)

    def load_steps(self, task_id: str) -> dict[str, StepRecord]:
        with self._errors(f"reading the steps of task {task_id}"):
            # as bytes: one step that is not UTF-8 is left out, not the whole answer
            flat = self._redis.execute_command("HGETALL", self.keys.steps(task_id), **{NEVER_DECODE: True})
        return decode_steps(flat)

    def record_step(self, task_id: str, attempt: int, step: StepRecord) -> bool:
        with self._progress.pending_for(task_id, fresh_answers=False) as pending, \
                self._errors(f"recording step {step.name!r} of task {task_id}"):
            recorded = self._step(args=[
                self.prefix, task_id, str(attempt), repr(time.time()), *lua.counted(pending, PENDING_WIDTH),
                step.name, dumps(step.name), codec.dumps(step.to_json()), "1" if step.state == "succeeded" else "",
            ])
        return bool(recorded)

    def request_cancel(self, task_id: str) -> TaskRecord | None:
        with self._progress.pending_for(task_id) as pending, self._errors(f"cancelling task {task_id}"):
            flat = self._replicated(self._cancel, [self.prefix, task_id, repr(time.time()),
                                                   *lua.counted(pending, PENDING_WIDTH)])
        return self._notifier.remember(decode_record(flat), flat_size(flat)) if flat else None

    def wait(self, task_id: str, timeout: float) -> TaskRecord | None:
        return self._notifier.wait(task_id, timeout)

    def list_tasks(
        self,
        *,
        states: Iterable[TaskState] | None = None,
        method: str | None = None,
        limit: int = 100,
        offset: int = 0,
        tag: str | None = None,
        id_prefix: str | None = None,
        principal: str | None = None,
    ) -> list[TaskRecord]:
        if limit <= 0:
            return []
        # One index per method, scored by submission; "all methods" merges them.
        wanted = "" if states is None else ",".join(sorted({TaskState(s).value for s in states}))
        if states is not None and not wanted:
            return []
        with self._errors("listing tasks"):
            methods = [method] if method is not None else self._methods()
            if not methods:
                return []
            sources = [self.keys.method_index(m) for m in methods]
            whose = "" if principal is None else "=" + principal
            args = [self.prefix, str(max(0, offset)), str(limit), wanted, id_prefix or "", tag or "", whose, *sources]
            try:
                page = self._list(args=args)
            except UnicodeDecodeError:  # a record holds bytes that are not UTF-8: read the page as bytes
                page = lua.call_undecoded(self._redis, self._list, args)
        return [decode_listed(flat) for flat in page]

    def counts(self) -> TaskCounts:
        """One read of the ``stats`` hash, whatever the number of tasks."""
        return TaskCounts.from_fields(self.count_fields())

    def count_fields(self) -> dict[str, str]:
        """The ``stats`` hash as stored (:mod:`ladon_tasks.stats`): what shards add up."""
        with self._errors("reading task counts"):
            fields = self._redis.hgetall(self.keys.stats)
        return {as_text(name): as_text(value) for name, value in fields.items()}

    def purge(self, states: Iterable[TaskState], method: str | None = None, dry_run: bool = False) -> int:
        """Goes through the method indexes a window at a time (``defaults.PURGE_WINDOW`` entries
        per script call), so Redis is never busy long; records that finish meanwhile may
        or may not be caught."""
        wanted = ",".join(sorted({TaskState(s).value for s in states if TaskState(s).finished}))
        if not wanted:
            return 0
        found = 0
        with self._errors("purging tasks"):
            for name in [method] if method is not None else self._methods():
                index, start = self.keys.method_index(name), 0
                while True:
                    start, seen, *purged = self._purge(args=[self.prefix, index, wanted, start, defaults.PURGE_WINDOW,
                                                             "1" if dry_run else ""])
                    found += int(seen)
                    self._notifier.forget([as_text(task_id) for task_id in purged])  # here at once
                    if not int(start):
                        break
        return found

    def ping(self) -> None:
        with self._errors("ping"):
            self._redis.ping()

    def events(self, last_id: str = "$", block: float = 1.0, count: int = 100) -> list[tuple[str, dict[str, str]]]:
        """Lifecycle events after ``last_id`` (``"$"``: only new ones; ``"0"``: all kept),
        waiting up to ``block`` seconds for the first. The stream is capped at
        ``defaults.EVENTS_MAXLEN`` entries."""
        with self._errors("read events"):
            answer: Any = self._redis.xread({self.keys.events: last_id}, count=count, block=int(block * 1000))
        return [(event_id, fields) for _, entries in answer or [] for event_id, fields in entries]

    def close(self) -> None:
        """Write pending progress, stop the threads, and disconnect a pool we own."""
        self._progress.close()
        self._notifier.close()
        if self._owns_connection and isinstance(self._redis, redis.Redis):  # a cluster's is its deployment's
            self._redis.connection_pool.disconnect()

    # -- helpers -------------------------------------------------------------------------

    def _replicated(self, script: Any, args: list[str], undecoded: bool = False) -> Any:
        """A write a client is told about: on a replica before it is answered, where
        there are replicas to wait for (Sentinel). ``undecoded``: the answer's strings
        as bytes (:func:`.lua.call_undecoded`)."""
        if self._replica_wait is None:
            return lua.call_undecoded(self._redis, script, args) if undecoded else script(args=args)
        return self._replica_wait.run(script, args, undecoded)

    def _write_reports(self, items: list[tuple[str, int | None, Pending]]) -> list[int]:
        args: list[str] = [self.prefix]
        for task_id, attempt, values in items:
            args += [task_id, "" if attempt is None else str(attempt), *values.flat()]
        with self._errors("writing task progress"):
            return self._report(args=args)

    def _methods(self) -> list[str]:
        """Every method that ever had a task here (each has its index)."""
        return sorted(as_text(name) for name in self._redis.smembers(self.keys.methods))

    def _sweep_when_due(self) -> None:
        """Drop index entries of expired records, a window of each method index at a
        time, every ``defaults.SWEEP_INTERVAL`` (listing does the same for what it meets). Runs in
        the finish-message thread, not in the request that made a task."""
        if time.monotonic() < self._next_sweep:
            return
        self._next_sweep = time.monotonic() + defaults.SWEEP_INTERVAL
        try:
            for method in self._methods():
                index = self.keys.method_index(method)
                start = self._sweep_cursors.get(index, 0)
                self._sweep_cursors[index] = int(self._sweep(args=[self.prefix, index, start, defaults.SWEEP_COUNT]))
        except REDIS_ERRORS as exc:
            log.debug("sweeping task indexes at %s: %s", self.location, exc)
