"""The HTTP server of ``ladon-tasks serve`` (and of the standalone dashboard): waitress.

Werkzeug's development server answers every request with ``Connection: close`` and a
new thread, and waits for a client's next bytes for ever. waitress reads requests with
non-blocking I/O in one thread and hands complete requests to a fixed pool of worker
threads, keeps HTTP/1.1 connections alive, and closes connections idle longer than
``read_timeout``: a client that sends half a request and stops holds no thread at all.
The same ``serve`` answers several times as many calls per second (see
``bench/README.md``).

``--reload`` keeps Werkzeug's reloader, for development.
"""

from __future__ import annotations

import errno
import logging
import signal
import sys
import threading
import time
from typing import Any, Callable

from ladon_tasks import defaults
from ladon_tasks.stop_signals import stop_on_signals
from ladon_tasks.wsgi_types import StartResponse, WSGIApp


class AddressTaken(OSError):
    """The address to serve on is in use (another server listens there); the message
    says which and what to do."""


def make_server(
    host: str,
    port: int,
    application: WSGIApp,
    *,
    read_timeout: float = defaults.READ_TIMEOUT,
    threads: int = defaults.SERVER_THREADS,
    max_request_bytes: int = defaults.MAX_REQUEST_BYTES,
) -> Any:
    """A waitress server bound to ``host:port``, not yet running (``.run()``)."""
    import waitress

    if not read_timeout > 0:
        raise ValueError(f"the read timeout must be a number of seconds > 0, got {read_timeout!r}")
    if threads < 1:
        raise ValueError(f"the server needs at least 1 thread, got {threads}")
    logging.getLogger("waitress.queue").setLevel(logging.ERROR)  # "task queue depth" is normal under load
    try:
        return waitress.create_server(
            application,
            host=host,
            port=port,
            threads=threads,
            channel_timeout=read_timeout,
            cleanup_interval=max(0.5, min(read_timeout / 2, 30.0)),
            max_request_body_size=max_request_bytes,
            ident="ladon-tasks",
            expose_tracebacks=False,
            clear_untrusted_proxy_headers=True,
        )
    except OSError as exc:
        if exc.errno != errno.EADDRINUSE:
            raise
        raise AddressTaken(f"port {port} on {host} is taken: another server listens there "
                           "(stop it, or choose another port)") from None


class BackgroundServer:
    """A server run by a daemon thread (a worker's metrics and health): ``shutdown()``
    closes it."""

    def __init__(self, server: Any) -> None:
        self._server = server
        self._thread = threading.Thread(target=server.run, name="ladon-tasks-probes", daemon=True)
        self._thread.start()

    def shutdown(self) -> None:
        _close_from_its_loop(self._server)
        self._thread.join(timeout=5)


def serve_in_background(host: str, port: int, application: WSGIApp,
                        read_timeout: float = defaults.READ_TIMEOUT, threads: int = 4) -> BackgroundServer:
    """Serve ``application`` from a daemon thread. Binding errors are raised here, before
    any thread starts."""
    return BackgroundServer(make_server(host, port, application, read_timeout=read_timeout, threads=threads))


def _close_from_its_loop(server: Any) -> None:
    """Close the listening socket and every connection, from the server's own loop
    thread (its channels are not safe to touch from another); its ``run`` then returns."""
    from waitress import wasyncore

    server.trigger.pull_trigger(lambda: wasyncore.close_all(server._map))


def serve_with_reloader(host: str, port: int, application: WSGIApp, read_timeout: float, **options: Any) -> None:
    """Werkzeug's server with its reloader, for ``serve --reload``: a restart whenever a
    service file changes; ``options`` go to ``run_simple`` (``extra_files``)."""
    from werkzeug.serving import WSGIRequestHandler, run_simple

    handler = type("TimedRequestHandler", (WSGIRequestHandler,), {"timeout": float(read_timeout)})
    run_simple(host, port, application, threaded=True, use_reloader=True, request_handler=handler, **options)


def serve_until_stopped(host: str, port: int, application: WSGIApp, read_timeout: float, grace: float,
                        threads: int = defaults.SERVER_THREADS,
                        max_request_bytes: int = defaults.MAX_REQUEST_BYTES,
                        bound: Callable[[], None] = lambda: None) -> None:
    """Serve until SIGTERM or SIGINT, then stop cleanly: new tasks are refused at once,
    running bodies get ``grace`` seconds (progress and result calls are still answered
    meanwhile), what is left is handed over or ended, requests in flight are answered,
    and only then the server stops. ``bound`` is called once the address is held (a
    taken one raises :class:`AddressTaken` before): what announces the server says so
    only when it is true."""
    from ladon_tasks.runtime import get_runtime

    in_flight = [0]
    counter = threading.Condition()

    def counted(environ: dict[str, Any], start_response: StartResponse) -> Any:
        with counter:
            in_flight[0] += 1
        try:
            yield from application(environ, start_response)
        finally:
            with counter:
                in_flight[0] -= 1
                counter.notify_all()

    server = make_server(host, port, counted, read_timeout=read_timeout, threads=threads,
                         max_request_bytes=max_request_bytes)
    bound()

    def stop() -> None:
        get_runtime().shutdown(grace=grace)
        deadline = time.monotonic() + defaults.REQUEST_DRAIN
        with counter:
            while in_flight[0] and time.monotonic() < deadline:
                counter.wait(max(0.0, deadline - time.monotonic()))
        _close_from_its_loop(server)

    def on_signal(signum: int) -> None:
        get_runtime().begin_shutdown()  # from this moment a start call is refused
        print(f"ladon-tasks: {signal.Signals(signum).name}: stopping (grace {grace:g}s)", file=sys.stderr, flush=True)
        threading.Thread(target=stop, name="ladon-tasks-stop", daemon=True).start()

    stop_on_signals(on_signal)  # once: a second signal (a parent forwarding its own) is ignored
    server.run()
    server.task_dispatcher.shutdown(timeout=1)
