"""The Redis job queue shared by web servers (producers) and workers on any host.

Jobs travel in Redis streams read through one consumer group, ``workers``: the group
is what makes several workers share the work, and its pending-entries list is the lease.
Keys, under the store's prefix and the queue's name ``q``:

* ``queue:q:NNN``     one stream per priority level ``NNN`` (000-255); a job is an entry
                      whose field ``job`` holds the job's JSON, its attempt number
                      included. Workers read the levels highest first.
* ``queue:q:delayed`` sorted set of job JSON waiting for a retry or a delayed start, by due time.

Reading an entry (``XREADGROUP``) hands it to one worker and starts its lease in the same
command: a worker that dies after reading leaves an entry whose idle time grows, and
:meth:`RedisQueue.reap` takes it over (``XCLAIM`` with a minimum idle time, so one reaper
wins) and queues the job again as the next attempt. A running worker keeps its leases
fresh by claiming its own entries again (``XCLAIM ... JUSTID``); a body's ``touch()`` does
the same for its entry. Whether a late attempt may still write is decided by the store's
attempt fence.

Every step that moves a record and its job together is one script, so no crash and no
Redis error between two calls can leave a task without its job or a job without its
task: the start writes record and entry (``create``); the finish writes the outcome and
acknowledges the entry; a retry moves the record back to ``queued`` and its next
attempt into the delayed set; a reissue or a hand-back moves it back to ``queued`` and
adds the next attempt's entry - each acknowledging the old entry in the same step
(``transition`` with a :class:`~ladon_tasks.stores.queues.JobChange`). A job read but not
started goes back as it was (``requeue``), and a due retry or delayed start moves to its stream
(``move_due``).

Acknowledged entries are trimmed (``XTRIM MINID``) by the workers' housekeeping, up to
the oldest entry still pending or not yet delivered.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, ContextManager, Iterable, Sequence

from ladon_tasks import codec, crashpoints, defaults
from ladon_tasks.jobs import Job
from ladon_tasks.logs import about
from ladon_tasks.model import TaskRecord, TaskState
from ladon_tasks.redis import lua
from ladon_tasks.redis.connection import REDIS_OR_SOCKET_ERRORS, as_store_errors, describe_location
from ladon_tasks.redis.replies import as_text, entry_order
from ladon_tasks.redis.keys import GROUP, Keys
from ladon_tasks.stores.queues import JobChange, JobEntry, JobQueue, JobRead, JobReceipt, OnEnd, Records
from ladon_tasks.takeover import TakeoverGate

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Claim:
    """One job a worker read: where its entry is (to renew and acknowledge it), and the job."""

    stream: str
    entry: str
    job: Job


class RedisQueue(JobQueue):
    """One named queue. Safe to share between threads (redis-py pools connections).

    ``levels``: the priorities this queue's jobs can have (a worker knows them from the
    task methods of the services it loaded); the default priority is always one.
    ``consumer``: the name this process reads the streams under - a worker's id, so the
    pending entries say which worker holds them."""

    def __init__(
        self,
        client: Any,
        prefix: str,
        name: str = defaults.QUEUE,
        lease_seconds: float = defaults.LEASE_SECONDS,
        levels: Iterable[int] = (),
        consumer: str | None = None,
    ) -> None:
        import redis

        self._response_error = redis.exceptions.ResponseError
        self.client = client
        self.location = describe_location(client)
        self.prefix = prefix
        self.keys = Keys(prefix)
        self.name = name
        self.lease_seconds = lease_seconds
        self.levels = sorted({defaults.PRIORITY, *levels}, reverse=True)
        self.streams = [self.stream_for(level) for level in self.levels]
        self._level_of = dict(zip(self.streams, self.levels, strict=True))
        self.delayed_key = self.keys.delayed(name)
        self.consumer = consumer or f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"
        self._groups_ready = False
        self._groups_lock = threading.Lock()
        self._move_due = lua.register(client, "move_due", prefix)
        self._requeue = lua.register(client, "requeue", prefix)

    def stream_for(self, priority: int) -> str:
        return self.keys.stream(self.name, priority)

    def _errors(self, what: str) -> ContextManager[None]:
        """redis-py's errors as ``StoreError``, naming where Redis is, the queue and ``what``."""
        return as_store_errors(self.location, f"queue {self.name!r}: {what}")

    def _call(self, what: str, function: Any, *args: Any, **kwargs: Any) -> Any:
        with self._errors(what):
            return function(*args, **kwargs)

    def _ask(self, what: str, function: Any, *args: Any, **kwargs: Any) -> Any:
        """:meth:`_call`, but ``None`` when Redis refuses the command: a stream or a
        consumer group that does not exist yet, where nothing waits."""
        with self._errors(what):
            try:
                return function(*args, **kwargs)
            except self._response_error:
                return None

    # -- producers -----------------------------------------------------------------

    def entry(self, priority: int, payload: str) -> JobEntry:
        return JobEntry(self.name, priority, payload)

    def requeue(self, job: Job, claim: Claim | None = None) -> None:
        """Queue a job again as the attempt it carries, if its task still waits; with
        ``claim``, the entry it was read from is acknowledged in the same step."""
        old_stream, old_entry = (claim.stream, claim.entry) if claim is not None else ("", "")
        self._call("requeue", self._requeue, args=[self.prefix, self.name, job.dumps(), old_stream, old_entry])

    def requeue_later(self, claim: Claim, delay: float) -> None:
        """The job read waits ``delay`` seconds in the delayed set as the attempt it
        carries (its key's places are all held), its entry acknowledged in the same
        transaction; the delayed set moves it back only if its task still waits."""
        with self.client.pipeline(transaction=True) as pipe:
            pipe.zadd(self.delayed_key, {claim.job.dumps(): time.time() + delay})
            pipe.xack(claim.stream, GROUP, claim.entry)
            self._call("requeue later", pipe.execute)

    # -- job moves that go with a record change (JobChange) ---------------------------

    def receipt(self, claim: Claim) -> JobReceipt:
        """The read ``claim`` is, as the store's contract names it (the store finds its
        stream from the queue and the level it was read at)."""
        return JobReceipt(self.name, self._level_of[claim.stream], claim.entry)

    def read_from(self, claim: Claim) -> bool:
        """Whether ``claim`` was read from this queue's streams."""
        return claim.stream in self._level_of

    def release(self, claim: Claim) -> JobChange:
        """The entry is acknowledged with the outcome's write."""
        return JobChange(release=self.receipt(claim))

    def release_reading(self, claim: Claim, count: int = 1) -> tuple[JobChange, Callable[[], list[Claim]]]:
        """:meth:`release`, and up to ``count`` next jobs read in the same step, highest
        priority first (the read a slot would make next); with the jobs it read once the
        change is written."""
        read = JobRead(self.name, tuple(self.levels), self.consumer, count)

        def handed() -> list[Claim]:
            claims: list[Claim] = []
            for stream, entry, fields in read.handed:
                claims += self._decode(as_text(stream), as_text(entry), _field_map(fields))
            return claims

        return JobChange(release=self.receipt(claim), read=read), handed

    def retry_later(self, claim: Claim, delay: float) -> JobChange:
        """The entry is acknowledged and the next attempt waits ``delay`` seconds in the
        delayed set, with the move back to ``queued``."""
        following = claim.job.next_attempt()
        return JobChange(
            release=self.receipt(claim),
            delay=(self.entry(following.priority, following.dumps()), time.time() + delay),
        )

    def run_again(self, claim: Claim) -> JobChange:
        """The entry is acknowledged and the next attempt queued, with the move back to
        ``queued`` (a reissue, a hand-back)."""
        following = claim.job.next_attempt()
        return JobChange(release=self.receipt(claim), enqueue=self.entry(following.priority, following.dumps()))

    # -- workers -------------------------------------------------------------------

    def ensure_groups(self, force: bool = False) -> None:
        """Create the consumer group on every level's stream (from the start of each
        stream, so jobs queued before any worker existed are read too)."""
        if self._groups_ready and not force:
            return  # every claim passes here: no lock once the groups exist
        with self._groups_lock:
            for stream in self.streams:
                with self._errors("creating the consumer group"):
                    try:
                        self.client.xgroup_create(stream, GROUP, id="0", mkstream=True)
                    except self._response_error as exc:
                        if "BUSYGROUP" not in str(exc):
                            raise
            # listed among the queues (fleet.py) even before its first job
            self._call("register", self.client.sadd, self.keys.queues,
                       *(f"{self.name}:{int(level):03d}" for level in self.levels))
            self._groups_ready = True

    def claim(self, block: float, above: int | None = None, count: int = 1) -> list[Claim]:
        """Read up to ``count`` jobs waiting now, highest priority first; none waiting,
        wait up to ``block`` seconds for one (``block`` <= 0: do not wait). Reading leases
        them to this worker. With several levels, each is asked in turn without waiting,
        lower levels only for what the higher ones did not fill, then all at once with
        waiting - which may answer one job per level: the caller keeps the others.
        ``above``: only levels higher than that, no waiting (the caller holds a job of
        that priority already)."""
        self.ensure_groups()
        count = max(1, count)
        if len(self.streams) == 1 and above is None:
            return self._read({self.streams[0]: ">"}, _block_ms(block), count)
        claims: list[Claim] = []
        for level, stream in zip(self.levels, self.streams, strict=True):
            if (above is not None and level <= above) or len(claims) >= count:
                break
            claims += self._read({stream: ">"}, None, count - len(claims))
        if claims or above is not None or block <= 0:
            return claims
        return self._read({stream: ">" for stream in self.streams}, _block_ms(block), 1)

    def read_level(self, level: int, count: int = 1) -> list[Claim]:
        """Up to ``count`` jobs of priority ``level``, without waiting (a sharded queue
        asks each shard's levels in turn)."""
        self.ensure_groups()
        return self._read({self.stream_for(level): ">"}, None, count)

    def read_any(self, count: int = 1) -> list[Claim]:
        """Jobs of each level that has some, without waiting: up to ``count`` with one
        level, the next one of each with several (the caller keeps the others, as with
        :meth:`claim`)."""
        self.ensure_groups()
        return self._read({stream: ">" for stream in self.streams}, None, count if len(self.streams) == 1 else 1)

    def wait_any(self, block: float) -> list[Claim]:
        """The next job of any level, waiting up to ``block`` seconds for one."""
        self.ensure_groups()
        return self._read({stream: ">" for stream in self.streams}, _block_ms(block), 1)

    def _read(self, streams: dict[str, str], block_ms: int | None, count: int) -> list[Claim]:
        """``count`` entries at most from each of ``streams``, waiting ``block_ms`` (``None``: no wait)."""
        with self._errors("claim"):
            try:
                answer = self.client.xreadgroup(GROUP, self.consumer, streams, count=count, block=block_ms)
            except self._response_error as exc:
                if "NOGROUP" not in str(exc):
                    raise
                self.ensure_groups(force=True)  # Redis lost its data (restart without AOF)
                return []
        claims: list[Claim] = []
        for stream, entries in answer or []:
            for entry, fields in entries:
                claims += self._decode(as_text(stream), as_text(entry), fields)
        claims.sort(key=lambda claim: -claim.job.priority)
        return claims

    def _decode(self, stream: str, entry: str, fields: Any) -> list[Claim]:
        payload = (fields or {}).get("job")
        try:
            return [Claim(stream, entry, Job.from_json(codec.loads(as_text(payload))))]
        except Exception as exc:  # not ours, or mangled: drop it rather than loop on it
            log.error("queue %s: dropping unreadable entry %s: %s", self.name, entry, exc)
            self._call("ack", self.client.xack, stream, GROUP, entry)
            return []

    def claimable(self) -> bool:
        """Whether any level holds a job no worker has read yet (for burst workers)."""
        for stream in self.streams:
            groups = self._ask("looking for waiting jobs", self.client.xinfo_groups, stream)
            for group in groups or []:
                if as_text(group["name"]) != GROUP:
                    continue
                lag = group.get("lag")
                if lag is None:  # Redis cannot tell after deletions: compare the last ids
                    info = self._call("look for waiting jobs", self.client.xinfo_stream, stream)
                    if info["length"] and as_text(info["last-generated-id"]) != as_text(group["last-delivered-id"]):
                        return True
                elif int(lag) > 0:
                    return True
        return False

    def renew(self, claims: Sequence[Claim]) -> None:
        """Restart the leases of entries this worker holds (their idle time goes to 0)."""
        for stream, entries in _by_stream(claims).items():
            self._call("renew", self.client.xclaim, stream, GROUP, self.consumer, 0, entries, justid=True)

    def ping(self) -> None:
        """One round trip: ``StoreError`` while Redis cannot be reached."""
        self._call("ping", self.client.ping)

    def ack(self, claims: Sequence[Claim]) -> None:
        for stream, entries in _by_stream(claims).items():
            self._call("ack", self.client.xack, stream, GROUP, *entries)

    def forget_consumer(self) -> None:
        """Leaving: drop this worker's consumer name where it holds nothing any more."""
        for stream in self.streams:
            try:
                if not self.client.xpending_range(stream, GROUP, "-", "+", 1, consumername=self.consumer):
                    self.client.xgroup_delconsumer(stream, GROUP, self.consumer)
            except REDIS_OR_SOCKET_ERRORS:
                pass

    # -- housekeeping ----------------------------------------------------------------

    def move_due(self) -> int:
        """Move due retries and delayed starts from the delayed set to their streams;
        returns how many due jobs were looked at. Judges no lease, so it runs on every
        housekeeping pass, the takeover gate closed or not: a delayed start is not held
        back by a restart of Redis or of the worker."""
        return int(self._call("move due jobs", self._move_due, args=[self.prefix, self.name, repr(time.time())]) or 0)

    def reap(self, store: Records, max_lost: int = defaults.MAX_LOST_ATTEMPTS,
             gate: TakeoverGate | None = None, on_end: OnEnd | None = None) -> int:
        """Queue again the jobs of workers whose leases ran out; returns how many jobs
        were reissued. With ``gate``, leases are
        judged only on reads it lets through (:mod:`ladon_tasks.takeover`): a read that
        waited, or during which Redis moved, judges nothing, and entries such a claim
        took go back to their holders as they were. ``on_end``: see :meth:`reissue`."""
        lease_ms = int(self.lease_seconds * 1000)
        reissued = 0
        for stream in self.streams:
            ticket = gate.ticket() if gate is not None else None
            if gate is not None and ticket is None:
                break
            expired = self._ask("reap", self.client.xpending_range, stream, GROUP, "-", "+", defaults.REAP_BATCH,
                                idle=lease_ms)
            if not expired or (gate is not None and ticket is not None and not gate.valid(ticket)):
                continue
            ids = [as_text(item["message_id"]) for item in expired]
            holders = {as_text(item["message_id"]): as_text(item.get("consumer", "")) for item in expired}
            # the minimum idle time makes the takeover exclusive: one reaper gets each
            ticket = gate.ticket() if gate is not None else None
            if gate is not None and ticket is None:
                break
            taken = self._call("reap", self.client.xclaim, stream, GROUP, self.consumer, lease_ms, ids)
            if gate is not None and ticket is not None and not gate.valid(ticket):
                self._put_back(stream, [as_text(entry) for entry, _ in taken or []], holders, expired)
                continue
            crashpoints.reach("reaper.claimed")
            for entry, fields in taken or []:
                for claim in self._decode(stream, as_text(entry), fields):
                    reissued += self._reissue(store, claim, max_lost, holders.get(claim.entry, ""), on_end)
                    crashpoints.reach("reaper.reissued")
        return reissued

    def _put_back(self, stream: str, entries: list[str], holders: dict[str, str], pending: list[Any]) -> None:
        """Entries a claim took on a read that may not be judged on: back to the workers
        that held them, with the idle time they had (a holder renews them anyway)."""
        idle = {as_text(item["message_id"]): int(item.get("time_since_delivered", 0)) for item in pending}
        for entry in entries:
            if holders.get(entry):
                self._call("put back", self.client.xclaim, stream, GROUP, holders[entry], 0, [entry],
                           idle=idle.get(entry, 0), justid=True)
        log.info("queue %s: %d expired-looking lease(s) left to their holders: Redis was disturbed while "
                 "they were read", self.name, len(entries))

    def _reissue(self, store: Records, claim: Claim, max_lost: int, holder: str, on_end: OnEnd | None) -> int:
        reason = f"the worker running attempt {claim.job.attempt} stopped answering"
        if holder:
            reason = f"the worker running attempt {claim.job.attempt} ({holder}) stopped answering"
        return int(self.reissue(store, claim, reason, max_lost, where=holder, on_end=on_end) == "reissued")

    def reissue(self, store: Records, claim: Claim, reason: str, max_lost: int = defaults.MAX_LOST_ATTEMPTS,
                what: str = "reissued", where: str = "", on_end: OnEnd | None = None) -> str:
        """The attempt ``claim`` holds will not finish where it ran (``where``, the worker
        that held it, recorded if its start was not): queue the next one, or - its lost
        attempts spent - fail the task with ``WorkerDied``; the entry is acknowledged in
        the same step. Returns what was done: ``reissued``, ``failed``, ``cancelled`` or
        ``acknowledged`` (the task had finished or moved on).

        ``on_end`` (a reaper's: the completion hooks) is called with the record of a task
        that ended here, or that ended at this very attempt while its entry was still not
        acknowledged (its worker died before its hooks ran); the entry is acknowledged
        after it."""
        job = claim.job
        record: TaskRecord | None = store.current(job.task_id)
        if record is None or record.finished or record.attempts > job.attempt:
            if on_end is not None and record is not None and record.finished and record.attempts == job.attempt:
                on_end(record)
            self.ack([claim])
            return "acknowledged"
        now = time.time()

        def end(target: TaskState, **changes: Any) -> TaskRecord | None:
            done = store.transition(job.task_id, target, attempt=job.attempt,
                                    job=None if on_end is not None else self.release(claim), **changes)
            if on_end is not None:
                if done is not None:
                    on_end(done)
                self.ack([claim])
            return done

        if record.cancel_requested:
            done = end(TaskState.CANCELLED, finished_at=now)
            return "cancelled" if done is not None else "acknowledged"
        if job.attempt >= record.max_attempts + max_lost:
            done = end(
                TaskState.FAILED, where=where or None,
                error_type="WorkerDied", error_message=f"{reason}; attempt {job.attempt} was its last",
                finished_at=now,
            )
            return "failed" if done is not None else "acknowledged"
        moved = store.transition(
            job.task_id, TaskState.QUEUED, attempt=job.attempt, job=self.run_again(claim), where=where or None,
            message=f"{what}: {reason}",
        )
        if moved is None:
            return "acknowledged"
        about(log, job).warning("%s: %s; attempt %d queued", what, reason, job.attempt + 1)
        return "reissued"

    def trim(self) -> None:
        """Drop acknowledged entries: everything older than the oldest entry that is
        pending or not yet delivered."""
        for stream in self.streams:
            groups = self._ask("trim", self.client.xinfo_groups, stream)
            summary = self._ask("trim", self.client.xpending, stream, GROUP) if groups is not None else None
            if groups is None or summary is None:
                continue
            delivered = next((as_text(g["last-delivered-id"]) for g in groups if as_text(g["name"]) == GROUP), None)
            if delivered is None:
                continue
            ms, _, seq = delivered.partition("-")
            keep_from = f"{ms}-{int(seq or 0) + 1}"
            if summary and summary.get("pending"):
                oldest = as_text(summary["min"])
                if entry_order(oldest) < entry_order(keep_from):
                    keep_from = oldest
            self._call("trim", self.client.xtrim, stream, minid=keep_from, approximate=False)


def _block_ms(block: float) -> int | None:
    """A wait in seconds as ``XREADGROUP BLOCK`` takes it; none for ``block`` <= 0."""
    return max(1, int(block * 1000)) if block > 0 else None


def _by_stream(claims: Sequence[Claim]) -> dict[str, list[str]]:
    grouped: dict[str, list[str]] = {}
    for claim in claims:
        grouped.setdefault(claim.stream, []).append(claim.entry)
    return grouped


def _field_map(fields: Any) -> dict[Any, Any]:
    """An entry's fields as a script answers them (a flat list) or redis-py does (a dict)."""
    if isinstance(fields, dict):
        return fields
    fields = fields or []
    return {as_text(fields[i]): fields[i + 1] for i in range(0, len(fields) - 1, 2)}
