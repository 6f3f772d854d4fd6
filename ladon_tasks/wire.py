"""The LadonTypes a client sees for task methods.

Ladon's own ``TaskInfoResponse`` and ``TaskProgressResponse`` fields are kept with the
same names and meanings (``task_id``, ``progress``, ``duration``, ``starttime``) so a
client written against Ladon's task-type methods keeps working; the rest is added.
Times are seconds since the epoch and 0.0 means "not yet". Each field is declared as
Ladon reads it (a dict of type and doc) and holds its value on an instance: ``Any``
to the type checker.
"""

from __future__ import annotations

import operator
import time
from typing import Any, Callable, NamedTuple

from ladon.compat import PORTABLE_STRING
from ladon.types.ladontype import LadonType
from ladon.types.typemanager import TypeManager

from ladon_tasks.model import TaskRecord

_task_id = {"type": PORTABLE_STRING, "doc": "unguessable id of the task (32 hex digits)"}


#: Attribute types the fast encoding handles: Ladon turns a value of exactly its declared
#: primitive type into itself (JSON-WSP) or its text (SOAP), with no conversion to check.
_PRIMITIVES = (str, float, int, bool)

#: Ladon's own encoder of a LadonType (a method named ``__dict__``: on the class,
#: ``LadonType.__dict__`` is the class's namespace).
_ladon_encode = vars(LadonType)["__dict__"]


class PrimitiveResponse(LadonType):
    """A LadonType whose attributes are all primitives with no filters, encoded as
    Ladon's own ``LadonType.__dict__`` encodes it, in a fraction of its time.

    Ladon's encoder looks up every attribute's filters, defaults and converter on every
    response; for ``TaskProgressResponse``, the answer clients poll, that walk cost more
    than reading the record and building the answer together. The fast path takes the
    attribute list once, reads the values in one call, and takes each value of exactly
    its declared type as Ladon would (``str(True).lower()`` for SOAP's booleans); any
    other value - an attribute never set, a type Ladon would convert or refuse - sends
    the whole answer through Ladon's own encoder, faults included."""

    def __dict__(self, tc: Any, response_attachments: Any = None) -> dict[str, Any]:  # type: ignore[override]
        fields = _primitive_fields(type(self))
        if fields is None:
            return _ladon_encode(self, tc, response_attachments)
        values = fields.read(self)  # an attribute never set gives its declaration: a dict
        if tuple(map(type, values)) != fields.types:
            return _ladon_encode(self, tc, response_attachments)
        if tc.only_strings_to_unicode:
            return dict(zip(fields.names, values, strict=True))
        return {name: value if attr_type is str else ("true" if value else "false") if attr_type is bool
                else str(value) for name, attr_type, value in zip(fields.names, fields.types, values, strict=True)}


class _Fields(NamedTuple):
    """A PrimitiveResponse class's attributes in Ladon's order, and a reader of them."""

    names: tuple[str, ...]
    types: tuple[type, ...]
    #: The attributes' values of one response, as a tuple, in one call.
    read: Callable[[Any], tuple[Any, ...]]


_fields_of: dict[type, _Fields | None] = {}


def _primitive_fields(cls: type) -> _Fields | None:
    """``cls``'s attributes in Ladon's order, once Ladon knows the type; None while it
    does not, or if any attribute is not a primitive without filters."""
    if cls in _fields_of:
        return _fields_of[cls]
    described = TypeManager.global_type_dict.get(cls)
    if described is None:
        return None
    attributes = described["attributes"]
    fields = None
    if len(attributes) > 1 and all(
        attr_type in _PRIMITIVES and not props.get("filters") for _, attr_type, props in attributes
    ):  # attrgetter of two names or more gives a tuple
        names = tuple(name for name, _, _ in attributes)
        fields = _Fields(names, tuple(attr_type for _, attr_type, _ in attributes), operator.attrgetter(*names))
    _fields_of[cls] = fields
    return fields


class TaskInfoResponse(LadonType):
    """Returned at once by a task method's start call."""

    task_id: Any = _task_id
    state: Any = {"type": PORTABLE_STRING, "doc": "queued, running, succeeded, failed or cancelled"}
    submitted: Any = {"type": float, "doc": "when the task was accepted, seconds since the epoch"}
    not_before: Any = {"type": float, "doc": "a delayed start: the task starts at this time, not before "
                       "(seconds since the epoch); 0.0 when it was started at once"}


class TaskProgressResponse(PrimitiveResponse):
    """Where a task stands; returned by ``_progress``, ``_wait`` and ``_cancel``."""

    task_id: Any = _task_id
    progress: Any = {"type": float, "doc": "0.0 to 1.0, as last reported by the task"}
    duration: Any = {"type": float, "doc": "seconds the task has run (all of it once finished)"}
    starttime: Any = {"type": float, "doc": "start of the current attempt; 0.0 while queued"}
    state: Any = {"type": PORTABLE_STRING, "doc": "queued, running, succeeded, failed or cancelled"}
    finished: Any = {"type": bool, "doc": "true once the state is succeeded, failed or cancelled"}
    message: Any = {"type": PORTABLE_STRING, "doc": "the task's last status message"}
    error: Any = {"type": PORTABLE_STRING, "doc": "for a failed task: exception type and message"}
    attempts: Any = {"type": int, "doc": "attempts started so far (retries and reissues count)"}
    submitted: Any = {"type": float, "doc": "when the task was accepted"}
    finishtime: Any = {"type": float, "doc": "when the task finished; 0.0 while not finished"}
    cancel_requested: Any = {"type": bool, "doc": "a cancel was asked for"}
    worker: Any = {"type": PORTABLE_STRING, "doc": "where the current (or last) attempt runs: a worker's or a web "
                   "process's host:pid:id; empty before any start was recorded"}
    step: Any = {"type": PORTABLE_STRING, "doc": "the step the body runs now, or ran last (kw['step']); empty for a "
                 "body without steps"}
    steps_done: Any = {"type": int, "doc": "steps recorded as succeeded, those a recover carried over included"}
    poll_after: Any = {"type": float, "doc": "seconds to let pass before asking about this task again: 0.0 once "
                       "it has finished, or after a _wait that held until its seconds passed (ask again at "
                       "once); more when the server could not hold the wait"}
    next_attempt: Any = {"type": float, "doc": "while queued for a retry: when the next attempt is due; else 0.0"}
    not_before: Any = {"type": float, "doc": "a delayed start: the time the task was asked not to start before "
                       "(seconds since the epoch; it stays queued until then); 0.0 when it was started at once"}


def info_response(record: TaskRecord) -> TaskInfoResponse:
    """What a start call answers for ``record``."""
    response = TaskInfoResponse()
    response.task_id = record.task_id
    response.state = record.state.value
    response.submitted = float(record.submitted_at)
    response.not_before = float(record.not_before)
    return response


def progress_response(record: TaskRecord, now: float | None = None, poll_after: float = 0.0) -> TaskProgressResponse:
    """What ``_progress``, ``_wait`` and ``_cancel`` answer for ``record``; ``poll_after``
    is the runtime's advice (:mod:`ladon_tasks.waits`)."""
    response = TaskProgressResponse()
    response.task_id = record.task_id
    response.progress = float(record.progress)
    response.duration = float(record.duration(now if now is not None else time.time()))
    response.starttime = float(record.started_at)
    response.state = record.shown_state
    response.finished = record.finished
    response.message = record.message or ""
    response.error = f"{record.error_type}: {record.error_message}" if record.error_type else ""
    response.attempts = int(record.attempts)
    response.submitted = float(record.submitted_at)
    response.finishtime = float(record.finished_at)
    response.cancel_requested = bool(record.cancel_requested)
    response.worker = record.worker
    response.step = record.step
    response.steps_done = int(record.steps_done)
    response.poll_after = float(poll_after)
    response.next_attempt = float(record.next_attempt)
    response.not_before = float(record.not_before)
    return response
