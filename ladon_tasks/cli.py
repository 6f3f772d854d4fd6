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
from typing import Any, Sequence

from ladon_tasks import defaults


def cmd_serve(args: argparse.Namespace) -> int:
    from ladon_tasks.deployment import allowed_hosts, make_store, read_settings
    from ladon_tasks.devserver import serve, serve_until_stopped
    from ladon_tasks.hosts import HostCheck
    from ladon_tasks.wsgi import make_application

    settings = read_settings()
    if args.redis:
        settings["LADON_TASKS_REDIS_URL"] = args.redis
    runtime_settings = {
        "thread_workers": args.thread_workers,
        "process_workers": args.process_workers,
        "owner_lease": args.lease,
        "store": make_store(settings),
    }
    application = make_application(
        args.services, debug=args.debug, max_request_bytes=args.max_request_bytes, shutdown_grace=args.grace,
        **runtime_settings,
    )
    if not args.no_dashboard:
        from ladon_tasks.dashboard import DashboardApp, mount

        token = args.dashboard_token or settings.get("LADON_TASKS_DASHBOARD_TOKEN")
        if not token and args.host not in ("127.0.0.1", "localhost", "::1"):
            raise ValueError("serving beyond loopback: give the dashboard a --dashboard-token, or --no-dashboard")
        application = mount(application, DashboardApp(token=token), prefix="/_tasks")
    hosts = allowed_hosts(settings, args.host, args.allowed_host)
    print(
        f"ladon-tasks: serving {', '.join(args.services)} on http://{args.host}:{args.port}/"
        + ("" if args.no_dashboard else f" (dashboard: http://{args.host}:{args.port}/_tasks/)")
        + f"; answering {hosts.describe()}",
        file=sys.stderr,
        flush=True,
    )
    application = HostCheck(application, hosts)
    if args.reload:
        serve(args.host, args.port, application, args.read_timeout, use_reloader=True,
              extra_files=[path for path in args.services if os.path.exists(path)])
        return 0
    serve_until_stopped(args.host, args.port, application, args.read_timeout, args.grace)
    return 0


def _import_services(services: Sequence[str]) -> None:
    """Import service modules as the web server does, with the plugin active, so a
    worker resolves the same task methods (legacy Ladon imports included)."""
    import importlib

    from ladon_tasks.expand import activate
    from ladon_tasks.wsgi import split_service_spec

    activate()
    for spec in services:
        module_name, directory = split_service_spec(spec)
        if directory and directory not in sys.path:
            sys.path.insert(0, directory)
        importlib.import_module(module_name)


def _redis_store(url: str | None):  # type: ignore[no-untyped-def]
    from ladon_tasks.deployment import make_store, read_settings

    settings = read_settings()
    if url:
        settings["LADON_TASKS_REDIS_URL"] = url
    store = make_store(settings)
    if store is None:
        raise ValueError("this command needs Redis: --redis URL, $LADON_TASKS_REDIS_URL or $REDIS_HOST")
    return store


def cmd_worker(args: argparse.Namespace) -> int:
    from ladon_tasks.redis.queue import RedisQueue
    from ladon_tasks.expand import queue_priorities
    from ladon_tasks.worker import Worker

    store = _redis_store(args.redis)
    _import_services(args.services)
    queues = [
        RedisQueue(store.client, store.prefix, name, lease_seconds=args.lease, levels=queue_priorities(name))
        for name in args.queues
    ]
    worker = Worker(store, queues, concurrency=args.concurrency, grace=args.grace,
                    runner="thread" if args.threads else "process")
    worker.stop_on_signals()
    worker.start()
    print(f"ladon-tasks worker: {worker.size} slot(s) on {', '.join(args.queues)}", file=sys.stderr, flush=True)
    worker.wait_stopped()
    store.close()
    return 0


def cmd_dashboard(args: argparse.Namespace) -> int:
    from ladon_tasks.dashboard import serve_dashboard
    from ladon_tasks.runtime import configure

    configure(store=_redis_store(args.redis))
    token = args.token or os.environ.get("LADON_TASKS_DASHBOARD_TOKEN")
    print(f"ladon-tasks dashboard on http://{args.host}:{args.port}/", file=sys.stderr, flush=True)
    serve_dashboard(host=args.host, port=args.port, token=token, allowed_hosts=args.allowed_host)
    return 0


def _print_records(records, as_json: bool) -> None:  # type: ignore[no-untyped-def]
    import json
    import time

    if as_json:
        for record in records:
            print(json.dumps(record.to_json(), ensure_ascii=False))
        return
    now = time.time()
    print(f"{'TASK':32}  {'STATE':10}  {'PROGRESS':>8}  {'AGE':>7}  {'TRIES':>5}  SERVICE.METHOD  MESSAGE")
    for record in records:
        print(
            f"{record.task_id:32}  {record.shown_state:10}  {record.progress * 100:7.0f}%  "
            f"{now - record.submitted_at:6.0f}s  {record.attempts:>2}/{record.max_attempts:<2}  "
            f"{record.service}.{record.method}  {(record.message or record.error_message)[:60]}"
        )


def cmd_events(args: argparse.Namespace) -> int:
    """Follow the lifecycle event stream until interrupted (or ``--count`` events)."""
    import datetime

    store = _redis_store(args.redis)
    last_id, shown = ("0" if args.from_start else "$"), 0
    try:
        while args.count is None or shown < args.count:
            for event_id, event in store.events(last_id, block=1.0):
                last_id = event_id
                when = datetime.datetime.fromtimestamp(int(event_id.split("-")[0]) / 1000).strftime("%H:%M:%S.%f")[:-3]
                error = f"  {event['error']}" if event.get("error") else ""
                print(f"{when}  {event['state']:9}  {event['service']}.{event['method']}  {event['task']}"
                      f"  attempt {event['attempt']}{error}", flush=True)
                shown += 1
                if args.count is not None and shown >= args.count:
                    break
    finally:
        store.close()
    return 0


def cmd_tasks(args: argparse.Namespace) -> int:
    from ladon_tasks.model import TaskState

    store = _redis_store(args.redis)
    states = [TaskState(state) for state in args.state] if args.state else None
    records = store.list(states=states, method=args.method, limit=args.limit, offset=args.offset)
    if args.tag:
        records = [record for record in records if args.tag in record.tags]
    _print_records(records, args.json)
    store.close()
    return 0


def cmd_inspect(args: argparse.Namespace) -> int:
    import json

    from ladon_tasks.runtime import configure

    runtime = configure(store=_redis_store(args.redis))
    record = runtime.record(args.task_id)
    data = record.to_json()
    if not args.traceback:
        data.pop("error_traceback", None)
    print(json.dumps(data, indent=2, ensure_ascii=False))
    runtime.shutdown()
    return 0


def cmd_cancel(args: argparse.Namespace) -> int:
    from ladon_tasks.runtime import configure

    runtime = configure(store=_redis_store(args.redis))
    record = runtime.cancel(args.task_id)
    print(f"{record.task_id} {record.state.value}")
    runtime.shutdown()
    return 0 if record.state.value == "cancelled" else 1


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
    serve.add_argument("--max-request-bytes", type=int, default=defaults.MAX_REQUEST_BYTES,
                       help="larger request bodies get 413 before they are read")
    serve.add_argument("--no-dashboard", action="store_true", help="do not mount the dashboard at /_tasks/")
    serve.add_argument("--dashboard-token", default=None, help="require this token for the dashboard")
    serve.add_argument("--allowed-host", action="append", default=[], metavar="NAME",
                       help="also answer requests for this host name (repeatable; '*' for any); "
                            "default: localhost and IP addresses, beyond loopback this machine's name too")
    serve.add_argument("--read-timeout", type=float, default=defaults.READ_TIMEOUT, metavar="SECONDS",
                       help="close a connection that sends nothing for this long")
    serve.add_argument("--thread-workers", type=int, default=defaults.THREAD_WORKERS)
    serve.add_argument("--process-workers", type=int, default=defaults.PROCESS_WORKERS)
    serve.add_argument("--grace", type=float, default=defaults.SHUTDOWN_GRACE,
                       help="on SIGTERM/SIGINT, seconds running bodies may finish before their tasks are "
                            f"handed over (default {defaults.SHUTDOWN_GRACE:g})")
    serve.add_argument("--lease", type=float, default=defaults.OWNER_LEASE,
                       help="with Redis, seconds after which another process takes over the tasks of this "
                            f"one if it stops answering (default {defaults.OWNER_LEASE:g})")
    serve.set_defaults(handler=cmd_serve)

    worker = commands.add_parser("worker", help="run the bodies of executor='queue' tasks (any host)")
    worker.add_argument("services", nargs="+", metavar="MODULE_OR_PATH", help="the same services the server has")
    worker.add_argument("--redis", metavar="URL", default=None, help="default: $LADON_TASKS_REDIS_URL or $REDIS_HOST")
    worker.add_argument("--concurrency", type=int, default=None,
                        help=f"bodies run at once (default {defaults.PROCESS_WORKERS}, "
                             f"with --threads {defaults.THREAD_WORKERS})")
    worker.add_argument("--queues", nargs="+", default=[defaults.QUEUE], metavar="NAME")
    worker.add_argument("--lease", type=float, default=defaults.LEASE_SECONDS,
                        help="seconds before a silent worker's task is handed out again")
    worker.add_argument("--threads", action="store_true",
                        help="run bodies in threads of this process: about 1 ms less per task, "
                             "but timeouts and cancels only cooperative")
    worker.add_argument("--grace", type=float, default=defaults.WORKER_GRACE,
                        help="on SIGTERM, seconds running bodies may finish before they are handed back")
    worker.set_defaults(handler=cmd_worker)

    dashboard = commands.add_parser("dashboard", help="the operator web page, standalone (Redis store)")
    dashboard.add_argument("--host", default="127.0.0.1")
    dashboard.add_argument("--port", type=int, default=8090)
    dashboard.add_argument("--token", default=None, help="require this token (default: $LADON_TASKS_DASHBOARD_TOKEN)")
    dashboard.add_argument("--redis", metavar="URL", default=None)
    dashboard.add_argument("--allowed-host", action="append", default=[], metavar="NAME",
                           help="also answer requests for this host name (repeatable; '*' for any)")
    dashboard.set_defaults(handler=cmd_dashboard)

    tasks = commands.add_parser("tasks", help="list tasks (Redis store), newest first")
    tasks.add_argument("--state", action="append", choices=["queued", "running", "succeeded", "failed", "cancelled"])
    tasks.add_argument("--method", default=None)
    tasks.add_argument("--tag", default=None)
    tasks.add_argument("--limit", type=int, default=50)
    tasks.add_argument("--offset", type=int, default=0)
    tasks.add_argument("--json", action="store_true", help="one JSON record per line")
    tasks.add_argument("--redis", metavar="URL", default=None)
    tasks.set_defaults(handler=cmd_tasks)

    events = commands.add_parser("events", help="follow task lifecycle events (Redis store)")
    events.add_argument("--from-start", action="store_true", help="begin with the oldest kept event")
    events.add_argument("--count", type=int, default=None, help="stop after this many events")
    events.add_argument("--redis", metavar="URL", default=None)
    events.set_defaults(handler=cmd_events)

    inspect = commands.add_parser("inspect", help="one task's whole record (Redis store)")
    inspect.add_argument("task_id")
    inspect.add_argument("--traceback", action="store_true", help="include the failure's traceback")
    inspect.add_argument("--redis", metavar="URL", default=None)
    inspect.set_defaults(handler=cmd_inspect)

    cancel = commands.add_parser("cancel", help="cancel a task (Redis store)")
    cancel.add_argument("task_id")
    cancel.add_argument("--redis", metavar="URL", default=None)
    cancel.set_defaults(handler=cmd_cancel)

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
    except Exception as exc:
        from ladon.exceptions.service import ServiceFault

        if isinstance(exc, ServiceFault):  # UnknownTask, StoreUnavailable...: say it, no traceback
            print(f"ladon-tasks {args.command}: {exc.faultstring}", file=sys.stderr)
            return 1
        raise
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
