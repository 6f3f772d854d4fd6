"""The Redis job queue shared by web servers (producers) and workers on any host.

Keys, under the store's prefix and the queue's name ``q``:

* ``queue:q:jobs``    sorted set of job JSON, scored by priority then age, so higher
                      priority goes first and equals go first come, first served;
* ``queue:q:signal``  a list workers block on (``BLPOP``), one token per enqueue, so an
                      idle worker wakes at once and never sleeps-and-polls;
* ``queue:q:leases``  sorted set of claimed job JSON, scored by lease expiry (Redis
                      server time, so hosts' clocks don't matter);
* ``queue:q:delayed`` sorted set of job JSON waiting for a retry, scored by due time.

A claim moves a job from ``jobs`` to ``leases`` in one Lua script, so a job is always in
exactly one of them: a worker that dies after claiming leaves a lease that runs out,
and :meth:`RedisQueue.reap` hands the job out again. Whether the lost attempt may still
write is decided by the store's attempt fence, not here.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from ladon_tasks import codec, defaults
from ladon_tasks.executors.base import Executor, Job
from ladon_tasks.model import TaskState
from ladon_tasks.stores.base import StoreError, TaskStore

log = logging.getLogger(__name__)

#: A job's score: priority dominates (255 first), then submission time in ms.
_PRIORITY_SPAN = 10**13

# A claim that empties the queue also drops its wake-up tokens: while workers are busy,
# every enqueue leaves a token nobody blocks on, and each stale token later costs an idle
# worker a BLPOP and an empty claim. Safe: with no job queued, every token pushed so far
# belongs to a job already claimed (enqueue pushes its token after adding its job).
_CLAIM = """
local popped = redis.call('ZPOPMIN', KEYS[1])
if #popped == 0 then return false end
local left = redis.call('ZCARD', KEYS[1])
if left == 0 then redis.call('DEL', KEYS[3]) end
local now = redis.call('TIME')
local deadline = tonumber(now[1]) + tonumber(now[2]) / 1e6 + tonumber(ARGV[1])
redis.call('ZADD', KEYS[2], deadline, popped[1])
return {popped[1], left}
"""

# The job and its wake-up token in one step: one command sent, and no token without job.
_ENQUEUE = """
redis.call('ZADD', KEYS[1], ARGV[1], ARGV[2])
redis.call('LPUSH', KEYS[2], '1')
"""

_RENEW = """
local now = redis.call('TIME')
local deadline = tonumber(now[1]) + tonumber(now[2]) / 1e6 + tonumber(ARGV[1])
return redis.call('ZADD', KEYS[1], 'XX', 'CH', deadline, ARGV[2])
"""

_SCHEDULE = """
local now = redis.call('TIME')
return redis.call('ZADD', KEYS[1], tonumber(now[1]) + tonumber(now[2]) / 1e6 + tonumber(ARGV[1]), ARGV[2])
"""

# Expired leases are removed and returned (the caller decides about reissue); delayed
# jobs that are due move to the queue with a wake-up token each.
_REAP = """
local now = redis.call('TIME')
local t = tonumber(now[1]) + tonumber(now[2]) / 1e6
local expired = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', t, 'LIMIT', 0, 100)
for _, member in ipairs(expired) do redis.call('ZREM', KEYS[1], member) end
local due = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', t, 'WITHSCORES', 'LIMIT', 0, 100)
for i = 1, #due, 2 do
  local member = due[i]
  redis.call('ZREM', KEYS[2], member)
  local job = cjson.decode(member)
  local score = (255 - tonumber(job['priority'])) * 1e13 + math.floor(t * 1000)
  redis.call('ZADD', KEYS[3], score, member)
  redis.call('LPUSH', KEYS[4], '1')
end
return expired
"""


def job_score(priority: int, now: float | None = None) -> float:
    return (255 - priority) * _PRIORITY_SPAN + int((now if now is not None else time.time()) * 1000)


def encode_job(job: Job) -> str:
    return codec.dumps(job.to_json())


class RedisQueue:
    """One named queue. Safe to share between threads (redis-py pools connections)."""

    def __init__(self, client: Any, prefix: str, name: str = defaults.QUEUE,
                 lease_seconds: float = defaults.LEASE_SECONDS) -> None:
        import redis

        self._errors = (redis.exceptions.RedisError, OSError)
        self.client = client
        self.name = name
        self.lease_seconds = lease_seconds
        base = f"{prefix}queue:{name}:"
        self.jobs_key, self.signal_key = base + "jobs", base + "signal"
        self.leases_key, self.delayed_key = base + "leases", base + "delayed"
        self._local = threading.local()
        self._enqueue = client.register_script(_ENQUEUE)
        self._claim = client.register_script(_CLAIM)
        self._renew = client.register_script(_RENEW)
        self._schedule = client.register_script(_SCHEDULE)
        self._reap = client.register_script(_REAP)

    def _call(self, what: str, function: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return function(*args, **kwargs)
        except self._errors as exc:
            raise StoreError(f"queue {self.name!r}: {what} failed: {exc}") from exc

    def enqueue(self, job: Job) -> None:
        self._call(
            "enqueue", self._enqueue,
            keys=[self.jobs_key, self.signal_key], args=[job_score(job.priority), encode_job(job)],
        )

    def claim(self, block: float) -> tuple[Job, str] | None:
        """Take the next job and lease it, waiting up to ``block`` seconds for one.

        A thread whose last claim emptied the queue goes straight to waiting for a
        wake-up token: asking again first would only cost an empty claim."""
        deadline = time.monotonic() + block
        emptied = getattr(self._local, "emptied", False)
        while True:
            if not emptied:
                answer = self._call(
                    "claim", self._claim, keys=[self.jobs_key, self.leases_key, self.signal_key],
                    args=[self.lease_seconds],
                )
                if answer:
                    member = answer[0].decode() if isinstance(answer[0], bytes) else answer[0]
                    self._local.emptied = int(answer[1]) == 0
                    return Job.from_json(codec.loads(member)), member
            emptied = False
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self._local.emptied = False
                return None
            # A token may belong to a job another worker already took: that only means
            # one more claim attempt at the top of the loop.
            self._call("wait", self.client.blpop, [self.signal_key], timeout=remaining)

    def renew(self, member: str) -> bool:
        """Extend a lease; ``False`` when the lease is gone (reaped: the job was reissued)."""
        return bool(self._call("renew", self._renew, keys=[self.leases_key], args=[self.lease_seconds, member]))

    def release(self, member: str) -> None:
        self._call("release", self.client.zrem, self.leases_key, member)

    def schedule(self, job: Job, delay: float) -> None:
        self._call("schedule", self._schedule, keys=[self.delayed_key], args=[delay, encode_job(job)])

    def reap(self, store: TaskStore, max_lost: int = defaults.MAX_LOST_ATTEMPTS) -> int:
        """Hand out again the jobs of dead workers; returns how many were reissued."""
        expired = self._call(
            "reap", self._reap,
            keys=[self.leases_key, self.delayed_key, self.jobs_key, self.signal_key],
        )
        reissued = 0
        for member in expired or []:
            member = member.decode() if isinstance(member, bytes) else member
            job = Job.from_json(codec.loads(member))
            record = store.get(job.task_id)
            if record is None or record.finished:
                continue
            if record.state is TaskState.RUNNING:
                if record.attempts >= record.max_attempts + max_lost:
                    store.transition(
                        job.task_id, TaskState.FAILED, attempt=record.attempts,
                        error_type="WorkerLost",
                        error_message=f"the worker running attempt {record.attempts} stopped answering",
                        finished_at=time.time(),
                    )
                    continue
                if store.transition(
                    job.task_id, TaskState.QUEUED, attempt=record.attempts,
                    message=f"reissued: the worker running attempt {record.attempts} stopped answering",
                ) is None:
                    continue
            self.enqueue(job)
            reissued += 1
            log.warning("reissued task %s after its lease ran out", job.task_id)
        return reissued


class QueueExecutor(Executor):
    """The web-server side of ``executor='queue'``: record, enqueue, return.

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

    def submit(self, job: Job) -> None:
        self.queue(job.queue).enqueue(job)

    def shutdown(self, wait: bool = True) -> None:
        pass
