"""The task's life, free of I/O: states, the record every store keeps, legal moves.

Stores persist :class:`TaskRecord` as a JSON object (:meth:`TaskRecord.to_json`) and
apply state changes through :func:`check_transition`, so every backend enforces the same
rules: a finished task never changes again, a retry goes back to ``queued`` and a failed
task never reports itself like a succeeded one (its progress is not forced to 1.0).
"""

from __future__ import annotations

import enum
import os
import secrets
import socket
import time
from dataclasses import dataclass, field
from typing import Any


class TaskState(str, enum.Enum):
    """Where a task stands. ``str`` values so they travel as-is in JSON and on the wire."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def finished(self) -> bool:
        return self in FINISHED_STATES


FINISHED_STATES = frozenset({TaskState.SUCCEEDED, TaskState.FAILED, TaskState.CANCELLED})

#: Legal moves. ``running -> queued`` is a retry or the reissue of a lost attempt;
#: ``queued -> failed`` is a task that could not even start (a dead pool, a timeout
#: reached while waiting for a retry).
TRANSITIONS: dict[TaskState, frozenset[TaskState]] = {
    TaskState.QUEUED: frozenset({TaskState.RUNNING, TaskState.CANCELLED, TaskState.FAILED}),
    TaskState.RUNNING: frozenset(
        {TaskState.SUCCEEDED, TaskState.FAILED, TaskState.CANCELLED, TaskState.QUEUED}
    ),
    TaskState.SUCCEEDED: frozenset(),
    TaskState.FAILED: frozenset(),
    TaskState.CANCELLED: frozenset(),
}


class IllegalTransition(Exception):
    """A store was asked for a move the state machine forbids; the caller lost a race."""


def check_transition(current: TaskState, target: TaskState) -> None:
    if target not in TRANSITIONS[current]:
        raise IllegalTransition(f"{current.value} -> {target.value}")


#: 128 random bits, hex: unguessable, and safe in URLs, XML and shell arguments.
TASK_ID_BYTES = 16


def new_task_id() -> str:
    return secrets.token_hex(TASK_ID_BYTES)


def new_owner_id() -> str:
    """A name for this process that no other process, here or on another host, has:
    ``host:pid:nonce`` (the nonce tells a restarted process with a reused pid apart)."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


def looks_like_task_id(value: object) -> bool:
    """Cheap shape check so malformed ids are told apart from unknown ones."""
    if not isinstance(value, str) or len(value) != TASK_ID_BYTES * 2:
        return False
    try:
        int(value, 16)
    except ValueError:
        return False
    return value == value.lower()


def clamp_progress(value: float) -> float:
    """Ladon's rule: below 0 is 0, above 1 is 1."""
    value = float(value)
    if value != value:  # NaN: keep the task's last meaningful value out of reach of it
        return 0.0
    return 0.0 if value < 0.0 else 1.0 if value > 1.0 else value


@dataclass
class TaskRecord:
    """Everything known about one task. Times are seconds since the epoch, 0.0 = not yet.

    ``result`` and ``args`` hold the JSON form produced by :mod:`ladon_tasks.codec`,
    never live Python objects, so a record means the same in every process.
    """

    task_id: str
    service: str
    method: str
    args: Any = None
    state: TaskState = TaskState.QUEUED
    progress: float = 0.0
    message: str = ""
    attempts: int = 0
    max_attempts: int = 1
    priority: int = 100
    tags: list[str] = field(default_factory=list)
    idempotency_key: str = ""
    #: The process holding the task while it waits or runs in process (``host:pid:nonce``);
    #: empty for queued tasks, which the queue holds. See ``executors/local.py``.
    owner: str = ""
    submitted_at: float = 0.0
    started_at: float = 0.0
    finished_at: float = 0.0
    result: Any = None
    error_type: str = ""
    error_message: str = ""
    error_traceback: str = ""
    cancel_requested: bool = False
    result_ttl: float = 3600.0

    @property
    def finished(self) -> bool:
        return self.state.finished

    def duration(self, now: float | None = None) -> float:
        """Seconds run so far, or in all once finished; 0.0 before the first start."""
        if not self.started_at:
            return 0.0
        end = self.finished_at or (now if now is not None else time.time())
        return max(0.0, end - self.started_at)

    def copy(self) -> "TaskRecord":
        """A copy a caller may change freely. Stores hand out copies, never their own
        objects; ``args`` and ``result`` are shared because nothing mutates them in place
        (a write replaces them). Several times cheaper than ``dataclasses.replace``, and
        it sits on every progress call."""
        clone = object.__new__(TaskRecord)
        clone.__dict__.update(self.__dict__)
        clone.tags = list(self.tags)
        return clone

    def to_json(self) -> dict[str, Any]:
        # shallow, like copy(): no deep copy of args and result (dataclasses.asdict
        # deep-copies, and this runs on every write of a record)
        values = self.__dict__
        data = {name: values[name] for name in _FIELD_ORDER}
        data["tags"] = list(self.tags)
        data["state"] = self.state.value
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "TaskRecord":
        known = {k: v for k, v in data.items() if k in _FIELD_NAMES}
        known["state"] = TaskState(known.get("state", "queued"))
        return cls(**known)


_FIELD_ORDER = tuple(TaskRecord.__dataclass_fields__)
_FIELD_NAMES = frozenset(_FIELD_ORDER)
