"""The decorator: one task method becomes the set of methods a client sees.

``@ladonize(..., tasktype=True)`` on ``m`` registers with Ladon, on the same service:

=================  ==========================  =========================================
method             returns                     does
=================  ==========================  =========================================
``m(args...)``     ``TaskInfoResponse``        records the task, hands it to an executor
``m_progress(id)`` ``TaskProgressResponse``    where the task stands
``m_result(id)``   the declared ``rtype``      the result; repeatable until it expires
``m_cancel(id)``   ``TaskProgressResponse``    cancels (cooperative/enforced per executor)
``m_wait(id, s)``  ``TaskProgressResponse``    returns when the task ends or ``s`` passes;
                                               at once with ``poll_after`` over the wait
                                               budget (:mod:`ladon_tasks.waits`)
``m_wait_result``  the declared ``rtype``      ``_wait`` then ``_result`` in one round trip
``m_at(args, t)``  ``TaskInfoResponse``        ``m`` that starts not before time ``t``
``m_later(a, s)``  ``TaskInfoResponse``        ``m`` that starts ``s`` seconds from now
=================  ==========================  =========================================

The delayed starts (:mod:`ladon_tasks.delays`) are methods, not only the
``Task-Not-Before``/``Task-Start-In`` headers, because generated SOAP clients cannot
always send headers; their last parameter is ``not_before`` or ``start_in``, so a body
whose own parameters have those names is refused at decoration.

Ladon's own task-type machinery is bypassed: the start method is registered with
``rtype=TaskInfoResponse`` and no ``tasktype`` flag, so Ladon's ``import_services`` never
rewrites it. Plain methods pass straight to Ladon's ``ladonize``.
"""

from __future__ import annotations

import enum
import inspect
import types
from dataclasses import dataclass
from typing import Any, Callable, TypeVar, cast

import ladon.ladonizer
import ladon.ladonizer.decorator
from ladon.compat import PORTABLE_STRING
from ladon.ladonizer.collection import global_service_collection

from ladon_tasks import codec, delays, faults, principals, tracing, wire
from ladon_tasks.answers import KeptResponse, kept_answers
from ladon_tasks import spec as specs
from ladon_tasks.options import TaskOptions
from ladon_tasks.schedules import BadSchedule
from ladon_tasks.runtime import get_runtime
from ladon_tasks.spec import MethodRef, TaskSpec

_ladon_ladonize = ladon.ladonizer.decorator.ladonize

#: A decorated body: ``ladonize`` gives back what it was given, as far as types go.
Body = TypeVar("Body", bound=Callable[..., Any])

#: Ladon request keywords a body may read; the rest (the WSGI environ) stays behind,
#: because a body may run in another process or on another host.
_FORWARDED_LADON_KW = ("LADON_METHOD_NAME", "LADON_ACCEPT_LANGUAGES")

class TaskMethod:
    """Stands on the service class in place of the body; Python calls ``__set_name__``
    when the class is created, which is when the companion methods can be attached."""

    def __init__(
        self, body: Callable[..., Any], arg_types: tuple[Any, ...], rtype: Any, options: TaskOptions
    ) -> None:
        self.body = body
        self.arg_types = arg_types
        self.rtype = rtype
        self.options = options
        self.name = body.__name__
        argspec = inspect.getfullargspec(body)
        self.accepts_kw = argspec.varkw is not None
        #: The body's parameter names after ``self``, in the order of ``arg_types``:
        #: faults and the dashboard name arguments with them.
        self.arg_names: tuple[str, ...] = tuple(argspec.args[1 : 1 + len(arg_types)])
        self._spec: TaskSpec | None = None
        self.__doc__ = body.__doc__
        self.__wrapped__ = body

    @property
    def spec(self) -> TaskSpec:
        """What the runtime and the executors know of this method (once its class exists)."""
        if self._spec is None:
            raise TypeError(f"task method {self.name!r} must be defined in a class: Ladon serves classes")
        return self._spec

    def __set_name__(self, owner: type, name: str) -> None:
        self._spec = TaskSpec(
            ref=MethodRef(owner.__module__, owner.__name__, self.name),
            arg_types=self.arg_types, arg_names=self.arg_names, rtype=self.rtype, options=self.options,
            body=self.body, service_class=owner, accepts_kw=self.accepts_kw,
        )
        specs.declare(self._spec)
        for companion, function in _companions(self):
            setattr(owner, f"{name}_{companion.suffix}", function)

    def __get__(self, instance: Any, owner: type | None = None) -> Any:
        if instance is None:
            return self
        return types.MethodType(self.start, instance)

    def start(self, service_instance: Any, *args: Any, **kw: Any) -> wire.TaskInfoResponse:
        # Ladon hands the WSGI environ to methods in kw: an ``Idempotency-Key`` request
        # header makes a retried start call (after a timeout, say) find the first task.
        idempotency_key = kw.get("HTTP_IDEMPOTENCY_KEY") or ""
        not_before, start_in = delays.requested(kw)  # Task-Not-Before, Task-Start-In headers
        return self.start_delayed(args, kw, not_before, start_in, str(idempotency_key))

    def start_delayed(self, args: tuple[Any, ...], kw: dict[str, Any], not_before: Any, start_in: Any,
                      idempotency_key: str = "") -> wire.TaskInfoResponse:
        """The start, with the client's start time (``None``: the method's default)."""
        ladon_kw = {key: kw[key] for key in _FORWARDED_LADON_KW if key in kw}
        caller = principals.of_request(kw)  # the task is this caller's (its key too)
        runtime = get_runtime()
        if tracing.wanted(kw):  # a trace to join or record: the task carries the request's trace
            record = tracing.traced_start(self.spec, kw, lambda trace: runtime.start(
                self.spec, args, ladon_kw, idempotency_key=idempotency_key, principal=caller, trace=trace,
                not_before=not_before, start_in=start_in))
        else:
            record = runtime.start(self.spec, args, ladon_kw, idempotency_key=idempotency_key, principal=caller,
                                   not_before=not_before, start_in=start_in)
        return wire.info_response(record)


# The companions, each a maker of the plain function (Ladon inspects its signature) bound
# to one task method. Every companion asks as the request's caller (``kw``: Ladon's
# keywords over the WSGI environ): another caller's task answers as an unknown one.


def _progress(task_method: TaskMethod) -> Callable[..., Any]:
    def progress(self: Any, task_id: str, **kw: Any) -> wire.TaskProgressResponse | KeptResponse:
        runtime = get_runtime()
        record = runtime.record(task_id, task_method.spec, principals.of_request(kw))
        return kept_answers.answer(record, runtime.poll_after(record))

    return progress


def _result(task_method: TaskMethod) -> Callable[..., Any]:
    def result(self: Any, task_id: str, **kw: Any) -> Any:
        return get_runtime().result(task_method.spec, task_id, caller=principals.of_request(kw))

    return result


def _cancel(task_method: TaskMethod) -> Callable[..., Any]:
    def cancel(self: Any, task_id: str, **kw: Any) -> wire.TaskProgressResponse | KeptResponse:
        runtime = get_runtime()
        record = runtime.cancel(task_id, task_method.spec, principals.of_request(kw))
        return kept_answers.answer(record, runtime.poll_after(record))

    return cancel


def _wait(task_method: TaskMethod) -> Callable[..., Any]:
    def wait(self: Any, task_id: str, seconds: float, **kw: Any) -> wire.TaskProgressResponse | KeptResponse:
        record, poll_after = get_runtime().wait(task_id, seconds, task_method.spec, principals.of_request(kw))
        return kept_answers.answer(record, poll_after)

    return wait


def _wait_result(task_method: TaskMethod) -> Callable[..., Any]:
    def wait_result(self: Any, task_id: str, seconds: float, **kw: Any) -> Any:
        runtime = get_runtime()
        record, poll_after = runtime.wait(task_id, seconds, task_method.spec, principals.of_request(kw))
        return runtime.result(task_method.spec, task_id, record, poll_after)

    return wait_result


def _list(task_method: TaskMethod) -> Callable[..., Any]:
    def list_(self: Any, state: str, limit: int, offset: int, **kw: Any) -> list[wire.TaskProgressResponse]:
        runtime = get_runtime()
        caller = principals.of_request(kw)
        if not caller and task_method.options.listing is None:  # on because principals are: theirs alone
            raise faults.Unauthenticated(f"{task_method.name}_list lists the caller's own tasks; "
                                         "log in (HTTP authentication) and call again")
        records = runtime.list_tasks(task_method.name, state, limit, offset, task_method.spec, caller)
        return [wire.progress_response(record, poll_after=runtime.poll_after(record)) for record in records]

    return list_


def _delayed_start(parameter: str) -> Callable[[TaskMethod], Callable[..., Any]]:
    """``m_at``/``m_later``: the start method with one more parameter. Ladon reads the
    parameter names from the signature and calls with positional arguments."""

    def make(task_method: TaskMethod) -> Callable[..., Any]:
        def start(self: Any, *values: Any, **kw: Any) -> wire.TaskInfoResponse:
            *args, when = values
            asked = {parameter: when}
            return task_method.start_delayed(tuple(args), kw, asked.get("not_before"), asked.get("start_in"),
                                             str(kw.get("HTTP_IDEMPOTENCY_KEY") or ""))

        positional = inspect.Parameter.POSITIONAL_OR_KEYWORD
        start.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
            [inspect.Parameter("self", positional)]
            + [inspect.Parameter(name, positional) for name in (*task_method.arg_names, parameter)]
            + [inspect.Parameter("kw", inspect.Parameter.VAR_KEYWORD)]
        )
        return start

    return make


class _Declared(enum.Enum):
    """Stands in a companion's signature for what the task method declares."""

    ARGS = "the task method's own arguments"
    RTYPE = "the task method's rtype"


@dataclass(frozen=True)
class _Companion:
    """One companion method ``m_<suffix>``: how its function is made, its signature for
    Ladon, and its documentation (Ladon reads the ``@param`` lines into the WSDL)."""

    suffix: str
    make: Callable[[TaskMethod], Callable[..., Any]]
    arg_types: tuple[Any, ...]
    rtype: Any
    doc: str
    only_if_listing: bool = False  # ``m_list``: see :func:`_lists`
    #: Needs of the request only its caller: Ladon passes it no keywords
    #: (copying the WSGI environ into them cost a poll more than the rest of its work),
    #: and :func:`ladon_tasks.principals.of_request` takes the dispatched request's.
    caller_only: bool = True

    def signature(self, task_method: TaskMethod) -> tuple[tuple[Any, ...], Any]:
        """The argument types and the rtype Ladon registers, for ``task_method``."""
        arg_types: list[Any] = []
        for arg_type in self.arg_types:
            arg_types.extend(task_method.arg_types if arg_type is _Declared.ARGS else (arg_type,))
        return tuple(arg_types), task_method.rtype if self.rtype is _Declared.RTYPE else self.rtype


_TASK_ID_DOC = "@param task_id: the id returned when the task was started"

#: Every companion, in the order Ladon registers them (the order of the WSDL's operations).
_COMPANIONS = (
    _Companion("progress", _progress, (PORTABLE_STRING,), wire.TaskProgressResponse,
              "Where the task stands: state, progress 0..1, message, times and attempts.\n"
              + _TASK_ID_DOC),
    _Companion("result", _result, (PORTABLE_STRING,), _Declared.RTYPE,
              "The task's result; may be asked again until the record expires.\n"
              "Faults: TaskNotFinished while it runs, TaskFailed, TaskCancelled, UnknownTask.\n"
              + _TASK_ID_DOC),
    _Companion("cancel", _cancel, (PORTABLE_STRING,), wire.TaskProgressResponse,
              "Cancel the task. A queued task never starts; a running one is stopped.\n"
              + _TASK_ID_DOC),
    _Companion("wait", _wait, (PORTABLE_STRING, float), wire.TaskProgressResponse,
              "Return as soon as the task has finished, or after at most seconds seconds; at once, with\n"
              "poll_after > 0, when the server holds as many waits as it can (ask again after poll_after).\n"
              + _TASK_ID_DOC + "\n"
              "@param seconds: longest wait (the server caps it)"),
    _Companion("wait_result", _wait_result, (PORTABLE_STRING, float), _Declared.RTYPE,
              "The task's result as soon as it has finished: _wait and _result in one call.\n"
              "Faults as _result; TaskNotFinished when seconds pass first, or at once when the server holds\n"
              "as many waits as it can (its message says: ask again in N s).\n"
              + _TASK_ID_DOC + "\n"
              "@param seconds: longest wait (the server caps it)"),
    _Companion("list", _list, (PORTABLE_STRING, int, int), [wire.TaskProgressResponse],
              "A page of this method's tasks, newest first.\n"
              "@param state: empty for all, or queued, running, succeeded, failed, cancelled\n"
              "@param limit: tasks per page, 1..500\n"
              "@param offset: tasks to skip",
              only_if_listing=True),
    _Companion("at", _delayed_start("not_before"), (_Declared.ARGS, float), wire.TaskInfoResponse,
              "Start the task as the method without _at does, but not before a time: it is queued until then\n"
              "and may be cancelled meanwhile. A time past starts it at once; one past the server's horizon\n"
              "(30 days by default) is refused with StartTooFar.\n"
              "@param not_before: the earliest start, seconds since the epoch",
              caller_only=False),
    _Companion("later", _delayed_start("start_in"), (_Declared.ARGS, float), wire.TaskInfoResponse,
              "Start the task as the method without _later does, but start_in seconds from now: it is queued\n"
              "until then and may be cancelled meanwhile; 0 or less starts it at once. Past the server's horizon\n"
              "(30 days by default): StartTooFar.\n"
              "@param start_in: seconds from now before the task may start",
              caller_only=False),
)

#: The last parameter of each delayed-start companion.
_DELAY_PARAMETERS = ("not_before", "start_in")


def _companions(task_method: TaskMethod) -> list[tuple[_Companion, Callable[..., Any]]]:
    """The companions ``task_method`` gets, each with its function bound to it."""
    functions = []
    for companion in _COMPANIONS:
        if companion.only_if_listing and not _lists(task_method):
            continue
        function = companion.make(task_method)
        function.__doc__ = companion.doc
        functions.append((companion, function))
    return functions


def _lists(task_method: TaskMethod) -> bool:
    """Whether the method gets ``m_list``: as its ``listing`` option says, else when this
    process's principals are configured (each caller lists its own tasks)."""
    listing = task_method.options.listing
    return principals.current().configured if listing is None else listing


def _register(task_method: TaskMethod, ladon_kw: dict[str, Any]) -> None:
    body, name = task_method.body, task_method.name
    clash = sorted(set(task_method.arg_names) & set(_DELAY_PARAMETERS))
    if clash:
        raise TypeError(f"task method {name!r}: a parameter may not be named {clash[0]!r} (the delayed-start "
                        f"methods {name}_at and {name}_later take it after the method's own)")
    method_info = global_service_collection().add_service_method(
        body, *task_method.arg_types, rtype=wire.TaskInfoResponse, **ladon_kw
    )
    if method_info is None:
        raise TypeError(f"task method {name!r} must be defined in a class: Ladon serves classes")
    method_info._has_keywords = True  # the start method needs Ladon's request keywords
    service_info = method_info.sinfo
    for companion, function in _companions(task_method):
        arg_types, rtype = companion.signature(task_method)
        info = service_info.add_method(function, *arg_types, rtype=rtype,
                                       override_method_name=f"{name}_{companion.suffix}")
        if companion.caller_only:  # Ladon would copy the environ into its keywords, twice
            info._has_keywords = False  # the caller is the dispatched request's (principals.of_request)
            info._ladon_tasks_caller_only = True  # compat.requests: whose request this thread dispatches


def _check_schedule_args(task_method: TaskMethod) -> None:
    """A schedule starts its method with its ``args``: they must fill every parameter,
    each in its declared type (:class:`~ladon_tasks.schedules.BadSchedule` otherwise)."""
    schedule = task_method.options.schedule
    assert schedule is not None
    wanted = len(task_method.arg_types)
    if len(schedule.args) != wanted:
        names = ", ".join(task_method.arg_names) or "none"
        raise BadSchedule(f"task method {task_method.name!r} takes {wanted} argument(s) ({names}): its schedule's "
                          f"args= gives {len(schedule.args)}")
    try:
        codec.encode_args(task_method.arg_types, schedule.args)
    except codec.CodecError as exc:
        raise BadSchedule(f"task method {task_method.name!r}: its schedule's args= do not fit: {exc}") from None


def ladonize(*arg_types: Any, **ladon_kw: Any) -> Callable[[Body], Body]:
    """Drop-in for ``ladon.ladonizer.ladonize``; ``tasktype=True`` or a dict of
    :class:`~ladon_tasks.options.TaskOptions` makes a task method.

    Typed as giving back the function it decorates, so editors and type checkers keep
    the method's signature; at run time a task method is a :class:`TaskMethod`
    descriptor in its place."""
    tasktype = ladon_kw.pop("tasktype", False)
    if tasktype is False or tasktype is None:
        return _ladon_ladonize(*arg_types, **ladon_kw)
    options = TaskOptions.parse(tasktype)
    if not options.enable:
        return _ladon_ladonize(*arg_types, **ladon_kw)
    if "rtype" not in ladon_kw:
        raise TypeError("ladonize needs rtype= for a task method, as for any Ladon method")
    rtype = ladon_kw.pop("rtype")
    if codec.uses_attachments(rtype) or any(codec.uses_attachments(t) for t in arg_types):
        raise TypeError("task methods cannot take or return attachments: they cannot be stored as JSON")

    def decorate(body: Body) -> Body:
        task_method = TaskMethod(body, tuple(arg_types), rtype, options)
        key = options.concurrency_key
        if key is not None and key not in task_method.arg_names:
            raise ValueError(f"tasktype option 'concurrency_key' of {task_method.name!r} names {key!r}, which is not "
                             f"one of its arguments ({', '.join(task_method.arg_names) or 'none'})")
        if options.schedule is not None:
            _check_schedule_args(task_method)
        _register(task_method, ladon_kw)
        return cast(Body, task_method)

    return decorate


def activate() -> None:
    """Make ``from ladon.ladonizer import ladonize`` give this decorator, so a service
    written for Ladon's own tasktype runs on ladon-tasks unchanged. ``import
    ladon_tasks`` calls it, so a handler that keeps ``LadonWSGIApplication([...])``
    needs only that import. (A service cannot be imported before it on Python 3.11+:
    Ladon fails to decorate without :mod:`ladon_tasks.compat`.)"""
    ladon.ladonizer.ladonize = ladonize
    ladon.ladonizer.decorator.ladonize = ladonize
