"""What the dashboard's JSON API says about a task: the record, minus what must stay
behind, plus the figures a page needs (age, duration) computed on the server's clock.

The error traceback and the result are left out on purpose: a traceback names server
paths and code (the wire never sends it either, outside debug mode), and a result can be
large and is the client's business, not the operator's.
"""

from __future__ import annotations

from typing import Any

from ladon_tasks.model import TaskRecord

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
)


def task_summary(record: TaskRecord, now: float) -> dict[str, Any]:
    """One row of the task list. ``age`` and ``duration`` use ``now`` from the server so a
    browser with a wrong clock still shows true figures."""
    data: dict[str, Any] = {name: getattr(record, name) for name in _PLAIN_FIELDS}
    data["state"] = record.state.value
    data["finished"] = record.finished
    data["age"] = max(0.0, now - record.submitted_at) if record.submitted_at else 0.0
    data["duration"] = record.duration(now)
    return data


def task_detail(record: TaskRecord, now: float) -> dict[str, Any]:
    """The summary plus the arguments (their stored JSON form) for the detail panel."""
    data = task_summary(record, now)
    data["args"] = record.args
    return data
