"""What a worker does with a job queue: the contract between
:mod:`ladon_tasks.worker` and a backend's queue, and the jobs and job changes a store
that keeps queues takes with its records.

A store that keeps queues (``TaskStore.queue``) gives out queues that web processes add
jobs to (:class:`JobQueue`) and that workers read, renew, acknowledge, hand back and
reap through the members named here - of one Redis or of every shard of a Redis
Cluster alike. The worker knows nothing else of a queue.

The store's contract (:mod:`ladon_tasks.stores.base`) names what is here - it hands
out queues, and takes a :class:`JobEntry` with a new record and a :class:`JobChange`
with a record's change - and nothing here names the store: a reaper writes through
the two calls of :class:`Records`, which every ``TaskStore`` has.

A read job comes as a *claim*: the backend's own note of where the job's entry is (to
renew and acknowledge it), carrying the job. Each backend has its own claim type; a
queue is generic in it, so a claim goes back only to the kind of queue that made it.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Protocol, Sequence, TypeVar

from ladon_tasks.jobs import Job
from ladon_tasks.model import TaskRecord, TaskState

if TYPE_CHECKING:
    from ladon_tasks.takeover import TakeoverGate

#: Called with the record of a task a reaper found ended (the completion hooks).
OnEnd = Callable[[TaskRecord], None]


@dataclass(frozen=True)
class JobEntry:
    """A job for a queue: which queue, at which priority, and what (the job's JSON). Made
    by a :class:`JobQueue`; a store that keeps queues adds it in the same step as the
    record (``create(record, job=...)``), in a place it names itself."""

    queue: str
    priority: int
    payload: str


@dataclass(frozen=True)
class JobReceipt:
    """A job a worker read, as its queue knows it: the queue, the priority it was read
    at, and ``entry``, the id the queue gave that read (opaque to all but the queue)."""

    queue: str
    priority: int
    entry: str


@dataclass(frozen=True)
class JobRead:
    """A worker's slot asks for its next job with its finish (one store call instead of
    a finish and a read): up to ``count`` entries of queue ``queue`` for ``consumer``,
    its ``priorities`` asked highest first. What the store read lands in ``handed``, raw
    (the queue decodes it), leased to ``consumer`` from that moment as any read is."""

    queue: str
    priorities: tuple[int, ...]
    consumer: str
    count: int = 1
    handed: list[Any] = field(default_factory=list, compare=False)


@dataclass(frozen=True)
class JobChange:
    """What happens to a task's queued job in the same atomic step as a change of its
    record. Only a store that holds queues too (the Redis backend) accepts one; it is how
    a worker finishes, retries or hands back a task without a moment in which the record
    and the job disagree.

    ``release``: the read a worker holds, acknowledged whatever the answer; ``enqueue``:
    a job added when the change is made; ``delay``: (a job, its due time in seconds),
    waiting until then, added when the change is made; ``read``: the next jobs of the
    slot that held ``release``, read whatever the answer (a store that cannot read them
    with the change leaves ``read.handed`` empty).
    """

    release: JobReceipt | None = None
    enqueue: JobEntry | None = None
    delay: tuple[JobEntry, float] | None = None
    read: JobRead | None = None


class Records(Protocol):
    """What a queue's reaper needs of the store whose tasks its jobs carry (every
    :class:`~ladon_tasks.stores.base.TaskStore` has both): the record as stored now,
    and the move that queues the next attempt, or ends the task, with the job's change
    in the same step."""

    def current(self, task_id: str) -> TaskRecord | None: ...

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
    ) -> TaskRecord | None: ...


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

    def reap(self, store: Records, *, gate: TakeoverGate | None = None, on_end: OnEnd | None = None) -> int:
        """Queue again the jobs of workers whose leases ran out; how many."""
        ...

    def reissue(self, store: Records, claim: ClaimT, reason: str, *, what: str = "reissued",
                where: str = "") -> str:
        """The attempt ``claim`` holds will not finish where it ran: queue the next one
        (or end the task), ``claim`` acknowledged in the same step."""
        ...

    def trim(self) -> None:
        """Drop acknowledged entries."""
        ...


class JobQueue(WorkerQueue[Any], abc.ABC):
    """A named queue of jobs kept with the task records (``TaskStore.queue``): web
    processes add to it (:meth:`entry`), workers read it through the members of
    :class:`WorkerQueue`."""

    @abc.abstractmethod
    def entry(self, priority: int, payload: str) -> JobEntry:
        """A job of this queue at ``priority``, with ``payload`` (the job's JSON)."""
