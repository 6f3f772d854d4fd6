"""The one contract every task store keeps.

A store knows records and nothing about execution. Executors and the wire layer talk to
it only through :class:`TaskStore`; each backend (in process, Redis) implements these
methods so that one shared test suite (``tests/test_store_contract.py``) runs against
all of them.

Rules every backend enforces:

* a record exists before its id is handed to anyone (``create`` before returning);
* state changes follow :data:`ladon_tasks.model.TRANSITIONS`, checked atomically with
  the write; a change from a stale attempt (``attempt`` no longer current) is refused,
  so a late answer can never overwrite a newer one;
* finished records expire ``result_ttl`` seconds after they finish;
* ``report`` (progress and message) never touches the state and never blocks on
  anything slower than the backend's own write;
* ``create`` refuses a new task with :class:`StoreFull` (writing nothing) once the
  backend holds as many unfinished tasks, or bytes of records, as it is configured to;
* a record that cannot be read raises :class:`CorruptRecord` from ``get`` and is shown
  as a :class:`~ladon_tasks.model.UnreadableRecord` by ``list``: one damaged record
  never hides the others;
* ``counts`` is exact after every change (:mod:`ladon_tasks.stats`), kept in the same
  step as the change itself, and costs the same however many records there are;
* a start is recorded with where it runs (``where``), in the record's ``ran_on``;
* ``purge`` deletes finished records only; a purged task is unknown at once;
* a task's steps (:mod:`ladon_tasks.steps`) are recorded fenced like every write of an
  attempt, live as long as its record (they expire, are purged and go with
  ``result_ttl`` 0 as it does), and keep the record's ``step`` and ``steps_done`` in
  the same step; a task without steps costs nothing more.
"""

from __future__ import annotations

import abc
from typing import TYPE_CHECKING, Any, Hashable, Iterable, Sequence

from ladon_tasks import defaults
from ladon_tasks.model import TaskRecord, TaskState, new_task_id
from ladon_tasks.steps import StepRecord
from ladon_tasks.stats import QueueDepth, TaskCounts, WebProcess, WorkerInfo
from ladon_tasks.stores.queues import JobChange, JobEntry, JobQueue

if TYPE_CHECKING:
    from ladon_tasks.schedule_book import ScheduleBook


class TaskStore(abc.ABC):
    """Where task records live."""

    @abc.abstractmethod
    def create(self, record: TaskRecord, job: JobEntry | None = None,
               steps: Sequence[StepRecord] = ()) -> TaskRecord:
        """Store a new record - and with ``job``, add the job to its queue in the same
        step, so neither exists without the other; with ``steps``, the task starts with
        those steps recorded (an operator's *recover*: the succeeded steps of the task
        it re-runs), in the same step too. With an ``idempotency_key`` already known for
        the same service, method and principal, store nothing and return the existing record
        instead."""

    def new_task_id(self, service: str, method: str, idempotency_key: str = "", principal: str = "") -> str:
        """A fresh id for a new task of ``service.method``. A store that spreads tasks over
        shards (Redis Cluster) gives a task with an ``idempotency_key`` (of ``principal``)
        an id on the key's shard, so the key and its task are checked and written in one step."""
        return new_task_id()

    def queue(self, name: str, *, lease_seconds: float = defaults.LEASE_SECONDS, levels: Iterable[int] = (),
              consumer: str | None = None) -> JobQueue:
        """The job queue ``name``, kept with this store's records; a store without
        queues (the in-process one) says what it needs instead. A worker reads it under
        its id (``consumer``), holding a job ``lease_seconds`` per renewal, at the
        priorities ``levels`` its task methods can have."""
        raise ValueError("executor='queue' needs the Redis store (ladon-tasks serve --redis URL)")

    def events(self, last_id: str = "$", block: float = 1.0, count: int = 100) -> list[tuple[str, dict[str, str]]]:
        """The tasks' lifecycle events after ``last_id`` (``"$"``: only new ones;
        ``"0"``: all kept), waiting up to ``block`` seconds for the first: ``(id,
        fields)`` pairs (``ladon-tasks events``). A store only this process sees keeps
        none, and says what it needs instead."""
        raise ValueError("the event stream needs the Redis store (--redis URL)")

    @abc.abstractmethod
    def get(self, task_id: str) -> TaskRecord | None:
        """The record, or ``None`` when unknown or expired. A finished record may come
        from memory (it never changes again - unless the store loses the write), and is
        read-only: it may be the store's own object, handed to every reader uncopied
        (polls of finished tasks read it most, and an answer kept for it is known by it,
        :mod:`ladon_tasks.answers`). An unfinished record is a copy the caller may change."""

    def current(self, task_id: str) -> TaskRecord | None:
        """The record as the store holds it now, never a copy kept in memory: for the
        decisions a lost write must not mislead (reissue, retry, take-over) - a failover
        to a replica that had not received a finish puts the task back where it was."""
        return self.get(task_id)

    @abc.abstractmethod
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
    ) -> TaskRecord | None:
        """Move to ``target`` and apply ``changes`` in one atomic step (with ``job``, the
        task's job moves in the same step). ``where``: the process that runs the attempt
        (``host:pid:nonce``), recorded in ``ran_on`` when the move starts the attempt.

        Returns the new record, or ``None`` when the task is unknown, the move is not
        legal from the current state, ``attempt`` is given and the task is not
        ``running`` that very attempt (a write on behalf of an attempt is only valid
        while that attempt runs), or ``owner`` is given and the record names another
        owner (a process that was taken for dead does not start a task twice). Moving to
        ``running`` counts a new attempt.
        """

    def transition_without_record(
        self,
        task_id: str,
        target: TaskState,
        *,
        attempt: int | None = None,
        owner: str | None = None,
        job: JobChange | None = None,
        where: str | None = None,
        **changes: Any,
    ) -> bool:
        """:meth:`transition` for a caller that needs only whether the move was made, not
        the new record (a worker's finish without completion hooks): ``True`` if it was.
        A backend may then leave the record out of its answer (the Redis script sends
        none back, which the caller would decode for nothing)."""
        return self.transition(task_id, target, attempt=attempt, owner=owner, job=job, where=where,
                               **changes) is not None

    @abc.abstractmethod
    def report(
        self,
        task_id: str,
        progress: float | None = None,
        message: str | None = None,
        *,
        attempt: int | None = None,
    ) -> bool:
        """Record progress and/or message of a running attempt.

        Returns ``True`` while the attempt should go on, ``False`` once it should stop
        (cancel requested, finished, or superseded by a newer attempt)."""

    @abc.abstractmethod
    def load_steps(self, task_id: str) -> dict[str, StepRecord]:
        """The steps recorded for the task, by name (none for an unknown task); a
        stored step that cannot be read is left out, so it runs again."""

    @abc.abstractmethod
    def record_step(self, task_id: str, attempt: int, step: StepRecord) -> bool:
        """Record ``step`` (replacing the one of that name) for attempt ``attempt``, with
        the record's ``step`` and ``steps_done``, in one step; ``False``, with nothing
        written, unless that attempt runs and no cancel was asked for - the fence that
        keeps a dead or cancelled attempt's late step out."""

    def begin(self, task_id: str, attempt: int, started_at: float, where: str = "") -> bool:
        """Attempt ``attempt`` of a queued task starts now, at ``where``; ``False`` if it
        may not (the task was cancelled, finished, or a newer attempt exists). A backend
        may put the write off until the attempt has run a moment (see
        ``RedisStore.begin``); until then a transition or report fenced by that attempt
        counts it as running."""
        return self.transition(task_id, TaskState.RUNNING, where=where or None, message="",
                               started_at=started_at) is not None

    #: Whether :meth:`take_slot` works here (not on Redis Cluster: a key's holders'
    #: records live on other shards than its slot set, out of one script's reach).
    keeps_slots = False

    def take_slot(self, key: str, limit: int, task_id: str, attempt: int | None = None) -> bool:
        """One task per key: take a place in ``key``'s slot set for ``attempt`` of
        ``task_id`` (``None``: the attempt after the record's last), atomically, if fewer
        than ``limit`` other tasks hold one; ``False`` when the key is full. A holder
        keeps its place while its attempt is running (or queued just before it), so a
        place is freed by the very write that ends, retries or reissues that attempt."""
        raise StoreError(f"{type(self).__name__} does not keep concurrency_key slots")

    def take_rate(self, key: str, interval: float, tolerance: float) -> float:
        """A rate limit: whether a begin of ``key`` may go ahead now, its begins spaced
        ``interval`` seconds apart (a begin may come up to ``tolerance`` seconds before
        its turn), atomically across every process sharing the store: ``0.0`` when it may
        (and it counts), else the seconds until it may (and nothing counts)."""
        raise StoreError(f"{type(self).__name__} does not keep rate limits")

    @abc.abstractmethod
    def request_cancel(self, task_id: str) -> TaskRecord | None:
        """Flag the task for cancel; a queued task is cancelled at once."""

    @abc.abstractmethod
    def wait(self, task_id: str, timeout: float) -> TaskRecord | None:
        """Return as soon as the task is finished or ``timeout`` seconds have passed."""

    @abc.abstractmethod
    def list_tasks(
        self,
        *,
        states: Iterable[TaskState] | None = None,
        method: str | None = None,
        limit: int = 100,
        offset: int = 0,
        tag: str | None = None,
        id_prefix: str | None = None,
        principal: str | None = None,
    ) -> list[TaskRecord]:
        """Newest first, filtered by state, method name, a tag the task has, the start
        of its id and who started it (``principal``: ``""`` for tasks started without
        one). A filter costs what it has to look at, not what it finds."""

    @abc.abstractmethod
    def counts(self) -> TaskCounts:
        """How many tasks per method and state, and how long they ran (exact)."""

    @abc.abstractmethod
    def purge(self, states: Iterable[TaskState], method: str | None = None, dry_run: bool = False) -> int:
        """Delete the finished records in ``states`` (of ``method``, or of every method);
        unfinished states are ignored. Returns how many were (or, with ``dry_run``, would
        be) deleted. Counts stay: they are totals."""

    def ping(self) -> None:
        """Raise :class:`StoreError` unless the backend answers now (cheap)."""

    def ownership(self) -> "Ownership | None":
        """Owner leases, for a store that several processes share; ``None`` for a store
        only this process sees (nobody else could take its tasks over)."""
        return None

    @property
    def shared(self) -> bool:
        """Whether other processes see this store's tasks (a server of several
        processes, a dashboard of its own need one): a shared store keeps owner leases."""
        return self.ownership() is not None

    def schedule_book(self) -> "ScheduleBook":
        """Where the periodic tasks' state lives (:mod:`ladon_tasks.schedule_book`):
        in this process's memory unless the store is shared."""
        book = self.__dict__.get("_schedule_book")
        if book is None:
            from ladon_tasks.schedule_book import MemoryScheduleBook

            book = self.__dict__["_schedule_book"] = MemoryScheduleBook()
        return book

    def fleet(self) -> "Fleet | None":
        """The queues and workers of a store that workers share; ``None`` when bodies run
        only in the processes that start them."""
        return None

    def placement(self) -> Hashable:
        """Where the store's data is served from now, as this process last learned it,
        without a round trip: it changes when a failover moves it (a Redis Cluster shard
        to its promoted replica), which makes every lease in it look old for a moment
        (:mod:`ladon_tasks.takeover`). ``None`` where nothing moves, or a move shows as
        an error."""
        return None

    def serve_worker(self) -> None:
        """This store serves a worker's slots: the records it writes are read back
        elsewhere (by the processes that wait for them), not here. A store that keeps
        finished records at hand for this process's readers stops keeping those it
        writes."""

    def close(self) -> None:
        """Release connections and threads; the store is not used afterwards."""


class Ownership(abc.ABC):
    """Which live process holds the tasks that run in process, in a shared store.

    Every process that runs bodies in process renews its lease (:meth:`renew`) well
    within ``lease`` seconds; any live process looks for owners whose lease ran out
    (:meth:`expired`) and takes their tasks over (:meth:`adopt`), one atomic step each.
    A process that leaves cleanly hands its tasks over at once (:meth:`release`). A live
    process compares what the store says it holds (:meth:`held`) with what it has in
    hand, so that a task whose finish the store lost does not stay running for ever."""

    @abc.abstractmethod
    def renew(self, owner: str, lease: float) -> None:
        """``owner`` is alive for ``lease`` more seconds."""

    @abc.abstractmethod
    def expired(self, owners: int = 10, tasks: int = 100) -> list[tuple[str, float, list[str]]]:
        """Up to ``owners`` owners whose lease ran out: (owner, seconds since, task ids)."""

    @abc.abstractmethod
    def adopt(self, task_id: str, dead: str, new: str, max_lost: int, reason: str) -> TaskRecord | None:
        """Queue the dead owner's task again under ``new`` (``""``: no live process can run
        it, so it fails), unless its lost attempts are spent (it fails). ``None`` when it
        was gone, finished or adopted already."""

    @abc.abstractmethod
    def held(self, owner: str) -> list[str]:
        """The ids of the tasks the store says ``owner`` holds."""

    @abc.abstractmethod
    def release(self, owner: str, max_lost: int, reason: str) -> int:
        """``owner`` leaves: its running tasks go back to ``queued`` (or fail, their lost
        attempts spent) and its lease ends now. Returns how many were handed over."""


class Fleet(abc.ABC):
    """What runs the tasks of a shared store: its queues and the workers serving them."""

    @abc.abstractmethod
    def queues(self) -> list[QueueDepth]:
        """Every queue a job was ever made for, with its depths now."""

    @abc.abstractmethod
    def workers(self) -> tuple[list[WorkerInfo], list[WebProcess]]:
        """The workers whose heartbeat is live, and the web processes whose owner lease is."""

    @abc.abstractmethod
    def beat(self, info: WorkerInfo, ttl: float) -> None:
        """``info``'s worker is alive for ``ttl`` more seconds (``0``: it leaves now)."""


class StoreError(Exception):
    """The backend could not be reached or answered wrongly; the wire shows it as the
    ``StoreUnavailable`` fault and the server keeps serving."""


class StoreFull(StoreError):
    """The store holds as many unfinished tasks (or bytes of records) as it may take:
    nothing was recorded. Raised by ``create`` only, before anything is written; the
    wire shows it as the ``ServerBusy`` fault, which a client backs off on."""


class CorruptRecord(StoreError):
    """One task's stored record cannot be read (bytes that are not UTF-8, not JSON, a
    field of the wrong type). Only that task is affected; the wire shows it as the
    ``CorruptTask`` fault, and listings show a stand-in
    (:class:`~ladon_tasks.model.UnreadableRecord`) in its place."""

    def __init__(self, task_id: str, problem: str) -> None:
        super().__init__(f"the record of task {task_id or '(unknown id)'} cannot be read: {problem}")
        self.task_id = task_id
        self.problem = problem
