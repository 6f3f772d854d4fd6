"""Bodies in a bounded pool of child processes, supervised from the server process.

Each pool slot is one worker thread owning one long-lived child
(:mod:`ladon_tasks.executors.child`), started with a fresh interpreter rather than a
fork, so a threaded web server is never forked and the child holds none of its sockets.
Progress, messages and results come back as JSON over a pipe and the worker thread
writes them to the store; the store never sees the child.

Cancel and timeout are enforced: the child is sent SIGTERM, then SIGKILL after a grace
period, and the slot gets a new child for its next job. A child that dies on its own
(``os._exit``, a signal, the OOM killer) fails its task with ``WorkerDied`` - retried
like any failure if the task allows retries - and the pool keeps working.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from multiprocessing.connection import Connection

from ladon_tasks import defaults
from ladon_tasks.executors.base import Job, Outcome
from ladon_tasks.executors.pool import WorkerPool
from ladon_tasks.executors.timers import Timers
from ladon_tasks.stores.base import TaskStore


@dataclass
class _Child:
    process: subprocess.Popen
    jobs: Connection
    events: Connection
    task_id: str = ""
    stop_requested_at: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def alive(self) -> bool:
        return self.process.poll() is None

    def close(self) -> None:
        for connection in (self.jobs, self.events):
            try:
                connection.close()
            except OSError:
                pass


def _exit_description(code: int | None) -> str:
    if code is None:
        return "stopped answering"
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with code {code}"


class ProcessExecutor(WorkerPool):
    name = "process"

    def __init__(
        self,
        store: TaskStore,
        timers: Timers,
        workers: int = defaults.PROCESS_WORKERS,
        poll_interval: float = defaults.PROCESS_POLL_INTERVAL,
        kill_grace: float = defaults.PROCESS_KILL_GRACE,
        state_check_interval: float = defaults.STATE_CHECK_INTERVAL,
    ) -> None:
        super().__init__(store, timers, workers)
        self.poll_interval = poll_interval
        self.state_check_interval = state_check_interval
        self.kill_grace = kill_grace
        self._children: dict[int, _Child] = {}

    # -- children ------------------------------------------------------------------

    def _spawn(self) -> _Child:
        jobs_read, jobs_write = os.pipe()
        events_read, events_write = os.pipe()
        try:
            process = subprocess.Popen(
                [sys.executable, "-m", "ladon_tasks.executors.child", str(jobs_read), str(events_write)],
                pass_fds=(jobs_read, events_write),
                close_fds=True,
                stdin=subprocess.DEVNULL,
            )
        finally:
            os.close(jobs_read)
            os.close(events_write)
        child = _Child(process, Connection(jobs_write, readable=False), Connection(events_read, writable=False))
        child.jobs.send_bytes(json.dumps({"t": "path", "sys_path": [p for p in sys.path if p]}).encode())
        return child

    def _child(self, index: int) -> _Child:
        child = self._children.get(index)
        if child is None or not child.alive():
            if child is not None:
                child.close()
            child = self._children[index] = self._spawn()
        return child

    def _discard(self, index: int) -> None:
        child = self._children.pop(index, None)
        if child is None:
            return
        if child.alive():
            child.process.kill()
        child.process.wait()
        child.close()

    # -- WorkerPool ----------------------------------------------------------------

    def _execute(self, index: int, job: Job, attempt: int) -> Outcome:
        child = self._child(index)
        with child.lock:
            child.task_id = job.task_id
            child.stop_requested_at = 0.0
        try:
            child.jobs.send_bytes(json.dumps({"t": "job", "job": job.to_json(), "attempt": attempt}).encode())
            return self._supervise(index, child, job, attempt)
        except (OSError, EOFError):
            return self._after_death(index, child)
        finally:
            with child.lock:
                child.task_id = ""

    def _supervise(self, index: int, child: _Child, job: Job, attempt: int) -> Outcome:
        next_state_check = time.monotonic() + self.state_check_interval
        while True:
            if child.stop_requested_at:
                if child.alive() and time.monotonic() - child.stop_requested_at > self.kill_grace:
                    child.process.kill()
                if not child.alive():
                    self._discard(index)
                    return Outcome("interrupted")
            if not child.events.poll(self.poll_interval):
                if not child.alive() and not child.events.poll(0):
                    return self._after_death(index, child)
                if time.monotonic() >= next_state_check:
                    # A body that never reports must still be stopped when its task was
                    # cancelled elsewhere (another web-server process, another host).
                    next_state_check = time.monotonic() + self.state_check_interval
                    if not self.store.report(job.task_id, attempt=attempt):
                        self._request_stop(child, job.task_id)
                continue
            last_progress = None
            while True:  # drain what is there; only the latest progress matters
                message = json.loads(child.events.recv_bytes())
                if message["t"] == "touch":
                    self._touch(index, job)
                    if not child.events.poll(0):
                        break
                    continue
                if message["t"] == "done":
                    if last_progress is not None:
                        self.store.report(job.task_id, last_progress["p"], last_progress["m"], attempt=attempt)
                    return Outcome.from_json(message["outcome"])
                if last_progress is not None and message["m"] is None and last_progress["m"] is not None:
                    message["m"] = last_progress["m"]
                last_progress = message
                if not child.events.poll(0):
                    break
            if last_progress is not None and not self.store.report(
                job.task_id, last_progress["p"], last_progress["m"], attempt=attempt
            ):
                self._request_stop(child, job.task_id)

    def _after_death(self, index: int, child: _Child) -> Outcome:
        if child.stop_requested_at:
            self._discard(index)
            return Outcome("interrupted")
        code = child.process.wait()
        self._discard(index)
        return Outcome(
            "failed", error_type="WorkerDied",
            error_message=f"the task's process {_exit_description(code)}",
        )

    def _touch(self, index: int, job: Job) -> None:
        """The body asked for more time; only executors with leases act on it."""

    def _request_stop(self, child: _Child, task_id: str) -> None:
        with child.lock:
            if child.task_id != task_id or child.stop_requested_at:
                return
            child.stop_requested_at = time.monotonic()
        if child.alive():
            child.process.terminate()

    def _enforce_stop(self, index: int, task_id: str) -> None:
        child = self._children.get(index)
        if child is not None:
            self._request_stop(child, task_id)

    def cancel(self, task_id: str) -> None:
        for child in list(self._children.values()):
            self._request_stop(child, task_id)

    def _stop_worker(self, index: int) -> None:
        child = self._children.pop(index, None)
        if child is not None:
            child.close()  # the child reads EOF and exits
            try:
                child.process.wait(timeout=self.kill_grace)
            except subprocess.TimeoutExpired:
                child.process.kill()
                child.process.wait()
