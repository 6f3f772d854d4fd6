"""The child side of the process runner: ``python -m ladon_tasks.executors.child R W PARENT``.

Started with a fresh interpreter (never a fork of a threaded web server), it inherits
only the two pipe descriptors it is given - never the server's listening socket - and
runs one job at a time. Every message either way is one JSON document:

* parent -> child: ``{"t": "path", "sys_path": [...], "modules": [...]}`` once (the
  modules are imported at once, while the child waits for its first job), then
  ``{"t": "job", "job": {...}, "attempt": n}``;
* child -> parent: ``{"t": "started"}`` when the body is about to be called, then
  ``{"t": "progress", "p": 0.5, "m": "..."}`` and ``{"t": "touch"}`` any number of
  times, then ``{"t": "done", "outcome": {...}, "rss": bytes}`` - its resident memory
  once the body returned, which the parent weighs against ``max_memory_per_child``.
* steps (:mod:`ladon_tasks.steps`), asked by the child and answered by the parent, who
  holds the store: at its first step ``{"t": "steps"}`` -> ``{"t": "steps", "steps":
  [...]}`` (or ``"error": "..."``), and for each step record ``{"t": "step", "step":
  {...}}`` -> ``{"t": "stepped", "go": true}``. A body without steps sends neither.

The parent enforces cancel and timeout by killing this process, so the child needs no
way to be told; a soft timeout is the child's own ``SIGALRM``
(:mod:`ladon_tasks.executors.deadline`). It never outlives the parent: on Linux the kernel kills it when the
parent dies (``PR_SET_PDEATHSIG``), and a watcher thread checks the parent's pid where
that is not available - a body must not run on when nothing watches its timeout or
its cancel.
"""

from __future__ import annotations

import ctypes
import importlib
import json
import logging
import os
import signal
import sys
import threading
from multiprocessing.connection import Connection

from ladon_tasks import codec, defaults
from ladon_tasks.executors.base import Reporter, run_body
from ladon_tasks.executors.deadline import SoftDeadline
from ladon_tasks.jobs import Job
from ladon_tasks.steps import StepError, StepRecord

_PR_SET_PDEATHSIG = 1


class PipeReporter(Reporter):
    """A body's reports, sent to the supervising parent over the events pipe; its steps
    asked and answered over both pipes."""
    def __init__(self, events: Connection, jobs: Connection) -> None:
        self.events = events
        self.jobs = jobs
        self._asking = threading.Lock()  # one question in flight, one answer read
        self._deadline = SoftDeadline(None)

    def use_deadline(self, deadline: SoftDeadline) -> None:
        self._deadline = deadline  # its alarm waits until a message is written or read whole

    def _send(self, payload: bytes) -> None:
        with self._deadline.shielded():
            self.events.send_bytes(payload)

    def progress(self, value: float | None, message: str | None) -> bool:
        self._send(json.dumps({"t": "progress", "p": value, "m": message}).encode())
        return True

    def load_steps(self) -> dict[str, StepRecord]:
        answer = self._ask({"t": "steps"})
        if answer.get("error"):
            raise StepError(answer["error"])
        return {step.name: step for step in map(StepRecord.from_json, answer["steps"])}

    def record_step(self, step: StepRecord) -> bool:
        return bool(self._ask({"t": "step", "step": step.to_json()})["go"])

    def _ask(self, question: dict) -> dict:
        with self._asking, self._deadline.shielded():
            self.events.send_bytes(codec.dumps(question).encode())
            return json.loads(self.jobs.recv_bytes())

    def touch(self) -> None:
        self._send(b'{"t": "touch"}')

    def started(self) -> None:
        self._send(b'{"t": "started"}')


def die_with_parent(parent_pid: int) -> None:
    """Make sure this process ends when ``parent_pid`` does."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        pass  # not Linux: the watcher below is the only guard
    if os.getppid() != parent_pid:  # the parent died before the kernel was told
        os._exit(1)

    def watch() -> None:
        while True:
            threading.Event().wait(defaults.PARENT_CHECK_INTERVAL)
            if os.getppid() != parent_pid:
                os._exit(1)

    threading.Thread(target=watch, name="ladon-tasks-parent-watch", daemon=True).start()


def resident_bytes() -> int:
    """This process's resident memory now (``/proc/self/statm``), or its peak where
    there is no ``/proc``: what a recycling bound is weighed against."""
    try:
        with open("/proc/self/statm", "rb") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak if sys.platform == "darwin" else peak * 1024  # bytes there, KiB elsewhere


def _prepare(message: dict) -> None:
    for entry in reversed(message["sys_path"]):
        if entry not in sys.path:
            sys.path.insert(0, entry)
    for module in message.get("modules", []):
        try:
            importlib.import_module(module)
        except Exception as exc:  # the job that needs it reports the error properly
            logging.getLogger(__name__).debug("preloading %s failed: %s", module, exc)


def serve(jobs: Connection, events: Connection) -> None:
    """Run jobs one at a time until the parent closes the jobs pipe."""
    reporter = PipeReporter(events, jobs)
    while True:
        try:
            message = json.loads(jobs.recv_bytes())
        except EOFError:
            return
        if message["t"] == "path":
            _prepare(message)
        elif message["t"] == "job":
            outcome = run_body(Job.from_json(message["job"]), message["attempt"], reporter, alarm=True)
            events.send_bytes(json.dumps({"t": "done", "outcome": outcome.to_json(), "rss": resident_bytes()}).encode())


def main(argv: list[str]) -> None:
    """The child's entry point: ``R W PARENT`` (pipe descriptors, parent pid)."""
    if len(argv) > 2:
        die_with_parent(int(argv[2]))
    jobs = Connection(int(argv[0]), writable=False)
    events = Connection(int(argv[1]), readable=False)
    serve(jobs, events)


if __name__ == "__main__":
    main(sys.argv[1:])
