"""What the dashboard's JSON API says about a task: the record, minus what must stay
behind, plus the figures a page needs (age, duration) computed on the server's clock.

The error traceback and the result are left out on purpose: a traceback names server
paths and code (the wire never sends it either, outside debug mode), and a result can be
large and is the client's business, not the operator's - steps' results too.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterable

from ladon_tasks import codec
from ladon_tasks.model import TaskRecord, TaskState, UnreadableRecord
from ladon_tasks.steps import StepRecord, ordered

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
    "attempt_errors",
    "retry_of",
    "principal",
    "step",
    "steps_done",
    "not_before",
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


def task_detail(record: TaskRecord, now: float, task_method: "TaskSpec | None" = None,
                steps: Iterable[StepRecord] = ()) -> dict[str, Any]:
    """The summary plus the arguments for the detail panel, each with its parameter
    name and declared type when ``task_method`` (the declaration in this process) is
    known - ``counter (int): 3`` reads better than ``"3"`` -, its ``steps``, and the
    ``limits`` and policies it runs under, as declared in this process (``None`` where
    the method is not declared here: a standalone dashboard given no services)."""
    data = task_summary(record, now)
    data["limits"] = task_method.options.in_force() if task_method is not None else None
    data["args"] = named_arguments(record.args, task_method)
    data["ran_on"] = list(record.ran_on)
    data["steps"] = step_rows(record, steps, now)
    return data


def step_rows(record: TaskRecord, steps: Iterable[StepRecord], now: float) -> list[dict[str, Any]]:
    """The task's steps in the order they started, as the detail panel and ``inspect``
    show them: name, state, attempt, times and duration, error, and the task a recover
    carried the step over from. A step left ``running`` by an attempt that is over (its
    process died, or it was stopped) is shown ``unfinished``: it runs again."""
    rows = []
    for step in ordered(steps):
        state = step.state
        current = record.state is TaskState.RUNNING and step.attempt == record.attempts and not step.origin
        if state == "running" and not current:
            state = "unfinished"
        end = step.finished_at or (now if state == "running" else step.started_at)
        rows.append({
            "name": step.name, "state": state, "attempt": step.attempt, "origin": step.origin,
            "started_at": step.started_at, "finished_at": step.finished_at,
            "duration": max(0.0, end - step.started_at) if step.started_at else 0.0, "error": step.error,
        })
    return rows


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
