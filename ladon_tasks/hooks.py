"""Completion hooks: ``on_success``, ``on_failure`` and ``on_cancel`` of a task method,
called with a copy of the task's record once it has ended.

A hook runs in the process that wrote the end (the slot that settled the attempt, the
timer of its timeout, the web process that cancelled it, the reaper or caretaker that
ended a lost task), after the write - so only an end that was written, fenced like
every write of an attempt, calls a hook. A queue worker acknowledges the job of a method
with hooks only after they ran: a worker that dies in between leaves the job to a reaper,
which runs them instead (:func:`ended` from the reap). A hook's exception is logged with
the task id and changes nothing of the task.
"""

from __future__ import annotations

import logging
from typing import Any, Callable

from ladon_tasks import spec as specs
from ladon_tasks.logs import about
from ladon_tasks.model import TaskRecord, TaskState

log = logging.getLogger(__name__)

#: The option that names the hook of each end.
HOOK_OF = {TaskState.SUCCEEDED: "on_success", TaskState.FAILED: "on_failure", TaskState.CANCELLED: "on_cancel"}


def declared(service: str, method: str) -> bool:
    """Whether the method (declared in this process) has any completion hook."""
    spec = specs.find(service, method)
    return spec is not None and any(getattr(spec.options, name) is not None for name in HOOK_OF.values())


def ended(record: TaskRecord | None) -> None:
    """Call the hook of the end ``record`` shows, if its method declares one here."""
    if record is None or not record.finished:
        return
    spec = specs.find(record.service, record.method)
    name = HOOK_OF.get(record.state)
    hook: Callable[[TaskRecord], Any] | None = getattr(spec.options, name) if spec is not None and name else None
    if hook is None:
        return
    try:
        hook(record.copy())
    except Exception:
        about(log, record).exception("%s hook of a %s task failed; the task stays %s", name,
                                     record.state.value, record.state.value)
