"""``ladon-tasks schedules``: the periodic tasks in a Redis store - list them, pause or
resume one, or have one run now (by whichever process runs the schedule next)."""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from ladon_tasks.cli.common import CommandError, command, redis_option, redis_store


def _clock(epoch: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(epoch)) if epoch else "-"


def cmd_schedules(args: argparse.Namespace) -> int:
    store = redis_store(args.redis, remote=False)
    try:
        book = store.schedule_book()
        known = book.names()
        if args.action != "list":
            if args.name not in known:
                raise CommandError(f"UnknownSchedule: no schedule {args.name!r} in this store "
                                   f"(known: {', '.join(known) or 'none'})")
            if args.action == "run":
                book.request_run(args.name)
            else:
                book.set_paused(args.name, args.action == "pause")
            print(f"{args.name} {'run asked for' if args.action == 'run' else args.action + 'd'}")
            return 0
        rows: list[dict[str, Any]] = [book.state(name).__dict__ for name in known]
        if args.json:
            for row in rows:
                print(json.dumps(row))
            return 0
        for row in rows:
            print(f"{row['name']}  {row['describe'] or '?'}  {'paused' if row['paused'] else 'active'}  "
                  f"last {_clock(row['last_tick'])} ({row['last_task'] or 'none'})  next {_clock(row['next_tick'])}")
        return 0
    finally:
        store.close()


def register(commands: Any) -> None:
    parser = command(commands, "schedules", "the periodic tasks: list, pause, resume, or run one now",
                     "  ladon-tasks schedules --redis redis://127.0.0.1:6379/0\n"
                     "  ladon-tasks schedules pause ReportService.nightly --redis redis://127.0.0.1:6379/0")
    parser.add_argument("action", nargs="?", default="list", choices=("list", "pause", "resume", "run"))
    parser.add_argument("name", nargs="?", default="", metavar="SERVICE.METHOD", help="the schedule (not for list)")
    parser.add_argument("--json", action="store_true", help="one JSON object per schedule and line")
    redis_option(parser, "")
    parser.set_defaults(handler=cmd_schedules)
