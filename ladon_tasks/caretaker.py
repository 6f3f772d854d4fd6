"""Every task ends, whatever process dies: the owner leases of in-process executors.

A web-server process that runs bodies in process (``executor='thread'`` or
``'process'``) with a store other processes share holds its tasks as their *owner*.
Its caretaker threads:

* one renews this process's owner lease every third of the lease (on a cluster, every
  shard at once), and nothing else, so no other call can hold a renewal up;
* the other looks, every ``reap_interval``, for owners whose lease ran out - a process
  killed with SIGKILL, a daemon recycled by mod_wsgi, a host gone - and takes their
  tasks over: each
  one is queued again under this process (the lost attempt fenced off) and run here, or
  fails with ``WorkerDied`` once its lost attempts are spent (``max_attempts`` plus
  ``MAX_LOST_ATTEMPTS``). A task whose method this process does not serve is left for a
  process that does, and fails after ``ORPHAN_GRACE`` if none comes.

So a task held in process is either finished (with a TTL), or owned by a live process,
or taken over within ``lease + reap_interval`` of its owner's death.

Two things a store that loses writes (a Sentinel failover to a replica that had not
received the last ones, a restart that lost its last second) would otherwise break:

* after the store was away, slow, or moved (a cluster's failover), every lease in it
  may have run out, live processes' too: nothing is taken over until one lease after it
  answers again, promptly and in the same place (:mod:`ladon_tasks.takeover` says the
  rule), by which time every live process has renewed;
* a task whose finish (or retry) the store lost is back to ``running`` under this very
  process, which no longer has it in hand: at each renewal the caretaker compares what
  the store says this process holds with what it has in hand, and runs the difference
  again as its next attempt (:meth:`Caretaker.take_back`).
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Callable

from ladon_tasks import defaults, hooks
from ladon_tasks.logs import about
from ladon_tasks.model import TaskRecord, TaskState
from ladon_tasks.stores.base import CorruptRecord, Ownership, StoreError, TaskStore
from ladon_tasks.takeover import TakeoverGate

log = logging.getLogger(__name__)

#: Decides for a record of a dead owner's task: ``True`` if this process can run it
#: (then it is adopted here), ``False`` if not.
CanRun = Callable[[TaskRecord], bool]
#: Hands an adopted (queued) record to this process's executor.
Resubmit = Callable[[TaskStore, TaskRecord], None]
#: Whether this process has a task in hand (queued here, running, waiting for a retry).
Holds = Callable[[str], bool]


class Caretaker:
    """Owner lease and takeovers of one process, for every shared store it uses."""

    def __init__(
        self,
        owner: str,
        can_run: CanRun,
        resubmit: Resubmit,
        holds: Holds,
        lease: float = defaults.OWNER_LEASE,
        reap_interval: float = defaults.REAP_INTERVAL,
        orphan_grace: float = defaults.ORPHAN_GRACE,
        max_lost: int = defaults.MAX_LOST_ATTEMPTS,
    ) -> None:
        if lease <= 0 or reap_interval <= 0:
            raise ValueError("lease and reap_interval must be > 0")
        self.owner = owner
        self.lease = lease
        self.reap_interval = reap_interval
        self.orphan_grace = orphan_grace
        self.max_lost = max_lost
        self._can_run = can_run
        self._resubmit = resubmit
        self._holds = holds
        self._stores: dict[int, tuple[TaskStore, Ownership, TakeoverGate]] = {}
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._taking_over = True
        self._thread: threading.Thread | None = None
        self._renewer: threading.Thread | None = None
        self._renewed: set[int] = set()  # stores renewed since their last take_back

    def watch(self, store: TaskStore) -> None:
        """Take part in ``store``'s owner leases from now on (a no-op for a store only
        this process sees). The first renewal is made here, before any task is held."""
        ownership = store.ownership()
        if ownership is None:
            return
        with self._lock:
            if id(store) in self._stores:
                return
            gate = TakeoverGate(self.lease, store.placement)
            self._stores[id(store)] = (store, ownership, gate)
        try:
            ownership.renew(self.owner, self.lease)
        except StoreError as exc:  # the thread renews it as soon as the store answers
            gate.failed()
            log.warning("owner lease of %s not renewed yet: %s", self.owner, exc)
        with self._lock:
            if self._thread is None and not self._stopping.is_set():
                self._thread = threading.Thread(target=self._loop, name="ladon-tasks-caretaker", daemon=True)
                self._thread.start()

    def _loop(self) -> None:
        """Take back what the store lost after each renewal, and take over the tasks of
        lost processes while the gate is open. Renewals run in a thread of their own
        (:meth:`_renewals`): a pass here that waits on a shard whose primary died never
        holds them up."""
        renewer = threading.Thread(target=self._renewals, name="ladon-tasks-owner-lease", daemon=True)
        renewer.start()
        self._renewer = renewer
        while not self._stopping.is_set():
            with self._lock:
                watched = list(self._stores.values())
                renewed, self._renewed = self._renewed, set()
            for store, ownership, gate in watched:
                try:
                    if self._taking_over and id(store) in renewed:
                        self.take_back(store, ownership)
                    if self._taking_over and gate.open():
                        self.take_over(store, ownership, gate)
                except StoreError as exc:
                    gate.failed()
                    log.warning("looking for tasks of lost processes: %s", exc)
            self._stopping.wait(self.reap_interval)

    def _renewals(self) -> None:
        """Renew the owner lease in every watched store every third of the lease, and
        every ``reap_interval`` in a store that did not take the last renewal."""
        renew_every = self.lease / 3
        next_renewal = 0.0
        while not self._stopping.is_set():
            now = time.monotonic()
            with self._lock:
                watched = list(self._stores.values())
            renewing = now >= next_renewal
            if renewing:
                next_renewal = now + renew_every
            for store, ownership, gate in watched:
                if (renewing or gate.away) and not self._renew(store, ownership, gate):
                    next_renewal = min(next_renewal, now + self.reap_interval)
            self._stopping.wait(min(self.reap_interval, max(0.0, next_renewal - time.monotonic())))

    def _renew(self, store: TaskStore, ownership: Ownership, gate: TakeoverGate) -> bool:
        """Renew the lease (what the store lost is taken back after it, by the other
        thread); ``False`` if the store is away."""
        try:
            with gate.timed():
                ownership.renew(self.owner, self.lease)
        except StoreError as exc:
            gate.failed()
            log.warning("owner lease of %s not renewed: %s", self.owner, exc)
            return False
        if gate.answered():
            log.info("the store answers again; taking over other processes' tasks in %gs", self.lease)
        with self._lock:
            self._renewed.add(id(store))
        return True

    def take_over(self, store: TaskStore, ownership: Ownership, gate: TakeoverGate | None = None) -> int:
        """One pass: adopt or end the tasks of owners whose lease ran out. Returns how
        many were adopted here. With ``gate``, only on a read of the expired owners it
        lets through, and while it stays open (:mod:`ladon_tasks.takeover`)."""
        adopted = 0
        ticket = gate.ticket() if gate is not None else None
        if gate is not None and ticket is None:
            return 0
        expired = ownership.expired()
        if gate is not None and ticket is not None and not gate.valid(ticket):
            return 0  # the read waited, or Redis moved while it ran: every lease looks old
        for dead, dead_for, task_ids in expired:
            if dead == self.owner:  # taken for dead while alive (a long pause): renew
                ownership.renew(self.owner, self.lease)
                continue
            for task_id in task_ids:
                if gate is not None and not gate.open():
                    return adopted
                record = store.current(task_id)
                if record is None or record.finished:
                    ownership.adopt(task_id, dead, "", self.max_lost, "")  # only forgets it
                    continue
                runnable = self._can_run(record)
                if not runnable and dead_for < self.orphan_grace:
                    continue  # a process that serves the method may come
                reason = f"the process holding it ({dead}) stopped answering"
                taken = ownership.adopt(task_id, dead, self.owner if runnable else "", self.max_lost, reason)
                if taken is not None and taken.state is TaskState.QUEUED:
                    about(log, taken).warning("taken over from %s", dead)
                    self._resubmit(store, taken)
                    adopted += 1
                elif taken is not None:
                    hooks.ended(taken)  # ended here: its lost attempts spent, or cancelled
        return adopted

    @property
    def alive(self) -> bool:
        """Its thread runs (or was never needed: no shared store watched yet)."""
        thread, renewer = self._thread, self._renewer
        return (thread is None or thread.is_alive() and (renewer is None or renewer.is_alive())
                or self._stopping.is_set())

    def take_back(self, store: TaskStore, ownership: Ownership) -> int:
        """Tasks the store says this process holds that it does not have in hand: the
        store lost the write that let them go (their finish, or their move back to
        ``queued`` for a retry). Each runs again here as its next attempt, or fails with
        ``WorkerDied`` once its lost attempts are spent - as if its attempt had been lost
        with a process. Returns how many run again."""
        taken = 0
        for task_id in ownership.held(self.owner):
            if self._holds(task_id):
                continue
            try:
                record = store.current(task_id)
            except CorruptRecord:  # reported where a client reads it; nothing to run here
                continue
            if self._holds(task_id):
                continue
            if record is None or record.finished or record.owner != self.owner:
                ownership.adopt(task_id, self.owner, "", self.max_lost, "")  # only forgets it
                continue
            if record.state is TaskState.RUNNING:
                record = self._run_again(store, record)
            if record is not None and record.state is TaskState.QUEUED:
                log.warning("task %s runs again: the store lost its outcome", task_id)
                self._resubmit(store, record)
                taken += 1
        return taken

    def _run_again(self, store: TaskStore, record: TaskRecord) -> TaskRecord | None:
        """A running attempt of this process whose outcome the store lost: the next
        attempt queued here, or - its lost attempts spent - the task failed."""
        reason = f"the store lost the outcome of attempt {record.attempts} (a failover or a restart)"
        if record.attempts >= record.max_attempts + self.max_lost:
            store.transition(
                record.task_id, TaskState.FAILED, attempt=record.attempts, owner=self.owner,
                error_type="WorkerDied", error_message=f"{reason}; it was its last", finished_at=time.time(),
            )
            return None
        return store.transition(record.task_id, TaskState.QUEUED, attempt=record.attempts, owner=self.owner,
                                 message=f"reissued: {reason}")

    def stop_taking_over(self) -> None:
        """Leaving: keep the lease alive through the grace period, adopt nothing more."""
        self._taking_over = False

    def release(self, reason: str) -> None:
        """This process leaves: hand every task it holds over at once, and stop."""
        self.stop()
        with self._lock:
            watched = list(self._stores.values())
        for _, ownership, _ in watched:
            try:
                handed = ownership.release(self.owner, self.max_lost, reason)
            except StoreError as exc:  # its lease runs out instead
                log.warning("could not hand over the tasks of %s: %s", self.owner, exc)
            else:
                if handed:
                    log.info("handed %d task(s) over to live processes", handed)

    def stop(self) -> None:
        self._stopping.set()
        for thread in (self._thread, self._renewer):
            if thread is not None and thread is not threading.current_thread():
                thread.join(timeout=5)
