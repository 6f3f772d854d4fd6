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

    from ladon_tasks.deployment import make_store, read_settings
    from ladon_tasks.wsgi import make_application

    settings = read_settings()
    if args.redis:
        settings["LADON_TASKS_REDIS_URL"] = args.redis
    runtime_settings = {
        "thread_workers": args.thread_workers,
        "process_workers": args.process_workers,
        "store": make_store(settings),
    }
    application = make_application(args.services, debug=args.debug, **runtime_settings)
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


def _parse_call_arguments(pairs: Sequence[str]) -> dict[str, object]:
    """``key=value``: JSON lists and objects are decoded, everything else stays a string
    (Ladon converts strings to the declared type, as it does for every JSON-WSP call)."""
    import json

    arguments: dict[str, object] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"argument {pair!r} is not of the form key=value")
        if value[:1] in ("[", "{"):
            try:
                arguments[key] = json.loads(value)
                continue
            except json.JSONDecodeError as exc:
                raise ValueError(f"argument {key}: not valid JSON ({exc})") from None
        arguments[key] = value
    return arguments


def cmd_call(args: argparse.Namespace) -> int:
    import json

    from ladon_tasks.client import TaskClient, TaskError

    service, _, method = args.target.partition(".")
    if not service or not method:
        raise ValueError(f"{args.target!r} is not SERVICE.METHOD")
    try:
        client = TaskClient(f"{args.url.rstrip('/')}/{service}")
        handle = client.start(method, **_parse_call_arguments(args.arguments))
        if not args.wait:
            print(handle.task_id)
            return 0
        print(f"task {handle.task_id}", file=sys.stderr)
        status = handle.wait(args.timeout, progress=None if args.quiet else sys.stderr)
        if not status.finished:
            print(f"still {status.state} after {args.timeout}s: task {handle.task_id}", file=sys.stderr)
            return 3
        print(json.dumps(handle.result(), indent=2, ensure_ascii=False))
        return 0
    except TaskError as error:
        print(f"ladon-tasks call: {error}", file=sys.stderr)
        return 1
    except OSError as error:
        print(f"ladon-tasks call: cannot reach {args.url}: {error}", file=sys.stderr)
        return 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ladon-tasks", description=__doc__.split("\n\n")[0])
    parser.add_argument("--log-level", default=os.environ.get("LADON_TASKS_LOG_LEVEL", "INFO"))
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="serve Ladon services with ladon-tasks active (Werkzeug)")
    serve.add_argument("services", nargs="+", metavar="MODULE_OR_PATH", help="service modules or .py files")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8080, help="port to bind (default 8080)")
    serve.add_argument("--reload", action="store_true", help="restart when a service file changes")
    serve.add_argument(
        "--redis", metavar="URL", default=None,
        help="keep task state in Redis (default: $LADON_TASKS_REDIS_URL or $REDIS_HOST, else in process)",
    )
    serve.add_argument("--debug", action="store_true", help="send tracebacks with faults (never in production)")
    serve.add_argument("--thread-workers", type=int, default=defaults.THREAD_WORKERS)
    serve.add_argument("--process-workers", type=int, default=defaults.PROCESS_WORKERS)
    serve.set_defaults(handler=cmd_serve)

    call = commands.add_parser("call", help="start a task on a running server; --wait shows a progress bar")
    call.add_argument("url", help="the server, e.g. http://127.0.0.1:8080")
    call.add_argument("target", metavar="SERVICE.METHOD")
    call.add_argument("arguments", nargs="*", metavar="key=value")
    call.add_argument("--wait", action="store_true", help="follow the task and print its result (JSON)")
    call.add_argument("--timeout", type=float, default=None, help="give up waiting after this many seconds")
    call.add_argument("--quiet", action="store_true", help="no progress bar")
    call.set_defaults(handler=cmd_call)
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
