"""The task's life, free of I/O: states, the record every store keeps, legal moves.

Stores persist :class:`TaskRecord` as a JSON object (:meth:`TaskRecord.to_json`) and
apply state changes through :func:`check_transition`, so every backend enforces the same
rules: a finished task never changes again, a retry goes back to ``queued`` and a failed
task never reports itself like a succeeded one (its progress is not forced to 1.0).
"""

from __future__ import annotations

import enum
import math
import os
import re
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
        # Identity, not ``in FINISHED_STATES``: an Enum's hash is a Python call, and
        # every poll asks this a few times.
        return self is TaskState.SUCCEEDED or self is TaskState.FAILED or self is TaskState.CANCELLED


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
    """Raise :class:`IllegalTransition` unless ``current -> target`` is legal."""
    if target not in TRANSITIONS[current]:
        raise IllegalTransition(f"{current.value} -> {target.value}")


#: 128 random bits, hex: unguessable, and safe in URLs, XML and shell arguments.
TASK_ID_BYTES = 16


def new_task_id() -> str:
    """A fresh, unguessable task id."""
    return secrets.token_hex(TASK_ID_BYTES)


def new_owner_id() -> str:
    """A name for this process that no other process, here or on another host, has:
    ``host:pid:nonce`` (the nonce tells a restarted process with a reused pid apart)."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


_TASK_ID_SHAPE = re.compile(f"[0-9a-f]{{{TASK_ID_BYTES * 2}}}")


def looks_like_task_id(value: object) -> bool:
    """Exactly what :func:`new_task_id` hands out: 32 lowercase ASCII hex digits, nothing
    around them. (``int(value, 16)`` would also take a sign, ``0x``, ``_``, spaces, a
    trailing newline and non-ASCII digits.) Malformed ids are told apart from unknown
    ones without asking the store."""
    return isinstance(value, str) and _TASK_ID_SHAPE.fullmatch(value) is not None


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
    #: Where each attempt ran, attempt 1 first: a worker's id or a web process's owner id
    #: (``host:pid:nonce``); ``""`` for an attempt lost before anyone recorded it.
    ran_on: list[str] = field(default_factory=list)
    #: The failed or cancelled task this one re-runs (``ladon-tasks retry``), or ``""``.
    retry_of: str = ""
    #: Who started the task (:mod:`ladon_tasks.principals`): only that caller sees it
    #: through the wire; ``""`` for a task started without one (its id is its credential).
    principal: str = ""
    #: The start call's trace context (W3C ``traceparent``, then ``tracestate`` after a
    #: newline) when OpenTelemetry is installed (:mod:`ladon_tasks.tracing`); else ``""``.
    trace: str = ""
    submitted_at: float = 0.0
    started_at: float = 0.0
    finished_at: float = 0.0
    result: Any = None
    error_type: str = ""
    error_message: str = ""
    error_traceback: str = ""
    #: The errors of earlier attempts that were retried, oldest first
    #: (``attempt 1: ValueError: ...``); ``error_*`` say only why the task failed, and
    #: are empty once an attempt succeeds.
    attempt_errors: list[str] = field(default_factory=list)
    cancel_requested: bool = False
    result_ttl: float = 3600.0
    #: The step the body runs now, or ran last (``kw['step']``, :mod:`ladon_tasks.steps`);
    #: ``""`` for a body without steps.
    step: str = ""
    #: Steps recorded as succeeded, those carried over from a recovered task included.
    steps_done: int = 0
    #: When the retry this task waits for is due (seconds since the epoch), written with
    #: the move back to ``queued``; 0.0 when it never waited for one. Only meaningful
    #: while the task is queued after the attempt that failed (:meth:`next_attempt`).
    next_attempt_at: float = 0.0
    #: A delayed start (:mod:`ladon_tasks.delays`): the task does not start before this
    #: time (seconds since the epoch); 0.0 for a task started at once. Kept once it has
    #: started, as the start time it was asked for.
    not_before: float = 0.0

    @property
    def finished(self) -> bool:
        state = self.state  # TaskState.finished, without a second property call
        return state is TaskState.SUCCEEDED or state is TaskState.FAILED or state is TaskState.CANCELLED

    @property
    def worker(self) -> str:
        """Where the current (or last) attempt runs or ran; ``""`` before any was recorded."""
        return next((where for where in reversed(self.ran_on) if where), "")

    @property
    def shown_state(self) -> str:
        """The state as clients and operators are told it: the state's value, or
        ``unreadable`` for the stand-in of a damaged record."""
        return self.state.value

    @property
    def next_attempt(self) -> float:
        """When the next attempt is due, while the task waits for a retry; else 0.0 (a
        time written before the latest attempt started belongs to an earlier retry)."""
        if self.state is TaskState.QUEUED and self.next_attempt_at > self.started_at:
            return self.next_attempt_at
        return 0.0

    def note_run(self, attempt: int, where: str) -> None:
        """Attempt ``attempt`` runs at ``where`` (the Lua scripts' ``ran_on`` does the same)."""
        runs = self.ran_on[:attempt] + [""] * max(0, attempt - len(self.ran_on))
        runs[attempt - 1] = where
        self.ran_on = runs + self.ran_on[attempt:]

    def duration(self, now: float | None = None) -> float:
        """Seconds run so far, or in all once finished; 0.0 before the first start."""
        if not self.started_at:
            return 0.0
        end = self.finished_at or (now if now is not None else time.time())
        return max(0.0, end - self.started_at)

    def copy(self) -> "TaskRecord":
        """A copy a caller may change freely. Stores hand out copies of unfinished
        records, never their own objects (a finished record, which never changes again,
        is handed out read-only); ``args`` and ``result`` are shared because nothing
        mutates them in place (a write replaces them). Its fields are copied as one
        dict, several times cheaper than ``dataclasses.replace``: it sits on every poll
        of an unfinished task."""
        clone = object.__new__(type(self))
        fields = self.__dict__.copy()
        fields["tags"] = list(self.tags)
        fields["ran_on"] = list(self.ran_on)
        fields["attempt_errors"] = list(self.attempt_errors)
        clone.__dict__ = fields
        return clone

    def to_json(self) -> dict[str, Any]:
        # shallow, like copy(): no deep copy of args and result (dataclasses.asdict
        # deep-copies, and this runs on every write of a record)
        values = self.__dict__
        data = {name: values[name] for name in _FIELD_ORDER}
        data["tags"] = list(self.tags)
        data["ran_on"] = list(self.ran_on)
        data["attempt_errors"] = list(self.attempt_errors)
        data["state"] = self.state.value
        return data

    @classmethod
    def from_json(cls, data: Any) -> "TaskRecord":
        """The record a JSON object describes. Stores read what other processes wrote -
        or anyone with access to the backend - so every field is checked here and a
        wrong one raises :class:`MalformedRecord` naming it, rather than a ``TypeError``
        later in whatever reads the field. Unknown names are ignored."""
        if not isinstance(data, dict):
            raise MalformedRecord(f"a task record is a JSON object, not {type(data).__name__}")
        known = {}
        for name, value in data.items():
            check = _FIELD_CHECKS.get(name)
            if check is None:
                continue
            if not check(value):
                raise MalformedRecord(f"field {name!r} holds {_shown(value)}, {_FIELD_EXPECTED[name]}")
            known[name] = value
        missing = [name for name in _REQUIRED_FIELDS if name not in known]
        if missing:
            raise MalformedRecord(f"field(s) {', '.join(missing)} missing")
        known["state"] = TaskState(known.get("state", "queued"))
        return cls(**known)


class UnreadableRecord(TaskRecord):
    """Stands in a listing for a stored record that cannot be read, so that one damaged
    record does not hide the others. Holds what could be read of it (at least an id
    when the store knows one); ``problem`` says what is wrong. Never stored."""

    problem: str = ""

    @property
    def shown_state(self) -> str:
        return "unreadable"

    @classmethod
    def salvage(cls, fields: dict[str, Any], problem: str) -> "UnreadableRecord":
        """A stand-in from the fields of a damaged record that did decode on their own;
        its error is ``CorruptTask: <problem>``, as the wire says for that task."""
        text = {name: fields[name] for name in ("task_id", "service", "method") if isinstance(fields.get(name), str)}
        record = cls(task_id=text.get("task_id", ""), service=text.get("service", ""), method=text.get("method", ""))
        if _is_state(fields.get("state")):
            record.state = TaskState(fields["state"])
        if _is_number(fields.get("submitted_at")):
            record.submitted_at = float(fields["submitted_at"])
        record.error_type, record.error_message = "CorruptTask", problem
        record.problem = problem
        return record


class MalformedRecord(ValueError):
    """Stored data that is not a task record: not an object, a field missing or of the
    wrong type, a state that does not exist."""


def _shown(value: Any) -> str:
    text = ascii(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _is_text(value: Any) -> bool:
    return isinstance(value, str)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _is_state(value: Any) -> bool:
    return isinstance(value, str) and value in _STATE_VALUES


def _is_tags(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(tag, str) for tag in value)


def _is_flag(value: Any) -> bool:
    return isinstance(value, bool)


def _is_any(value: Any) -> bool:
    return True


_STATE_VALUES = frozenset(state.value for state in TaskState)
_FIELD_ORDER = tuple(TaskRecord.__dataclass_fields__)
_REQUIRED_FIELDS = ("task_id", "service", "method")
#: How each stored field is checked, and what a fault says it should hold.
_KINDS = {
    _is_text: "should be text",
    _is_number: "should be a finite number",
    _is_count: "should be a whole number >= 0",
    _is_state: f"should be one of {', '.join(sorted(_STATE_VALUES))}",
    _is_tags: "should be a list of text",
    _is_flag: "should be true or false",
    _is_any: "",
}
_FIELD_CHECKS = {
    "task_id": _is_text, "service": _is_text, "method": _is_text, "args": _is_any,
    "state": _is_state, "progress": _is_number, "message": _is_text, "attempts": _is_count,
    "max_attempts": _is_count, "priority": _is_count, "tags": _is_tags, "idempotency_key": _is_text,
    "owner": _is_text, "ran_on": _is_tags, "retry_of": _is_text, "principal": _is_text, "trace": _is_text,
    "submitted_at": _is_number, "started_at": _is_number, "finished_at": _is_number, "result": _is_any,
    "error_type": _is_text, "error_message": _is_text, "error_traceback": _is_text,
    "attempt_errors": _is_tags, "cancel_requested": _is_flag, "result_ttl": _is_number, "step": _is_text,
    "steps_done": _is_count, "next_attempt_at": _is_number, "not_before": _is_number,
}
_FIELD_EXPECTED = {name: _KINDS[check] for name, check in _FIELD_CHECKS.items()}
if set(_FIELD_CHECKS) != set(_FIELD_ORDER):
    raise RuntimeError("every field of TaskRecord needs its check in _FIELD_CHECKS")
