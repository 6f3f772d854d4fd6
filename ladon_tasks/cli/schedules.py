"""``ladon-tasks schedules``: the periodic tasks - list them, pause or resume one, or have
one run now - in a Redis store (``--redis``: a run is started by whichever process runs
the schedule next), or through a running server's dashboard API (``--url``: a server
that declares the schedule starts the run at once)."""

from __future__ import annotations

import argparse
import json
import os
import time
from typing import Any

from ladon_tasks.cli.common import CommandError, command, redis_store, remote_options


def _clock(epoch: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(epoch)) if epoch else "-"


def cmd_schedules(args: argparse.Namespace) -> int:
    if args.action != "list" and not args.name:
        raise CommandError(f"schedules {args.action} needs the schedule's name: Service.method")
    rows = _over_url(args) if args.url else _over_redis(args)
    if rows is None:
        return 0
    if args.json:
        for row in rows:
            print(json.dumps(row))
        return 0
    for row in rows:
        print(f"{row['name']}  {row['describe'] or '?'}  {'paused' if row['paused'] else 'active'}  "
              f"last {_clock(row['last_tick'])} ({row['last_task'] or 'none'})  next {_clock(row['next_tick'])}")
    return 0


def _over_url(args: argparse.Namespace) -> list[dict[str, Any]] | None:
    """Through the dashboard API: the rows to list, or ``None`` once an action is done."""
    from ladon_tasks.remote import DashboardClient, RemoteError

    try:
        client = DashboardClient(args.url, token=args.token or os.environ.get("LADON_TASKS_DASHBOARD_TOKEN"))
        if args.action == "list":
            return client.schedules()
        answer = client.schedule(args.name, args.action)
    except RemoteError as exc:
        raise CommandError(str(exc)) from None
    task = answer.get("task")
    print(f"{args.name} " + (f"run as task {task['task_id']}" if task else _done(args.action)))
    return None


def _over_redis(args: argparse.Namespace) -> list[dict[str, Any]] | None:
    """In the Redis store's schedule book: the rows to list, or ``None`` once an action
    is done."""
    store = redis_store(args.redis)
    try:
        book = store.schedule_book()
        known = book.names()
        if args.action == "list":
            return [book.state(name).__dict__ for name in known]
        if args.name not in known:
            raise CommandError(f"UnknownSchedule: no schedule {args.name!r} in this store "
                               f"(known: {', '.join(known) or 'none'})")
        if args.action == "run":
            book.request_run(args.name)
        else:
            book.set_paused(args.name, args.action == "pause")
        print(f"{args.name} {_done(args.action)}")
        return None
    finally:
        store.close()


def _done(action: str) -> str:
    return "run asked for" if action == "run" else action + "d"


def register(commands: Any) -> None:
    parser = command(commands, "schedules", "the periodic tasks: list, pause, resume, or run one now",
                     "  ladon-tasks schedules --redis redis://127.0.0.1:6379/0\n"
                     "  ladon-tasks schedules pause ReportService.nightly --redis redis://127.0.0.1:6379/0\n"
                     "  ladon-tasks schedules run ReportService.nightly --url http://127.0.0.1:8080")
    parser.add_argument("action", nargs="?", default="list", choices=("list", "pause", "resume", "run"))
    parser.add_argument("name", nargs="?", default="", metavar="SERVICE.METHOD", help="the schedule (not for list)")
    parser.add_argument("--json", action="store_true", help="one JSON object per schedule and line")
    remote_options(parser)
    parser.set_defaults(handler=cmd_schedules)
