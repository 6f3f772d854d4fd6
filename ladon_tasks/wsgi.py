"""The WSGI application: Ladon's, with the plugin active and its error pages tamed.

:func:`make_application` is the one place an application activates ladon-tasks: it
swaps the decorator in before the services are imported (so services written for
Ladon's own tasktype work unchanged), configures the runtime, and wraps Ladon's
application so that a request Ladon cannot parse gets a short 4xx answer instead of
Ladon's HTTP 500 page with a server traceback. Faults from service methods are already
rendered by Ladon's interfaces; :mod:`ladon_tasks.compat` keeps tracebacks out of them.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from typing import Any, Callable, Iterable, Sequence

from ladon_tasks import compat
from ladon_tasks.expand import activate
from ladon_tasks.runtime import configure, get_runtime
from ladon_tasks.stores.memory import MemoryStore

log = logging.getLogger(__name__)

StartResponse = Callable[..., Any]


def split_service_spec(spec: str) -> tuple[str, str | None]:
    """``services/tasks.py`` -> (``tasks``, ``services``); ``pkg.mod`` -> (``pkg.mod``, None)."""
    if spec.endswith(".py") or os.sep in spec:
        path = os.path.abspath(spec)
        return os.path.splitext(os.path.basename(path))[0], os.path.dirname(path)
    return spec, None


class FaultSafeApplication:
    """Wraps Ladon's WSGI application.

    Ladon answers a request it cannot route or parse (unknown interface, unknown
    service, a broken description request) with ``500`` and the server's traceback as
    the body. Unless in debug mode, such answers become ``404``/``400`` with one line
    naming the problem; the traceback goes to the server log.
    """

    def __init__(self, ladon_app: Callable[..., Iterable[bytes]], debug: bool = False) -> None:
        self.ladon_app = ladon_app
        self.debug = debug
        self._checked_deployment = False
        self._lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if not self._checked_deployment:
            self._check_deployment(environ)
        captured: dict[str, Any] = {}

        def capture(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            captured["status"], captured["headers"] = status, headers
            return lambda data: None  # Ladon never uses write()

        body = self.ladon_app(environ, capture)
        status = captured.get("status", "500 Internal Server Error")
        if not status.startswith("500") or self.debug:
            start_response(status, captured.get("headers", []))
            return body
        text = b"".join(body).decode("utf-8", "replace")
        log.warning("Ladon could not serve %s %s:\n%s", environ.get("REQUEST_METHOD"), environ.get("PATH_INFO"), text)
        problem = _last_exception_line(text)
        not_found = any(name in text for name in ("UndefinedService", "UndefinedInterfaceName"))
        code = "404 Not Found" if not_found else "400 Bad Request"
        payload = f"{code.split(' ', 1)[1]}: {problem}\n".encode()
        start_response(code, [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(payload)))])
        return [payload]

    def _check_deployment(self, environ: dict[str, Any]) -> None:
        with self._lock:
            if self._checked_deployment:
                return
            self._checked_deployment = True
        if environ.get("wsgi.multiprocess") and isinstance(get_runtime().store, MemoryStore):
            log.error(
                "ladon-tasks: this server runs several processes but task state is kept in "
                "process memory; progress and result calls landing in another process will "
                "answer UnknownTask. Configure the Redis store for multi-process servers."
            )


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
    **runtime_settings: Any,
) -> FaultSafeApplication:
    """Import ``services`` (module names or ``.py`` paths) and return the application.

    ``runtime_settings`` go to :class:`ladon_tasks.runtime.TaskRuntime` (``store``,
    ``thread_workers``, ``process_workers``, ``wait_max``, ``max_args_bytes``); without
    any, the current runtime (embedded defaults) is kept.
    """
    from ladon.server.wsgi import LadonWSGIApplication

    compat.set_debug(debug)
    activate()
    if runtime_settings:
        configure(**runtime_settings)
    module_names, paths = [], list(path_list)
    for spec in services:
        module_name, directory = split_service_spec(spec)
        module_names.append(module_name)
        if directory and directory not in paths:
            paths.append(directory)
    for directory in paths:
        if directory not in sys.path:
            sys.path.insert(0, directory)
    ladon_app = LadonWSGIApplication(
        module_names, paths or None, catalog_name=catalog_name, catalog_desc=catalog_desc
    )
    return FaultSafeApplication(ladon_app, debug=debug)
