"""What a task method is, for everything below the wire: a frozen :class:`TaskSpec`.

The decorator (:mod:`ladon_tasks.expand`) builds one when the service class is created
and declares it here. The runtime, the executors and the worker take specs and find
them here by service and method name - a worker or a process that takes over a lost
task finds the body of a record it reads, a child process finds the body of a job it
is sent - so none of them imports the decorator, and the decorator is the only module
that knows about Ladon's registration.
"""

from __future__ import annotations

import importlib
import threading
from dataclasses import dataclass
from typing import Any, Callable

from ladon_tasks.options import TaskOptions


@dataclass(frozen=True)
class MethodRef:
    """Where a task body can be found again in any process: module, class, method."""

    module: str
    service: str
    method: str

    def resolve(self) -> "TaskSpec":
        """The spec behind the reference, importing its module where it is not yet."""
        spec = find(self.service, self.method)
        if spec is None:
            importlib.import_module(self.module)
            spec = find(self.service, self.method)
        if spec is None:
            raise LookupError(f"{self.module} declares no task method {self.service}.{self.method}")
        return spec

    def to_json(self) -> dict[str, str]:
        return {"module": self.module, "service": self.service, "method": self.method}


@dataclass(frozen=True)
class TaskSpec:
    """One task method of one service class, as declared."""

    ref: MethodRef
    #: Ladon's declared argument types, in order, and the body's names for them.
    arg_types: tuple[Any, ...]
    arg_names: tuple[str, ...]
    #: Ladon's declared result type.
    rtype: Any
    options: TaskOptions
    #: The undecorated body, called with an instance of ``service_class``.
    body: Callable[..., Any]
    service_class: type
    #: The body takes ``**kw`` (Ladon's request keywords and the task's tools).
    accepts_kw: bool

    @property
    def name(self) -> str:
        """The method's name on the wire (and in task records)."""
        return self.ref.method


_declared: dict[tuple[str, str], TaskSpec] = {}
_lock = threading.Lock()


def declare(spec: TaskSpec) -> None:
    """Make ``spec`` findable in this process (a later declaration of the same service
    and method replaces it, as a reloaded module does)."""
    with _lock:
        _declared[(spec.ref.service, spec.name)] = spec


def find(service: str, method: str) -> TaskSpec | None:
    """The task method ``service.method`` declared in this process, if any."""
    return _declared.get((service, method))


def declared() -> list[TaskSpec]:
    """Every task method declared in this process so far."""
    with _lock:
        return list(_declared.values())


def queue_priorities(queue: str) -> set[int]:
    """The priorities of the queued task methods declared so far that use ``queue``: the
    levels a worker of that queue reads."""
    return {
        spec.options.priority for spec in declared()
        if spec.options.executor == "queue" and spec.options.queue == queue
    }
