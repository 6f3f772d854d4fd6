"""When a process may judge the leases of others run out - and take over their work: only
once it has seen Redis answer promptly, in the same place, for one full lease.

Leases live in Redis and run by its clock. While Redis (or, on a Redis Cluster, one of
its shards) does not answer - a Sentinel failover, a restart, a dead primary whose replica
the cluster has not promoted yet - no process can renew its leases there, so when it
answers again every lease may have run out, those of live processes too. A process that
judged them at once would take the tasks of processes that are merely reconnecting, and
run them a second time. A cluster's failover does not always show as an error: its client
waits and retries until the replica is promoted, and the call then succeeds.

**The rule.** A process (the *judge*) takes a lease for run out - a worker's reaper
reissuing a job, a caretaker taking over a web process's tasks - only when

1. its :class:`TakeoverGate` is open: for one full lease up to now every call it made
   to Redis answered, none took longer than ``SLOW_CALL_SHARE`` of a
   lease, and no shard moved to another node (a failover: its cluster client's slot
   map names another node for a shard than it did before); and
2. the read on which it judges (the expired owners, the idle job entries and the claim
   of them) itself took no longer than that, and nothing of 1 changed while it ran: a
   read that waited across a failover may have run on the new primary, where every
   lease looks old. Entries such a read claimed are put back with their holders.

And every *holder* renews its leases every third of a lease, each shard in a call of its
own that no other shard's waits for, and renews again within a reaper interval after a
renewal failed or ran late.

**Why no live process's task is taken.** A live holder's lease on a shard runs out only
if the shard did not take its renewals for two thirds of a lease: the shard was away.
The judge sees it go away - its own calls to that shard (owner leases are renewed on
every shard; a reaper reads every shard every pass) fail or hang - and, for a cluster
failover, sees it for certain when it learns the promoted replica's address, which its
client must learn before any call of it reaches the shard again, so no earlier than the
promotion. From then on it judges nothing for one lease; the holder, whose renewal of
that shard is retried within a reaper interval of the shard answering, has renewed long
before. A process counts every shard: a holder's renewals on a healthy shard can be
held up by its client's handling of the dead one (a slot-map refresh, connects to a dead
host), which cannot be seen from the healthy shard, so a failover anywhere holds
takeovers everywhere back for one lease.

**Limits.** The judge and the holder must see the same Redis: a partition that cuts
the holder off while the judge still reaches Redis looks like a frozen holder, and its
tasks are taken over after its lease (its late writes are refused by the attempt
fence). A holder frozen longer than its lease is taken for dead, as before. An outage
that ends before the judge makes a call to it, on the same node (a restart, not a
failover), is not seen; it is shorter than the judge's calls are apart (a reaper pass,
a third of a lease), which a lease of a second or more outlasts. A promoted replica
whose clock runs ahead of its primary's shortens the leases on its shards by as much.
A process that starts during a failover, or within a lease after it, has watched
nothing and judges at once (as it must to take over the tasks a stopping process just
handed over, whose lease ends the moment it leaves). What the judge then does is
separate calls: a task whose owner was judged gone while
Redis answered is adopted even if a failover comes between the judgement and the
adoption. The cost: a dead process's work waits one lease more after any failover,
and a busy host whose calls take a sixth of a lease delays takeovers the same way.
"""

from __future__ import annotations

import contextlib
import threading
import time
from dataclasses import dataclass
from typing import Callable, Hashable, Iterator

from ladon_tasks import defaults

#: Where a store's data is served from now (:meth:`~ladon_tasks.stores.base.TaskStore.placement`).
Placement = Callable[[], Hashable]


@dataclass(frozen=True)
class Ticket:
    """Leave to judge, taken right before a judging read (:meth:`TakeoverGate.ticket`)."""

    generation: int
    started: float


class TakeoverGate:
    """One process's view of one store: reachable or not, disturbed when, and so whether
    it may judge leases now.

    ``lease``: the longest lease of the work it may take over, in seconds;
    ``placement``: where the store is served from (a cluster's node per shard), read
    without a round trip; a change is a failover."""

    def __init__(self, lease: float, placement: Placement | None = None) -> None:
        if lease <= 0:
            raise ValueError("lease must be > 0")
        self.lease = lease
        #: Seconds a call may take before it counts as held up.
        self.slow = lease * defaults.SLOW_CALL_SHARE
        self._placement = placement
        self._seen = placement() if placement is not None else None
        self._away = False
        self._generation = 0  # counts the disturbances: a ticket of an older one is void
        self._open_at = 0.0
        self._lock = threading.Lock()

    def failed(self) -> None:
        """A call to the store failed: it is away."""
        with self._lock:
            self._away = True
            self._generation += 1

    def answered(self) -> bool:
        """A call to the store succeeded; ``True`` if it had been away (the caller
        renews its own leases now, if it did not just do so)."""
        with self._lock:
            if not self._away:
                return False
            self._away = False
            self._open_at = max(self._open_at, time.monotonic() + self.lease)
            return True

    def disturbed(self) -> None:
        """The store answered, but late, or from elsewhere: judge nothing for one lease."""
        with self._lock:
            self._disturbed()

    def _disturbed(self) -> None:
        self._generation += 1
        self._open_at = max(self._open_at, time.monotonic() + self.lease)

    @contextlib.contextmanager
    def timed(self) -> Iterator[None]:
        """Around a renewal: one that took longer than :attr:`slow` disturbs the gate
        (errors pass through: the caller says :meth:`failed`)."""
        started = time.monotonic()
        yield
        if time.monotonic() - started > self.slow:
            self.disturbed()

    @property
    def away(self) -> bool:
        with self._lock:
            return self._away

    def _look(self) -> None:
        """A shard that moved to another node since the last look: a failover."""
        if self._placement is None:
            return
        now = self._placement()
        if now != self._seen:
            self._seen = now
            self._disturbed()

    def open(self) -> bool:
        """Whether judging leases is allowed now."""
        with self._lock:
            self._look()
            return not self._away and time.monotonic() >= self._open_at

    def ticket(self) -> Ticket | None:
        """Leave to judge on the read about to be made; ``None`` while the gate is shut."""
        with self._lock:
            self._look()
            if self._away or time.monotonic() < self._open_at:
                return None
            return Ticket(self._generation, time.monotonic())

    def valid(self, ticket: Ticket) -> bool:
        """Whether a read made under ``ticket`` may be judged on: prompt, and nothing
        disturbed the store while it ran. A late read disturbs the gate itself."""
        with self._lock:
            self._look()
            if time.monotonic() - ticket.started > self.slow:
                self._disturbed()
            return ticket.generation == self._generation and not self._away
