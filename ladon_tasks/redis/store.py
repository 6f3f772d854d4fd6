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
  for ``executor='queue'`` - its job (``create(..., enqueue=...)``); finishing one
  writes the outcome, sets the TTL, appends the event and tells waiters. Four commands
  run inside the first, five inside the second.
* **Starts written late.** :meth:`RedisStore.begin` (queue workers) records a start
  only once the attempt has run ``flush_interval`` or reports progress; a shorter body
  goes from queued to its outcome in one write, with attempts and start time.
* **Bounded lifetime.** A finished record gets a Redis TTL of ``result_ttl``, and so does
  its idempotency key. Queued and running records do not expire (as in memory).
* **Cheap progress.** :meth:`RedisStore.report` keeps the latest progress and message
  per task in memory; one background thread writes them at most every
  ``flush_interval`` seconds, all tasks in one script call. The stop/continue answer
  comes from the last write (at most ``4 * flush_interval`` old; older answers are
  fetched afresh). Pending values are written before any transition of the task and on
  :meth:`close`, and the write only lands on a *running* record of the same attempt, so
  progress can never overwrite a finished state or result.
* **Waiting without polling.** Finishing a task publishes its id, with the finished
  record when it is under ``PUBLISH_MAX`` bytes, on ``<prefix>finished``; one subscriber
  thread per store wakes local waiters. A task made by this store while subscribed
  needs no read at all; others are read once after subscribing, and every waiter
  re-checks every ``wait_recheck`` seconds in case a message was lost while Redis was
  unreachable.
* **Finished records cached.** They never change again, so each store keeps up to
  ``FINISHED_CACHE`` small ones (``FINISHED_CACHE_BYTES`` in all) until their
  ``result_ttl`` runs out: progress, result and wait calls on a finished task cost no
  Redis command.
* **Listing by index.** One sorted set per method, scored by ``submitted_at``, written
  by the create script; a listing merges the methods' sets (their names are in
  ``<prefix>methods``), so an unfiltered page costs what the page holds, and a state
  filter skips what it does not want. Entries of expired records are dropped when a
  listing meets them, and by a sweep of a window of each index every
  ``SWEEP_INTERVAL`` seconds, done by the finish-message thread of a store that makes tasks.

Every redis-py error becomes :class:`~ladon_tasks.stores.base.StoreError`.

Limits: keys are built inside the scripts, so this runs on one Redis server (with
replicas), not on Redis Cluster. Record times come from the clock of the host that
writes them; expiry bookkeeping uses the Redis server's clock.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Iterable, Iterator, Mapping

import redis
from redis.client import NEVER_DECODE

from ladon_tasks.model import TaskRecord, TaskState, UnreadableRecord
from ladon_tasks.redis import scripts
from ladon_tasks.redis.connection import DEFAULT_URL, as_text, connect, describe_location, url_from_environment
from ladon_tasks.redis.keys import DEFAULT_PREFIX, Keys
from ladon_tasks.redis.owners import RedisOwnership
from ladon_tasks.redis.scripts import PUBLISH_MAX
from ladon_tasks.stores.base import CorruptRecord, JobChange, StoreError, TaskStore

log = logging.getLogger(__name__)

#: Seconds between progress writes of one store: a body may call ``update_progress``
#: in a tight loop; clients poll progress far less often than 20 times a second.
FLUSH_INTERVAL = 0.05

#: Seconds a waiter trusts pub/sub alone before reading the record again; covers
#: messages lost while the subscriber was reconnecting.
WAIT_RECHECK = 1.0

#: Seconds between two sweeps of the method indexes by one store (entries of expired
#: records are dropped), and index entries looked at per sweep: a fixed cost over time,
#: nothing per task.
SWEEP_INTERVAL = 10.0
SWEEP_COUNT = 200

#: Seconds a process trusts that a method it registered is still in the methods set.
METHOD_REGISTRATION = 60.0

#: Finished records kept in memory per store (they never change again, only expire):
#: at most this many, of at most ``PUBLISH_MAX`` bytes of JSON each, this many in all.
FINISHED_CACHE = 10_000
FINISHED_CACHE_BYTES = 16 * 1024 * 1024

#: Records handed to one progress-flush script call; bounds the time Redis is busy.
FLUSH_BATCH = 500

_FIELDS = frozenset(TaskRecord.__dataclass_fields__)

#: Fields a new record leaves out of its hash while they hold their default (every
#: reader falls back to the default, and no script reads them before they are set):
#: about a third less memory per task, most of it per finished task kept for result_ttl.
_OMITTED_WHEN_DEFAULT = frozenset({
    "message", "error_type", "error_message", "error_traceback", "idempotency_key", "tags", "owner",
    "cancel_requested", "result", "progress", "started_at", "finished_at",
})
_DEFAULTS = TaskRecord(task_id="", service="", method="").to_json()


# -- helpers ---------------------------------------------------------------------------


#: One encoder for every field: ``json.dumps`` with options builds a new encoder per call.
_dumps = json.JSONEncoder(separators=(",", ":")).encode


def _flat_pairs(flat: Any) -> list[tuple[Any, Any]]:
    """(name, value) pairs of HGETALL's answer (a flat list from Lua, or a dict under RESP3)."""
    return list(flat.items()) if isinstance(flat, dict) else [(flat[i], flat[i + 1]) for i in range(0, len(flat), 2)]


def _decode_record(flat: Any, task_id: str = "") -> TaskRecord:
    """A record from HGETALL's answer; :class:`CorruptRecord` (naming ``task_id``, or the
    id the record holds) when it is not UTF-8, not JSON, or not a task record."""
    try:
        pairs = [(as_text(k), as_text(v)) for k, v in _flat_pairs(flat)]
    except UnicodeDecodeError:
        raise CorruptRecord(task_id or _salvaged(flat).task_id, "it holds bytes that are not UTF-8") from None
    # Every value is a JSON text and every name a plain field name: one document, one
    # json.loads, instead of one per field (it sits on every progress call).
    document = "{" + ",".join(f'"{name}":{raw}' for name, raw in pairs if name in _FIELDS) + "}"
    try:
        return TaskRecord.from_json(json.loads(document))
    except (ValueError, TypeError) as exc:
        raise CorruptRecord(task_id or _salvaged(flat).task_id, f"not a task record: {exc}") from exc


def _salvaged(flat: Any, problem: str = "") -> UnreadableRecord:
    """What can be read of a damaged record, field by field."""
    fields = {}
    for name, raw in _flat_pairs(flat):
        try:
            fields[as_text(name)] = json.loads(raw)
        except ValueError:  # UnicodeDecodeError and JSONDecodeError alike
            continue
    return UnreadableRecord.salvage(fields, problem)


def _decode_listed(flat: Any) -> TaskRecord:
    """A listed record, or a stand-in marked unreadable: one damaged record must not
    hide the rest of a page."""
    try:
        return _decode_record(flat)
    except CorruptRecord as exc:
        return _salvaged(flat, exc.problem)


def _flat_size(flat: Any) -> int:
    """About how many bytes of JSON a record read as HGETALL's answer holds."""
    values = flat.values() if isinstance(flat, dict) else flat
    return sum(len(value) for value in values)


def _job_ops(job: JobChange | None) -> list[str]:
    """A :class:`JobChange` as the transition script's operations, four values each."""
    if job is None:
        return []
    ops: list[str] = []
    if job.release is not None:
        ops += ["ack", job.release[0], job.release[1], ""]
    if job.enqueue is not None:
        ops += ["enqueue", job.enqueue[0], job.enqueue[1], ""]
    if job.delay is not None:
        ops += ["delay", job.delay[0], job.delay[1], repr(float(job.delay[2]))]
    return ops


def _encode_changes(changes: Mapping[str, Any]) -> list[str]:
    unknown = sorted(set(changes) - _FIELDS)
    if unknown:
        raise ValueError(f"not fields of a task record: {', '.join(unknown)}")
    flat: list[str] = []
    for name, value in changes.items():
        flat += [name, _dumps(value.value if isinstance(value, TaskState) else value)]
    return flat


@dataclass
class _Pending:
    """What a body's attempt told that is not in Redis yet (``None``: unchanged): progress,
    message, and - from :meth:`RedisStore.begin` - when the attempt started, which is
    worth writing only once the attempt has run for ``due`` (a monotonic time)."""

    progress: float | None = None
    message: str | None = None
    started_at: float | None = None
    due: float = 0.0

    def merge(self, progress: float | None, message: str | None) -> None:
        if progress is not None:
            self.progress = progress
            self.due = 0.0
        if message is not None:
            self.message = message
            self.due = 0.0

    def flat(self) -> list[str]:
        return [
            "" if self.progress is None else _dumps(float(self.progress)),
            "" if self.message is None else _dumps(self.message),
            "" if self.started_at is None else repr(float(self.started_at)),
        ]


@dataclass
class _Answer:
    """The last continue/stop answer Redis gave for one task attempt, and when."""

    go: bool
    at: float


_ReportKey = tuple[str, "int | None"]  # (task_id, attempt)


# -- the store -------------------------------------------------------------------------


class RedisStore(TaskStore):
    """Task records in a Redis server, shared by every process that connects to it.

    ``connection`` is a URL (``redis://``, ``rediss://``, ``unix://``, with user,
    password and database as redis-py reads them) or an existing :class:`redis.Redis`,
    which the store uses but does not disconnect. One connection pool per store.
    """

    def __init__(
        self,
        connection: str | redis.Redis = DEFAULT_URL,
        *,
        prefix: str = DEFAULT_PREFIX,
        flush_interval: float = FLUSH_INTERVAL,
        wait_recheck: float = WAIT_RECHECK,
        socket_timeout: float | None = None,
    ) -> None:
        if flush_interval <= 0 or wait_recheck <= 0:
            raise ValueError("flush_interval and wait_recheck must be > 0")
        if not prefix:
            raise ValueError("prefix must not be empty: keys of other programs would mix with ours")
        if isinstance(connection, redis.Redis):
            if socket_timeout is not None:
                raise ValueError("socket_timeout applies to a URL; configure the given redis.Redis instead")
            self._redis = connection
            self._owns_connection = False
        elif isinstance(connection, str):
            self._redis = connect(connection, socket_timeout)
            self._owns_connection = True
        else:
            raise TypeError(f"connection must be a URL or a redis.Redis, not {type(connection).__name__}")
        self.prefix = prefix
        self.keys = Keys(prefix)
        self.flush_interval = flush_interval
        self.wait_recheck = wait_recheck
        self.channel = self.keys.finished_channel
        self.location = describe_location(self._redis)
        self._create = scripts.register(self._redis, "create")
        self._transition = scripts.register(self._redis, "transition")
        self._report = scripts.register(self._redis, "report")
        self._cancel = scripts.register(self._redis, "cancel")
        self._list = scripts.register(self._redis, "list")
        self._sweep = scripts.register(self._redis, "sweep")
        self._ownership = RedisOwnership(self._redis, prefix, self._errors, _decode_record)
        self._next_sweep = time.monotonic() + SWEEP_INTERVAL
        self._sweep_cursors: dict[str, int] = {}
        self._methods_registered: dict[str, float] = {}
        self._finished: OrderedDict[str, tuple[float, TaskRecord, int]] = OrderedDict()
        self._finished_bytes = 0
        self._finished_lock = threading.Lock()
        # tasks made here while finish messages were being received: no need to read
        # the record before waiting for its message
        self._followed: OrderedDict[str, None] = OrderedDict()
        self._stopping = threading.Event()
        # reports: one condition guards pending values, answers and writes in flight
        self._reports = threading.Condition()
        self._pending: dict[str, dict[int | None, _Pending]] = {}
        self._answers: dict[_ReportKey, _Answer] = {}
        self._inflight: set[str] = set()
        self._flusher: threading.Thread | None = None
        self._flusher_idle = False
        self._last_flush = 0.0
        # waits: finish notifications per watched task id; each waiting thread has its
        # own event, so a finish wakes the threads waiting for that task and no others
        self._finishes = threading.Lock()
        self._watchers: dict[str, list[threading.Event]] = {}
        self._notified: dict[str, int] = {}
        self._notified_records: dict[str, TaskRecord] = {}
        self._subscribed = threading.Event()
        self._subscriber: threading.Thread | None = None

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None, **options: Any) -> "RedisStore":
        """A store configured the way deployments usually say it: ``LADON_TASKS_REDIS_URL``
        if set, else ``REDIS_HOST`` (localhost), ``REDIS_PORT`` (6379), ``REDIS_USERNAME``
        and ``REDIS_PASSWORD``, the names other Redis integrations use too."""
        url = url_from_environment(environ)
        return cls(url, **options)

    @property
    def client(self) -> redis.Redis:
        """The connection (pool) of this store, for parts that keep their own keys under
        :attr:`prefix` in the same Redis, such as the worker queues. Blocking commands on
        it must time out within the socket timeout (5 s unless configured)."""
        return self._redis

    def ownership(self) -> RedisOwnership:
        return self._ownership

    @contextlib.contextmanager
    def _errors(self, action: str) -> Iterator[None]:
        try:
            yield
        except redis.RedisError as exc:
            raise StoreError(f"Redis at {self.location}: {action} failed: {type(exc).__name__}: {exc}") from exc

    @contextlib.contextmanager
    def _pending_for(self, task_id: str) -> Iterator[list[str]]:
        """Progress kept back for ``task_id`` rides along in the same script call, so it
        lands before the state changes; if the call fails it is kept for the next try."""
        pending = self._take_pending(task_id)
        try:
            yield pending
        except StoreError:
            self._restore_pending(task_id, pending)
            raise
        finally:
            self._release(task_id)

    def _key(self, task_id: str) -> str:
        return self.keys.task(task_id)

    # -- contract ------------------------------------------------------------------

    def create(self, record: TaskRecord, *, enqueue: tuple[str, str] | None = None) -> TaskRecord:
        """Write a new record; with ``enqueue`` (a job stream and the job's JSON) also add
        the job to that stream in the same script, so a task is never recorded without
        its job or queued without its record."""
        if not record.submitted_at:
            record.submitted_at = time.time()
        fields: list[str] = []
        for name, value in record.to_json().items():
            if name in _OMITTED_WHEN_DEFAULT and value == _DEFAULTS[name]:
                continue  # read back as the default; the scripts never need it
            fields += [name, _dumps(value)]
        now = time.monotonic()
        register = now >= self._methods_registered.get(record.method, 0.0)
        stream, job = enqueue or ("", "")
        self._ensure_subscriber()
        with self._finishes:
            # before the script: its finish message may come before the script's answer
            if self._subscribed.is_set():
                self._followed[record.task_id] = None
                while len(self._followed) > FINISHED_CACHE:
                    self._followed.popitem(last=False)
        try:
            with self._errors(f"creating task {record.task_id}"):
                existing = self._create(args=[
                    self.prefix, record.task_id, repr(float(record.submitted_at)), record.method,
                    "1" if register else "", stream, job, *fields,
                ])
        except StoreError:
            with self._finishes:
                self._followed.pop(record.task_id, None)
            raise
        if register:
            self._methods_registered[record.method] = now + METHOD_REGISTRATION
        if existing:
            with self._finishes:
                self._followed.pop(record.task_id, None)
            return _decode_record(existing)
        return record

    def get(self, task_id: str) -> TaskRecord | None:
        cached = self._cached(task_id)
        if cached is not None:
            return cached
        with self._errors(f"reading task {task_id}"):
            try:
                flat = self._redis.hgetall(self._key(task_id))
            except UnicodeDecodeError:
                raise CorruptRecord(task_id, "it holds bytes that are not UTF-8") from None
        return self._remember(_decode_record(flat, task_id), _flat_size(flat)) if flat else None

    def _cached(self, task_id: str) -> TaskRecord | None:
        """A finished record read before: it never changes again, only expires."""
        with self._finished_lock:
            entry = self._finished.get(task_id)
            if entry is None:
                return None
            if time.time() >= entry[0]:
                del self._finished[task_id]
                self._finished_bytes -= entry[2]
                return None
            return entry[1].copy()

    def _remember(self, record: TaskRecord, size: int) -> TaskRecord:
        """Keep a small finished record until it expires; ``size``: its JSON's length."""
        if record.finished and record.result_ttl > 0 and size <= PUBLISH_MAX:
            expires = min(record.finished_at or time.time(), time.time()) + record.result_ttl
            with self._finished_lock:
                previous = self._finished.pop(record.task_id, None)
                if previous is not None:
                    self._finished_bytes -= previous[2]
                self._finished[record.task_id] = (expires, record.copy(), size)
                self._finished_bytes += size
                while len(self._finished) > FINISHED_CACHE or self._finished_bytes > FINISHED_CACHE_BYTES:
                    self._finished_bytes -= self._finished.popitem(last=False)[1][2]
        return record

    def begin(self, task_id: str, attempt: int, started_at: float) -> bool:
        """A queue worker starts an attempt. Written only if the attempt is still running
        ``flush_interval`` later (or reports progress first): a short body's start goes
        to Redis with its outcome, in the same script call."""
        with self._reports:
            self._pending.setdefault(task_id, {})[attempt] = _Pending(
                started_at=started_at, due=time.monotonic() + self.flush_interval
            )
            if self._flusher_idle:
                self._reports.notify_all()
        self._ensure_flusher()
        return True

    def _methods(self) -> list[str]:
        """Every method that ever had a task here (each has its index)."""
        return sorted(as_text(name) for name in self._redis.smembers(self.keys.methods))

    def _sweep_indexes(self) -> None:
        """Drop index entries of expired records, a window of each method index at a
        time; listing does the same for what it meets."""
        self._next_sweep = time.monotonic() + SWEEP_INTERVAL
        try:
            for method in self._methods():
                index = self.keys.method_index(method)
                start = self._sweep_cursors.get(index, 0)
                self._sweep_cursors[index] = int(self._sweep(args=[self.prefix, index, start, SWEEP_COUNT]))
        except redis.RedisError as exc:
            log.debug("sweeping task indexes at %s: %s", self.location, exc)

    def transition(
        self,
        task_id: str,
        target: TaskState,
        *,
        attempt: int | None = None,
        owner: str | None = None,
        job: JobChange | None = None,
        **changes: Any,
    ) -> TaskRecord | None:
        target = TaskState(target)
        encoded = _encode_changes(changes)
        ops = _job_ops(job)
        with self._pending_for(task_id) as pending, self._errors(f"moving task {task_id} to {target.value}"):
            flat = self._transition(
                args=[
                    self.prefix, task_id, target.value, "" if attempt is None else str(attempt),
                    owner or "", repr(time.time()),
                    str(len(pending) // 4), *pending, str(len(ops) // 4), *ops, *encoded,
                ]
            )
        return self._remember(_decode_record(flat), _flat_size(flat)) if flat else None

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
        key = (task_id, attempt)
        now = time.monotonic()
        with self._reports:
            answer = self._answers.get(key)
            if answer is not None and now - answer.at <= 4 * self.flush_interval:
                self._pending.setdefault(task_id, {}).setdefault(attempt, _Pending()).merge(progress, message)
                if self._flusher_idle:
                    self._reports.notify_all()
                return answer.go
            # no fresh answer: write now and ask, in the caller's thread
            while task_id in self._inflight:
                self._reports.wait()
            by_attempt = self._pending.get(task_id, {})
            values = by_attempt.pop(attempt, None) or _Pending()
            if not by_attempt:
                self._pending.pop(task_id, None)
            values.merge(progress, message)
            self._inflight.add(task_id)
        try:
            go = bool(self._run_reports([(task_id, attempt, values)])[0])
        except StoreError as exc:
            # keep the body going; the flusher retries the write and refreshes the answer
            log.warning("progress of task %s kept for later: %s", task_id, exc)
            with self._reports:
                self._pending.setdefault(task_id, {}).setdefault(attempt, values)
                self._answers[key] = _Answer(True, now)
            go = True
        else:
            with self._reports:
                self._answers[key] = _Answer(go, now)
        finally:
            self._release(task_id)
        self._ensure_flusher()
        return go

    def request_cancel(self, task_id: str) -> TaskRecord | None:
        with self._pending_for(task_id) as pending, self._errors(f"cancelling task {task_id}"):
            flat = self._cancel(args=[self.prefix, task_id, repr(time.time()), str(len(pending) // 4), *pending])
        return self._remember(_decode_record(flat), _flat_size(flat)) if flat else None

    def wait(self, task_id: str, timeout: float) -> TaskRecord | None:
        deadline = time.monotonic() + max(0.0, timeout)
        cached = self._cached(task_id)
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
                    record = self.get(task_id)
                    next_read = now + self.wait_recheck
                    if record is None:
                        return None
                seen = count
                remaining = deadline - now
                if record is not None and (record.finished or remaining <= 0):
                    return record.copy()
                if remaining <= 0:
                    return self.get(task_id)
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

    def list(
        self,
        *,
        states: Iterable[TaskState] | None = None,
        method: str | None = None,
        limit: int = 100,
        offset: int = 0,
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
            args = [self.prefix, str(max(0, offset)), str(limit), wanted, *sources]
            try:
                page = self._list(args=args)
            except UnicodeDecodeError:  # a record holds bytes that are not UTF-8: read the page as bytes
                page = self._redis.execute_command("EVALSHA", self._list.sha, 0, *args, **{NEVER_DECODE: True})
        return [_decode_listed(flat) for flat in page]

    def events(self, last_id: str = "$", block: float = 1.0, count: int = 100) -> list[tuple[str, dict[str, str]]]:
        """Lifecycle events after ``last_id`` (``"$"``: only new ones; ``"0"``: all kept),
        waiting up to ``block`` seconds for the first. The stream is capped at
        ``defaults.EVENTS_MAXLEN`` entries."""
        with self._errors("read events"):
            answer = self._redis.xread({self.keys.events: last_id}, count=count, block=int(block * 1000))
        return [(event_id, fields) for _, entries in answer or [] for event_id, fields in entries]

    def close(self) -> None:
        """Write pending progress, stop the threads, and disconnect a pool we own."""
        self._stopping.set()
        with self._reports:
            self._reports.notify_all()
        if self._flusher is not None:
            self._flusher.join(timeout=10)
        self._flush_pending()  # whatever arrived after the flusher left
        if self._subscriber is not None and self._subscriber.is_alive():
            with contextlib.suppress(redis.RedisError):
                self._redis.publish(self.channel, "")  # wake the subscriber so it sees the stop
            self._subscriber.join(timeout=2 * WAIT_RECHECK)
        with self._finishes:
            for watchers in self._watchers.values():
                for told in watchers:
                    told.set()
        if self._owns_connection:
            self._redis.connection_pool.disconnect()

    # -- progress writes -----------------------------------------------------------

    def _run_reports(self, items: list[tuple[str, int | None, _Pending]]) -> list[int]:
        args: list[str] = [self.prefix]
        for task_id, attempt, values in items:
            args += [task_id, "" if attempt is None else str(attempt), *values.flat()]
        with self._errors("writing task progress"):
            return self._report(args=args)

    def _take_pending(self, task_id: str) -> list[str]:
        """Claim the task (no other write of its progress runs until :meth:`_release`)
        and hand over its unsent values, so a transition writes them first."""
        with self._reports:
            while task_id in self._inflight:
                self._reports.wait()
            self._inflight.add(task_id)
            by_attempt = self._pending.pop(task_id, {})
            for key in [k for k in self._answers if k[0] == task_id]:
                del self._answers[key]  # the state changes: ask Redis afresh next time
        flat: list[str] = []
        for attempt, values in by_attempt.items():
            flat += ["" if attempt is None else str(attempt), *values.flat()]
        return flat

    def _restore_pending(self, task_id: str, flat: list[str]) -> None:
        """Put back values a failed write carried, unless newer ones arrived meanwhile."""
        with self._reports:
            by_attempt = self._pending.setdefault(task_id, {})
            for i in range(0, len(flat), 4):
                attempt = int(flat[i]) if flat[i] else None
                by_attempt.setdefault(
                    attempt,
                    _Pending(
                        json.loads(flat[i + 1]) if flat[i + 1] else None,
                        json.loads(flat[i + 2]) if flat[i + 2] else None,
                        float(flat[i + 3]) if flat[i + 3] else None,
                    ),
                )

    def _release(self, task_id: str) -> None:
        with self._reports:
            self._inflight.discard(task_id)
            self._reports.notify_all()

    def _ensure_flusher(self) -> None:
        if self._flusher is not None or self._stopping.is_set():
            return
        with self._reports:
            if self._flusher is None:
                self._flusher = threading.Thread(target=self._flush_loop, name="ladon-tasks-redis-flush", daemon=True)
                self._flusher.start()

    def _flush_loop(self) -> None:
        while True:
            with self._reports:
                while not self._pending and not self._stopping.is_set():
                    self._flusher_idle = True
                    self._reports.wait()
                self._flusher_idle = False
                if self._stopping.is_set() and not self._pending:
                    return
            delay = self._last_flush + self.flush_interval - time.monotonic()
            if delay > 0:
                self._stopping.wait(delay)  # pacing; a close() flushes at once
            if not self._flush_pending():
                self._stopping.wait(self.flush_interval * 4)  # Redis is away: back off

    def _flush_pending(self) -> bool:
        """Write every task's latest values in one script call; refresh their answers."""
        with self._reports:
            self._last_flush = time.monotonic()
            items: list[tuple[str, int | None, _Pending]] = []
            now = self._last_flush
            for task_id in [t for t in self._pending if t not in self._inflight][:FLUSH_BATCH]:
                by_attempt = self._pending[task_id]
                if all(values.due > now for values in by_attempt.values()):
                    continue  # a start too young to be worth a write: its end may carry it
                del self._pending[task_id]
                items += [(task_id, attempt, values) for attempt, values in by_attempt.items()]
                if by_attempt:
                    self._inflight.add(task_id)
            stale = [k for k, a in self._answers.items() if self._last_flush - a.at > 4 * self.flush_interval]
            for key in stale:
                del self._answers[key]
        if not items:
            return True
        try:
            answers = self._run_reports(items)
        except Exception as exc:  # the flusher must outlive any failure, and free the tasks
            log.warning("progress of %d task(s) kept for later: %s", len(items), exc)
            with self._reports:
                for task_id, attempt, values in items:
                    self._pending.setdefault(task_id, {}).setdefault(attempt, values)
                    self._inflight.discard(task_id)
                self._reports.notify_all()
            return False
        now = time.monotonic()
        with self._reports:
            for (task_id, attempt, _), go in zip(items, answers):
                self._answers[(task_id, attempt)] = _Answer(bool(go), now)
                self._inflight.discard(task_id)
            self._reports.notify_all()
        return True

    # -- finish notifications -------------------------------------------------------

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
                pubsub.subscribe(self.channel)
                while not self._stopping.is_set():
                    message = pubsub.get_message(timeout=WAIT_RECHECK)
                    if time.monotonic() >= self._next_sweep:
                        self._sweep_indexes()  # here, not in the request that made a task
                    if message is None:
                        continue
                    if message["type"] == "subscribe":
                        backoff = 0.05
                        self._subscribed.set()
                        self._wake(None)  # (re)subscribed: waiters read their records again
                    elif message["type"] == "message":
                        self._wake(*as_text(message["data"]).partition("\n")[::2])
            except (redis.RedisError, OSError, ValueError) as exc:
                log.debug("finish notifications from Redis at %s interrupted: %s", self.location, exc)
            finally:
                self._subscribed.clear()
                with self._finishes:
                    self._followed.clear()
                with contextlib.suppress(Exception):
                    pubsub.close()
            self._stopping.wait(backoff)
            backoff = min(backoff * 2, 2.0)

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
        record = None
        if document and task_id is not None:
            try:
                record = self._remember(TaskRecord.from_json(json.loads(document)), len(document))
            except (ValueError, TypeError):
                record = None  # read from Redis instead
        with self._finishes:
            for watched in targets:
                self._notified[watched] = self._notified.get(watched, 0) + 1
                if record is not None:
                    self._notified_records[watched] = record
                for told in self._watchers[watched]:
                    told.set()
