"""The operator's commands: ``status`` (counts and queues), ``workers``, ``retry``,
``purge`` (over Redis, or a running server's dashboard API with ``--url``) and ``ping``
(a health endpoint, for systemd and container probes)."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any, Callable

from ladon_tasks.cli.common import CommandError, command, redis_store, remote_options

FINISHED = ("succeeded", "failed", "cancelled")


def _client(args: argparse.Namespace) -> Any:
    from ladon_tasks.remote import DashboardClient

    return DashboardClient(args.url, token=args.token or os.environ.get("LADON_TASKS_DASHBOARD_TOKEN"))


def _from_store(args: argparse.Namespace, read: Callable[[Any], Any]) -> Any:
    store = redis_store(args.redis)
    try:
        return read(store)
    finally:
        store.close()


def _overview(args: argparse.Namespace) -> dict[str, Any]:
    """Counts, queues and workers as the dashboard API gives them, from either source."""
    if args.url:
        client = _client(args)
        return {**client.counts(), "queues": client.queues()["queues"], **_fleet_json(client.workers())}

    def read(store: Any) -> dict[str, Any]:
        fleet = store.fleet()
        workers, webs = fleet.workers() if fleet is not None else ([], [])
        return {**store.counts().to_json(), "queues": [q.to_json() for q in (fleet.queues() if fleet else [])],
                "workers": [w.to_json() for w in workers], "web_processes": [w.to_json() for w in webs],
                "now": time.time()}

    return _from_store(args, read)


def _fleet_json(answer: dict[str, Any]) -> dict[str, Any]:
    return {"workers": answer["workers"], "web_processes": answer["web_processes"]}


def cmd_status(args: argparse.Namespace) -> int:
    overview = _overview(args)
    if args.json:
        print(json.dumps({key: overview[key] for key in ("states", "methods", "queues")}
                         | {"workers": len(overview["workers"]), "web_processes": len(overview["web_processes"])}))
        return 0
    states = overview["states"]
    print("  ".join(f"{state} {states[state]}" for state in ("queued", "running", *FINISHED))
          + f"   (finished: totals)   workers {len(overview['workers'])}")
    if overview["methods"]:
        print(f"\n{'METHOD':28} {'QUEUED':>7} {'RUNNING':>7} {'SUCCEEDED':>9} {'FAILED':>7} {'CANCELLED':>9} "
              f"{'RETRIED':>7} {'REISSUED':>8}")
        for name, row in overview["methods"].items():
            print(f"{name:28} {row['queued']:>7} {row['running']:>7} {row['succeeded']:>9} {row['failed']:>7} "
                  f"{row['cancelled']:>9} {row['retried']:>7} {row['reissued']:>8}")
    if overview["queues"]:
        print(f"\n{'QUEUE':28} {'WAITING':>7} {'DELAYED':>7} {'RUNNING':>7}")
        for queue in overview["queues"]:
            print(f"{queue['queue']:28} {queue['waiting']:>7} {queue['delayed']:>7} {queue['running']:>7}")
    return 0


def cmd_workers(args: argparse.Namespace) -> int:
    if args.url:
        answer = _client(args).workers()
    else:
        def read(store: Any) -> dict[str, Any]:
            fleet = store.fleet()
            workers, webs = fleet.workers() if fleet is not None else ([], [])
            return {"workers": [w.to_json() for w in workers], "web_processes": [w.to_json() for w in webs]}

        answer = _from_store(args, read)
    if args.json:
        for worker in answer["workers"]:
            print(json.dumps({"kind": "worker", **worker}))
        for web in answer["web_processes"]:
            print(json.dumps({"kind": "web", **web}))
        return 0
    now = time.time()
    print(f"{'WORKER':36} {'QUEUES':16} {'SLOTS':>5} {'BUSY':>4} {'UP':>8} {'BEAT':>5}  VERSION")
    for worker in answer["workers"]:
        print(f"{worker['worker_id']:36} {','.join(worker['queues']):16} {worker['concurrency']:>5} "
              f"{len(worker['running']):>4} {now - worker['started_at']:7.0f}s {now - worker['heartbeat_at']:4.0f}s"
              f"  {worker['version']}")
    for web in answer["web_processes"]:
        print(f"{web['owner']:36} {'(in process)':16} {'':>5} {web['holds']:>4} {'':>8} {'':>5}  web process")
    if not answer["workers"] and not answer["web_processes"]:
        print("(no live worker)", file=sys.stderr)
    return 0


def cmd_retry(args: argparse.Namespace) -> int:
    if args.url:
        task = _client(args).retry(args.task_id, restart=args.restart)
        print(task["task_id"])
        return 0
    if not args.services:
        raise CommandError("with --redis, name the services the task's method is in (--services MODULE_OR_PATH), "
                           "or use --url of a server that serves it")
    from ladon_tasks.cli.running import import_services
    from ladon_tasks.runtime import configure

    import_services(args.services)
    runtime = configure(store=redis_store(args.redis))
    try:
        record = runtime.rerun(args.task_id, restart=args.restart)
    finally:
        runtime.shutdown()
    print(record.task_id)
    return 0


def cmd_purge(args: argparse.Namespace) -> int:
    states = args.state
    where = f" of {args.method}" if args.method else ""
    if args.url:
        client = _client(args)
        purge: Callable[[bool], int] = lambda dry: client.purge(states, args.method, dry)  # noqa: E731
        found = purge(True)
        return _confirmed_purge(args, found, where, purge)
    from ladon_tasks.model import TaskState

    store = redis_store(args.redis)
    try:
        wanted = [TaskState(state) for state in states]
        found = store.purge(wanted, method=args.method, dry_run=True)
        return _confirmed_purge(args, found, where, lambda dry: store.purge(wanted, method=args.method, dry_run=dry))
    finally:
        store.close()


def _confirmed_purge(args: argparse.Namespace, found: int, where: str, purge: Callable[[bool], int]) -> int:
    what = f"{'/'.join(args.state)} task(s){where}"
    if not found:
        print(f"no {what} to purge")
        return 0
    if not args.yes:
        if not sys.stdin.isatty():
            raise CommandError(f"{found} {what} would be deleted; confirm with --yes (no terminal to ask on)")
        answer = input(f"Delete {found} {what}? Their records and results are gone for good. [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            print("nothing deleted")
            return 1
    print(f"purged {purge(False)} {what}")
    return 0


def cmd_ping(args: argparse.Namespace) -> int:
    from ladon_tasks.remote import health

    healthy, answer, where = health(args.url, args.token or os.environ.get("LADON_TASKS_DASHBOARD_TOKEN"))
    if healthy:
        print(f"ok: {answer.get('role', 'process')} at {where}")
        return 0
    print(f"unhealthy: {'; '.join(answer.get('problems') or ['no reason given'])} ({where})", file=sys.stderr)
    return 1


def register(commands: Any) -> None:
    """Add this module's commands to the ``ladon-tasks`` parser."""
    status = command(commands, "status", "counts per state and method, queue depths and live workers",
                      "  ladon-tasks status --url http://127.0.0.1:8080\n"
                      "  ladon-tasks status --redis redis://127.0.0.1:6379/0 --json")
    status.add_argument("--json", action="store_true", help="one JSON object")
    remote_options(status)
    status.set_defaults(handler=cmd_status)

    workers = command(commands, "workers", "the live workers (and web processes that run tasks in process)",
                       "  ladon-tasks workers --redis redis://127.0.0.1:6379/0")
    workers.add_argument("--json", action="store_true", help="one JSON object per worker and line")
    remote_options(workers)
    workers.set_defaults(handler=cmd_workers)

    retry = command(commands, "retry", "run a failed or cancelled task again, as a new task; prints its id",
                     "  ladon-tasks retry 3f0c9a6e1b2d4c5f8a7e6d5c4b3a2918 --url http://127.0.0.1:8080\n"
                     "  ladon-tasks retry 3f0c9a6e1b2d4c5f8a7e6d5c4b3a2918 --restart --url http://127.0.0.1:8080")
    retry.add_argument("task_id", help="the failed or cancelled task's id")
    retry.add_argument("--restart", action="store_true",
                       help="run every step again (default: recover - the steps that succeeded are skipped)")
    retry.add_argument("--services", nargs="+", default=[], metavar="MODULE_OR_PATH",
                       help="with --redis: the services that declare the task's method")
    remote_options(retry)
    retry.set_defaults(handler=cmd_retry)

    purge = command(commands, "purge", "delete finished tasks by state (and method), after a confirmation",
                     "  ladon-tasks purge --state failed --method importRecords --url http://127.0.0.1:8080")
    purge.add_argument("--state", action="append", required=True, choices=FINISHED,
                       help="delete tasks that ended in this state; repeat for several")
    purge.add_argument("--method", default=None, help="only this task method (default: every method)")
    purge.add_argument("--yes", action="store_true", help="do not ask (needed without a terminal)")
    remote_options(purge)
    purge.set_defaults(handler=cmd_purge)

    ping = command(commands, "ping", "check a server's or a worker's health; exit code 0 when healthy, else 1",
                    "  ladon-tasks ping http://127.0.0.1:8080          # a server: /_tasks/health\n"
                    "  ladon-tasks ping http://127.0.0.1:9108          # a worker's --metrics-port: /health")
    ping.add_argument("url", help="the server or the worker's metrics address (or a /health URL)")
    ping.add_argument("--token", default=None,
                      help="the token, unless health is open (default: $LADON_TASKS_DASHBOARD_TOKEN)")
    ping.set_defaults(handler=cmd_ping)
