"""JSON-WSP calls over HTTP, as any JSON client makes them: the result, or the fault as
:class:`WireFault` with its name, code and string; an answer that is not JSON-WSP at
all is an :class:`HttpError`.

One client serves the tests and the benches. It keeps its connection open between calls
(HTTP/1.1 keep-alive, one ``http.client`` connection per thread, so the threads of a
test or the clients of a bench can share one instance), and opens a new one when the
server closes it - after every answer, for a server that speaks HTTP/1.0. A call that
meets a connection the server had closed while it was idle is sent again on a new one,
as HTTP clients do (the request was never read); a bench counting such errors turns
that off with ``retry_reused=False``.
"""

from __future__ import annotations

import http.client
import json
import threading
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, Protocol

#: Seconds one call may take; above the longest ``_wait`` a test asks for (30 s).
CALL_TIMEOUT = 60.0


class Served(Protocol):
    """Anything with a base URL: a ``ladon-tasks serve``, an Apache."""

    @property
    def url(self) -> str: ...


def post_json(url: str, payload: object, timeout: float = 30.0,
              headers: dict[str, str] | None = None) -> tuple[int, dict]:
    """One POST of ``payload`` on a connection of its own: the HTTP status and the JSON
    answer (an HTTP error's text as ``{"http_error": ...}``), for raw JSON-RPC calls."""
    request = urllib.request.Request(
        url, data=json.dumps(payload).encode(), headers={"Content-Type": "application/json", **(headers or {})}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, {"http_error": error.read().decode(errors="replace")}


class JsonWsp:
    """JSON-WSP calls to one service: ``client("method", arg=value)`` returns the
    ``result``, or raises :class:`WireFault` (or :class:`HttpError`, or ``OSError`` when
    the server cannot be reached)."""

    def __init__(self, server: Served | str, service: str, *, timeout: float = CALL_TIMEOUT,
                 retry_reused: bool = True) -> None:
        base = server if isinstance(server, str) else server.url
        parts = urllib.parse.urlsplit(base)
        self.url = f"{base.rstrip('/')}/{service}/jsonwsp"
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        self.path = f"{parts.path.rstrip('/')}/{service}/jsonwsp"
        self.timeout = timeout
        self.retry_reused = retry_reused
        self.headers = {"Content-Type": "application/json"}
        self._local = threading.local()
        self._lock = threading.Lock()
        self._connections: list[http.client.HTTPConnection] = []

    def __call__(self, method: str, **args: Any) -> Any:
        return self.call(method, args)

    def followed(self, method: str, task_id: str, timeout: float = 60.0, interval: float = 0.05) -> dict:
        """The task's ``_wait`` answer once it has finished, followed as a client does:
        ``_wait`` calls of 5 s, asked again while it runs (a wait may end first)."""
        from .servers import wait_until

        def finished() -> dict | None:
            answer = self(f"{method}_wait", task_id=task_id, seconds=5)
            return answer if answer["finished"] else None

        return wait_until(finished, timeout=timeout, interval=interval, what=f"{method} task {task_id} to finish")

    def call(self, method: str, args: dict[str, Any], headers: dict[str, str] | None = None) -> Any:
        """The call with HTTP headers too (``Idempotency-Key``)."""
        status, data = self.post(json.dumps({"methodname": method, "args": args}).encode(), headers)
        try:
            answer = json.loads(data)
        except ValueError:
            raise HttpError(status, data) from None
        if isinstance(answer, dict) and answer.get("type") == "jsonwsp/fault":
            raise WireFault(answer.get("fault") or {})
        if status != 200 or not isinstance(answer, dict) or "result" not in answer:
            raise HttpError(status, data)
        return answer["result"]

    def post(self, body: bytes, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
        """POST ``body`` to the service on this thread's connection: status and answer."""
        connection = self.connection()
        headers = {**self.headers, **headers} if headers else self.headers
        reused = self._local.reused = connection.sock is not None
        try:
            return self._exchange(connection, body, headers)
        except ConnectionError:
            connection.close()
            if not (reused and self.retry_reused):
                raise
        self._local.reused = False
        return self._exchange(connection, body, headers)

    def _exchange(self, connection: http.client.HTTPConnection, body: bytes,
                  headers: dict[str, str]) -> tuple[int, bytes]:
        try:
            connection.request("POST", self.path, body, headers)
            response = connection.getresponse()
            return response.status, response.read()
        except (OSError, http.client.HTTPException):
            connection.close()  # never reuse a connection in an unknown state
            raise

    @property
    def last_call_reused(self) -> bool:
        """Whether this thread's last call went out on a connection kept from before, so
        a bench can tell errors on new connections from errors on kept ones."""
        return bool(getattr(self._local, "reused", False))

    def open(self) -> None:
        """Open this thread's connection now, so that the first timed call does not pay
        for it."""
        connection = self.connection()
        if connection.sock is None:
            connection.connect()

    def connection(self) -> http.client.HTTPConnection:
        """This thread's connection (opened by its first request, and again after the
        server closed it)."""
        connection = getattr(self._local, "connection", None)
        if connection is None:
            connection = self._local.connection = http.client.HTTPConnection(self.host, self.port,
                                                                             timeout=self.timeout)
            with self._lock:
                self._connections.append(connection)
        return connection

    def close(self) -> None:
        """Close every connection this client opened, in any thread."""
        with self._lock:
            connections, self._connections = self._connections, []
        for connection in connections:
            connection.close()
        self._local = threading.local()


class WireFault(Exception):
    """A fault answer: ``name`` is the fault's name (ladon-tasks' strings start with it)."""

    def __init__(self, fault: dict) -> None:
        super().__init__(fault.get("string", "fault"))
        self.fault = fault
        self.string = str(fault.get("string", ""))
        self.code = fault.get("code")
        self.name = self.string.split(":", 1)[0]


class HttpError(Exception):
    """An answer that is not JSON-WSP: its HTTP status and the start of its body."""

    def __init__(self, status: int, body: bytes) -> None:
        super().__init__(f"HTTP {status}: {body[:200].decode(errors='replace')}")
        self.status = status
        self.body = body
