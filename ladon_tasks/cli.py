"""``ladon-tasks``: serve services with the plugin active, and look after tasks.

    ladon-tasks serve services/task_service.py [--host 127.0.0.1] [--port 8080]

Each sub-command lives in a function ``cmd_<name>`` that takes the parsed arguments and
returns an exit code; :func:`build_parser` wires the arguments, each with its help
text and each command with an example. :func:`main` turns any error into one line on
stderr and a non-zero exit code: an operator reads what went wrong, not a traceback.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import Sequence

from ladon_tasks import defaults


class CommandError(Exception):
    """A command cannot do what was asked; the message is the one line shown."""


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
        raise CommandError("this command needs a store: --url of a running server, or --redis URL "
                           "($LADON_TASKS_REDIS_URL, $REDIS_HOST)")
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


def _task_rows(args: argparse.Namespace) -> list[dict]:  # type: ignore[type-arg]
    """The tasks asked for, as the dashboard API shows them, from ``--url`` or Redis."""
    if args.url:
        return _dashboard(args).list(states=args.state, method=args.method, limit=args.limit, offset=args.offset)
    import time

    from ladon_tasks.dashboard.views import task_summary
    from ladon_tasks.model import TaskState

    store = _redis_store(args.redis)
    try:
        states = [TaskState(state) for state in args.state] if args.state else None
        records = store.list(states=states, method=args.method, limit=args.limit, offset=args.offset)
    finally:
        store.close()
    now = time.time()
    return [task_summary(record, now) for record in records]


def _dashboard(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    from ladon_tasks.remote import DashboardClient

    return DashboardClient(args.url, token=args.token or os.environ.get("LADON_TASKS_DASHBOARD_TOKEN"))


def _print_rows(rows: list[dict], as_json: bool) -> None:  # type: ignore[type-arg]
    import json

    if as_json:
        for row in rows:
            print(json.dumps(row, ensure_ascii=False))
        return
    print(f"{'TASK':32}  {'STATE':10}  {'PROGRESS':>8}  {'AGE':>7}  {'TRIES':>5}  SERVICE.METHOD  MESSAGE")
    for row in rows:
        print(
            f"{row['task_id']:32}  {row['state']:10}  {row['progress'] * 100:7.0f}%  "
            f"{row['age']:6.0f}s  {row['attempts']:>2}/{row['max_attempts']:<2}  "
            f"{row['service']}.{row['method']}  {(row['message'] or row['error_message'] or '')[:60]}"
        )


def _print_event(when: float, state: str, target: str, task_id: str, attempt: object, error: str) -> None:
    import datetime

    stamp = datetime.datetime.fromtimestamp(when).strftime("%H:%M:%S.%f")[:-3]
    print(f"{stamp}  {state:9}  {target}  {task_id}  attempt {attempt}{f'  {error}' if error else ''}", flush=True)


def cmd_events(args: argparse.Namespace) -> int:
    """Follow task lifecycle events until interrupted (or ``--count`` events)."""
    shown = 0
    if args.url:
        from ladon_tasks.remote import derived_events, event_time

        for task in derived_events(_dashboard(args), args.from_start):
            error = f"{task['error_type']}: {task['error_message']}" if task.get("error_type") else ""
            _print_event(event_time(task), task["state"], f"{task['service']}.{task['method']}",
                         task["task_id"], task["attempts"], error)
            shown += 1
            if args.count is not None and shown >= args.count:
                break
        return 0
    store = _redis_store(args.redis)
    last_id = "0" if args.from_start else "$"
    try:
        while args.count is None or shown < args.count:
            for event_id, event in store.events(last_id, block=1.0):
                last_id = event_id
                _print_event(int(event_id.split("-")[0]) / 1000, event["state"],
                             f"{event['service']}.{event['method']}", event["task"], event["attempt"],
                             event.get("error") or "")
                shown += 1
                if args.count is not None and shown >= args.count:
                    break
    finally:
        store.close()
    return 0


def cmd_tasks(args: argparse.Namespace) -> int:
    rows = _task_rows(args)
    if args.tag:
        rows = [row for row in rows if args.tag in row["tags"]]
    _print_rows(rows, args.json)
    return 0


def cmd_inspect(args: argparse.Namespace) -> int:
    import json

    if args.url:
        if args.traceback:
            raise CommandError("--traceback needs --redis: the dashboard API never sends tracebacks")
        print(json.dumps(_dashboard(args).detail(args.task_id), indent=2, ensure_ascii=False))
        return 0
    from ladon_tasks.runtime import configure

    runtime = configure(store=_redis_store(args.redis))
    try:
        data = runtime.record(args.task_id).to_json()
    finally:
        runtime.shutdown()
    if not args.traceback:
        data.pop("error_traceback", None)
    print(json.dumps(data, indent=2, ensure_ascii=False))
    return 0


def cmd_cancel(args: argparse.Namespace) -> int:
    if args.url:
        task = _dashboard(args).cancel(args.task_id)
        task_id, state = task["task_id"], task["state"]
    else:
        from ladon_tasks.runtime import configure

        runtime = configure(store=_redis_store(args.redis))
        try:
            record = runtime.cancel(args.task_id)
        finally:
            runtime.shutdown()
        task_id, state = record.task_id, record.state.value
    print(f"{task_id} {state}")
    return 0 if state == "cancelled" else 1


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


def _service_client(url: str, target: str):  # type: ignore[no-untyped-def]
    """``SERVICE.METHOD`` on the server at ``url``: the client and the method name."""
    from ladon_tasks.client import TaskClient

    service, _, method = target.partition(".")
    if not service or not method:
        raise CommandError(f"{target!r} is not SERVICE.METHOD")
    return TaskClient(f"{url.rstrip('/')}/{service}"), method


def _follow(handle, timeout: float | None, quiet: bool) -> int:  # type: ignore[no-untyped-def]
    """Progress on stderr until the task ends, then its result (JSON) on stdout."""
    import json

    status = handle.wait(timeout, progress=None if quiet else sys.stderr)
    if not status.finished:
        print(f"still {status.state} after {timeout}s: task {handle.task_id} "
              f"(follow it with: ladon-tasks wait URL SERVICE.{handle.method} {handle.task_id})", file=sys.stderr)
        return 3
    print(json.dumps(handle.result(), indent=2, ensure_ascii=False))
    return 0


def cmd_call(args: argparse.Namespace) -> int:
    client, method = _service_client(args.url, args.target)
    handle = client.start(method, **_parse_call_arguments(args.arguments))
    if not args.wait:
        print(handle.task_id)
        return 0
    print(f"task {handle.task_id}", file=sys.stderr)
    return _follow(handle, args.timeout, args.quiet)


def cmd_wait(args: argparse.Namespace) -> int:
    client, method = _service_client(args.url, args.target)
    return _follow(client.handle(method, args.task_id), args.timeout, args.quiet)


def cmd_apache_config(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ladon_tasks.apache import ApacheConfig

    config = ApacheConfig(
        services=args.services, directory=Path(args.directory), redis_url=args.redis,
        processes=args.processes, threads=args.threads, port=args.port, server_name=args.server_name,
        user=args.user, group=args.group, thread_workers=args.thread_workers,
        process_workers=args.process_workers, dashboard_token=args.dashboard_token,
    )
    for path in config.write():
        print(f"wrote {path}", file=sys.stderr)
    print(config.vhost_text(), end="")
    return 0


class _HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the examples' layout and shows each option's default where it has one."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if "%(default)" in text or action.default in (None, False, argparse.SUPPRESS) or action.option_strings == []:
            return text
        return f"{text} (default: %(default)s)"


def _command(commands, name: str, help: str, example: str):  # type: ignore[no-untyped-def]
    """A sub-command with its one-line help, its example epilog and ``--log-level``."""
    parser = commands.add_parser(
        name, help=help, description=help[:1].upper() + help[1:] + ".",
        epilog="example:\n" + example, formatter_class=_HelpFormatter,
    )
    parser.add_argument("--log-level", default=argparse.SUPPRESS, metavar="LEVEL",
                        help="DEBUG, INFO, WARNING or ERROR (default: $LADON_TASKS_LOG_LEVEL or INFO)")
    return parser


def _redis_option(parser: argparse.ArgumentParser, also: str = "") -> None:
    parser.add_argument("--redis", metavar="URL", default=None,
                        help=f"the Redis store{also} (default: $LADON_TASKS_REDIS_URL or $REDIS_HOST)")


def _remote_options(parser: argparse.ArgumentParser) -> None:
    """``--url``/``--token`` or ``--redis``: where the tasks are read."""
    parser.add_argument("--url", metavar="URL", default=None,
                        help="a running server (ladon-tasks serve, or dashboard): its dashboard API is used, "
                             "for either store")
    parser.add_argument("--token", default=None,
                        help="the dashboard's token, with --url (default: $LADON_TASKS_DASHBOARD_TOKEN)")
    _redis_option(parser, ", without --url")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ladon-tasks", formatter_class=_HelpFormatter,
        description="Serve Ladon services with task methods, run their workers, and look after their tasks.",
        epilog="Each command has its own --help with an example.",
    )
    parser.add_argument("--version", action="version", version=f"ladon-tasks {_version()}")
    parser.add_argument("--log-level", default=os.environ.get("LADON_TASKS_LOG_LEVEL", "INFO"), metavar="LEVEL",
                        help="DEBUG, INFO, WARNING or ERROR; also accepted after the command")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = _command(commands, "serve", "serve Ladon services with ladon-tasks active (Werkzeug)",
                     "  ladon-tasks serve services/task_service.py --port 8080\n"
                     "  ladon-tasks serve myapp.services --redis redis://127.0.0.1:6379/0")
    serve.add_argument("services", nargs="+", metavar="MODULE_OR_PATH", help="service modules or .py files")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind")
    serve.add_argument("--port", type=int, default=8080, help="port to bind")
    serve.add_argument("--reload", action="store_true", help="restart when a service file changes")
    serve.add_argument(
        "--redis", metavar="URL", default=None,
        help="keep task state in Redis (default: $LADON_TASKS_REDIS_URL or $REDIS_HOST, else in process)",
    )
    serve.add_argument("--debug", action="store_true", help="send tracebacks with faults (never in production)")
    serve.add_argument("--max-request-bytes", type=int, default=defaults.MAX_REQUEST_BYTES,
                       help="larger request bodies get 413 before they are read")
    serve.add_argument("--no-dashboard", action="store_true", help="do not mount the dashboard at /_tasks/")
    serve.add_argument("--dashboard-token", default=None,
                       help="require this token for the dashboard (needed off loopback)")
    serve.add_argument("--allowed-host", action="append", default=[], metavar="NAME",
                       help="also answer requests for this host name (repeatable; '*' for any); "
                            "default: localhost and IP addresses, beyond loopback this machine's name too")
    serve.add_argument("--read-timeout", type=float, default=defaults.READ_TIMEOUT, metavar="SECONDS",
                       help="close a connection that sends nothing for this long")
    serve.add_argument("--thread-workers", type=int, default=defaults.THREAD_WORKERS,
                       help="task bodies run at once by executor='thread' methods")
    serve.add_argument("--process-workers", type=int, default=defaults.PROCESS_WORKERS,
                       help="child processes for executor='process' methods")
    serve.add_argument("--grace", type=float, default=defaults.SHUTDOWN_GRACE,
                       help="on SIGTERM/SIGINT, seconds running bodies may finish before their tasks are "
                            "handed over")
    serve.add_argument("--lease", type=float, default=defaults.OWNER_LEASE,
                       help="with Redis, seconds after which another process takes over the tasks of this "
                            "one if it stops answering")
    serve.set_defaults(handler=cmd_serve)

    worker = _command(commands, "worker", "run the bodies of executor='queue' tasks (any host)",
                      "  ladon-tasks worker services/report_service.py --redis redis://127.0.0.1:6379/0 "
                      "--concurrency 4")
    worker.add_argument("services", nargs="+", metavar="MODULE_OR_PATH", help="the same services the server has")
    _redis_option(worker)
    worker.add_argument("--concurrency", type=int, default=None,
                        help=f"bodies run at once (default {defaults.PROCESS_WORKERS}, "
                             f"with --threads {defaults.THREAD_WORKERS})")
    worker.add_argument("--queues", nargs="+", default=[defaults.QUEUE], metavar="NAME",
                        help="the queues to serve (tasktype option queue=)")
    worker.add_argument("--lease", type=float, default=defaults.LEASE_SECONDS,
                        help="seconds before a silent worker's task is handed out again")
    worker.add_argument("--threads", action="store_true",
                        help="run bodies in threads of this process: about 1 ms less per task, "
                             "but timeouts and cancels only cooperative")
    worker.add_argument("--grace", type=float, default=defaults.WORKER_GRACE,
                        help="on SIGTERM, seconds running bodies may finish before they are handed back")
    worker.set_defaults(handler=cmd_worker)

    dashboard = _command(commands, "dashboard", "the operator web page, standalone (Redis store)",
                         "  ladon-tasks dashboard --redis redis://127.0.0.1:6379/0 --port 8090")
    dashboard.add_argument("--host", default="127.0.0.1", help="address to bind (off loopback: needs --token)")
    dashboard.add_argument("--port", type=int, default=8090, help="port to bind")
    dashboard.add_argument("--token", default=None, help="require this token (default: $LADON_TASKS_DASHBOARD_TOKEN)")
    _redis_option(dashboard)
    dashboard.add_argument("--allowed-host", action="append", default=[], metavar="NAME",
                           help="also answer requests for this host name (repeatable; '*' for any)")
    dashboard.set_defaults(handler=cmd_dashboard)

    tasks = _command(commands, "tasks", "list tasks, newest first",
                     "  ladon-tasks tasks --url http://127.0.0.1:8080 --state running --state queued\n"
                     "  ladon-tasks tasks --redis redis://127.0.0.1:6379/0 --method cloneInstance --json")
    tasks.add_argument("--state", action="append", choices=["queued", "running", "succeeded", "failed", "cancelled"],
                       help="only tasks in this state; repeat for several")
    tasks.add_argument("--method", default=None, help="only this task method")
    tasks.add_argument("--tag", default=None, help="only tasks with this tag")
    tasks.add_argument("--limit", type=int, default=defaults.LIST_LIMIT, help="tasks shown at most")
    tasks.add_argument("--offset", type=int, default=0, help="newest tasks skipped")
    tasks.add_argument("--json", action="store_true", help="one JSON object per task and line")
    _remote_options(tasks)
    tasks.set_defaults(handler=cmd_tasks)

    events = _command(commands, "events", "follow task lifecycle events",
                      "  ladon-tasks events --redis redis://127.0.0.1:6379/0 --from-start\n"
                      "  ladon-tasks events --url http://127.0.0.1:8080   # polls the task list each second")
    events.add_argument("--from-start", action="store_true",
                        help="begin with the oldest kept event (with --url: every listed task)")
    events.add_argument("--count", type=int, default=None, help="stop after this many events")
    _remote_options(events)
    events.set_defaults(handler=cmd_events)

    inspect = _command(commands, "inspect", "one task's whole record",
                       "  ladon-tasks inspect 3f0c9a6e1b2d4c5f8a7e6d5c4b3a2918 --url http://127.0.0.1:8080")
    inspect.add_argument("task_id", help="the task's id (32 hex digits)")
    inspect.add_argument("--traceback", action="store_true", help="include the failure's traceback (--redis only)")
    _remote_options(inspect)
    inspect.set_defaults(handler=cmd_inspect)

    cancel = _command(commands, "cancel", "cancel a task; exit code 1 if it had already finished",
                      "  ladon-tasks cancel 3f0c9a6e1b2d4c5f8a7e6d5c4b3a2918 --url http://127.0.0.1:8080")
    cancel.add_argument("task_id", help="the task's id (32 hex digits)")
    _remote_options(cancel)
    cancel.set_defaults(handler=cmd_cancel)

    call = _command(commands, "call", "start a task on a running server; --wait shows a progress bar",
                    "  ladon-tasks call http://127.0.0.1:8080 InstanceService.cloneInstance \\\n"
                    "      instance_id=vm-7 new_instance_name=staging --wait")
    call.add_argument("url", help="the server, e.g. http://127.0.0.1:8080")
    call.add_argument("target", metavar="SERVICE.METHOD", help="the service and its task method")
    call.add_argument("arguments", nargs="*", metavar="key=value",
                      help="the method's arguments; JSON lists and objects are decoded")
    call.add_argument("--wait", action="store_true", help="follow the task and print its result (JSON)")
    call.add_argument("--timeout", type=float, default=None,
                      help="with --wait: stop waiting after this many seconds (exit code 3; the task goes on)")
    call.add_argument("--quiet", action="store_true", help="no progress bar")
    call.set_defaults(handler=cmd_call)

    wait = _command(commands, "wait", "follow a started task: a progress bar, then its result",
                    "  ladon-tasks wait http://127.0.0.1:8080 InstanceService.cloneInstance "
                    "3f0c9a6e1b2d4c5f8a7e6d5c4b3a2918")
    wait.add_argument("url", help="the server, e.g. http://127.0.0.1:8080")
    wait.add_argument("target", metavar="SERVICE.METHOD", help="the service and the task's method")
    wait.add_argument("task_id", help="the task's id, as call printed it")
    wait.add_argument("--timeout", type=float, default=None,
                      help="stop waiting after this many seconds (exit code 3; the task goes on)")
    wait.add_argument("--quiet", action="store_true", help="no progress bar")
    wait.set_defaults(handler=cmd_wait)

    apache = _command(commands, "apache-config",
                      "write a mod_wsgi handler and Apache virtual host for your services, print the host",
                      "  ladon-tasks apache-config /srv/app/services/orders.py --redis redis://127.0.0.1:6379/0 \\\n"
                      "      --processes 3 --directory /srv/app/apache > /dev/null")
    apache.add_argument("services", nargs="+", metavar="MODULE_OR_PATH", help="service modules or .py files")
    apache.add_argument("--directory", required=True, metavar="DIR",
                        help="where handler.wsgi and ladon-tasks.conf are written")
    apache.add_argument("--redis", metavar="URL", default=None, help="the Redis store; needed for several processes")
    apache.add_argument("--processes", type=int, default=defaults.APACHE_PROCESSES, help="mod_wsgi daemon processes")
    apache.add_argument("--threads", type=int, default=defaults.APACHE_THREADS, help="request threads per process")
    apache.add_argument("--port", type=int, default=80, help="port of the virtual host")
    apache.add_argument("--server-name", default="localhost", help="ServerName of the virtual host")
    apache.add_argument("--user", default="www-data", help="user the daemon processes run as")
    apache.add_argument("--group", default="www-data", help="group the daemon processes run as")
    apache.add_argument("--thread-workers", type=int, default=None,
                        help=f"executor='thread' bodies at once per process (default: {defaults.THREAD_WORKERS})")
    apache.add_argument("--process-workers", type=int, default=None,
                        help=f"executor='process' children per process (default: {defaults.PROCESS_WORKERS})")
    apache.add_argument("--dashboard-token", default=None, help="mount the dashboard at /_tasks/ with this token")
    apache.set_defaults(handler=cmd_apache_config)
    return parser


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("ladon-tasks")
    except PackageNotFoundError:  # run from a checkout that is not installed
        from ladon_tasks import __version__

        return __version__


def _one_line(exc: BaseException) -> str:
    """What went wrong, in one line: a fault's string, else the error's type and text."""
    from ladon.exceptions.service import ServiceFault

    from ladon_tasks.client import TaskError
    from ladon_tasks.remote import RemoteError

    if isinstance(exc, ServiceFault):
        text = str(exc.faultstring)
    elif isinstance(exc, (CommandError, ValueError, TaskError, RemoteError)):
        text = str(exc)
    else:
        text = f"{type(exc).__name__}: {exc}"
    return " ".join(text.split()) or type(exc).__name__


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; errors end it with one line on stderr and a non-zero exit code
    (2: the command line was wrong, 1: the command failed). ``--log-level DEBUG`` adds
    the traceback."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return args.handler(args)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        logging.getLogger("ladon_tasks.cli").debug("%s failed", args.command, exc_info=True)
        print(f"ladon-tasks {args.command}: {_one_line(exc)}", file=sys.stderr)
        return 2 if isinstance(exc, (CommandError, ValueError)) else 1


if __name__ == "__main__":
    sys.exit(main())
