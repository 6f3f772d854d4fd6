"""The development server of ``ladon-tasks serve`` and ``ladon-tasks dashboard``:
Werkzeug's threaded server, with a read timeout and a clean stop.

Werkzeug's server waits for a client's next bytes for ever, so a client that sends half
a request and stops holds one server thread until it disconnects; fifty such clients
hold fifty threads. Here every read and write on a connection gives up after
``read_timeout`` seconds (``defaults.READ_TIMEOUT``): the connection is closed and the
thread freed. The timeout counts per read, not per request, so a slow but steady
upload still gets through; a task method that runs long (``_wait``) does not read
meanwhile and is not cut short.
"""

from __future__ import annotations

import signal
import sys
import threading
import time
from typing import Any

from werkzeug.serving import WSGIRequestHandler, make_server, run_simple

from ladon_tasks import defaults


def request_handler(read_timeout: float) -> type[WSGIRequestHandler]:
    """Werkzeug's request handler with ``read_timeout`` seconds on each socket read."""
    if not read_timeout > 0:
        raise ValueError(f"the read timeout must be a number of seconds > 0, got {read_timeout!r}")
    return type("TimedRequestHandler", (WSGIRequestHandler,), {"timeout": float(read_timeout)})


def serve(host: str, port: int, application: Any, read_timeout: float, **options: Any) -> None:
    """``werkzeug.serving.run_simple``, threaded, with a read timeout; ``options`` go to it
    unchanged (``use_reloader``, ``extra_files``)."""
    run_simple(host, port, application, threaded=True, request_handler=request_handler(read_timeout), **options)


def serve_until_stopped(host: str, port: int, application: Any, read_timeout: float, grace: float) -> None:
    """Serve until SIGTERM or SIGINT, then stop cleanly: new tasks are refused at once,
    running bodies get ``grace`` seconds (progress and result calls are still answered
    meanwhile), what is left is handed over or ended, requests in flight are answered,
    and only then the server stops."""
    from ladon_tasks.runtime import get_runtime

    in_flight = [0]
    counter = threading.Condition()

    def counted(environ: dict, start_response: Any) -> Any:
        with counter:
            in_flight[0] += 1
        try:
            yield from application(environ, start_response)
        finally:
            with counter:
                in_flight[0] -= 1
                counter.notify_all()

    server = make_server(host, port, counted, threaded=True, request_handler=request_handler(read_timeout))
    stopping = threading.Event()

    def stop() -> None:
        get_runtime().shutdown(grace=grace)
        deadline = time.monotonic() + defaults.REQUEST_DRAIN
        with counter:
            while in_flight[0] and time.monotonic() < deadline:
                counter.wait(max(0.0, deadline - time.monotonic()))
        server.shutdown()

    def on_signal(signum: int, frame: object) -> None:
        if stopping.is_set():
            return
        stopping.set()
        get_runtime().begin_shutdown()  # from this moment a start call is refused
        print(f"ladon-tasks: {signal.Signals(signum).name}: stopping (grace {grace:g}s)", file=sys.stderr, flush=True)
        threading.Thread(target=stop, name="ladon-tasks-stop", daemon=True).start()

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, on_signal)
    server.serve_forever()
    server.server_close()
