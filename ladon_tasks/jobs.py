"""The job: one attempt's worth of work, in a form that can cross a process boundary,
and its :class:`Outcome`, how that attempt ended.

It sits below the executors and the Redis backend alike: an executor runs it, a queue
keeps it as JSON, a worker on another host reads it back - none of them needs another
to know what a job is.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal

from ladon_tasks import codec, defaults
from ladon_tasks.spec import MethodRef


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


#: How an attempt ended: ``interrupted`` is a cancel, a timeout or a newer attempt that
#: stopped it - the record says which, and nothing is written for it.
OutcomeKind = Literal["succeeded", "failed", "interrupted"]


@dataclass
class Outcome:
    """How one attempt ended."""

    kind: OutcomeKind
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
