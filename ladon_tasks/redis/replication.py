"""Writes a client is told about, on a replica before the client hears of them (``WAIT``).

Redis replicates asynchronously: the primary answers a write, then sends it to its
replicas. When the primary dies, Sentinel promotes the replica with the most data, and
whatever the primary had answered but not yet sent is gone - a few milliseconds of
writes, all of them, with no error anywhere. For a task that means:

* a **start** lost: the client holds a task id that no process knows (``UnknownTask``);
* a **cancel** lost: the client was told the cancel is recorded, and the task runs on;
* a **finish**, a retry, a reissue lost: the task is found where it was before - queued,
  or running under a worker or owner that no longer runs it - and runs again (the
  at-least-once case 4 of the README), by the rules every lost attempt follows;
* **progress** lost: a smaller value is shown, until the next report.

Starts and cancels are the writes a client acts on, so with Sentinel they go with a
``WAIT`` for ``wait_replicas`` replicas on the same connection (:class:`ReplicaWait`): the
answer leaves only once a replica has the write, and Sentinel promotes the replica that
has the most. The wait is bounded (``wait_timeout``): when no replica acknowledges in
time, the sentinels are asked whether they are replacing the primary (another one named,
none, or a failover in progress) - then the start fails (``StoreUnavailable``), as it
would be lost -, else the start is answered anyway - it is recorded on the primary, whose
replica is only slow or away - and starts go without the wait for ``START_WAIT_PAUSE``
seconds, so a replica that is away costs one slow start in that time, not every one.
Finishes go without it: losing one costs a re-run, which at-least-once allows, and
waiting would add a replica round trip to every task.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import redis
from redis.client import NEVER_DECODE
from redis.exceptions import NoScriptError

from ladon_tasks import defaults
from ladon_tasks.redis.lua import call_undecoded
from ladon_tasks.redis.sentinel import SentinelURL, is_sentinel_url, known_primary, primary_in_doubt

log = logging.getLogger(__name__)


class ReplicaWait:
    """Runs a script, then ``WAIT replicas timeout`` on the same connection (``WAIT``
    counts the writes of its own connection only), in one round trip."""

    def __init__(self, client: redis.Redis, replicas: int, timeout: float,
                 pause: float = defaults.START_WAIT_PAUSE) -> None:
        if replicas < 1 or timeout <= 0:
            raise ValueError("a replica wait needs replicas >= 1 and a timeout > 0")
        self.replicas = replicas
        self.timeout = timeout
        self.pause = pause
        self._client = client
        self._paused_until = 0.0
        self._lock = threading.Lock()

    def run(self, script: Any, args: list[str], undecoded: bool = False) -> Any:
        """``script(args=args)`` - a redis-py ``Script`` - answered once ``replicas``
        replicas have it, or ``timeout`` has passed. Raises what the script raises.
        ``undecoded``: its answer's strings as bytes (:func:`~ladon_tasks.redis.lua.call_undecoded`)."""
        if time.monotonic() < self._paused_until:
            return call_undecoded(self._client, script, args) if undecoded else script(args=args)
        answer: Any = None
        acknowledged: Any = None
        written_to = known_primary(self._client)
        for attempt in range(2):
            pipe = self._client.pipeline(transaction=False)
            pipe.execute_command("EVALSHA", script.sha, 0, *args, **({NEVER_DECODE: True} if undecoded else {}))
            pipe.execute_command("WAIT", self.replicas, max(1, int(self.timeout * 1000)))
            answer, acknowledged = pipe.execute(raise_on_error=False)
            if isinstance(answer, NoScriptError) and attempt == 0:
                script.sha = self._client.script_load(script.script)  # a new primary, or a restart
                continue
            break
        if isinstance(answer, Exception):
            raise answer
        if isinstance(acknowledged, Exception) or int(acknowledged) < self.replicas:
            if primary_in_doubt(self._client, written_to):
                # written on a primary Sentinel is replacing: it is lost when that one is
                # demoted, so the caller must not be told it is recorded
                raise redis.ConnectionError("no replica has the write, and Sentinel is replacing the primary")
            self._pause_after(acknowledged)
        return answer

    def _pause_after(self, acknowledged: Any) -> None:
        with self._lock:
            if time.monotonic() < self._paused_until:
                return
            self._paused_until = time.monotonic() + self.pause
        log.warning(
            "no replica acknowledged a start within %gs (%s of %d); starts are answered without waiting "
            "for replicas for %gs", self.timeout, acknowledged, self.replicas, self.pause,
        )


def replica_wait_for(url: str, client: redis.Redis) -> ReplicaWait | None:
    """The wait a store connected to ``url`` gives its starts: with Sentinel, the URL's
    ``wait_replicas`` and ``wait_timeout``; none for one server (it has no replica a
    failover could promote)."""
    if not is_sentinel_url(url):
        return None
    parsed = SentinelURL.parse(url)
    if parsed.wait_replicas == 0:
        return None
    return ReplicaWait(client, parsed.wait_replicas, parsed.wait_timeout)
