"""What every executor shares: running a body, and the contracts of an executor.

An executor decides *where* a body runs (a thread, a child process, a worker on another
host). What is the same for all of them lives here: :func:`run_body` - resolve the
service method, decode the JSON arguments, call the body with Ladon's ``kw`` tools,
check and encode the result. It runs wherever the body runs and reports through a
:class:`Reporter`, so it never touches a store itself. The job it runs is
:class:`ladon_tasks.jobs.Job`. How an outcome reaches the store is
:mod:`ladon_tasks.executors.settle`.
"""

from __future__ import annotations

import abc
import logging
import time
import traceback
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from ladon_tasks import codec, policy, tracing
from ladon_tasks.executors.deadline import SoftDeadline
from ladon_tasks.jobs import Job, Outcome
from ladon_tasks.logs import about
from ladon_tasks.model import TaskRecord, TaskState, clamp_progress
from ladon_tasks.steps import StepError, StepRecord, Steps
from ladon_tasks.stores.base import StoreError, TaskStore

log = logging.getLogger(__name__)


class TaskInterrupted(BaseException):
    """Raised inside a body by ``update_progress`` once its task was cancelled, timed out
    or superseded. A ``BaseException`` so that a body's ``except Exception`` does not
    swallow it."""


class Reporter(abc.ABC):
    """The channel from a running body to its task's record - its steps' ledger too
    (:class:`~ladon_tasks.steps.StepLedger`)."""

    @abc.abstractmethod
    def progress(self, value: float | None, message: str | None) -> bool:
        """Forward progress; ``False`` means the attempt must stop."""

    @abc.abstractmethod
    def load_steps(self) -> dict[str, StepRecord]:
        """The task's recorded steps (:class:`StepError` when they cannot be read)."""

    @abc.abstractmethod
    def record_step(self, step: StepRecord) -> bool:
        """Record a step of this attempt; ``False`` means the attempt must stop."""

    def should_stop(self) -> bool:
        return False

    def touch(self) -> None:
        """Extend the task's lease where the executor has one."""

    def started(self) -> None:
        """The body is about to be called: its module is imported and its arguments
        decoded. Timeouts count from here."""

    def use_deadline(self, deadline: SoftDeadline) -> None:
        """The attempt's soft timeout, for a reporter whose messages it must not cut."""


def _task_tools(task_id: str, attempt: int, reporter: Reporter, deadline: SoftDeadline,
                traced: bool = False) -> dict[str, Any]:
    """The ``kw`` helpers a body may call; ``update_progress`` is Ladon's own name. Each
    report is where a thread's body learns of its soft timeout."""

    def update_progress(fraction: float, message: str | None = None) -> None:
        deadline.check()
        if not isinstance(fraction, (int, float)) or isinstance(fraction, bool):
            return  # Ladon ignores non-numbers; so do we, rather than fail the task
        if message is not None:
            message = str(message)
        if not reporter.progress(clamp_progress(fraction), message):
            raise TaskInterrupted(task_id)

    def set_message(message: str) -> None:
        deadline.check()
        if not reporter.progress(None, str(message)):
            raise TaskInterrupted(task_id)

    def is_cancelled() -> bool:
        return reporter.should_stop()

    steps = Steps(reporter, attempt, lambda: TaskInterrupted(task_id))  # reads nothing until its first call

    def step(name: str, function: Callable[..., Any], *args: Any, rtype: Any = None, **kwargs: Any) -> Any:
        deadline.check()
        if traced:
            with tracing.step_span(name):
                return steps(name, function, *args, rtype=rtype, **kwargs)
        return steps(name, function, *args, rtype=rtype, **kwargs)

    return {
        "update_progress": update_progress,
        "set_message": set_message,
        "is_cancelled": is_cancelled,
        "touch": reporter.touch,
        "step": step,
        "task_id": task_id,
        "attempt": attempt,
    }


def run_body(job: Job, attempt: int, reporter: Reporter, alarm: bool = False) -> Outcome:
    """Run one attempt of the job's body here and now; never raises (but for
    ``KeyboardInterrupt``/``SystemExit``). ``alarm``: the soft timeout interrupts the body
    at once (a child process's main thread), not at its next report. A job that carries
    a trace runs in its attempt's span (:mod:`ladon_tasks.tracing`)."""
    if job.trace:
        return tracing.run_traced(job, attempt, lambda: _run_body(job, attempt, reporter, alarm))
    return _run_body(job, attempt, reporter, alarm)


def _run_body(job: Job, attempt: int, reporter: Reporter, alarm: bool) -> Outcome:
    deadline = SoftDeadline(job.soft_timeout, alarm)
    reporter.use_deadline(deadline)
    try:
        spec = job.ref.resolve()
        args = codec.decode_args(spec.arg_types, job.args)
        kw = dict(job.ladon_kw)
        kw["LADON_METHOD_TC"] = codec.CONVERTER
        kw.update(_task_tools(job.task_id, attempt, reporter, deadline, bool(job.trace)))
        service_instance = spec.service_class()
        reporter.started()
        deadline.start()
        try:
            if spec.accepts_kw:
                value = spec.body(service_instance, *args, **kw)
            else:
                value = spec.body(service_instance, *args)
        finally:
            deadline.stop()
    except TaskInterrupted:
        return Outcome("interrupted")
    except policy.Retry as exc:
        return Outcome("failed", error_type="Retry", error_message=str(exc), retry_after=exc.after)
    except Exception as exc:
        return Outcome(
            "failed",
            error_type=type(exc).__name__,
            error_message=str(exc),
            traceback=traceback.format_exc(),
            retry=policy.should_retry(exc, job.retry_on, job.no_retry_on),
        )
    try:
        encoded = codec.encode(spec.rtype, value)
    except codec.CodecError as exc:
        return Outcome("failed", error_type="ReturnTypeMismatch", error_message=str(exc))
    return Outcome("succeeded", result=encoded)


class Executor(abc.ABC):
    """Runs jobs somewhere; the store is the only place results go. What every executor
    does; one that runs bodies in this process can also be handed a job apart from its
    record (:class:`~ladon_tasks.executors.local.LocalExecutor`)."""

    name = "executor"

    @abc.abstractmethod
    def start(self, record: TaskRecord, job: Job, steps: Sequence[StepRecord] = ()) -> TaskRecord:
        """Record a new task in the executor's store (starting with ``steps`` recorded,
        for a recover) and hand
        its job over. Returns the stored record - another task's, when its idempotency
        key was known (then nothing is handed over). A ``StoreError`` means nothing was
        recorded; any other error, that the record exists but the job could not be
        handed over."""

    def holds(self, task_id: str) -> bool:
        """Whether the task is in hand here: queued in this process, running, or waiting
        for a retry. Executors that leave their tasks in the store hold none."""
        return False

    def cancel(self, task_id: str) -> None:
        """Enforce a cancel already recorded in the store, where the executor can.

        The record is already ``cancelled`` when this is called; a thread notices at its
        next ``update_progress``, a child process is killed."""

    @abc.abstractmethod
    def close(self, grace: float) -> list["Unfinished"]:
        """Stop taking jobs, let running bodies finish for ``grace`` seconds, and return
        what did not finish, for the caller to hand over or fail."""


@dataclass(frozen=True)
class Unfinished:
    """A job an executor gave up at shutdown: still running as attempt ``attempt``, or
    never started (``attempt`` is ``None``)."""

    job: Job
    attempt: int | None


class StoreReporter(Reporter):
    """Reports straight into a store: for bodies running in the process that owns it
    (and for a child's reports, relayed by its slot). ``on_started`` and ``on_touch``
    are the slot's: its timeout and its lease."""

    def __init__(
        self,
        store: TaskStore,
        job: Job,
        attempt: int,
        on_started: Callable[[], None] | None = None,
        on_touch: Callable[[], None] | None = None,
    ) -> None:
        self.store = store
        self.job = job
        self.task_id = job.task_id
        self.attempt = attempt
        self._on_started = on_started
        self._on_touch = on_touch

    def progress(self, value: float | None, message: str | None) -> bool:
        return self.store.report(self.task_id, value, message, attempt=self.attempt)

    def load_steps(self) -> dict[str, StepRecord]:
        try:
            return self.store.load_steps(self.task_id)
        except StoreError as exc:  # a body must not run steps it may have run already
            raise StepError(f"the task's recorded steps cannot be read: {exc}") from None

    def record_step(self, step: StepRecord) -> bool:
        try:
            recorded = self.store.record_step(self.task_id, self.attempt, step)
        except StoreError as exc:
            # The body goes on, as with progress: an unrecorded step only runs again if
            # a later attempt is needed, which at-least-once allows.
            about(log, self.job).warning("step %r not recorded: %s", step.name, exc)
            return True
        if not recorded:
            about(log, self.job).info("step %r (%s) of attempt %d not recorded: the attempt was superseded, "
                                      "cancelled or finished; its body is stopped", step.name, step.state,
                                      self.attempt)
        return recorded

    def should_stop(self) -> bool:
        return not self.store.report(self.task_id, attempt=self.attempt)

    def started(self) -> None:
        if self._on_started is not None:
            self._on_started()

    def touch(self) -> None:
        if self._on_touch is not None:
            self._on_touch()


def time_out(store: TaskStore, job: Job, attempt: int) -> TaskRecord | None:
    """Mark the attempt failed for exceeding its runtime limit: the failed record, or
    ``None`` if it already ended."""
    return store.transition(
        job.task_id, TaskState.FAILED, attempt=attempt,
        error_type="TaskTimeout", error_message=f"task exceeded its timeout of {job.timeout:g}s",
        finished_at=time.time(),
    )
