"""Start a task, follow it, get its result - for Python callers, over JSON-WSP.

    from ladon_tasks.client import TaskClient
    client = TaskClient('http://127.0.0.1:8080/InstanceService')
    info = client.run('cloneInstance', instance_id='a', new_instance_name='b', progress=True)

``run`` blocks until the task ends and returns its result, or raises a
:class:`TaskError` subclass naming what happened; ``start`` returns a
:class:`TaskHandle` with ``progress()``, ``wait(timeout)``, ``cancel()`` and ``result()``.
Every error this module raises is a :class:`TaskError`, so one ``except`` covers them.
Waiting uses the server's ``_wait`` method, which returns the moment the task ends, so a
client never polls in a tight loop. A server following as many waits as it can answers
one at once with ``poll_after``: the client lets that many seconds pass, then asks again,
until the task ends or its own timeout passes. The transport is Ladon's own
``JSONWSPClient``.
"""

from __future__ import annotations

import re
import sys
import time
from dataclasses import dataclass
from typing import Any, TextIO

from ladon.clients.jsonwsp import JSONWSPClient

import ladon_tasks.compat  # noqa: F401  (Ladon's JSON-WSP client needs its mend on Python 3)
from ladon_tasks import defaults


class TaskError(Exception):
    """A task call did not produce a result. ``fault_name`` is the server's fault name."""

    fault_name = ""

    def __init__(self, message: str, task_id: str = "", status: "TaskStatus | None" = None) -> None:
        super().__init__(message)
        self.task_id = task_id
        self.status = status


class TaskFailedError(TaskError):
    """The body raised, timed out or died; ``status.error`` says which."""

    fault_name = "TaskFailed"


class TaskCancelledError(TaskError):
    fault_name = "TaskCancelled"


class TaskExpiredError(TaskError):
    """The server does not know the id (never existed, or expired after result_ttl)."""

    fault_name = "UnknownTask"


class TaskNotFinishedError(TaskError):
    fault_name = "TaskNotFinished"


class WaitTimeout(TaskError):
    """``run``/``wait_result`` gave up before the task ended; the task goes on.
    (``wait`` does not raise it: it returns the last status, whose ``finished`` says.)"""


class RemoteFault(TaskError):
    """Any other fault the server answered with (bad arguments, store unavailable...),
    or a URL that names no Ladon service or method."""


class NotATaskMethodError(TaskError):
    """The method exists but is a plain method, not a task method: it has no ``_wait``.
    Raised before anything is sent, so nothing ran."""


class ServiceUnreachable(TaskError):
    """The server could not be reached (refused, reset, unknown host). A start call
    that failed this way may or may not have started a task."""


_FAULTS = {cls.fault_name: cls for cls in (TaskFailedError, TaskCancelledError, TaskExpiredError, TaskNotFinishedError)}


@dataclass(frozen=True)
class TaskStatus:
    """A ``TaskProgressResponse`` as a Python object."""

    task_id: str
    state: str
    progress: float
    message: str
    error: str
    attempts: int
    duration: float
    starttime: float
    submitted: float
    finishtime: float
    finished: bool
    cancel_requested: bool
    #: The step the body runs now or ran last, and how many succeeded (``kw['step']``).
    step: str = ""
    steps_done: int = 0
    #: Seconds to let pass before asking again (0: finished, or ask at once).
    poll_after: float = 0.0
    #: While queued for a retry: when the next attempt is due (seconds since the epoch).
    next_attempt: float = 0.0
    #: A delayed start: the time the task was asked not to start before; else 0.0.
    not_before: float = 0.0

    @classmethod
    def from_wire(cls, data: dict[str, Any]) -> "TaskStatus":
        return cls(
            task_id=data["task_id"], state=data["state"], progress=float(data["progress"]),
            message=data.get("message") or "", error=data.get("error") or "",
            attempts=int(data.get("attempts") or 0), duration=float(data.get("duration") or 0.0),
            starttime=float(data.get("starttime") or 0.0), submitted=float(data.get("submitted") or 0.0),
            finishtime=float(data.get("finishtime") or 0.0), finished=bool(data.get("finished")),
            cancel_requested=bool(data.get("cancel_requested")),
            step=data.get("step") or "", steps_done=int(data.get("steps_done") or 0),
            poll_after=float(data.get("poll_after") or 0.0),
            next_attempt=float(data.get("next_attempt") or 0.0),
            not_before=float(data.get("not_before") or 0.0),
        )


class TaskClient:
    """One Ladon service, e.g. ``http://host:8080/InstanceService``."""

    def __init__(self, service_url: str) -> None:
        service_url = service_url.rstrip("/")
        for suffix in ("/jsonwsp/description", "/jsonwsp"):
            if service_url.endswith(suffix):
                service_url = service_url[: -len(suffix)]
        self.service_url = service_url
        try:
            self._client = JSONWSPClient(description=f"{service_url}/jsonwsp/description")
        except OSError as error:
            raise ServiceUnreachable(f"cannot reach {service_url}: {error}") from None
        except ValueError:  # the answer was not a JSON-WSP description (a 404 page, say)
            raise RemoteFault(f"{service_url} is not a Ladon service (no JSON-WSP description there)") from None

    @property
    def methods(self) -> list[str]:
        return sorted(self._client.jsonwsp_description["methods"])

    def call(self, method: str, **args: Any) -> Any:
        """One JSON-WSP call; a fault becomes the matching :class:`TaskError`."""
        if method not in self._client.jsonwsp_description["methods"]:
            raise RemoteFault(f"{self.service_url} has no method {method!r}")
        info = self._client.method_info(method)
        unknown = sorted(name for name in args if name not in info["params_info"])
        if unknown:  # Ladon would drop them silently, and run the task without them
            raise RemoteFault(f"{method} has no argument(s) {', '.join(unknown)}; "
                              f"its arguments: {', '.join(info['params_order']) or '(none)'}")
        try:
            response = self._client.call_method(method, **args)
        except OSError as error:
            raise ServiceUnreachable(f"{method}: cannot reach {self.service_url}: {error}") from None
        if response == -1:  # Ladon's client: a mandatory argument is missing
            missing = [name for name in info["mandatory_params"] if name not in args]
            raise RemoteFault(f"{method} needs the argument(s) {', '.join(missing)}")
        body = response.response_dict
        if response.status != 200 or body is None:
            raise RemoteFault(f"{method}: HTTP {response.status}")
        if body.get("type") == "jsonwsp/fault":
            text = body["fault"]["string"]
            name = text.split(":", 1)[0]
            raise _FAULTS.get(name, RemoteFault)(text, task_id=str(args.get("task_id", "")))
        return body["result"]

    def start(self, method: str, **args: Any) -> "TaskHandle":
        self._check_task_method(method)
        info = self.call(method, **args)
        return TaskHandle(self, method, info["task_id"])

    def start_at(self, method: str, not_before: float, **args: Any) -> "TaskHandle":
        """Start ``method`` not before ``not_before`` (seconds since the epoch): ``m_at``."""
        self._check_task_method(method)
        info = self.call(f"{method}_at", not_before=not_before, **args)
        return TaskHandle(self, method, info["task_id"])

    def start_later(self, method: str, start_in: float, **args: Any) -> "TaskHandle":
        """Start ``method`` ``start_in`` seconds from now: ``m_later``."""
        self._check_task_method(method)
        info = self.call(f"{method}_later", start_in=start_in, **args)
        return TaskHandle(self, method, info["task_id"])

    def handle(self, method: str, task_id: str) -> "TaskHandle":
        """Follow a task started elsewhere."""
        self._check_task_method(method)
        return TaskHandle(self, method, task_id)

    def _check_task_method(self, method: str) -> None:
        """A task method has companions; a plain one would run (and answer no task id)."""
        methods = self._client.jsonwsp_description["methods"]
        if method not in methods:
            raise RemoteFault(f"{self.service_url} has no method {method!r}")
        if f"{method}_wait" not in methods:
            raise NotATaskMethodError(f"{method} is not a task method of {self.service_url}")

    def run(self, method: str, *, progress: bool | TextIO = False, timeout: float | None = None, **args: Any) -> Any:
        """Start ``method`` and return its result; ``progress=True`` draws a bar on stderr."""
        handle = self.start(method, **args)
        stream = sys.stderr if progress is True else (progress or None)
        if stream is None:
            return handle.wait_result(timeout)
        status = handle.wait(timeout, progress=stream)
        if not status.finished:
            raise WaitTimeout(f"task {handle.task_id} still {status.state} after {timeout}s", handle.task_id, status)
        return handle.result()


class TaskHandle:
    """A started task."""

    def __init__(self, client: TaskClient, method: str, task_id: str) -> None:
        self.client = client
        self.method = method
        self.task_id = task_id

    def __repr__(self) -> str:
        return f"TaskHandle({self.method!r}, {self.task_id!r})"

    def progress(self) -> TaskStatus:
        return TaskStatus.from_wire(self.client.call(f"{self.method}_progress", task_id=self.task_id))

    def cancel(self) -> TaskStatus:
        return TaskStatus.from_wire(self.client.call(f"{self.method}_cancel", task_id=self.task_id))

    def result(self) -> Any:
        try:
            return self.client.call(f"{self.method}_result", task_id=self.task_id)
        except (TaskFailedError, TaskCancelledError) as error:
            error.status = self.progress()
            raise

    def wait_result(self, timeout: float | None = None) -> Any:
        """The result, as soon as there is one: one round trip per ``defaults.WAIT_SLICE``."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            remaining = defaults.WAIT_SLICE if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                return self.client.call(
                    f"{self.method}_wait_result", task_id=self.task_id, seconds=min(remaining, defaults.WAIT_SLICE)
                )
            except TaskNotFinishedError as error:
                if deadline is not None and time.monotonic() >= deadline:
                    status = self.progress()
                    raise WaitTimeout(
                        f"task {self.task_id} still {status.state} after {timeout}s", self.task_id, status
                    ) from None
                _pause(_asked_to_wait(str(error)), deadline)
            except (TaskFailedError, TaskCancelledError) as error:
                error.status = self.progress()
                raise

    def wait(self, timeout: float | None = None, progress: TextIO | None = None) -> TaskStatus:
        """Block until the task ends or ``timeout`` seconds pass; returns the last status.
        With ``progress`` (a stream), draws a bar with the task's message."""
        deadline = None if timeout is None else time.monotonic() + timeout
        bar = _progress_display(progress, self.method) if progress is not None else None
        try:
            while True:
                remaining = defaults.WAIT_SLICE if deadline is None else max(0.0, deadline - time.monotonic())
                slice_ = min(remaining, defaults.BAR_REFRESH if bar else defaults.WAIT_SLICE)
                status = TaskStatus.from_wire(
                    self.client.call(f"{self.method}_wait", task_id=self.task_id, seconds=slice_)
                )
                if bar:
                    bar.update(status)
                if status.finished or (deadline is not None and time.monotonic() >= deadline):
                    return status
                _pause(status.poll_after, deadline)
        finally:
            if bar:
                bar.close()


#: How a ``TaskNotFinished`` of a wait the server could not hold says when to ask again.
_ASK_AGAIN = re.compile(r"ask again in ([0-9]+(?:\.[0-9]+)?) s\b")


def _asked_to_wait(message: str) -> float:
    """The seconds a ``TaskNotFinished`` message asks the client to let pass; 0 when it
    came from a wait that held until its seconds passed."""
    found = _ASK_AGAIN.search(message)
    return float(found.group(1)) if found else 0.0


def _pause(seconds: float, deadline: float | None) -> None:
    """Let ``seconds`` pass as the server advised - not past the caller's deadline."""
    if deadline is not None:
        seconds = min(seconds, deadline - time.monotonic())
    if seconds > 0:
        time.sleep(seconds)


def _progress_display(stream: TextIO, label: str) -> "_TerminalBar | _ProgressLines":
    """A redrawn bar on a terminal; elsewhere (a pipe, a log file) one line per change,
    because a redrawn bar there leaves every frame, and its last one twice. A terminal
    that reports no width (0 columns: some serial consoles, containers without a size)
    gets the lines too: a bar fitted to no width is an empty line."""
    isatty = getattr(stream, "isatty", None)
    if isatty is not None and isatty() and _columns(stream) > 0:
        return _TerminalBar(stream, label)
    return _ProgressLines(stream, label)


def _columns(stream: TextIO) -> int:
    """The terminal's width as it reports it, 0 when it reports none."""
    import os

    try:
        return os.get_terminal_size(stream.fileno()).columns
    except (AttributeError, OSError, ValueError):
        return 0


def _postfix(status: TaskStatus) -> str:
    return (status.state if status.finished else (status.message or status.state))[:60]


class _TerminalBar:
    """A tqdm bar showing the task's progress and message."""

    def __init__(self, stream: TextIO, label: str) -> None:
        from tqdm import tqdm

        self._bar = tqdm(total=1000, file=stream, desc=label, unit="‰", bar_format=(
            "{desc}: {percentage:3.0f}%|{bar}| {elapsed}{postfix}"
        ))

    def update(self, status: TaskStatus) -> None:
        self._bar.n = int(round(status.progress * 1000))
        self._bar.set_postfix_str(_postfix(status), refresh=False)
        self._bar.refresh()

    def close(self) -> None:
        self._bar.close()


class _ProgressLines:
    """``label:  67%, message`` - written when the percentage or message changes."""

    def __init__(self, stream: TextIO, label: str) -> None:
        self._stream = stream
        self._label = label
        self._last = ""

    def update(self, status: TaskStatus) -> None:
        line = f"{self._label}: {status.progress * 100:3.0f}%, {_postfix(status)}"
        if line != self._last:
            self._stream.write(line + "\n")
            self._stream.flush()
            self._last = line

    def close(self) -> None:
        pass
