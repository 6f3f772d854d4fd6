"""A Ladon application on Werkzeug's threaded server, in a process of its own: how the
benches serve the anchors and the hand-wired peers, as a Ladon user runs them.

    python -m bench.ladon_server --port PORT [--server werkzeug|waitress] [--ladon-tasks [--redis URL]]
                                 DIRECTORY MODULE...

``--server waitress`` serves it with the waitress set-up of ``ladon-tasks serve``
(:func:`ladon_tasks.serving.make_server`, the same threads and timeouts), so a peer can be
compared with ladon-tasks on the same HTTP server.

``--ladon-tasks`` builds the application with ``ladon_tasks.wsgi.make_application``
instead (the plugin active, its embedded defaults, or the Redis store of ``--redis``); without it the application is
Ladon's own (:mod:`bench.plain_ladon`). One process per server: Ladon keeps its services
and its tasks in module globals, so two applications in one process would measure each
other. Requests are not logged: a line per request on stderr would cost more than some
of the calls measured.
"""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path
from typing import Any

from tests.support.servers import RunningServer, free_port, launch, serves_catalogue


SERVERS = ("werkzeug", "waitress")


def serve(port: int, directory: str, modules: list[str], ladon_tasks: bool, redis_url: str = "",
          server_name: str = "werkzeug") -> None:
    """Serve until SIGTERM (the bench stops its servers by pid)."""
    import logging

    from werkzeug.serving import WSGIRequestHandler, make_server

    logging.basicConfig(level=logging.WARNING)
    if ladon_tasks:
        from ladon_tasks.wsgi import make_application

        settings: dict[str, Any] = {}
        if redis_url:
            from ladon_tasks.redis import open_store

            settings["store"] = open_store(redis_url)
        application: Any = make_application(modules, path_list=[directory], **settings)
    else:
        from bench.plain_ladon import application as plain_application

        application = plain_application(modules, directory)

    class QuietHandler(WSGIRequestHandler):
        def log_request(self, *args: Any, **kwargs: Any) -> None:
            pass

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    if server_name == "waitress":
        from ladon_tasks.serving import make_server as make_waitress_server

        make_waitress_server("127.0.0.1", port, application).run()
        return
    server = make_server("127.0.0.1", port, application, threaded=True, request_handler=QuietHandler)
    server.serve_forever()


def start(directory: Path, modules: list[str], log_path: Path, *, ladon_tasks: bool = False,
          redis_url: str = "", env: dict[str, str] | None = None, server: str = "werkzeug") -> RunningServer:
    """Start a server process on a free port; returns once its catalogue answers.
    ``redis_url``: ladon-tasks with the Redis store at that URL; ``server``: one of
    :data:`SERVERS`."""
    port = free_port()
    command = [sys.executable, "-m", "bench.ladon_server", "--port", str(port), "--server", server,
               *(["--ladon-tasks"] if ladon_tasks else []), *(["--redis", redis_url] if redis_url else []),
               str(directory), *modules]
    return launch(command, port, log_path, serves_catalogue, f"server of {', '.join(modules)}", env, timeout=60)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--server", choices=SERVERS, default="werkzeug", help="the HTTP server (default werkzeug)")
    parser.add_argument("--ladon-tasks", action="store_true", help="build with ladon_tasks.wsgi.make_application")
    parser.add_argument("--redis", default="", metavar="URL", help="with --ladon-tasks: the Redis store at URL")
    parser.add_argument("directory")
    parser.add_argument("modules", nargs="+")
    args = parser.parse_args()
    serve(args.port, args.directory, args.modules, args.ladon_tasks, args.redis, args.server)


if __name__ == "__main__":
    main()
