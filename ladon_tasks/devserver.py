"""The development server of ``ladon-tasks serve`` and ``ladon-tasks dashboard``:
Werkzeug's threaded server, with a read timeout.

Werkzeug's server waits for a client's next bytes for ever, so a client that sends half
a request and stops holds one server thread until it disconnects; fifty such clients
hold fifty threads. Here every read and write on a connection gives up after
``read_timeout`` seconds (``defaults.READ_TIMEOUT``): the connection is closed and the
thread freed. The timeout counts per read, not per request, so a slow but steady
upload still gets through; a task method that runs long (``_wait``) does not read
meanwhile and is not cut short.
"""

from __future__ import annotations

from typing import Any

from werkzeug.serving import WSGIRequestHandler, run_simple


def request_handler(read_timeout: float) -> type[WSGIRequestHandler]:
    """Werkzeug's request handler with ``read_timeout`` seconds on each socket read."""
    if not read_timeout > 0:
        raise ValueError(f"the read timeout must be a number of seconds > 0, got {read_timeout!r}")
    return type("TimedRequestHandler", (WSGIRequestHandler,), {"timeout": float(read_timeout)})


def serve(host: str, port: int, application: Any, read_timeout: float, **options: Any) -> None:
    """``werkzeug.serving.run_simple``, threaded, with a read timeout; ``options`` go to it
    unchanged (``use_reloader``, ``extra_files``)."""
    run_simple(host, port, application, threaded=True, request_handler=request_handler(read_timeout), **options)
