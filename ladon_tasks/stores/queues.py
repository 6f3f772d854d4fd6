"""What a worker does with a job queue: the contract between
:mod:`ladon_tasks.worker` and a backend's queue.

A store that keeps queues (``TaskStore.queue``) gives out queues that web processes add
jobs to (:class:`~ladon_tasks.stores.base.JobQueue`) and that workers read, renew,
acknowledge, hand back and reap through the members named here - of one Redis or of
every shard of a Redis Cluster alike. The worker knows nothing else of a queue.

A read job comes as a *claim*: the backend's own note of where the job's entry is (to
renew and acknowledge it), carrying the job. Each backend has its own claim type; a
queue is generic in it, so a claim goes back only to the kind of queue that made it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Protocol, Sequence, TypeVar

from ladon_tasks.jobs import Job
from ladon_tasks.model import TaskRecord

if TYPE_CHECKING:
    from ladon_tasks.stores.base import JobChange, TaskStore
    from ladon_tasks.takeover import TakeoverGate

#: Called with the record of a task a reaper found ended (the completion hooks).
OnEnd = Callable[[TaskRecord], None]


class Claimed(Protocol):
    """A job a worker read, as its queue notes it."""

    @property
    def job(self) -> Job: ...


ClaimT = TypeVar("ClaimT", bound=Claimed)


class WorkerQueue(Protocol[ClaimT]):
    """One named queue as a worker reads it. Every call that reaches the backend raises
    :class:`~ladon_tasks.stores.base.StoreError` when it cannot be reached."""

    name: str
    #: How long a claim stays this worker's without a renewal, in seconds.
    lease_seconds: float

    def claim(self, block: float, above: int | None = None, count: int = 1) -> list[ClaimT]:
        """Up to ``count`` jobs waiting now, highest priority first; none waiting, wait up
        to ``block`` seconds for one (``block`` <= 0: no wait). ``above``: only jobs of a
        higher priority, no wait. Reading leases them to this worker, so a worker asks
        for no more than its idle slots start at once. Rarely, when several priorities
        answer one wait together, more than ``count`` come back."""
        ...

    def claimable(self) -> bool:
        """Whether a job waits that no worker has read yet."""
        ...

    def requeue(self, job: Job, claim: ClaimT | None = None) -> None:
        """Queue ``job`` again as the attempt it carries, ``claim`` acknowledged with it."""
        ...

    def requeue_later(self, claim: ClaimT, delay: float) -> None:
        """The job waits ``delay`` seconds, as the same attempt, then is queued again."""
        ...

    def release(self, claim: ClaimT) -> JobChange:
        """The change that acknowledges ``claim`` with the outcome's write."""
        ...

    def release_reading(self, claim: ClaimT, count: int = 1) -> tuple[JobChange, Callable[[], list[ClaimT]]]:
        """:meth:`release`, with up to ``count`` next jobs read in the same step where the
        backend can (a finished slot's next read saved); and what gives the jobs read,
        once the change is written (none where the backend cannot)."""
        ...

    def retry_later(self, claim: ClaimT, delay: float) -> JobChange:
        """The change that acknowledges ``claim`` and queues the next attempt in ``delay`` s."""
        ...

    def renew(self, claims: Sequence[ClaimT]) -> None:
        """Restart the leases of ``claims``."""
        ...

    def ping(self) -> None:
        """One round trip to the backend."""
        ...

    def ack(self, claims: Sequence[ClaimT]) -> None:
        """Acknowledge ``claims``: their jobs are done with."""
        ...

    def forget_consumer(self) -> None:
        """The worker leaves: drop its name where it holds nothing any more."""
        ...

    def move_due(self) -> int:
        """Queue the retries and delayed starts whose time came; how many."""
        ...

    def reap(self, store: TaskStore, *, gate: TakeoverGate | None = None, on_end: OnEnd | None = None) -> int:
        """Queue again the jobs of workers whose leases ran out; how many."""
        ...

    def reissue(self, store: TaskStore, claim: ClaimT, reason: str, *, what: str = "reissued",
                where: str = "") -> str:
        """The attempt ``claim`` holds will not finish where it ran: queue the next one
        (or end the task), ``claim`` acknowledged in the same step."""
        ...

    def trim(self) -> None:
        """Drop acknowledged entries."""
        ...
