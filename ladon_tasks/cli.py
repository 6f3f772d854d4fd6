"""``ladon-tasks``: serve services with the plugin active, and look after tasks.

    ladon-tasks serve services/task_service.py [--host 127.0.0.1] [--port 8080]

Each sub-command lives in a function ``cmd_<name>`` that takes the parsed arguments and
returns an exit code; :func:`build_parser` wires the arguments.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import Sequence

from ladon_tasks import defaults


def cmd_serve(args: argparse.Namespace) -> int:
    from werkzeug.serving import run_simple

    from ladon_tasks.wsgi import make_application

    settings = {
        "thread_workers": args.thread_workers,
        "process_workers": args.process_workers,
    }
    application = make_application(args.services, debug=args.debug, **settings)
    print(
        f"ladon-tasks: serving {', '.join(args.services)} on http://{args.host}:{args.port}/",
        file=sys.stderr,
        flush=True,
    )
    run_simple(
        args.host,
        args.port,
        application,
        threaded=True,
        use_reloader=args.reload,
        extra_files=[path for path in args.services if os.path.exists(path)] if args.reload else None,
    )
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ladon-tasks", description=__doc__.split("\n\n")[0])
    parser.add_argument("--log-level", default=os.environ.get("LADON_TASKS_LOG_LEVEL", "INFO"))
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="serve Ladon services with ladon-tasks active (Werkzeug)")
    serve.add_argument("services", nargs="+", metavar="MODULE_OR_PATH", help="service modules or .py files")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8080, help="port to bind (default 8080)")
    serve.add_argument("--reload", action="store_true", help="restart when a service file changes")
    serve.add_argument("--debug", action="store_true", help="send tracebacks with faults (never in production)")
    serve.add_argument("--thread-workers", type=int, default=defaults.THREAD_WORKERS)
    serve.add_argument("--process-workers", type=int, default=defaults.PROCESS_WORKERS)
    serve.set_defaults(handler=cmd_serve)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return args.handler(args)
    except ValueError as exc:  # bad option values: a clear line, not a traceback
        parser.error(str(exc))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
