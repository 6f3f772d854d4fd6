"""Bodies in child processes, one per slot, supervised by the slot's thread.

Each slot owns one long-lived child (:mod:`ladon_tasks.executors.child`), started with a
fresh interpreter rather than a fork, so a threaded server is never forked and the child
holds none of its sockets. Progress, messages and results come back as JSON over a pipe
and the slot writes them to the store; the store never sees the child.

* **Enforced stops.** Cancel and timeout send the child SIGTERM, then SIGKILL after a
  grace period. A child that dies on its own (``os._exit``, a signal, the OOM killer)
  fails its task with ``WorkerDied`` - retried like any failure if the task allows.
* **Timeouts count from the body's start.** The child says when the body is about to be
  called, after its module is imported and its arguments decoded.
* **Warm children.** A slot whose child was killed or died starts the next one at once,
  and tells it the modules of the bodies seen so far, which it imports while idle: the
  next job does not pay the start-up.
* **No orphans.** A child dies with its supervisor, even one killed with SIGKILL (see
  :mod:`ladon_tasks.executors.child`), so no body runs on unwatched.
* **Recycled children.** A child that has run ``max_tasks_per_child`` tasks, or holds
  more than ``max_memory_per_child`` MiB resident once its task ended (it says how much
  with the task's outcome), is replaced after that task: its slot closes its pipe (it
  exits), starts a warm one at once, and reaps the old one aside. The bounds are the
  method's (``tasktype=dict(...)``, carried by the job) and the runner's (``worker
  --max-tasks-per-child``, ``--max-memory-per-child``); the tighter one holds.
* **Steps through the parent.** A body's steps are read and recorded by the slot, the
  child asking over its pipe and waiting for the answer; a body without steps asks
  nothing.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from multiprocessing.connection import Connection

from ladon_tasks import codec, defaults
from ladon_tasks.executors.base import StoreReporter
from ladon_tasks.jobs import Job, Outcome
from ladon_tasks.logs import about
from ladon_tasks.steps import StepError, StepRecord
from ladon_tasks.executors.slots import Attempt, Runner

log = logging.getLogger(__name__)

_MIB = 1024 * 1024


@dataclass
class _Child:
    process: subprocess.Popen
    jobs: Connection
    events: Connection
    task_id: str = ""
    stop_requested_at: float = 0.0
    #: Tasks it ran to their end, and its resident bytes after the last one.
    tasks: int = 0
    rss: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def alive(self) -> bool:
        return self.process.poll() is None

    def close(self) -> None:
        for connection in (self.jobs, self.events):
            try:
                connection.close()
            except OSError:
                pass


def _step_answer(question: dict, ledger: StoreReporter) -> dict:
    """The parent's answer to a child's question about steps (see the child's protocol)."""
    if question["t"] == "steps":
        try:
            return {"t": "steps", "steps": [step.to_json() for step in ledger.load_steps().values()]}
        except StepError as exc:
            return {"t": "steps", "error": str(exc)}
    return {"t": "stepped", "go": ledger.record_step(StepRecord.from_json(question["step"]))}


def _tightest(*bounds: float | None) -> float | None:
    given = [bound for bound in bounds if bound is not None]
    return min(given) if given else None


def _exit_description(code: int | None) -> str:
    if code is None:
        return "stopped answering"
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with code {code}"


class ProcessRunner(Runner):
    """Runs each slot's bodies in the slot's own supervised child process."""
    name = "process"

    def __init__(
        self,
        poll_interval: float = defaults.PROCESS_POLL_INTERVAL,
        kill_grace: float = defaults.PROCESS_KILL_GRACE,
        state_check_interval: float = defaults.STATE_CHECK_INTERVAL,
        max_tasks_per_child: int | None = defaults.MAX_TASKS_PER_CHILD,
        max_memory_per_child: float | None = defaults.MAX_MEMORY_PER_CHILD,
    ) -> None:
        if max_tasks_per_child is not None and max_tasks_per_child < 1:
            raise ValueError(f"max_tasks_per_child must be at least 1, got {max_tasks_per_child}")
        if max_memory_per_child is not None and not max_memory_per_child > 0:
            raise ValueError(f"max_memory_per_child must be more than 0 MiB, got {max_memory_per_child}")
        #: Bounds on every child of this runner, whatever the job's method says.
        self.max_tasks_per_child = max_tasks_per_child
        self.max_memory_per_child = max_memory_per_child
        self.poll_interval = poll_interval
        self.state_check_interval = state_check_interval
        self.kill_grace = kill_grace
        self._children: dict[int, _Child] = {}
        #: Modules of the bodies run so far: a new child imports them while it waits.
        self._modules: dict[str, None] = {}

    # -- children ------------------------------------------------------------------

    def _spawn(self) -> _Child:
        jobs_read, jobs_write = os.pipe()
        events_read, events_write = os.pipe()
        try:
            process = subprocess.Popen(
                [sys.executable, "-m", "ladon_tasks.executors.child", str(jobs_read), str(events_write),
                 str(os.getpid())],
                pass_fds=(jobs_read, events_write),
                close_fds=True,
                stdin=subprocess.DEVNULL,
            )
        finally:
            os.close(jobs_read)
            os.close(events_write)
        child = _Child(process, Connection(jobs_write, readable=False), Connection(events_read, writable=False))
        child.jobs.send_bytes(json.dumps({
            "t": "path", "sys_path": [p for p in sys.path if p], "modules": list(self._modules),
        }).encode())
        return child

    def _child(self, slot: int) -> _Child:
        child = self._children.get(slot)
        if child is None or not child.alive():
            if child is not None:
                child.close()
            child = self._children[slot] = self._spawn()
        return child

    def _spent(self, child: _Child, job: Job) -> str:
        """Why ``child`` must be replaced after ``job``, or ``""``: the tighter of the
        runner's and the job's bounds."""
        tasks = _tightest(self.max_tasks_per_child, job.max_tasks_per_child)
        if tasks is not None and child.tasks >= tasks:
            return f"it ran {child.tasks} task(s) (max_tasks_per_child {tasks})"
        memory = _tightest(self.max_memory_per_child, job.max_memory_per_child)
        if memory is not None and child.rss > memory * _MIB:
            return f"it holds {child.rss / _MIB:.0f} MiB (max_memory_per_child {memory:g} MiB)"
        return ""

    def _retire(self, slot: int) -> None:
        """Let the slot's child go: its pipe closed, it exits once it reads the end;
        reaped aside (killed past the grace: a thread a body left running may hold it)."""
        child = self._children.pop(slot)
        child.close()

        def reap() -> None:
            try:
                child.process.wait(timeout=self.kill_grace)
            except subprocess.TimeoutExpired:
                child.process.kill()
                child.process.wait()

        threading.Thread(target=reap, name=f"ladon-tasks-reap-child-{child.process.pid}", daemon=True).start()

    def _discard(self, slot: int) -> None:
        child = self._children.pop(slot, None)
        if child is None:
            return
        if child.alive():
            child.process.kill()
        child.process.wait()
        child.close()

    # -- Runner --------------------------------------------------------------------

    def run(self, slot: int, attempt: Attempt) -> Outcome:
        job = attempt.job
        self._modules[job.ref.module] = None
        child = self._child(slot)
        with child.lock:
            child.task_id = job.task_id
            child.stop_requested_at = 0.0
        try:
            child.jobs.send_bytes(json.dumps({"t": "job", "job": job.to_json(), "attempt": attempt.number}).encode())
            return self._supervise(slot, child, attempt)
        except (OSError, EOFError):
            return self._after_death(slot, child)
        finally:
            with child.lock:
                child.task_id = ""
            if self._children.get(slot) is child:
                spent = self._spent(child, job)
                if spent:
                    about(log, job).info("the child process %d of slot %d is replaced: %s", child.process.pid,
                                         slot, spent)
                    self._retire(slot)
            if slot not in self._children:  # killed, dead or retired: warm the next one now
                self._children[slot] = self._spawn()

    def _supervise(self, slot: int, child: _Child, attempt: Attempt) -> Outcome:
        job, store = attempt.job, attempt.store
        ledger = StoreReporter(store, job, attempt.number)
        next_state_check = time.monotonic() + self.state_check_interval
        while True:
            if child.stop_requested_at:
                if child.alive() and time.monotonic() - child.stop_requested_at > self.kill_grace:
                    child.process.kill()
                if not child.alive():
                    self._discard(slot)
                    return Outcome("interrupted")
            if not child.events.poll(self.poll_interval):
                if not child.alive() and not child.events.poll(0):
                    return self._after_death(slot, child)
                if time.monotonic() >= next_state_check:
                    # A body that never reports must still be stopped when its task was
                    # cancelled elsewhere (another web-server process, another host).
                    next_state_check = time.monotonic() + self.state_check_interval
                    if not store.report(job.task_id, attempt=attempt.number):
                        self._request_stop(child, job.task_id)
                continue
            last_progress = None
            while True:  # drain what is there; only the latest progress matters
                message = json.loads(child.events.recv_bytes())
                kind = message["t"]
                if kind == "done":
                    child.tasks += 1
                    child.rss = int(message.get("rss") or 0)
                    if last_progress is not None:
                        store.report(job.task_id, last_progress["p"], last_progress["m"], attempt=attempt.number)
                    return Outcome.from_json(message["outcome"])
                if kind == "started":
                    attempt.started()
                elif kind == "touch":
                    attempt.touch()
                elif kind in ("steps", "step"):
                    if last_progress is not None:  # reported before the step, as the body did
                        if not store.report(job.task_id, last_progress["p"], last_progress["m"],
                                            attempt=attempt.number):
                            self._request_stop(child, job.task_id)
                        last_progress = None
                    child.jobs.send_bytes(codec.dumps(_step_answer(message, ledger)).encode())
                else:
                    if last_progress is not None and message["m"] is None and last_progress["m"] is not None:
                        message["m"] = last_progress["m"]
                    last_progress = message
                if not child.events.poll(0):
                    break
            if last_progress is not None and not store.report(
                job.task_id, last_progress["p"], last_progress["m"], attempt=attempt.number
            ):
                self._request_stop(child, job.task_id)

    def _after_death(self, slot: int, child: _Child) -> Outcome:
        if child.stop_requested_at:
            self._discard(slot)
            return Outcome("interrupted")
        code = child.process.wait()
        self._discard(slot)
        return Outcome(
            "failed", error_type="WorkerDied",
            error_message=f"the task's process {_exit_description(code)}",
        )

    def _request_stop(self, child: _Child, task_id: str) -> None:
        with child.lock:
            if child.task_id != task_id or child.stop_requested_at:
                return
            child.stop_requested_at = time.monotonic()
        if child.alive():
            child.process.terminate()

    def stop(self, slot: int, task_id: str) -> None:
        child = self._children.get(slot)
        if child is not None:
            self._request_stop(child, task_id)

    def cancel(self, task_id: str) -> None:
        for child in list(self._children.values()):
            self._request_stop(child, task_id)

    def kill(self, slot: int) -> None:
        """Kill the slot's child at once (a worker leaving without its grace)."""
        child = self._children.get(slot)
        if child is not None and child.alive():
            child.process.kill()

    def leave(self, slot: int) -> None:
        child = self._children.pop(slot, None)
        if child is not None:
            child.close()  # the child reads EOF and exits
            try:
                child.process.wait(timeout=self.kill_grace)
            except subprocess.TimeoutExpired:
                child.process.kill()
                child.process.wait()
