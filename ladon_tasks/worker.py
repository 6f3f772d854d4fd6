"""``ladon-tasks worker``: runs the bodies of ``executor='queue'`` tasks, on any host.

A worker is a :class:`~ladon_tasks.executors.slots.SlotPool` whose source is the Redis
queue (:class:`QueueSource`) and whose runner is a supervised child process per slot
(timeouts and cancels enforced by killing it) or, with ``--threads``, the slot's thread
(lower latency, cooperative stops). Around that:

* idle slots read together (``XREADGROUP ... COUNT`` the slots idle at that moment,
  never more; blocking on Redis, never sleep-and-poll: see :class:`QueueSource`), and a
  slot that finishes reads its next job in the same store call as its finish; the job
  carries its attempt number, and the start is recorded only if the body runs a moment
  (:meth:`RedisStore.begin`);
* the outcome is written and the entry acknowledged in one script; while Redis is away
  the outcome is kept and written when it is back;
* a heartbeat renews the lease of every entry the worker holds every third of the
  lease, and a body's ``kw['touch']()`` renews its own at once;
* a reaper pass every ``reap_interval`` takes over the entries of workers whose leases
  ran out (SIGKILL, power loss) and queues them again as the next attempt, and moves due
  retries to their streams; any worker may do it, ``XCLAIM``'s minimum idle time makes
  each expired lease go to one of them; after Redis was away (a failover, a restart) it
  waits one lease, so live workers renew first;
* SIGTERM/SIGINT: stop claiming, let running bodies finish for ``grace`` seconds, then
  hand their tasks back to the queue - next attempt queued and old entry acknowledged
  in one step - and kill what still runs;
* it announces itself (:mod:`ladon_tasks.redis.fleet`): host, pid, queues, concurrency,
  version, start, the tasks it runs now - renewed every ``heartbeat`` seconds, and gone
  ``3 * heartbeat`` after the last renewal (a worker killed with SIGKILL) or at once
  when it stops cleanly. Its id (``host:pid:nonce``) is the consumer name it reads the
  streams under and what the records' ``ran_on`` say.

A worker's child processes die with it, even when it is killed with SIGKILL.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from typing import Callable, Generic, Sequence

from ladon_tasks import __version__, crashpoints, defaults, hooks
from ladon_tasks.executors.process import ProcessRunner
from ladon_tasks.executors.settle import Settled
from ladon_tasks.executors.slots import JobSource, Runner, SlotPool, Ticket
from ladon_tasks.executors.thread import ThreadRunner
from ladon_tasks.executors.timers import Timers
from ladon_tasks.logs import about
from ladon_tasks.model import new_owner_id
from ladon_tasks.stats import WorkerInfo
from ladon_tasks.stop_signals import stop_on_signals
from ladon_tasks.stores.base import StoreError, TaskStore
from ladon_tasks.stores.queues import ClaimT, JobChange, WorkerQueue
from ladon_tasks.takeover import TakeoverGate

log = logging.getLogger(__name__)

class QueueTicket(Ticket, Generic[ClaimT]):
    """One entry a worker read: renewed while its body runs, acknowledged with its outcome."""

    def __init__(self, source: "QueueSource[ClaimT]", queue: WorkerQueue[ClaimT], claim: ClaimT) -> None:
        self.source = source
        self.queue = queue
        self.claim = claim
        self.job = claim.job
        self._handed: Callable[[], list[ClaimT]] | None = None  # the next jobs read with the finish

    def begin(self, store: TaskStore) -> int | None:
        # no read, no write yet: the job carries its attempt, and the store records the
        # start only if the body runs long enough for anyone to ask
        store.begin(self.job.task_id, self.job.attempt, time.time(), where=self.source.where)
        return self.job.attempt

    def slot_attempt(self) -> int | None:
        return self.job.attempt

    def wait_for_slot(self, delay: float) -> None:
        try:
            self.queue.requeue_later(self.claim, delay)
        except StoreError as exc:  # its lease runs out and a reaper reissues it
            about(log, self.job).warning("could not put back to wait for its key: %s", exc)
        self.source.forget(self)

    def release(self) -> JobChange:
        if not self.source.reads_with_finish():
            return self.queue.release(self.claim)
        change, self._handed = self.queue.release_reading(self.claim)
        return change

    def retry(self, delay: float) -> JobChange:
        return self.queue.retry_later(self.claim, delay)

    def touch(self) -> None:
        self.queue.renew([self.claim])

    def end(self, settled: Settled | None) -> None:
        self.source.forget(self)
        if self._handed is not None:
            try:
                claims = self._handed()
            except StoreError as exc:  # an unreadable entry's acknowledgement failed: its lease runs out
                about(log, self.job).warning("next job read with its finish: %s", exc)
                claims = []
            self.source.hand_over(self.queue, claims)
        if settled is None:
            return  # outcome not written: the lease runs out and the job runs again
        if not settled.released:
            try:
                self.queue.ack([self.claim])
            except StoreError as exc:  # a reaper acknowledges it once its lease runs out
                about(log, self.job).warning("could not acknowledge: %s", exc)


class QueueSource(JobSource[QueueTicket[ClaimT]]):
    """Jobs from the store's queues (:class:`~ladon_tasks.stores.queues.WorkerQueue`: of
    one Redis, or of every shard of a Redis Cluster), the queues asked in turn, each
    highest priority first. ``where``: the worker's id, recorded with each start.

    Idle slots read together: one slot reads a queue for every idle slot no other read
    is for (one ``XREADGROUP ... COUNT n``), the others wait for what it hands out, so n
    jobs waiting start on n idle slots for one command. Never more than that: an entry
    read holds a lease no other worker can take. When nothing waits, the read that
    waits for the next job is for one slot only, and the other idle slots read the
    other queues meanwhile (or, with one queue, wait without a command of their own)."""

    def __init__(self, queues: Sequence[WorkerQueue[ClaimT]], where: str = "", burst: bool = False) -> None:
        if not queues:
            raise ValueError("a worker needs at least one queue")
        self.queues = list(queues)
        self.where = where
        #: A slot that finds every queue empty leaves (``Worker.run(burst=True)``).
        self.burst = burst
        self._stopping = threading.Event()
        self._held: dict[int, QueueTicket[ClaimT]] = {}  # by id(): every ticket given out, until it ends
        self._buffered: list[QueueTicket[ClaimT]] = []  # read, not taken by a slot yet
        self._handed: set[int] = set()  # ids of buffered tickets read for slots waiting now
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)  # a read ended, or tickets were buffered
        self._idle = 0  # slots inside take() without a ticket
        self._reserved = 0  # of them, those a read under way is for
        self._reading: set[int] = set()  # indexes of the queues being read
        self._drained = False  # burst: a read found every queue empty
        self._round_robin = 0

    def take(self, slot: int) -> QueueTicket[ClaimT] | None:
        with self._lock:
            self._idle += 1
        ticket: QueueTicket[ClaimT] | None = None
        try:
            ticket = self._take(slot)
        finally:
            if ticket is None:
                with self._lock:
                    self._idle -= 1
        if ticket is not None and self._stopping.is_set():  # read while stopping: hand it straight back
            self.give_back(ticket)
            return None
        if ticket is not None:
            crashpoints.reach("worker.claimed")
        return ticket

    def _take(self, slot: int) -> QueueTicket[ClaimT] | None:
        """A ticket for ``slot`` (``_idle`` counted down with it), or ``None``: stopping,
        or a burst found nothing."""
        backoff = 0.1
        while not self._stopping.is_set():
            ticket = self._take_buffered()
            if ticket is not None:
                return ticket
            read = self._reserve()
            if read is None:
                if self.burst and self._drained:
                    return None
                continue
            index, count = read
            queue = self.queues[index]
            try:
                claims, count = self._read(index, queue, count)
            except StoreError as exc:  # Redis restarting: reconnect with backoff
                log.warning("worker slot %d: %s; retrying in %.1fs", slot, exc, backoff)
                self._stopping.wait(backoff)
                backoff = min(backoff * 2, defaults.CLAIM_BACKOFF_MAX)
                continue
            backoff = 0.1
            tickets = [self._hold(queue, claim) for claim in claims]
            stopping = self._stopping.is_set()
            with self._changed:  # the read ends and what it brought is handed out in one step
                self._reading.discard(index)
                self._reserved -= count
                if tickets and not stopping:
                    self._drained = False
                    self._idle -= 1  # this slot has its ticket
                    # the others go to the slots this read was for; beyond them (several
                    # priorities answered one wait), to the next slot that frees
                    self._handed.update(id(ticket) for ticket in tickets[1:count])
                    self._buffered += tickets[1:]
                # one waiting slot per ticket handed out, and one to read next: waking
                # every idle slot after each read costs more CPU than the read saves
                self._changed.notify(max(1, len(tickets)))
            if stopping:  # read while stopping: all of it straight back
                for ticket in tickets:
                    self.give_back(ticket)
                return None
            if tickets:
                return tickets[0]
            if self.burst and not self._anything_waiting():
                with self._changed:
                    self._drained = True
                    self._changed.notify_all()
                return None
        return None

    def _reserve(self) -> tuple[int, int] | None:
        """A queue no slot is reading and how many jobs to ask it for: every idle slot no
        read under way and no buffered ticket is for. ``None`` after waiting for a read to
        end (or for a moment) when there is none to make."""
        with self._changed:
            spare = self._idle - self._reserved - len(self._buffered)
            free = [index for index in range(len(self.queues)) if index not in self._reading]
            if spare < 1 or not free:
                self._changed.wait(defaults.CLAIM_BLOCK)
                return None
            self._round_robin = (self._round_robin + 1) % len(self.queues)
            index = min(free, key=lambda index: (index - self._round_robin) % len(self.queues))
            self._reading.add(index)
            self._reserved += spare
            return index, spare

    def _read(self, index: int, queue: WorkerQueue[ClaimT], count: int) -> tuple[list[ClaimT], int]:
        """What waits in ``queue`` for ``count`` idle slots, and how many slots the read
        is for in the end: nothing waiting, the wait for the next job is for this slot
        alone, the others free to read the other queues. On an error the read is over."""
        try:
            if count > 1:
                claims = queue.claim(0, count=count)
                if claims:
                    return claims, count
                with self._changed:
                    self._reserved -= count - 1
                    count = 1
                    self._changed.notify_all()
            return queue.claim(defaults.CLAIM_BLOCK / len(self.queues)), count
        except BaseException:
            with self._changed:
                self._reading.discard(index)
                self._reserved -= count
                self._changed.notify_all()
            raise

    def _anything_waiting(self) -> bool:
        """A job read ahead, or one in any queue (the claim just asked one queue)."""
        with self._lock:
            if self._buffered:
                return True
        return any(queue.claimable() for queue in self.queues)

    def reads_with_finish(self) -> bool:
        """Whether a finishing slot reads its next job with its finish (one store call,
        not two): with one queue, as the slot's own next read would (with several, the
        queues take turns, which a read with each finish would not), not while stopping."""
        return len(self.queues) == 1 and not self._stopping.is_set()

    def hand_over(self, queue: WorkerQueue[ClaimT], claims: list[ClaimT]) -> None:
        """Jobs read with a slot's finish: the slot's next (it takes it at once, as a job
        read for a waiting slot: no idle slot is woken for it), any beyond for the next
        idle slots; while stopping, all straight back."""
        tickets = [self._hold(queue, claim) for claim in claims]
        if not tickets:
            return
        if self._stopping.is_set():
            for ticket in tickets:
                self.give_back(ticket)
            return
        with self._changed:
            self._drained = False
            self._buffered += tickets
            self._handed.update(id(ticket) for ticket in tickets)
            self._changed.notify(len(tickets) - 1)

    def _hold(self, queue: WorkerQueue[ClaimT], claim: ClaimT) -> QueueTicket[ClaimT]:
        ticket = QueueTicket(self, queue, claim)
        with self._lock:
            self._held[id(ticket)] = ticket
        return ticket

    def forget(self, ticket: QueueTicket[ClaimT]) -> None:
        with self._lock:
            self._held.pop(id(ticket), None)

    def held(self) -> list[QueueTicket[ClaimT]]:
        """Every entry this worker holds: running, settling or read ahead."""
        with self._lock:
            return list(self._held.values())

    def _take_buffered(self) -> QueueTicket[ClaimT] | None:
        """The best job read earlier (``_idle`` counted down with it). One read for the
        slots waiting now is theirs at once; one left over from an earlier read is taken
        only if its queue has no higher one waiting now."""
        with self._lock:
            if not self._buffered:
                return None
            best = max(self._buffered, key=lambda ticket: ticket.job.priority)
            if id(best) in self._handed:
                return self._unbuffer(best)
        try:
            higher = best.queue.claim(0, above=best.job.priority)
        except StoreError:
            higher = []
        if higher:
            tickets = [self._hold(best.queue, claim) for claim in higher]
            with self._changed:
                self._idle -= 1
                self._buffered += tickets[1:]
                self._changed.notify_all()
            return tickets[0]
        with self._lock:
            if best in self._buffered:
                return self._unbuffer(best)
        return self._take_buffered()  # another slot took it meanwhile

    def _unbuffer(self, ticket: QueueTicket[ClaimT]) -> QueueTicket[ClaimT]:
        """``ticket`` leaves the buffer for an idle slot (the lock held)."""
        self._buffered.remove(ticket)
        self._handed.discard(id(ticket))
        self._idle -= 1
        return ticket

    def give_back(self, ticket: QueueTicket[ClaimT]) -> None:
        """A job read but not started: queued again as the same attempt, its entry
        acknowledged in the same step."""
        try:
            ticket.queue.requeue(ticket.job, ticket.claim)
        except StoreError as exc:  # its lease runs out and a reaper reissues it
            about(log, ticket.job).warning("could not hand back: %s", exc)
        self.forget(ticket)

    def close(self) -> None:
        self._stopping.set()
        with self._changed:
            self._changed.notify_all()

    def give_back_buffered(self) -> None:
        with self._lock:
            buffered, self._buffered = self._buffered, []
            self._handed.clear()
        for ticket in buffered:
            self.give_back(ticket)


class Worker(Generic[ClaimT]):
    """Slots fed from Redis queues, plus the worker's housekeeping and graceful stop.

    ``runner``: ``"process"`` (a supervised child per slot) or ``"thread"``. ``worker_id``:
    its name (``host:pid:nonce``; the queues should read under it, ``consumer=``)."""

    def __init__(
        self,
        store: TaskStore,
        queues: Sequence[WorkerQueue[ClaimT]],
        concurrency: int | None = None,
        grace: float = defaults.WORKER_GRACE,
        reap_interval: float = defaults.REAP_INTERVAL,
        runner: str = "process",
        worker_id: str | None = None,
        heartbeat: float = defaults.WORKER_HEARTBEAT,
        max_tasks_per_child: int | None = defaults.MAX_TASKS_PER_CHILD,
        max_memory_per_child: float | None = defaults.MAX_MEMORY_PER_CHILD,
    ) -> None:
        if runner not in ("process", "thread"):
            raise ValueError(f"runner must be 'process' or 'thread', not {runner!r}")
        if runner == "thread" and (max_tasks_per_child is not None or max_memory_per_child is not None):
            raise ValueError("--max-tasks-per-child and --max-memory-per-child bound child processes: "
                             "a worker with --threads runs bodies in its own process")
        if heartbeat <= 0:
            raise ValueError("heartbeat must be > 0")
        self.store = store
        self.queues = list(queues)
        self.worker_id = worker_id or new_owner_id()
        self.runner_name = runner
        self.started_at = time.time()
        #: Seconds between heartbeats: at most ``heartbeat``, and a third of the lease.
        self.heartbeat = min(heartbeat, self.queues[0].lease_seconds / 3 if self.queues else heartbeat)
        #: When the housekeeping thread last finished a pass (monotonic); its health.
        self.last_pass = time.monotonic()
        self.source = QueueSource(self.queues, self.worker_id)
        self.runner: Runner = (
            ProcessRunner(max_tasks_per_child=max_tasks_per_child, max_memory_per_child=max_memory_per_child)
            if runner == "process" else ThreadRunner()
        )
        self.timers = Timers()
        default = defaults.PROCESS_WORKERS if runner == "process" else defaults.THREAD_WORKERS
        self.pool = SlotPool("worker", store, self.source, self.runner, concurrency or default, self.timers)
        self.size = self.pool.size
        self.grace = grace
        self.reap_interval = reap_interval
        self._stopping = threading.Event()
        self._stopped = threading.Event()

    def run(self, burst: bool = False) -> None:
        """Serve until SIGTERM/SIGINT (or :meth:`stop`); with ``burst``, until no job is
        queued and none runs - retries not due yet are left to a later worker. Burst
        runs a worker inside a program or a test, as well as from the command line."""
        self.source.burst = burst
        if threading.current_thread() is threading.main_thread():
            self.stop_on_signals()
        self.start()
        if burst:
            self.pool.join()  # every slot found the queues empty and left
            self.stop()
        self.wait_stopped()

    def stop_on_signals(self) -> None:
        """SIGTERM and SIGINT stop the worker (main thread only; the first of them)."""
        stop_on_signals(lambda signum: self.stop())

    def start(self) -> None:
        """Start the slots and the housekeeping thread; returns at once."""
        try:
            self._beat()  # listed at once, not a heartbeat later
        except StoreError as exc:
            log.warning("worker %s not announced yet: %s", self.worker_id, exc)
        self.pool.start()
        threading.Thread(target=self._housekeeping, name="ladon-tasks-housekeeping", daemon=True).start()
        log.info("worker: %d slot(s) on queue(s) %s", self.size, ", ".join(q.name for q in self.queues))

    def stop(self) -> None:
        """Ask the worker to stop (what SIGTERM does); :meth:`wait_stopped` carries it out."""
        self._stopping.set()

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    def describe(self) -> WorkerInfo:
        """What this worker says of itself in its heartbeat."""
        return WorkerInfo(
            worker_id=self.worker_id, host=socket.gethostname(), pid=os.getpid(),
            queues=tuple(queue.name for queue in self.queues), concurrency=self.size, version=__version__,
            started_at=self.started_at, heartbeat_at=time.time(),
            running=tuple(sorted(ticket.job.task_id for ticket in self.pool.running().values())),
            runner=self.runner_name,
        )

    def _beat(self, leaving: bool = False) -> None:
        fleet = self.store.fleet()
        if fleet is not None:
            fleet.beat(self.describe(), 0.0 if leaving else 3 * self.heartbeat)

    def wait_stopped(self) -> None:
        """Wait for :meth:`stop`, then give running bodies the grace period and hand back
        what is left."""
        self._stopping.wait()
        running = self.pool.close(self.grace)
        self.pool.join_idle(2 * defaults.CLAIM_BLOCK)  # none of them may read a job handed back below
        for slot, ticket in running.items():
            self._hand_back(slot, ticket)
        self.source.give_back_buffered()
        self._stopped.set()
        for queue in self.queues:
            queue.forget_consumer()
        try:
            self._beat(leaving=True)
        except StoreError as exc:  # its entry expires instead
            log.warning("worker %s could not say it leaves: %s", self.worker_id, exc)
        self.timers.stop()

    def _hand_back(self, slot: int, ticket: QueueTicket[ClaimT]) -> None:
        """After the grace period: queue the next attempt (the running one fenced off)
        and acknowledge the entry in one step, then stop the body."""
        try:
            ticket.queue.reissue(self.store, ticket.claim, "its worker was stopped", what="handed back",
                                where=self.worker_id)
        except StoreError as exc:  # its lease runs out and a reaper reissues it
            about(log, ticket.job).warning("could not hand back: %s", exc)
        else:
            crashpoints.reach("worker.handed_back")
            about(log, ticket.job).info("handed back to queue %s", ticket.queue.name)
        self.runner.stop(slot, ticket.job.task_id)
        self.runner.kill(slot)

    def _housekeeping(self) -> None:
        """Reap expired leases, trim the streams, beat; the leases of this worker are
        renewed in a thread of their own (:meth:`_renewals`), so a reaper pass that waits
        on a shard whose primary died never holds them up. After the store was away,
        slow, or moved (a failover, a restart) nothing is reaped for one lease
        (:mod:`ladon_tasks.takeover` says the rule): the jobs of workers that are only
        reconnecting are not run twice."""
        lease = max(queue.lease_seconds for queue in self.queues)
        gate = TakeoverGate(lease, self.store.placement)
        threading.Thread(target=self._renewals, args=(gate,), name="ladon-tasks-renewals", daemon=True).start()
        next_trim = next_beat = 0.0
        while not self._stopped.wait(self.reap_interval):
            try:
                now = time.monotonic()
                if now >= next_beat and not self._stopping.is_set():
                    next_beat = now + self.heartbeat
                    self._beat()
                for queue in self.queues:
                    queue.move_due()  # due retries and delayed starts: no lease is judged
                if gate.open():
                    for queue in self.queues:
                        queue.reap(self.store, gate=gate, on_end=hooks.ended)
                if now >= next_trim:
                    next_trim = now + defaults.TRIM_INTERVAL
                    for queue in self.queues:
                        queue.trim()
                self.last_pass = time.monotonic()
            except StoreError as exc:
                gate.failed()
                log.warning("worker housekeeping: %s", exc)

    def _renewals(self, gate: TakeoverGate) -> None:
        """Renew the lease of every entry this worker holds every third of the lease,
        and every ``reap_interval`` while the store is away. Goes on through the grace
        period: the leases of bodies finishing must not run out."""
        next_renewal = 0.0
        while not self._stopped.wait(self.reap_interval):
            now = time.monotonic()
            if now < next_renewal and not gate.away:
                continue
            next_renewal = now + self.queues[0].lease_seconds / 3
            held = self.source.held()
            try:
                with gate.timed():
                    for queue in self.queues:
                        queue.renew([ticket.claim for ticket in held if ticket.queue is queue])
                    if gate.away:
                        self.queues[0].ping()  # the renewals may have had nothing to send
            except StoreError as exc:
                gate.failed()
                log.warning("worker leases not renewed: %s", exc)
                continue
            if gate.answered():
                log.info("the store answers again; reaping other workers' jobs in %gs", gate.lease)
