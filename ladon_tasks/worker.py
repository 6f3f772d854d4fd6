"""``ladon-tasks worker``: runs the bodies of ``executor='queue'`` tasks, on any host.

A worker is the process executor with Redis as its job source: each of its
``concurrency`` slots reads a job from the queue's streams (``XREADGROUP``, blocking on
Redis, never sleep-and-poll), runs the body in a supervised child process - so timeouts
and cancels are enforced by killing it - and writes progress and outcome to the shared
store, then acknowledges the entry. ``--threads`` makes it the thread executor instead
(:class:`ThreadWorker`): lower latency, cooperative stops. Around that:

* the job carries its attempt number, and the start is recorded only if the body runs a
  moment (:meth:`RedisStore.begin`): a short task costs the worker one read and one
  finishing script, plus its share of a batched acknowledgement;
* a heartbeat renews the lease of every entry the worker holds every third of the
  lease, and a body's ``kw['touch']()`` renews its own at once;
* a reaper pass every ``REAP_INTERVAL`` takes over the entries of workers whose leases
  ran out (SIGKILL, power loss) and queues them again as the next attempt, and moves due
  retries to their streams; any worker may do it, ``XCLAIM``'s minimum idle time makes
  each expired lease go to one of them;
* finished jobs are acknowledged in batches, every ``ACK_DELAY``: under load one
  ``XACK`` covers many tasks. Reads are not batched: a job read ahead would wait in
  this worker behind a long body while another worker idles;
* SIGTERM/SIGINT: stop claiming, let running bodies finish for ``grace`` seconds, then
  kill them and put their tasks back in the queue (fenced by attempt, so nothing runs
  twice as far as the store is concerned).
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from typing import Sequence

from ladon_tasks import defaults
from ladon_tasks.executors.base import Job, Outcome, StoreReporter, run_body
from ladon_tasks.executors.process import ProcessExecutor
from ladon_tasks.executors.thread import ThreadExecutor
from ladon_tasks.redis.queue import Claim, RedisQueue
from ladon_tasks.executors.timers import Timers
from ladon_tasks.model import TaskState
from ladon_tasks.stores.base import StoreError, TaskStore

log = logging.getLogger(__name__)

#: Longest a slot blocks on Redis before it looks at the stop flag again.
CLAIM_BLOCK = 1.0

#: Seconds between two trims of the job streams (acknowledged entries dropped).
TRIM_INTERVAL = 1.0

#: Seconds a finished job's acknowledgement waits for others to share its ``XACK``. The
#: outcome is in the store already, so nobody waits on it; should the worker die
#: meanwhile, the reaper finds the task finished and only acknowledges it.
ACK_DELAY = 0.02


class _QueueFed:
    """What makes a pool a worker: jobs claimed from Redis queues with leases, retries
    scheduled in Redis, housekeeping, and a graceful stop. Mixed into the process pool
    (:class:`Worker`) and the thread pool (:class:`ThreadWorker`)."""

    name = "worker"
    #: Bodies at once when the caller names no number; each pool says what suits it.
    default_concurrency = defaults.PROCESS_WORKERS

    def __init__(
        self,
        store: TaskStore,
        queues: Sequence[RedisQueue],
        concurrency: int | None = None,
        grace: float = defaults.WORKER_GRACE,
        reap_interval: float = defaults.REAP_INTERVAL,
    ) -> None:
        if not queues:
            raise ValueError("a worker needs at least one queue")
        # the pool after this mixin in the MRO: the process or the thread pool
        super().__init__(store, Timers(), concurrency or self.default_concurrency)  # type: ignore[call-arg]
        self.queues = list(queues)
        self.grace = grace
        self.reap_interval = reap_interval
        self._stopping = threading.Event()
        self._claims: dict[int, tuple[RedisQueue, Claim]] = {}
        self._buffered: list[tuple[RedisQueue, Claim]] = []  # read beyond what a slot needed
        self._unacked: list[tuple[RedisQueue, Claim]] = []  # finished, acknowledged together
        self._ack_due = threading.Event()
        self._claims_lock = threading.Lock()
        self._round_robin = 0

    # -- where jobs come from --------------------------------------------------------

    def _next_job(self, index: int) -> Job | None:
        backoff = 0.1
        while not self._stopping.is_set():
            claimed = self._take_buffered()
            if claimed is None:
                queue = self._pick_queue()
                try:
                    claims = queue.claim(CLAIM_BLOCK / len(self.queues))
                except StoreError as exc:  # Redis restarting: reconnect with backoff
                    log.warning("worker slot %d: %s; retrying in %.1fs", index, exc, backoff)
                    self._stopping.wait(backoff)
                    backoff = min(backoff * 2, 5.0)
                    continue
                backoff = 0.1
                if not claims:
                    continue
                claimed = (queue, claims[0])
                if len(claims) > 1:  # several levels answered at once: the others wait here
                    with self._claims_lock:
                        self._buffered += [(queue, claim) for claim in claims[1:]]
            if self._stopping.is_set():  # read while stopping: hand it straight back
                self._give_back(*claimed)
                return None
            with self._claims_lock:
                self._claims[index] = claimed
            return claimed[1].job
        return None

    def _take_buffered(self) -> tuple[RedisQueue, Claim] | None:
        """The best job read earlier, unless its queue has a higher one waiting now."""
        with self._claims_lock:
            if not self._buffered:
                return None
            best = max(range(len(self._buffered)), key=lambda i: self._buffered[i][1].job.priority)
            queue, claim = self._buffered[best]
        try:
            higher = queue.claim(0, above=claim.job.priority)
        except StoreError:
            higher = []
        if higher:
            with self._claims_lock:
                self._buffered += [(queue, extra) for extra in higher[1:]]
            return queue, higher[0]
        with self._claims_lock:
            if self._buffered and self._buffered[best] == (queue, claim):
                return self._buffered.pop(best)
        return self._take_buffered()  # another slot took it meanwhile

    def _give_back(self, queue: RedisQueue, claim: Claim) -> None:
        """A job read but not started: queued again as the same attempt."""
        try:
            queue.requeue(claim.job)
            queue.ack([claim])
        except StoreError as exc:  # its lease runs out and a reaper reissues it
            log.warning("could not hand back task %s: %s", claim.job.task_id, exc)

    def _pick_queue(self) -> RedisQueue:
        with self._claims_lock:
            self._round_robin = (self._round_robin + 1) % len(self.queues)
            return self.queues[self._round_robin]

    def _begin(self, job: Job) -> int | None:
        # no read, no write yet: the job carries its attempt, and the store records the
        # start only if the body runs long enough for anyone to ask
        self.store.begin(job.task_id, job.attempt, time.time())
        return job.attempt

    def _job_done(self, index: int, job: Job) -> None:
        with self._claims_lock:
            claim = self._claims.pop(index, None)
            if claim is not None:
                self._unacked.append(claim)
        if claim is not None:
            self._ack_due.set()

    def _acknowledging(self) -> None:
        """Acknowledges finished jobs in batches: under load one ``XACK`` per stream
        covers every job finished in the last ``ACK_DELAY``."""
        while not self._stopping.is_set():
            self._ack_due.wait(CLAIM_BLOCK)
            self._stopping.wait(ACK_DELAY)
            self._ack_finished()

    def _ack_finished(self) -> None:
        with self._claims_lock:
            self._ack_due.clear()
            finished, self._unacked = self._unacked, []
        for queue in self.queues:
            claims = [claim for owner, claim in finished if owner is queue]
            if not claims:
                continue
            try:
                queue.ack(claims)
            except StoreError as exc:  # the reaper acknowledges them once their leases run out
                log.warning("could not acknowledge %d finished job(s): %s", len(claims), exc)

    def _retry_later(self, job: Job, delay: float) -> None:
        self._queue_of(job).schedule(job.next_attempt(), delay)

    def _touch(self, index: int, job: Job) -> None:
        with self._claims_lock:
            claim = self._claims.get(index)
        if claim is not None:
            claim[0].renew([claim[1]])

    def _queue_of(self, job: Job) -> RedisQueue:
        for queue in self.queues:
            if queue.name == job.queue:
                return queue
        return self.queues[0]

    # -- running ---------------------------------------------------------------------

    def run(self) -> None:
        """Serve until SIGTERM/SIGINT (or :meth:`stop`)."""
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: self.stop())
        self.start()
        self.wait_stopped()

    def start(self) -> None:
        for _ in range(self.size):
            self._ensure_workers()
        threading.Thread(target=self._housekeeping, name="ladon-tasks-housekeeping", daemon=True).start()
        threading.Thread(target=self._acknowledging, name="ladon-tasks-acks", daemon=True).start()
        log.info("worker: %d slot(s) on queue(s) %s", self.size, ", ".join(q.name for q in self.queues))

    def stop(self) -> None:
        self._stopping.set()

    def wait_stopped(self) -> None:
        self._stopping.wait()
        deadline = time.monotonic() + self.grace
        for thread in list(self._threads):
            thread.join(max(0.0, deadline - time.monotonic()))
        self._ack_finished()
        self._hand_back_running()
        with self._claims_lock:
            buffered, self._buffered = self._buffered, []
        for queue, claim in buffered:
            self._give_back(queue, claim)
        for queue in self.queues:
            queue.forget_consumer()
        self.timers.stop()

    def _hand_back_running(self) -> None:
        """After the grace period: kill what still runs and queue it again."""
        with self._claims_lock:
            claims = dict(self._claims)
        for index, (queue, claim) in claims.items():
            job = claim.job
            try:
                # Queued again first: the killed attempt's late outcome is then fenced off.
                if self.store.transition(
                    job.task_id, TaskState.QUEUED, attempt=job.attempt,
                    message="handed back: its worker was stopped",
                ) is not None:
                    queue.requeue(job.next_attempt())
                self._stop_running(index, job)
                queue.ack([claim])
            except StoreError as exc:  # its lease runs out and a reaper reissues it
                log.warning("could not hand back task %s: %s", job.task_id, exc)
                continue
            log.info("handed task %s back to queue %s", job.task_id, queue.name)

    def _stop_running(self, index: int, job: Job) -> None:
        """The task was handed back: stop its body where the pool can."""

    def _housekeeping(self) -> None:
        next_renewal = next_trim = 0.0
        while not self._stopping.wait(self.reap_interval):
            try:
                for queue in self.queues:
                    queue.reap(self.store)
                now = time.monotonic()
                if now >= next_renewal:
                    next_renewal = now + self.queues[0].lease_seconds / 3
                    with self._claims_lock:
                        held = list(self._claims.values()) + list(self._buffered)
                    for queue in self.queues:
                        queue.renew([claim for owner, claim in held if owner is queue])
                if now >= next_trim:
                    next_trim = now + TRIM_INTERVAL
                    for queue in self.queues:
                        queue.trim()
            except StoreError as exc:
                log.warning("worker housekeeping: %s", exc)


class Worker(_QueueFed, ProcessExecutor):
    """Bodies in supervised child processes: timeouts and cancels are enforced."""

    def _stop_running(self, index: int, job: Job) -> None:
        child = self._children.get(index)
        if child is not None:
            self._request_stop(child, job.task_id)
            if child.alive():
                child.process.kill()


class ThreadWorker(_QueueFed, ThreadExecutor):
    """Bodies in threads of the worker process: no pipe to a child on the way, so about
    a millisecond less per task; timeouts and cancels are cooperative, as in the thread
    executor. For short, well-behaved bodies."""

    default_concurrency = defaults.THREAD_WORKERS

    def _execute(self, index: int, job: Job, attempt: int) -> Outcome:
        return run_body(job, attempt, _LeasedReporter(self, index, job, attempt))


class _LeasedReporter(StoreReporter):
    """A thread worker's reporter: ``touch`` renews the lease of the slot's entry."""

    def __init__(self, worker: ThreadWorker, index: int, job: Job, attempt: int) -> None:
        super().__init__(worker.store, job.task_id, attempt)
        self.worker = worker
        self.index = index
        self.job = job

    def touch(self) -> None:
        self.worker._touch(self.index, self.job)
