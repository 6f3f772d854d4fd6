"""The commands that run things: ``serve``, ``worker``, ``dashboard``, ``apache-config``."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any, Sequence

from ladon_tasks import defaults
from ladon_tasks.cli.common import command, redis_option, redis_store


def cmd_serve(args: argparse.Namespace) -> int:
    from ladon_tasks.deployment import (
        allowed_hosts, make_store, principal_settings, read_settings, switched_on, wait_threads_setting,
    )
    from ladon_tasks.serving import serve_until_stopped, serve_with_reloader
    from ladon_tasks.hosts import HostCheck
    from ladon_tasks.wsgi import make_application
    from ladon_tasks.wsgi_types import WSGIApp

    settings = read_settings()
    if args.redis:
        settings["LADON_TASKS_REDIS_URL"] = args.redis
    if args.principal:
        settings["LADON_TASKS_PRINCIPAL"] = args.principal
    if args.require_principal:
        settings["LADON_TASKS_REQUIRE_PRINCIPAL"] = "1"
    runtime_settings = {
        "thread_workers": args.thread_workers,
        "process_workers": args.process_workers,
        "owner_lease": args.lease,
        "store": make_store(settings),
        "wait_threads": wait_threads(
            args.wait_threads if args.wait_threads is not None else wait_threads_setting(settings), args.threads
        ),
        **principal_settings(settings),
    }
    application: WSGIApp = make_application(
        args.services, debug=args.debug, max_request_bytes=args.max_request_bytes, shutdown_grace=args.grace,
        **runtime_settings,
    )
    if not args.no_dashboard:
        from ladon_tasks.dashboard import DashboardApp, mount

        token = args.dashboard_token or settings.get("LADON_TASKS_DASHBOARD_TOKEN")
        if not token and args.host not in ("127.0.0.1", "localhost", "::1"):
            raise ValueError("serving beyond loopback: give the dashboard a --dashboard-token, or --no-dashboard")
        health_open = args.health_open or switched_on(settings, "LADON_TASKS_HEALTH_OPEN")
        application = mount(application, DashboardApp(token=token, health_open=health_open), prefix="/_tasks")
    hosts = allowed_hosts(settings, args.host, args.allowed_host)

    def announce() -> None:
        print(
            f"ladon-tasks: serving {', '.join(args.services)} on http://{args.host}:{args.port}/"
            + ("" if args.no_dashboard else f" (dashboard: http://{args.host}:{args.port}/_tasks/)")
            + f"; answering {hosts.describe()}; {describe_store(runtime_settings['store'])}",
            file=sys.stderr,
            flush=True,
        )

    application = HostCheck(application, hosts)
    if args.reload:
        announce()
        serve_with_reloader(args.host, args.port, application, args.read_timeout,
                            extra_files=[path for path in args.services if os.path.exists(path)])
        return 0
    serve_until_stopped(args.host, args.port, application, args.read_timeout, args.grace,
                        threads=args.threads, max_request_bytes=args.max_request_bytes, bound=announce)
    return 0


def describe_store(store: Any) -> str:
    """Where this process keeps task state, for its first line: in its memory, or which
    Redis (where it is, never its password)."""
    if store is None:
        return "tasks kept in this process's memory (give --redis URL to share them)"
    return f"tasks kept in Redis at {getattr(store, 'location', type(store).__name__)}"


def wait_threads(asked: int | None, request_threads: int) -> int:
    """The wait budget of ``serve``: ``--wait-threads``, else its share of ``--threads``;
    never all of them, so one thread at least stays for every other call."""
    from ladon_tasks.waits import budget_for

    if asked is None:
        return budget_for(request_threads)
    if not 0 <= asked < request_threads:
        raise ValueError(f"--wait-threads must be 0 to {request_threads - 1} (below --threads), got {asked}")
    return asked


def import_services(services: Sequence[str]) -> None:
    """Import service modules as the web server does, with the plugin active, so a
    worker resolves the same task methods (legacy Ladon imports included)."""
    import importlib

    from ladon_tasks.expand import activate
    from ladon_tasks.wsgi import check_service_file, split_service_spec

    activate()
    for spec in services:
        check_service_file(spec)
        module_name, directory = split_service_spec(spec)
        if directory and directory not in sys.path:
            sys.path.insert(0, directory)
        importlib.import_module(module_name)


def cmd_worker(args: argparse.Namespace) -> int:
    from ladon_tasks.hosts import is_loopback
    from ladon_tasks.model import new_owner_id
    from ladon_tasks.spec import queue_priorities
    from ladon_tasks.worker import Worker

    token = args.metrics_token or os.environ.get("LADON_TASKS_METRICS_TOKEN")
    if args.metrics_port is not None and not is_loopback(args.metrics_host) and not token:
        raise ValueError(f"--metrics-host {args.metrics_host} is off this machine: give it a --metrics-token")
    store = redis_store(args.redis, remote=False)
    store.serve_worker()  # a process of its own: what it writes is read elsewhere
    import_services(args.services)
    worker_id = new_owner_id()
    queues = [
        store.queue(name, lease_seconds=args.lease, levels=queue_priorities(name), consumer=worker_id)
        for name in args.queues
    ]
    worker = Worker(store, queues, concurrency=args.concurrency, grace=args.grace,
                    runner="thread" if args.threads else "process", worker_id=worker_id,
                    max_tasks_per_child=args.max_tasks_per_child, max_memory_per_child=args.max_memory_per_child)
    probes = _worker_probes(worker, args, token) if args.metrics_port is not None else None
    announced = (f"ladon-tasks worker {worker.worker_id}: {worker.size} slot(s) on {', '.join(args.queues)}"
                 + (", until they are empty" if args.burst else "")
                 + (f"; metrics and health on http://{args.metrics_host}:{args.metrics_port}/" if probes else "")
                 + f"; {describe_store(store)}")
    if args.burst:
        print(announced, file=sys.stderr, flush=True)
        worker.run(burst=True)
    else:
        from ladon_tasks.runtime import TaskRuntime

        worker.stop_on_signals()
        worker.start()
        # the ticks of queued methods' schedules are started here too (the web processes
        # run the others): its own runtime on the worker's store, used for starts only
        scheduling = TaskRuntime(store)
        scheduling.start_scheduling(accept=lambda spec: spec.options.executor == "queue")
        print(announced, file=sys.stderr, flush=True)
        worker.wait_stopped()
        scheduling.scheduler.stop()
    if probes is not None:
        probes.shutdown()
    store.close()
    return 0


def _worker_probes(worker: Any, args: argparse.Namespace, token: str | None) -> Any:
    """``/metrics`` and ``/health`` of a worker on ``--metrics-port``: the deployment's
    numbers from Redis, and this worker's slots."""
    from prometheus_client.core import GaugeMetricFamily

    from ladon_tasks.dashboard.probes import ProbeApp
    from ladon_tasks.serving import serve_in_background
    from ladon_tasks.health import worker_health
    from ladon_tasks.hosts import AllowedHosts
    from ladon_tasks.metrics import TaskMetrics

    def local() -> list[Any]:
        slots = GaugeMetricFamily("ladon_tasks_worker_slots", "Bodies this worker runs at once at most",
                                  labels=["worker"])
        slots.add_metric([worker.worker_id], worker.size)
        busy = GaugeMetricFamily("ladon_tasks_worker_busy_slots", "Slots of this worker running a body now",
                                 labels=["worker"])
        busy.add_metric([worker.worker_id], len(worker.pool.running()))
        return [slots, busy]

    app = ProbeApp(lambda: worker_health(worker), TaskMetrics(lambda: worker.store, local), token,
                   allowed_hosts=AllowedHosts.for_address(args.metrics_host, args.allowed_host),
                   health_open=args.health_open)
    return serve_in_background(args.metrics_host, args.metrics_port, app)


def cmd_dashboard(args: argparse.Namespace) -> int:
    from ladon_tasks.dashboard import serve_dashboard
    from ladon_tasks.deployment import switched_on
    from ladon_tasks.runtime import configure

    store = redis_store(args.redis, remote=False)
    if args.services:  # the methods it can re-run, and whose arguments it names
        import_services(args.services)
    configure(store=store)
    token = args.token or os.environ.get("LADON_TASKS_DASHBOARD_TOKEN")
    print(f"ladon-tasks dashboard on http://{args.host}:{args.port}/", file=sys.stderr, flush=True)
    serve_dashboard(host=args.host, port=args.port, token=token, allowed_hosts=args.allowed_host,
                    health_open=args.health_open or switched_on(os.environ, "LADON_TASKS_HEALTH_OPEN"))
    return 0


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
    for warning in config.warnings:
        print(f"ladon-tasks apache-config: {warning}", file=sys.stderr)
    print(config.vhost_text(), end="")
    return 0


def register(commands: Any) -> None:
    """Add this module's commands to the ``ladon-tasks`` parser."""
    serve = command(commands, "serve", "serve Ladon services with ladon-tasks active (waitress)",
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
    serve.add_argument("--threads", type=int, default=defaults.SERVER_THREADS,
                       help="HTTP request threads (a _wait call holds one for up to 30 s)")
    serve.add_argument("--wait-threads", type=int, default=None, metavar="N",
                       help="request threads _wait calls may hold at once; further waits are answered at once "
                            "with poll_after (default: $LADON_TASKS_WAIT_THREADS, else half of --threads; "
                            "0: waits never hold one)")
    serve.add_argument("--thread-workers", type=int, default=defaults.THREAD_WORKERS,
                       help="task bodies run at once by executor='thread' methods")
    serve.add_argument("--process-workers", type=int, default=defaults.PROCESS_WORKERS,
                       help="child processes for executor='process' methods")
    serve.add_argument("--grace", type=float, default=defaults.SHUTDOWN_GRACE,
                       help="on SIGTERM/SIGINT, seconds running bodies may finish before their tasks are "
                            "handed over")
    serve.add_argument("--health-open", action="store_true",
                       help="serve /_tasks/health without the dashboard token (for load balancers and probes; "
                            "also $LADON_TASKS_HEALTH_OPEN=1)")
    serve.add_argument("--lease", type=float, default=defaults.OWNER_LEASE,
                       help="with Redis, seconds after which another process takes over the tasks of this "
                            "one if it stops answering")
    serve.add_argument("--principal", default=None, metavar="HOOK",
                       help="how a request names its caller, whose tasks only it then sees: a WSGI environ key "
                            "(REMOTE_USER, the default) or a hook package.module:function taking the environ; "
                            "adds m_list (default: $LADON_TASKS_PRINCIPAL)")
    serve.add_argument("--require-principal", action="store_true",
                       help="refuse task calls that name no caller (Unauthenticated) "
                            "(also $LADON_TASKS_REQUIRE_PRINCIPAL=1)")
    serve.set_defaults(handler=cmd_serve)

    worker = command(commands, "worker", "run the bodies of executor='queue' tasks (any host)",
                     "  ladon-tasks worker services/report_service.py --redis redis://127.0.0.1:6379/0 "
                     "--concurrency 4")
    worker.add_argument("services", nargs="+", metavar="MODULE_OR_PATH", help="the same services the server has")
    redis_option(worker)
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
    worker.add_argument("--max-tasks-per-child", type=int, default=None, metavar="N",
                        help="replace a child process once it has run N tasks (default: never; a method's "
                             "tasktype max_tasks_per_child, if tighter, holds for its tasks)")
    worker.add_argument("--max-memory-per-child", type=float, default=None, metavar="MIB",
                        help="replace a child process whose resident memory passed MIB MiB once its task ended "
                             "(default: no bound; a method's max_memory_per_child, if tighter, holds)")
    worker.add_argument("--burst", action="store_true",
                        help="run until no job is queued and none runs, then exit (retries not due yet stay)")
    worker.add_argument("--grace", type=float, default=defaults.WORKER_GRACE,
                        help="on SIGTERM, seconds running bodies may finish before they are handed back")
    worker.add_argument("--metrics-port", type=int, default=None, metavar="PORT",
                        help="serve /metrics (Prometheus) and /health on this port")
    worker.add_argument("--metrics-host", default="127.0.0.1", metavar="ADDRESS",
                        help="address of --metrics-port (off loopback: needs --metrics-token)")
    worker.add_argument("--metrics-token", default=None, metavar="TOKEN",
                        help="require this bearer token on --metrics-port (default: $LADON_TASKS_METRICS_TOKEN)")
    worker.add_argument("--health-open", action="store_true", help="serve /health without --metrics-token")
    worker.add_argument("--allowed-host", action="append", default=[], metavar="NAME",
                        help="also answer --metrics-port requests for this host name (repeatable)")
    worker.set_defaults(handler=cmd_worker)

    dashboard = command(commands, "dashboard", "the operator web page, standalone (Redis store)",
                        "  ladon-tasks dashboard --redis redis://127.0.0.1:6379/0 --port 8090")
    dashboard.add_argument("--host", default="127.0.0.1", help="address to bind (off loopback: needs --token)")
    dashboard.add_argument("--port", type=int, default=8090, help="port to bind")
    dashboard.add_argument("--token", default=None, help="require this token (default: $LADON_TASKS_DASHBOARD_TOKEN)")
    redis_option(dashboard)
    dashboard.add_argument("services", nargs="*", metavar="MODULE_OR_PATH",
                           help="services to load: their tasks can be re-run from here, their arguments are named")
    dashboard.add_argument("--allowed-host", action="append", default=[], metavar="NAME",
                           help="also answer requests for this host name (repeatable; '*' for any)")
    dashboard.add_argument("--health-open", action="store_true", help="serve /health without the token")
    dashboard.set_defaults(handler=cmd_dashboard)

    apache = command(commands, "apache-config",
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
