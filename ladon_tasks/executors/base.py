"""What every executor shares: the job, and running a body.

An executor decides *where* a body runs (a thread, a child process, a worker on another
host). What is the same for all of them lives here: the :class:`Job` that can cross a
process boundary, and :func:`run_body` - resolve the service method, decode the JSON
arguments, call the body with Ladon's ``kw`` tools, check and encode the result. It runs
wherever the body runs and reports through a :class:`Reporter`, so it never touches a
store itself. How an outcome reaches the store is :mod:`ladon_tasks.executors.settle`.
"""

from __future__ import annotations

import abc
import dataclasses
import logging
import time
import traceback
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from ladon_tasks import codec, crashpoints, defaults, policy, tracing
from ladon_tasks.executors.deadline import SoftDeadline
from ladon_tasks.logs import about
from ladon_tasks.model import TaskRecord, TaskState, clamp_progress
from ladon_tasks.spec import MethodRef
from ladon_tasks.steps import StepError, StepRecord, Steps
from ladon_tasks.stores.base import StoreError, TaskStore

log = logging.getLogger(__name__)


class TaskInterrupted(BaseException):
    """Raised inside a body by ``update_progress`` once its task was cancelled, timed out
    or superseded. A ``BaseException`` so that a body's ``except Exception`` does not
    swallow it."""


@dataclass
class Job:
    """One attempt's worth of work, in a form that can cross a process boundary."""

    task_id: str
    ref: MethodRef
    args: list[Any]
    priority: int = defaults.PRIORITY
    timeout: float | None = None
    retry_delay: float = defaults.RETRY_DELAY
    queue: str = defaults.QUEUE
    ladon_kw: dict[str, Any] = field(default_factory=dict)
    #: Which attempt this is: queued jobs carry it, so a worker knows it without a read.
    attempt: int = 1
    #: The retry policy (:mod:`ladon_tasks.policy`), carried so that a worker on another
    #: host judges a failure without the web process: qualified exception names.
    retry_on: tuple[str, ...] = ()
    no_retry_on: tuple[str, ...] = ()
    retry_jitter: float = 0.0
    retry_max_delay: float = defaults.RETRY_DELAY_MAX
    soft_timeout: float | None = None
    #: Child recycling: the child that ran this job is replaced past either bound
    #: (tasks it ran, MiB it holds), where a child runs it.
    max_tasks_per_child: int | None = None
    max_memory_per_child: float | None = None
    #: A delayed start: the first attempt does not begin before this time (seconds
    #: since the epoch); 0.0 for at once. In-process executors wait for it in their
    #: timers; a queued job waits in the queue's delayed set instead.
    not_before: float = 0.0
    #: The start call's trace context (:mod:`ladon_tasks.tracing`), and when the task
    #: was started; ``""``: not traced, and neither is in the job's JSON.
    trace: str = ""
    submitted_at: float = 0.0
    #: One task per key: the slot set this job's attempts take a place in before they
    #: begin (``service.method:value``), and how many places it has; ``""``/0: none.
    slot_key: str = ""
    slot_limit: int = 0
    #: A rate limit: the key (``service.method``) whose begins are spaced at least
    #: ``rate_interval`` seconds apart, across every process; ``""``/0.0: none.
    rate_key: str = ""
    rate_interval: float = 0.0

    def dumps(self) -> str:
        """The job as the JSON a queue keeps."""
        return codec.dumps(self.to_json())

    def next_attempt(self) -> "Job":
        return dataclasses.replace(self, attempt=self.attempt + 1)

    def to_json(self) -> dict[str, Any]:
        data = {
            "task_id": self.task_id,
            "ref": self.ref.to_json(),
            "args": self.args,
            "priority": self.priority,
            "timeout": self.timeout,
            "retry_delay": self.retry_delay,
            "queue": self.queue,
            "ladon_kw": self.ladon_kw,
            "attempt": self.attempt,
            "retry_on": list(self.retry_on),
            "no_retry_on": list(self.no_retry_on),
            "retry_jitter": self.retry_jitter,
            "retry_max_delay": self.retry_max_delay,
            "soft_timeout": self.soft_timeout,
            "max_tasks_per_child": self.max_tasks_per_child,
            "max_memory_per_child": self.max_memory_per_child,
            "not_before": self.not_before,
            "slot_key": self.slot_key,
            "slot_limit": self.slot_limit,
        }
        if self.rate_interval:
            data["rate_key"], data["rate_interval"] = self.rate_key, self.rate_interval
        if self.trace:
            data["trace"], data["submitted_at"] = self.trace, self.submitted_at
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "Job":
        return cls(
            task_id=data["task_id"],
            ref=MethodRef(**data["ref"]),
            args=data["args"],
            priority=data.get("priority", defaults.PRIORITY),
            timeout=data.get("timeout"),
            retry_delay=data.get("retry_delay", defaults.RETRY_DELAY),
            queue=data.get("queue", defaults.QUEUE),
            ladon_kw=data.get("ladon_kw") or {},
            attempt=int(data.get("attempt", 1)),
            retry_on=tuple(data.get("retry_on") or ()),
            no_retry_on=tuple(data.get("no_retry_on") or ()),
            retry_jitter=float(data.get("retry_jitter") or 0.0),
            retry_max_delay=float(data.get("retry_max_delay", defaults.RETRY_DELAY_MAX)),
            soft_timeout=data.get("soft_timeout"),
            max_tasks_per_child=data.get("max_tasks_per_child"),
            max_memory_per_child=data.get("max_memory_per_child"),
            not_before=float(data.get("not_before") or 0.0),
            trace=str(data.get("trace") or ""),
            submitted_at=float(data.get("submitted_at") or 0.0),
            slot_key=str(data.get("slot_key") or ""),
            slot_limit=int(data.get("slot_limit") or 0),
            rate_key=str(data.get("rate_key") or ""),
            rate_interval=float(data.get("rate_interval") or 0.0),
        )


@dataclass
class Outcome:
    """How one attempt ended."""

    kind: str  # "succeeded", "failed" or "interrupted"
    result: Any = None
    error_type: str = ""
    error_message: str = ""
    traceback: str = ""
    #: A failure the retry policy lets be retried (``retry_on``, ``no_retry_on``).
    retry: bool = True
    #: Seconds the body asked to wait before the next attempt (``Retry(after=...)``).
    retry_after: float | None = None

    def to_json(self) -> dict[str, Any]:
        return self.__dict__.copy()

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "Outcome":
        return cls(**data)


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
    """Runs jobs somewhere; the store is the only place results go."""

    name = "executor"

    def start(self, store: TaskStore, record: TaskRecord, job: Job, steps: Sequence[StepRecord] = ()) -> TaskRecord:
        """Record a new task (starting with ``steps`` recorded, for a recover) and hand
        its job over. Returns the stored record - another task's, when its idempotency
        key was known (then nothing is submitted). A ``StoreError`` means nothing was
        recorded; any other error, that the record exists but the job could not be
        handed over."""
        stored = store.create(record, steps=steps)
        crashpoints.reach("web.created")
        if stored.task_id == record.task_id:
            self.submit(job)
        return stored

    @abc.abstractmethod
    def submit(self, job: Job) -> None:
        """Accept the job for running; must not block on the body."""

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
