"""Named faults a client can act on.

Each fault is a Ladon ``ClientFault`` or ``ServerFault``, so every interface (SOAP,
JSON-WSP, JSON-RPC) renders it natively. The fault string starts with the fault's
name (``UnknownTask: ...``) and the detail is exactly that name, so a client can
branch on it without parsing prose; no fault carries a traceback unless the server
runs in debug mode.
"""

from __future__ import annotations

from ladon.exceptions.service import ClientFault, ServerFault

_debug_mode = False


def set_debug(enabled: bool) -> None:
    """In debug mode, faults carry the server's traceback, as Ladon does by default."""
    global _debug_mode
    _debug_mode = bool(enabled)


def debug_enabled() -> bool:
    """Whether faults may carry tracebacks (``--debug``; never in production)."""
    return _debug_mode


class _NamedFault:
    """Mixin: ``faultstring = 'Name: message'``, ``detail = 'Name'``."""

    fault_name = "TaskFault"

    def _named(self, message: str, traceback_text: str = "") -> tuple[str, str]:
        detail = self.fault_name
        if traceback_text and _debug_mode:
            detail = f"{detail}\n{traceback_text}"
        return f"{self.fault_name}: {message}", detail


class TaskClientFault(_NamedFault, ClientFault):
    """The request cannot be served as asked; retrying it unchanged will not help."""

    def __init__(self, message: str, traceback_text: str = "") -> None:
        faultstring, detail = self._named(message, traceback_text)
        ClientFault.__init__(self, faultstring, detail=detail, stack_depth=3)


class TaskServerFault(_NamedFault, ServerFault):
    """The server could not answer now; the same request may succeed later."""

    def __init__(self, message: str, traceback_text: str = "") -> None:
        faultstring, detail = self._named(message, traceback_text)
        ServerFault.__init__(self, faultstring, detail=detail, stack_depth=3)


class UnknownTask(TaskClientFault):
    """No task has this id: never existed, or its record expired after ``result_ttl``."""

    fault_name = "UnknownTask"


class MalformedTaskId(TaskClientFault):
    """The id is not of the shape this server hands out."""

    fault_name = "MalformedTaskId"


class TaskNotFinished(TaskClientFault):
    """A result was asked for while the task is queued or running."""

    fault_name = "TaskNotFinished"


class TaskFailed(TaskClientFault):
    """The task's body raised, timed out or died; the message names the cause."""

    fault_name = "TaskFailed"


class TaskCancelled(TaskClientFault):
    """The task was cancelled before it produced a result."""

    fault_name = "TaskCancelled"


class MalformedRequest(TaskClientFault):
    """The request could not be read: not JSON/XML, the wrong shape, bytes that do not
    decode, a SOAP envelope with a document type declaration."""

    fault_name = "MalformedRequest"


class VersionMismatch(TaskClientFault):
    """A SOAP envelope that is not SOAP 1.1 (another envelope namespace, SOAP 1.2). On
    SOAP its fault code is SOAP 1.1's own ``VersionMismatch``."""

    fault_name = "VersionMismatch"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.faultcode = "SOAP-ENV:VersionMismatch"  # the prefix Ladon's SOAP fault envelope declares


class UnknownMethod(TaskClientFault):
    """The service has no method of that name."""

    fault_name = "UnknownMethod"


class InvalidArgument(TaskClientFault):
    """An argument is of the wrong type, out of range or too large."""

    fault_name = "InvalidArgument"


class StoreUnavailable(TaskServerFault):
    """Task state could not be read or written (for example Redis went away)."""

    fault_name = "StoreUnavailable"


class ExecutorUnavailable(TaskServerFault):
    """The task could not be handed to an executor; nothing was started."""

    fault_name = "ExecutorUnavailable"


class IdempotencyConflict(TaskClientFault):
    """An ``Idempotency-Key`` already names a task started with other arguments. The key
    is bound to the arguments it was first used with, so a key never hands one caller
    another caller's task (HTTP would say 409 Conflict)."""

    fault_name = "IdempotencyConflict"


class ServerBusy(TaskServerFault):
    """The server holds as many unfinished tasks, or bytes of task records, as it is
    configured to; nothing was started. Back off and start again later."""

    fault_name = "ServerBusy"


class CorruptTask(TaskServerFault):
    """The task's stored record cannot be read (damaged in the store); other tasks are
    not affected. Asking again will not help."""

    fault_name = "CorruptTask"


class NotRetryable(TaskClientFault):
    """A re-run (``ladon-tasks retry``, the dashboard's Retry) of a task that did not fail
    and was not cancelled, or whose method this process does not serve."""

    fault_name = "NotRetryable"


class ConcurrencyLimit(TaskClientFault):
    """A method with ``concurrency_key`` and ``on_limit='refuse'``: as many tasks with
    this key's value as its ``concurrency`` are queued or running; nothing was started.
    The fault names no other task (they may be another caller's)."""

    fault_name = "ConcurrencyLimit"


class StartTooFar(TaskClientFault):
    """A delayed start asked for a time further ahead than the server's horizon
    (``DELAY_HORIZON``, 30 days by default); nothing was started."""

    fault_name = "StartTooFar"


class UnknownSchedule(TaskClientFault):
    """No schedule (periodic task) has this name (``Service.method``) here."""

    fault_name = "UnknownSchedule"


class Unauthenticated(TaskClientFault):
    """The call names no caller, and this service demands one (``require_principal``):
    nothing was started, read or changed. Authenticate (HTTP Basic, a front proxy's
    login) and call again."""

    fault_name = "Unauthenticated"
