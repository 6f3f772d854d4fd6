"""Slots: a fixed number of threads, each taking one job at a time from a source and
running its body through a runner. Every place bodies run is this pool, with its two
parts chosen:

* a **source** hands out jobs, each as a :class:`Ticket` that knows how the job's
  attempt begins and ends: jobs started in this process
  (:class:`~ladon_tasks.executors.local.LocalSource`, a priority queue in memory), or
  entries of the Redis queue (:class:`~ladon_tasks.worker.QueueSource`, leased per entry
  to a worker on any host);
* a **runner** runs a body: in the slot's own thread
  (:class:`~ladon_tasks.executors.thread.ThreadRunner`), or in a child process the slot
  supervises (:class:`~ladon_tasks.executors.process.ProcessRunner`).

What a slot does with one job is the same whatever the parts: begin the attempt (as the
ticket says), start the timeout when the body starts - not when the slot takes the job,
so a child's start-up is never the body's time -, run it, and settle the outcome with
the job's move in the same store call, kept and written again while the store is away.
"""

from __future__ import annotations

import abc
import logging
import threading
import time
from dataclasses import dataclass
from typing import Callable, Generic, TypeVar

from ladon_tasks import crashpoints, defaults, hooks
from ladon_tasks.executors.base import time_out
from ladon_tasks.executors.settle import Settled, settle_durably
from ladon_tasks.executors.timers import Timers
from ladon_tasks.jobs import Job, Outcome
from ladon_tasks.logs import about
from ladon_tasks.model import TaskRecord
from ladon_tasks.stores.base import StoreError, TaskStore
from ladon_tasks.stores.queues import JobChange

log = logging.getLogger(__name__)

_Answer = TypeVar("_Answer")


class Ticket(abc.ABC):
    """One job a slot took from its source, and what the source must hear about it."""

    job: Job
    #: The attempt's number once it began (set by the slot).
    attempt: int | None = None

    @abc.abstractmethod
    def begin(self, store: TaskStore) -> int | None:
        """Start the attempt; its number, or ``None`` if it may not run (cancelled,
        finished, or no longer this process's). May raise ``StoreError``."""

    def slot_attempt(self) -> int | None:
        """The attempt a place of the job's key is taken for (``None``: the one after
        the record's last)."""
        return None

    def wait_for_slot(self, delay: float) -> None:
        """Every place of the job's key is held, or its method's rate allows no begin
        yet: the job waits queued, as the same attempt, and its start is tried again in
        ``delay`` seconds."""

    def release(self) -> JobChange | None:
        """What happens to the job when its outcome is written (a worker acknowledges
        its entry in the same call)."""
        return None

    def retry(self, delay: float) -> JobChange | None:
        """What happens to the job when the task goes back to ``queued`` for a retry."""
        return None

    def touch(self) -> None:
        """The body asked for more time: renew the lease, where there is one."""

    def end(self, settled: Settled | None) -> None:
        """The attempt is over (``None``: its outcome could not be written). Release what
        the source holds for it."""


TicketT = TypeVar("TicketT", bound=Ticket)


class JobSource(abc.ABC, Generic[TicketT]):
    """Where slots take jobs from, each as a ticket of the source's own kind."""

    @abc.abstractmethod
    def take(self, slot: int) -> TicketT | None:
        """Block until there is a job for ``slot``; ``None`` tells the slot to leave."""

    @abc.abstractmethod
    def close(self) -> None:
        """From now on every ``take`` returns ``None`` (jobs not taken stay where they are)."""


@dataclass
class Attempt:
    """One attempt a runner runs: its job, its number, where it reports, and the hooks
    of the slot that runs it."""

    job: Job
    number: int
    store: TaskStore
    started: Callable[[], None]  # the body begins: the timeout counts from here
    touch: Callable[[], None]  # the body asks for more time


class Runner(abc.ABC):
    """Runs bodies for the slots of one pool."""

    name = "runner"

    @abc.abstractmethod
    def run(self, slot: int, attempt: Attempt) -> Outcome:
        """Run one attempt in or for ``slot`` and return how it ended; never raises."""

    def stop(self, slot: int, task_id: str) -> None:
        """The record says the attempt in ``slot`` is over (timeout, cancel, handed
        back): stop its body if the runner can."""

    def cancel(self, task_id: str) -> None:
        """Stop the body of ``task_id`` wherever it runs here, if the runner can."""

    def kill(self, slot: int) -> None:
        """The attempt in ``slot`` is given up on (its process leaves without waiting
        for it): stop its body at once where the runner can (a child is killed)."""

    def leave(self, slot: int) -> None:
        """The slot's thread is leaving: release what it holds (a child process)."""


class SlotPool(Generic[TicketT]):
    """``size`` slot threads over one source and one runner. Slots start on first use
    (:meth:`ensure_started`) so importing a service costs nothing, or at once
    (:meth:`start`)."""

    def __init__(self, name: str, store: TaskStore, source: JobSource[TicketT], runner: Runner, size: int,
                 timers: Timers) -> None:
        if size < 1:
            raise ValueError(f"{name} needs at least 1 slot, got {size}")
        self.name = name
        self.store = store
        self.source = source
        self.runner = runner
        self.size = size
        self.timers = timers
        #: Set when the pool gives up on outcomes the store would not take (leaving).
        self.give_up = threading.Event()
        self._threads: list[threading.Thread] = []
        self._running: dict[int, TicketT] = {}
        self._lock = threading.Lock()
        self._closed = False

    def start(self) -> None:
        for _ in range(self.size):
            self.ensure_started()

    def ensure_started(self) -> None:
        with self._lock:
            if len(self._threads) >= self.size or self._closed:
                return
            slot = len(self._threads)
            thread = threading.Thread(target=self._slot_loop, args=(slot,), name=f"ladon-tasks-{self.name}-{slot}",
                                      daemon=True)
            self._threads.append(thread)
        thread.start()

    def dead_slots(self) -> int:
        """Slot threads that stopped while the pool was open (none should)."""
        with self._lock:
            return 0 if self._closed else sum(1 for thread in self._threads if not thread.is_alive())

    def running(self) -> dict[int, TicketT]:
        """The tickets slots hold now, by slot."""
        with self._lock:
            return dict(self._running)

    def cancel(self, task_id: str) -> None:
        self.runner.cancel(task_id)

    def join(self) -> None:
        """Wait until every slot has left (its source told it to)."""
        with self._lock:
            threads = list(self._threads)
        for thread in threads:
            thread.join()

    def join_idle(self, timeout: float) -> None:
        """After :meth:`close`: wait up to ``timeout`` for the slots that run nothing to
        leave (one may still be inside a blocking read of its source)."""
        deadline = time.monotonic() + timeout
        with self._lock:
            threads = list(enumerate(self._threads))
        for slot, thread in threads:
            if slot not in self.running():
                thread.join(max(0.0, deadline - time.monotonic()))

    def close(self, grace: float) -> dict[int, TicketT]:
        """Take no more jobs, let running bodies finish for ``grace`` seconds, then give
        up on them: returns the tickets still running, by slot, for the caller to hand
        back. Their bodies are stopped where the runner can."""
        with self._lock:
            self._closed = True
            threads = list(self._threads)
        self.source.close()
        deadline = time.monotonic() + max(0.0, grace)
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        self.give_up.set()
        return self.running()

    # -- one slot ------------------------------------------------------------------

    def _slot_loop(self, slot: int) -> None:
        try:
            while True:
                ticket = self.source.take(slot)
                if ticket is None:
                    return
                with self._lock:
                    self._running[slot] = ticket
                try:
                    self._run(slot, ticket)
                except Exception:  # keep the slot alive whatever one job does
                    about(log, ticket.job).exception("%s slot %d failed on it", self.name, slot)
                finally:
                    with self._lock:
                        self._running.pop(slot, None)
        finally:
            self.runner.leave(slot)

    def _run(self, slot: int, ticket: Ticket) -> None:
        job = ticket.job
        if job.slot_limit and not self._take_slot(ticket):
            return
        if job.rate_interval and not self._take_rate(ticket):
            return
        number = self._begin(ticket)
        if number is None:
            ticket.end(None)
            return
        ticket.attempt = number
        timer: list[int] = []
        ended: list[TaskRecord] = []  # an end written for the attempt while it ran (its timeout)

        def started() -> None:
            if job.timeout and not timer:
                timer.append(self.timers.call_later(job.timeout, lambda: self._time_out(slot, job, number, ended)))

        try:
            outcome = self.runner.run(slot, Attempt(job, number, self.store, started, ticket.touch))
        finally:
            for handle in timer:
                self.timers.cancel(handle)
        crashpoints.reach("slot.finished")
        # a job whose method has hooks is acknowledged after they ran (ticket.end), so a
        # worker that dies before leaves them to the reaper
        hooked = hooks.declared(job.ref.service, job.ref.method)
        release = None if hooked else ticket.release()
        settled = settle_durably(
            self.store, job, number, outcome, self.give_up, release=release, retry_change=ticket.retry,
            keep_record=hooked,  # only hooks read the final record
        )
        crashpoints.reach("slot.settled")
        for record in ended + ([settled.record] if settled is not None and settled.record is not None else []):
            hooks.ended(record)
        ticket.end(settled)

    def _take_slot(self, ticket: Ticket) -> bool:
        """One task per key: a place for the attempt, else the job waits (queued, not
        counted as an attempt) and its start is tried again in ``SLOT_RETRY``. Tried
        again while the store is away, as :meth:`_begin` is."""
        job = ticket.job

        def take() -> bool:
            if self.store.take_slot(job.slot_key, job.slot_limit, job.task_id, ticket.slot_attempt()):
                return True
            ticket.wait_for_slot(defaults.SLOT_RETRY)
            return False

        answered, taken = self._ask_store(job, take)
        if not answered:
            ticket.end(None)
        return bool(taken)

    def _take_rate(self, ticket: Ticket) -> bool:
        """A rate limit: the begin goes ahead when the store says its turn came. Over the
        rate, a short wait (``RATE_HOLD``) is waited here, for exactly the time the store
        answered, and asked again; a longer one waits queued (not counted as an attempt)
        and is tried again then. Tried again while the store is away, as :meth:`_begin` is."""
        job = ticket.job
        tolerance = job.rate_interval * defaults.RATE_TOLERANCE

        def take() -> float:
            wait = self.store.take_rate(job.rate_key, job.rate_interval, tolerance)
            if wait > defaults.RATE_HOLD:
                ticket.wait_for_slot(wait)
            return wait

        while True:
            answered, wait = self._ask_store(job, take)
            if not answered or (0 < wait <= defaults.RATE_HOLD and self.give_up.wait(wait)):
                ticket.end(None)
                return False
            if wait <= 0:
                return True
            if wait > defaults.RATE_HOLD:
                return False

    def _begin(self, ticket: Ticket) -> int | None:
        """The ticket's begin, tried again while the store is away (the job stays this
        slot's; if the process leaves meanwhile, its owner lease lets it run elsewhere)."""
        answered, number = self._ask_store(ticket.job, lambda: ticket.begin(self.store))
        return number if answered else None

    def _ask_store(self, job: Job, ask: Callable[[], _Answer]) -> tuple[bool, _Answer]:
        """``ask()``, tried again with a growing pause while the store is away: ``(True,
        its answer)``, or ``(False, None)`` once the pool gives up (leaving)."""
        backoff = 0.05
        while True:
            try:
                return True, ask()
            except StoreError as exc:
                about(log, job).warning("cannot start yet: %s", exc)
            if self.give_up.wait(backoff):
                return False, None  # type: ignore[return-value]
            backoff = min(backoff * 2, 1.0)

    def _time_out(self, slot: int, job: Job, number: int, ended: list[TaskRecord]) -> None:
        try:
            record = time_out(self.store, job, number)
            if record is not None:
                ended.append(record)  # its hook runs in the slot once the body stopped: timers stay short
                self.runner.stop(slot, job.task_id)
        except StoreError as exc:  # tried again in a moment: the limit still holds
            about(log, job).warning("timeout not recorded yet: %s", exc)
            self.timers.call_later(0.5, lambda: self._time_out(slot, job, number, ended))
