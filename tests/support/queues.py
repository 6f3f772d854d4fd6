"""What the queue tests check alike, on one Redis and on a Cluster's shards."""

from __future__ import annotations

import time
from typing import Any

from .servers import wait_until


def claimed_when_due(queue: Any, delayed: Any, delayed_key: str, job: Any) -> list[Any]:
    """A delayed start's job, created just before: it waits in ``delayed_key`` (read with
    the client ``delayed``), unread, and ``queue`` reads it once due - the only job read,
    and the delayed set empty after. Returns the claims, for more checks."""
    assert delayed.zrange(delayed_key, 0, -1) == [job.dumps()]
    assert queue.claim(0) == [], "not before its time"
    claims = wait_until(lambda: queue.move_due() and queue.claim(0), timeout=20, what="the job to be due")
    assert [claim.job.task_id for claim in claims] == [job.task_id]
    assert time.time() >= job.not_before
    assert delayed.zcard(delayed_key) == 0
    return claims
