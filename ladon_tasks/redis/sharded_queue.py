"""One job queue over the shards of a Redis Cluster (:mod:`.sharded`): a
:class:`~ladon_tasks.redis.queue.RedisQueue` per shard, read by every worker of the queue.

A job lives on its task's shard, so a task's record and job still change together in one
script. What a worker does with a job it read (renew, acknowledge, hand back, reissue)
goes to the shard the job came from. Reading is where shards show: Redis cannot read
streams of several slots in one command, so :meth:`ShardedQueue.claim` asks each shard
in turn without waiting (a *sweep*), highest priority first over all shards, starting at
the next shard each time so that no shard is drained before the others. Once a sweep
found nothing, the queue is idle: its slots wait on the job bell (:mod:`.bell`), which
says which shard just got a job, and read that shard; they sweep again once per
``defaults.CLAIM_BLOCK`` (a bell may be missed) or as soon as a read brings a job. So an
idle worker sends no command while it waits, and a new job is read at once. While the
bell is not heard (starting, reconnecting), a slot waits on one shard's streams instead,
the next one each time, for ``defaults.CLUSTER_CLAIM_SLICE`` at most. Within one
priority, jobs are read first come first served on each shard, not across shards.

Renewals go to every shard at once, none waiting for another (:mod:`.fanout`): a shard
whose primary died must not let the other shards' leases run out. Housekeeping (reaping
expired leases, due retries, trimming) goes through every shard.
"""

from __future__ import annotations

import functools
import itertools
import time
from typing import Callable, Iterable, Sequence

from ladon_tasks import defaults
from ladon_tasks.jobs import Job
from ladon_tasks.redis.bell import JobBell
from ladon_tasks.redis.cluster import shard_of
from ladon_tasks.redis.fanout import ShardLanes
from ladon_tasks.redis.queue import Claim, RedisQueue
from ladon_tasks.stores.base import StoreError
from ladon_tasks.stores.queues import JobChange, JobEntry, JobQueue, OnEnd, Records
from ladon_tasks.takeover import TakeoverGate


def on_every_shard(calls: Iterable[Callable[[], object]]) -> None:
    """Make every call, one per shard, even after one failed, then raise the first
    ``StoreError``: a shard whose primary died (until the cluster promotes its replica)
    must not keep the other shards' jobs from being acknowledged. (Renewals, which must
    not even wait for it, go through :mod:`.fanout`.)"""
    failed: StoreError | None = None
    for call in calls:
        try:
            call()
        except StoreError as exc:
            failed = failed or exc
    if failed is not None:
        raise failed


class ShardedQueue(JobQueue):
    """Queue ``name`` on every shard; ``queues``: its :class:`RedisQueue` of each shard,
    in shard order."""

    def __init__(self, queues: Sequence[RedisQueue], bell: JobBell | None = None) -> None:
        if not queues:
            raise ValueError("a sharded queue needs at least one shard")
        self.shards = list(queues)
        self._bell = bell
        first = self.shards[0]
        self.name = first.name
        self.lease_seconds = first.lease_seconds
        self.levels = first.levels
        self.consumer = first.consumer
        self._lanes = ShardLanes(f"queue {self.name!r}", len(self.shards))
        self._turn = itertools.count()
        self._idle = False  # the last sweep found nothing (threads may race on it: harmless)
        self._swept_at = 0.0

    def _of_claim(self, claim: Claim) -> RedisQueue:
        for queue in self.shards:
            if queue.read_from(claim):
                return queue
        raise ValueError(f"queue {self.name!r}: stream {claim.stream!r} is on no shard of this deployment")

    def _of_task(self, task_id: str) -> RedisQueue:
        return self.shards[shard_of(task_id, len(self.shards))]

    # -- producers -------------------------------------------------------------------

    def entry(self, priority: int, payload: str) -> JobEntry:
        """A job of this queue: the store puts it on its task's shard."""
        return JobEntry(self.name, priority, payload)

    def requeue(self, job: Job, claim: Claim | None = None) -> None:
        self._of_task(job.task_id).requeue(job, claim)

    def requeue_later(self, claim: Claim, delay: float) -> None:
        self._of_claim(claim).requeue_later(claim, delay)

    # -- job moves that go with a record change --------------------------------------

    def release(self, claim: Claim) -> JobChange:
        return self._of_claim(claim).release(claim)

    def release_reading(self, claim: Claim, count: int = 1) -> tuple[JobChange, Callable[[], list[Claim]]]:
        """:meth:`release` alone: a slot's next read goes round the shards (``claim``)."""
        return self.release(claim), list

    def retry_later(self, claim: Claim, delay: float) -> JobChange:
        return self._of_claim(claim).retry_later(claim, delay)

    def run_again(self, claim: Claim) -> JobChange:
        return self._of_claim(claim).run_again(claim)

    # -- workers ---------------------------------------------------------------------

    def ensure_groups(self, force: bool = False) -> None:
        for queue in self.shards:
            queue.ensure_groups(force)

    def claim(self, block: float, above: int | None = None, count: int = 1) -> list[Claim]:
        """Up to ``count`` jobs of any shards, highest priority first, waiting up to one
        slice of ``block`` on one shard when none has one (see the module's text)."""
        self.ensure_groups()
        start = next(self._turn) % len(self.shards)
        order = self.shards[start:] + self.shards[:start]
        now = time.monotonic()
        waiting_only = above is None and block > 0 and self._idle and now - self._swept_at < defaults.CLAIM_BLOCK
        if not waiting_only:
            self._swept_at = now
            if self._bell is not None:
                self._bell.forget(self.name)  # what they said, this sweep sees
            claims = self._sweep(order, above, max(1, count))
            if claims or above is not None:
                return claims
            self._idle = True  # a wait that follows goes to the bell, not to another sweep
            if block <= 0:
                return claims
        if self._bell is not None and self._bell.listening:
            # a job read on the bell's word leaves the queue idle: the bell goes on
            # telling where the next ones are, without a sweep after each
            wait = min(block, max(0.0, self._swept_at + defaults.CLAIM_BLOCK - now) + 0.001)
            rung = self._bell.wait(self.name, wait)
            return self.shards[rung].read_any(max(1, count)) if rung is not None else []
        if self._bell is not None:
            self._bell.wait(self.name, 0)  # start listening
        claims = order[0].wait_any(min(block, defaults.CLUSTER_CLAIM_SLICE))
        if claims:
            self._idle = False
        return claims

    def _sweep(self, order: list[RedisQueue], above: int | None, count: int) -> list[Claim]:
        """Up to ``count`` jobs, the highest level first, of the shards in ``order``; a
        lower level or a later shard is read only for what the ones before left unfilled.
        A shard that cannot be read (its primary died, and the cluster has not promoted a
        replica yet) is left out of the sweep, so the jobs of the other shards still run;
        its error is raised only when no other shard had a job."""
        failed: dict[int, StoreError] = {}
        claims: list[Claim] = []
        for level in self.levels:
            if above is not None and level <= above:
                break
            for index, queue in enumerate(order):
                if index in failed:
                    continue
                try:
                    claims += queue.read_level(level, count - len(claims))
                except StoreError as exc:
                    failed[index] = exc
                    continue
                if len(claims) >= count:
                    break
            if len(claims) >= count:
                break
        if claims:
            self._idle = False
            return claims
        if failed:
            raise next(iter(failed.values()))
        return []

    def claimable(self) -> bool:
        return any(queue.claimable() for queue in self.shards)

    def renew(self, claims: Sequence[Claim]) -> None:
        """Every shard's leases at once, none waiting for another (:mod:`.fanout`); a
        shard that does not answer within ``SLOW_CALL_SHARE`` of the lease is reported."""
        calls = {index: functools.partial(self.shards[index].renew, held)
                 for index, held in self._group(claims).items()}
        self._lanes.run(calls, self.lease_seconds * defaults.SLOW_CALL_SHARE)

    def ping(self) -> None:
        self.shards[0].ping()

    def ack(self, claims: Sequence[Claim]) -> None:
        on_every_shard(functools.partial(self.shards[index].ack, held)
                       for index, held in self._group(claims).items())

    def forget_consumer(self) -> None:
        for queue in self.shards:
            queue.forget_consumer()

    # -- housekeeping ----------------------------------------------------------------

    def move_due(self) -> int:
        return sum(queue.move_due() for queue in self.shards)

    def reap(self, store: Records, max_lost: int = defaults.MAX_LOST_ATTEMPTS,
             gate: TakeoverGate | None = None, on_end: OnEnd | None = None) -> int:
        return sum(queue.reap(store, max_lost, gate, on_end) for queue in self.shards)

    def reissue(self, store: Records, claim: Claim, reason: str, max_lost: int = defaults.MAX_LOST_ATTEMPTS,
                what: str = "reissued", where: str = "") -> str:
        return self._of_claim(claim).reissue(store, claim, reason, max_lost, what=what, where=where)

    def trim(self) -> None:
        for queue in self.shards:
            queue.trim()

    def _group(self, claims: Sequence[Claim]) -> dict[int, list[Claim]]:
        """``claims`` by the index of their shard."""
        grouped: dict[int, list[Claim]] = {}
        for claim in claims:
            grouped.setdefault(self.shards.index(self._of_claim(claim)), []).append(claim)
        return grouped
