"""What the dashboard's JSON API says about a task: the record, minus what must stay
behind, plus the figures a page needs (age, duration) computed on the server's clock.

The error traceback and the result are left out on purpose: a traceback names server
paths and code (the wire never sends it either, outside debug mode), and a result can be
large and is the client's business, not the operator's.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ladon_tasks import codec
from ladon_tasks.model import TaskRecord, UnreadableRecord

if TYPE_CHECKING:
    from ladon_tasks.spec import TaskSpec

#: Record fields passed through unchanged to the JSON API.
_PLAIN_FIELDS = (
    "task_id",
    "service",
    "method",
    "progress",
    "message",
    "attempts",
    "max_attempts",
    "priority",
    "tags",
    "submitted_at",
    "started_at",
    "finished_at",
    "cancel_requested",
    "error_type",
    "error_message",
    "retry_of",
)


def task_summary(record: TaskRecord, now: float) -> dict[str, Any]:
    """One row of the task list. ``age`` and ``duration`` use ``now`` from the server so a
    browser with a wrong clock still shows true figures."""
    data: dict[str, Any] = {name: getattr(record, name) for name in _PLAIN_FIELDS}
    data["state"] = record.shown_state
    data["finished"] = record.finished
    data["age"] = max(0.0, now - record.submitted_at) if record.submitted_at else 0.0
    data["duration"] = record.duration(now)
    data["worker"] = record.worker
    if isinstance(record, UnreadableRecord):
        # a damaged record in the store: shown, marked, never offered for cancel
        data.update(finished=True, unreadable=record.problem)
    return data


def task_detail(record: TaskRecord, now: float, task_method: "TaskSpec | None" = None) -> dict[str, Any]:
    """The summary plus the arguments for the detail panel, each with its parameter
    name and declared type when ``task_method`` (the declaration in this process) is
    known - ``counter (int): 3`` reads better than ``"3"``."""
    data = task_summary(record, now)
    data["args"] = named_arguments(record.args, task_method)
    data["ran_on"] = list(record.ran_on)
    return data


def named_arguments(stored: Any, task_method: "TaskSpec | None") -> list[dict[str, Any]]:
    """``[{"name", "type", "value"}]`` for stored arguments: values in their declared
    types (ints as numbers) where the declaration is known and the value fits it; else
    the stored JSON form, named by position and with an empty type."""
    values = stored if isinstance(stored, list) else [] if stored is None else [stored]
    types = task_method.arg_types if task_method is not None else ()
    names = task_method.arg_names if task_method is not None else ()
    shown = []
    for position, value in enumerate(values):
        entry = {"name": f"argument {position + 1}", "type": "", "value": value}
        if position < len(types) and position < len(names):
            try:
                entry = {"name": names[position], "type": codec.type_name(types[position]),
                         "value": codec.typed_form(types[position], value)}
            except codec.CodecError:
                entry["name"] = names[position]
        shown.append(entry)
    return shown
