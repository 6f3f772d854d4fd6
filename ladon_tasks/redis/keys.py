"""The one key layout of ladon-tasks in Redis.

Every key starts with a deployment's prefix (``ladon-tasks:`` by default), so several
deployments can share one database. Python code asks :class:`Keys` for a key; Lua
scripts build keys of ids they only learn inside Redis (a task of a listing, the owner
of a record) from the same table, which :mod:`ladon_tasks.redis.lua` hands them in
each script's header (``KEY.task``, ``KEY.method_index``...): the layout is written here
and nowhere else.

==============================  ======  ===============================================
key                             type    holds
==============================  ======  ===============================================
``task:<id>``                   hash    a task's record, one JSON text per field
``steps:<id>``                  hash    a task's recorded steps: name -> the step's
                                        JSON; only for a task whose body ran steps,
                                        expires with the record
``idx:method:<method>``         zset    task ids of a method, scored by submission time
``methods``                     set     every method that has an index
``idem:<sha1>``                 string  task id started with an idempotency key
``events``                      stream  lifecycle events (capped)
``finished``                    channel finish messages for waiters
``jobs``                        channel on Redis Cluster only: ``<q>:<NNN>`` of a job
                                        just added to a stream of this shard, for
                                        the workers waiting for one
``queue:<q>:<NNN>``             stream  jobs of queue ``q`` at priority ``NNN``
``queue:<q>:delayed``           zset    jobs waiting for a retry or delayed start
``owners``                      zset    live processes running bodies in process, by
                                        lease expiry (ms, Redis clock)
``owned:<owner>``               set     task ids an in-process owner holds
``stats``                       hash    counts per method and state, run-time histogram
                                        (field names: :mod:`ladon_tasks.stats`)
``held``                        string  what starts are bounded by: unfinished tasks
                                        * 2^32 + the bytes of their arguments, kept
                                        by the scripts' moves (``common.lua``)
``queues``                      set     ``<q>:<NNN>`` of every job stream made: where
                                        queue depths are read, without a key scan
``workers``                     set     ids of the workers that announced themselves
``worker:<id>``                 string  a worker's JSON description; expires unless its
                                        heartbeat renews it
==============================  ======  ===============================================
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

#: Where a deployment's keys start when it names no prefix.
DEFAULT_PREFIX = "ladon-tasks:"

#: The consumer group every worker of every host reads the job streams through.
GROUP = "workers"

#: The parts after the prefix, by name: the table the Lua scripts receive.
LAYOUT: dict[str, str] = {
    "task": "task:",
    "steps": "steps:",
    "method_index": "idx:method:",
    "methods": "methods",
    "idempotency": "idem:",
    "events": "events",
    "finished": "finished",
    "jobs": "jobs",
    "queue": "queue:",
    "owners": "owners",
    "owned": "owned:",
    "stats": "stats",
    "held": "held",
    "queues": "queues",
    "workers": "workers",
    "worker": "worker:",
    "slots": "slots:",
    "rates": "rate:",
}


def idempotency_text(service: str, method: str, key: str, principal: str = "") -> str:
    """What names an idempotency key: its method's and its own text, and the caller's
    (principal) when the task has one - two callers' keys never meet. The create script
    hashes the same text (``idem_key`` in ``common.lua``); Redis Cluster also places
    the key's shard by it."""
    text = f"{service}\n{method}\n{key}"
    return f"{text}\n{principal}" if principal else text


@dataclass(frozen=True)
class Keys:
    """Keys of one deployment (one prefix)."""

    prefix: str = DEFAULT_PREFIX

    def task(self, task_id: str) -> str:
        return f"{self.prefix}{LAYOUT['task']}{task_id}"

    def steps(self, task_id: str) -> str:
        return f"{self.prefix}{LAYOUT['steps']}{task_id}"

    def method_index(self, method: str) -> str:
        return f"{self.prefix}{LAYOUT['method_index']}{method}"

    @property
    def methods(self) -> str:
        return self.prefix + LAYOUT["methods"]

    @property
    def events(self) -> str:
        return self.prefix + LAYOUT["events"]

    @property
    def finished_channel(self) -> str:
        return self.prefix + LAYOUT["finished"]

    def idempotency(self, service: str, method: str, key: str, principal: str = "") -> str:
        """The key holding the task ``principal`` started with idempotency key ``key``."""
        text = idempotency_text(service, method, key, principal)
        digest = hashlib.sha1(text.encode("utf-8", "surrogatepass")).hexdigest()
        return f"{self.prefix}{LAYOUT['idempotency']}{digest}"

    @property
    def jobs_channel(self) -> str:
        return self.prefix + LAYOUT["jobs"]

    def stream(self, queue: str, priority: int) -> str:
        """The job stream of one priority level of a queue."""
        return f"{self.prefix}{LAYOUT['queue']}{queue}:{int(priority):03d}"

    def delayed(self, queue: str) -> str:
        return f"{self.prefix}{LAYOUT['queue']}{queue}:delayed"

    @property
    def owners(self) -> str:
        return self.prefix + LAYOUT["owners"]

    def owned(self, owner: str) -> str:
        return f"{self.prefix}{LAYOUT['owned']}{owner}"

    @property
    def stats(self) -> str:
        return self.prefix + LAYOUT["stats"]

    @property
    def held(self) -> str:
        return self.prefix + LAYOUT["held"]

    @property
    def queues(self) -> str:
        return self.prefix + LAYOUT["queues"]

    @property
    def workers(self) -> str:
        return self.prefix + LAYOUT["workers"]

    def worker(self, worker_id: str) -> str:
        return f"{self.prefix}{LAYOUT['worker']}{worker_id}"
