"""The WSGI application: Ladon's, with the plugin active and its error pages tamed.

:func:`make_application` is the one place an application activates ladon-tasks: it
swaps the decorator in before the services are imported (so services written for
Ladon's own tasktype work unchanged), configures the runtime, and wraps Ladon's
application so that a request Ladon cannot parse gets a short 4xx answer instead of
Ladon's HTTP 500 page with a server traceback. Faults from service methods are already
rendered by Ladon's interfaces; :mod:`ladon_tasks.compat` keeps tracebacks out of them.

Before Ladon sees a request, the wrapper refuses what Ladon would mishandle: a body
declared larger than ``max_request_bytes`` gets ``413`` without being read (Ladon reads
the whole body into memory), a ``Content-Length`` that is not a number gets ``400``, and
a charset that is not a text encoding Python knows gets ``415`` (Ladon would fail
encoding even its fault).
"""

from __future__ import annotations

import atexit
import codecs
import functools
import logging
import os
import sys
import threading
from typing import Any, Callable, Iterable, Sequence

from ladon_tasks import defaults, faults
from ladon_tasks.compat import SOAP_FAULT_KEY
from ladon_tasks.expand import activate
from ladon_tasks.runtime import configure, get_runtime
from ladon_tasks.wsgi_types import StartResponse

log = logging.getLogger(__name__)


def split_service_spec(spec: str) -> tuple[str, str | None]:
    """``services/tasks.py`` -> (``tasks``, ``services``); ``pkg.mod`` -> (``pkg.mod``, None)."""
    if spec.endswith(".py") or os.sep in spec:
        path = os.path.abspath(spec)
        return os.path.splitext(os.path.basename(path))[0], os.path.dirname(path)
    return spec, None


def check_service_file(spec: str) -> None:
    """A service given as a file (``.py`` or a path) must be one: say so, rather than
    Python's ``No module named ...`` about a module the user never named."""
    if (spec.endswith(".py") or os.sep in spec) and not os.path.isfile(spec):
        raise ValueError(f"service file {spec} does not exist")


class FaultSafeApplication:
    """Wraps Ladon's WSGI application.

    Ladon answers a request it cannot route or parse (unknown interface, unknown
    service, a broken description request) with ``500`` and the server's traceback as
    the body. Unless in debug mode, such answers become ``404``/``400`` with one line
    naming the problem. An unknown path is a client's mistake, not the server's: it is
    logged as one line; the traceback of anything else goes to the server log.
    """

    def __init__(
        self,
        ladon_app: Callable[..., Iterable[bytes]],
        debug: bool = False,
        max_request_bytes: int = defaults.MAX_REQUEST_BYTES,
    ) -> None:
        if max_request_bytes < 1:
            raise ValueError("max_request_bytes must be at least 1")
        self.ladon_app = ladon_app
        self.debug = debug
        self.max_request_bytes = max_request_bytes
        self._checked_deployment = False
        self._lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if not self._checked_deployment:
            self._check_deployment(environ)
        refusal = self._refuse(environ)
        if refusal is not None:
            return plain_response(start_response, *refusal)
        captured: dict[str, Any] = {}

        def capture(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            captured["status"], captured["headers"] = status, headers
            return lambda data: None  # Ladon never uses write()

        body = self.ladon_app(environ, capture)
        status = captured.get("status", "500 Internal Server Error")
        if not status.startswith("500") or self.debug or environ.get(SOAP_FAULT_KEY):
            start_response(status, captured.get("headers", []))
            return body
        text = b"".join(body).decode("utf-8", "replace")
        problem = _last_exception_line(text)
        request = f"{environ.get('REQUEST_METHOD')} {environ.get('PATH_INFO')!r}"
        if any(name in text for name in ("UndefinedService", "UndefinedInterfaceName")):
            log.info("not found: %s (%s)", request, problem)
            return plain_response(start_response, "404 Not Found", problem)
        log.warning("Ladon could not serve %s:\n%s", request, text)
        return plain_response(start_response, "400 Bad Request", problem)

    def _refuse(self, environ: dict[str, Any]) -> tuple[str, str] | None:
        """Status and message for a request Ladon must not see, or ``None`` to serve it.

        Checked from the headers alone, so an oversized body is never read."""
        declared = str(environ.get("CONTENT_LENGTH") or "").strip()
        if declared:
            if not (declared.isascii() and declared.isdigit()):
                return "400 Bad Request", f"Content-Length {declared[:40]!r} is not a number of bytes"
            if int(declared) > self.max_request_bytes:
                return (
                    "413 Request Entity Too Large",
                    f"the request body has {declared} bytes; this server accepts at most {self.max_request_bytes}",
                )
        charset = _request_charset(environ)
        if charset is not None:
            problem = charset_problem(charset)
            if problem is not None:
                return "415 Unsupported Media Type", problem
        return None

    def _check_deployment(self, environ: dict[str, Any]) -> None:
        with self._lock:
            if self._checked_deployment:
                return
            self._checked_deployment = True
        if environ.get("wsgi.multiprocess") and not get_runtime().store.shared:
            log.error(
                "ladon-tasks: this server runs several processes but task state is kept in "
                "process memory; progress and result calls landing in another process will "
                "answer UnknownTask. Configure the Redis store for multi-process servers."
            )


def plain_response(start_response: StartResponse, status: str, message: str) -> list[bytes]:
    """A one-line ``text/plain`` answer: ``Reason phrase: message``."""
    payload = f"{status.split(' ', 1)[1]}: {message}\n".encode("utf-8", "backslashreplace")
    start_response(status, [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(payload)))])
    return [payload]


#: Codecs Python counts as text encodings that are no character set of a document:
#: host-name labels, escape sequences and a codec that fails on purpose.
_NOT_DOCUMENT_CHARSETS = frozenset({"idna", "punycode", "undefined", "unicode-escape", "raw-unicode-escape"})


@functools.lru_cache(maxsize=64)
def charset_problem(charset: str) -> str | None:
    """Why ``charset`` cannot be the character set of a request and its answer, or
    ``None`` when it can. Ladon decodes the body and encodes the answer - faults
    included - with it, so it must be a text encoding: ``rot13``, ``base64``, ``zlib``,
    ``hex`` and the like transform bytes (Python raises on ``str.encode`` with them),
    and ``idna`` or ``undefined`` fail on ordinary text."""
    shown = ascii(charset[:40])
    try:
        info = codecs.lookup(charset)
    except LookupError:
        return f"unknown charset {shown}"
    if not getattr(info, "_is_text_encoding", True) or info.name in _NOT_DOCUMENT_CHARSETS:
        return f"charset {shown} is not a text encoding"
    return None


def _request_charset(environ: dict[str, Any]) -> str | None:
    """The charset Ladon will decode the request and encode the answer with, if one is named."""
    from ladon.server.wsgi_application import probe_charset

    return probe_charset(environ, default=None)


def _last_exception_line(traceback_text: str) -> str:
    lines = [line.strip() for line in traceback_text.splitlines() if line.strip()]
    lines = [line for line in lines if not line.startswith("Hint:")]
    line = lines[-1] if lines else "the request could not be processed"
    for prefix in ("ladon.exceptions.dispatcher.", "ladon.exceptions."):
        line = line.replace(prefix, "")
    return line[:300]


def make_application(
    services: Sequence[str],
    *,
    path_list: Sequence[str] = (),
    debug: bool = False,
    catalog_name: str | None = None,
    catalog_desc: str | None = None,
    max_request_bytes: int = defaults.MAX_REQUEST_BYTES,
    shutdown_grace: float = defaults.SHUTDOWN_GRACE,
    **runtime_settings: Any,
) -> FaultSafeApplication:
    """Import ``services`` (module names or ``.py`` paths) and return the application.

    ``max_request_bytes`` bounds a request body (larger ones get ``413`` unread).
    ``shutdown_grace``: seconds running bodies may finish when the process stops.

    ``runtime_settings`` go to :func:`ladon_tasks.runtime.configure` (``store``,
    ``thread_workers``, ``process_workers``, ``wait_max``, ``max_args_bytes``,
    ``wait_threads``, ``poll_after``, and ``principal``, ``require_principal``:
    :mod:`ladon_tasks.principals`); without any, the current runtime (embedded
    defaults) is kept.
    """
    from ladon.server.wsgi import LadonWSGIApplication

    faults.set_debug(debug)
    activate()
    module_names, paths = [], list(path_list)
    for spec in services:
        check_service_file(spec)
        module_name, directory = split_service_spec(spec)
        module_names.append(module_name)
        if directory and directory not in paths:
            paths.append(directory)
    for directory in paths:
        if directory not in sys.path:
            sys.path.insert(0, directory)
    if runtime_settings:  # after the paths: a principal hook may live beside the services
        configure(**runtime_settings)
    ladon_app = LadonWSGIApplication(
        module_names, paths or None, catalog_name=catalog_name, catalog_desc=catalog_desc
    )
    get_runtime().start_caretaking()  # the services are imported: their lost tasks can run here
    get_runtime().start_scheduling()  # and their schedules' ticks
    _shut_down_with_the_process(shutdown_grace)
    return FaultSafeApplication(ladon_app, debug=debug, max_request_bytes=max_request_bytes)


_shutdown_hooked = False


def _shut_down_with_the_process(grace: float) -> None:
    """When this process stops cleanly, the runtime stops taking tasks, lets running
    bodies finish for ``grace`` seconds and hands the rest over (or ends them). Under
    mod_wsgi the daemon's shutdown event says so (a graceful restart, a recycled daemon,
    Apache stopping); elsewhere the interpreter's exit does."""
    global _shutdown_hooked
    if _shutdown_hooked:
        return
    _shutdown_hooked = True

    def shut_down(*_: Any, **__: Any) -> None:
        get_runtime().shutdown(grace=grace)

    try:
        import mod_wsgi

        subscribe = getattr(mod_wsgi, "subscribe_shutdown", None)
    except ImportError:
        subscribe = None
    if subscribe is not None:
        subscribe(shut_down)
    else:
        atexit.register(shut_down)
