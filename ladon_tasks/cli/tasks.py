"""The commands that look after tasks: ``tasks``, ``events``, ``inspect``, ``cancel``
(over Redis, or a running server's dashboard API with ``--url``), ``call`` and ``wait``
(over a server's JSON-WSP)."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any, Sequence

from ladon_tasks import defaults
from ladon_tasks.cli.common import CommandError, command, escape_controls, redis_store, remote_options


def _task_rows(args: argparse.Namespace) -> list[dict]:
    """The tasks asked for, as the dashboard API shows them, from ``--url`` or Redis."""
    if args.url:
        return _dashboard(args).list_tasks(states=args.state, method=args.method, limit=args.limit, offset=args.offset,
                                           tag=args.tag)
    import time

    from ladon_tasks.dashboard.views import task_summary
    from ladon_tasks.model import TaskState

    store = redis_store(args.redis)
    try:
        states = [TaskState(state) for state in args.state] if args.state else None
        records = store.list_tasks(states=states, method=args.method, limit=args.limit, offset=args.offset,
                                   tag=args.tag)
    finally:
        store.close()
    now = time.time()
    return [task_summary(record, now) for record in records]


def _dashboard(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    from ladon_tasks.remote import DashboardClient

    return DashboardClient(args.url, token=args.token or os.environ.get("LADON_TASKS_DASHBOARD_TOKEN"))


def _print_rows(rows: list[dict], as_json: bool) -> None:
    """The rows as a table (or JSON lines); every control character escaped."""
    import json

    if as_json:
        for row in rows:
            print(escape_controls(json.dumps(row, ensure_ascii=False)))
        return
    targets = [f"{row['service']}.{row['method']}" for row in rows]
    width = max(map(len, ["SERVICE.METHOD", *targets]))
    callers = [row.get("principal") or "-" for row in rows]  # who started it ("-": nobody named)
    caller_width = max(map(len, ["CALLER", *callers]))
    print(f"{'TASK':32}  {'STATE':10}  {'PROGRESS':>8}  {'AGE':>7}  {'TRIES':>5}  {'SERVICE.METHOD':{width}}  "
          f"{'CALLER':{caller_width}}  MESSAGE")
    for row, target, caller in zip(rows, targets, callers, strict=True):
        # a task handed over or reissued has used more attempts than its retries allow
        limit = max(row["attempts"], row["max_attempts"])
        message = (row["message"] or row["error_message"] or "")[:60]
        print(escape_controls(
            f"{row['task_id']:32}  {row['state']:10}  {row['progress'] * 100:7.0f}%  "
            f"{row['age']:6.0f}s  {row['attempts']:>2}/{limit:<2}  {target:{width}}  {caller:{caller_width}}  {message}"
        ))


def _print_event(when: float, state: str, target: str, task_id: str, attempt: object, error: str) -> None:
    import datetime

    stamp = datetime.datetime.fromtimestamp(when).strftime("%H:%M:%S.%f")[:-3]
    print(escape_controls(f"{stamp}  {state:9}  {target}  {task_id}  attempt {attempt}{f'  {error}' if error else ''}"),
          flush=True)


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
    store = redis_store(args.redis)
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
    _print_rows(_task_rows(args), args.json)
    return 0


def cmd_inspect(args: argparse.Namespace) -> int:
    import json

    if args.url:
        if args.traceback:
            raise CommandError("--traceback needs --redis: the dashboard API never sends tracebacks")
        if args.services:
            raise CommandError("--services goes with --redis: with --url the server shows its own declaration")
        print(escape_controls(json.dumps(_dashboard(args).detail(args.task_id), indent=2, ensure_ascii=False), "\n"))
        return 0
    from ladon_tasks import spec as specs
    from ladon_tasks.runtime import configure
    from ladon_tasks.steps import ordered

    if args.services:
        from ladon_tasks.cli.running import import_services

        import_services(args.services)
    runtime = configure(store=redis_store(args.redis))
    try:
        record = runtime.record(args.task_id)
        steps = ordered(runtime.store.load_steps(record.task_id).values()) if record.step else []
    finally:
        runtime.shutdown()
    data = record.to_json()
    data["steps"] = [step.to_json() for step in steps]  # with their results, as the record has its own
    declared = specs.find(record.service, record.method)  # the limits are the code's: known with --services
    data["limits"] = declared.options.in_force() if declared is not None else None
    if not args.traceback:
        data.pop("error_traceback", None)
    print(escape_controls(json.dumps(data, indent=2, ensure_ascii=False), "\n"))
    return 0


def cmd_cancel(args: argparse.Namespace) -> int:
    if args.url:
        task = _dashboard(args).cancel(args.task_id)
        task_id, state = task["task_id"], task["state"]
    else:
        from ladon_tasks.runtime import configure

        runtime = configure(store=redis_store(args.redis))
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


def _follow(handle, args: argparse.Namespace) -> int:  # type: ignore[no-untyped-def]
    """Progress on stderr until the task ends, then its result (JSON) on stdout; past
    ``--timeout``, the command that goes on following it."""
    import json
    import shlex

    status = handle.wait(args.timeout, progress=None if args.quiet else sys.stderr)
    if not status.finished:
        again = shlex.join(["ladon-tasks", "wait", args.url, args.target, handle.task_id])
        print(f"still {status.state} after {args.timeout:g}s: task {handle.task_id} (follow it with: {again})",
              file=sys.stderr)
        return 3
    print(json.dumps(handle.result(), indent=2, ensure_ascii=False))
    return 0


def _start_time(text: str) -> float:
    """``--at``: seconds since the epoch, or an ISO 8601 time (local time without a zone)."""
    import datetime

    try:
        return float(text)
    except ValueError:
        pass
    try:
        return datetime.datetime.fromisoformat(text).timestamp()
    except ValueError:
        raise CommandError(f"--at {text!r}: give seconds since the epoch or an ISO 8601 time "
                           "like 2030-01-31T18:00:00+01:00") from None


def cmd_call(args: argparse.Namespace) -> int:
    from ladon_tasks.delays import duration

    client, method = _service_client(args.url, args.target)
    arguments = _parse_call_arguments(args.arguments)
    if args.at is not None and args.start_in is not None:
        raise CommandError("--at and --in ask for the same thing: give one")
    if args.at is not None:
        handle = client.start_at(method, _start_time(args.at), **arguments)
    elif args.start_in is not None:
        try:
            seconds = duration(args.start_in)
        except ValueError as exc:
            raise CommandError(f"--in: {exc}") from None
        handle = client.start_later(method, seconds, **arguments)
    else:
        handle = client.start(method, **arguments)
    if not args.wait:
        print(handle.task_id)
        return 0
    print(f"task {handle.task_id}", file=sys.stderr)
    return _follow(handle, args)


def cmd_wait(args: argparse.Namespace) -> int:
    client, method = _service_client(args.url, args.target)
    return _follow(client.handle(method, args.task_id), args)


def _server_and_method(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("url", help="the server, e.g. http://127.0.0.1:8080")
    parser.add_argument("target", metavar="SERVICE.METHOD", help="the service and its task method")


def _follow_options(parser: argparse.ArgumentParser, when: str = "") -> None:
    """How ``call --wait`` and ``wait`` follow a task."""
    parser.add_argument("--timeout", type=float, default=None,
                        help=f"{when}stop waiting after this many seconds (exit code 3; the task goes on)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def register(commands: Any) -> None:
    """Add this module's commands to the ``ladon-tasks`` parser."""
    tasks = command(commands, "tasks", "list tasks, newest first",
                    "  ladon-tasks tasks --url http://127.0.0.1:8080 --state running --state queued\n"
                    "  ladon-tasks tasks --redis redis://127.0.0.1:6379/0 --method cloneInstance --json")
    tasks.add_argument("--state", action="append", choices=["queued", "running", "succeeded", "failed", "cancelled"],
                       help="only tasks in this state; repeat for several")
    tasks.add_argument("--method", default=None, help="only this task method")
    tasks.add_argument("--tag", default=None, help="only tasks with this tag")
    tasks.add_argument("--limit", type=int, default=defaults.LIST_LIMIT, help="tasks shown at most")
    tasks.add_argument("--offset", type=int, default=0, help="newest tasks skipped")
    tasks.add_argument("--json", action="store_true", help="one JSON object per task and line")
    remote_options(tasks)
    tasks.set_defaults(handler=cmd_tasks)

    events = command(commands, "events", "follow task lifecycle events",
                     "  ladon-tasks events --redis redis://127.0.0.1:6379/0 --from-start\n"
                     "  ladon-tasks events --url http://127.0.0.1:8080   # polls the task list each second")
    events.add_argument("--from-start", action="store_true",
                        help="begin with the oldest kept event (with --url: every listed task)")
    events.add_argument("--count", type=int, default=None, help="stop after this many events")
    remote_options(events)
    events.set_defaults(handler=cmd_events)

    inspect = command(commands, "inspect", "one task's whole record",
                      "  ladon-tasks inspect 3f0c9a6e1b2d4c5f8a7e6d5c4b3a2918 --url http://127.0.0.1:8080")
    inspect.add_argument("task_id", help="the task's id (32 hex digits)")
    inspect.add_argument("--traceback", action="store_true", help="include the failure's traceback (--redis only)")
    inspect.add_argument("--services", nargs="+", default=[], metavar="MODULE_OR_PATH",
                         help="with --redis: the services that declare the task's method, to show its limits "
                              "and policies (with --url the server's own declaration is shown)")
    remote_options(inspect)
    inspect.set_defaults(handler=cmd_inspect)

    cancel = command(commands, "cancel", "cancel a task; exit code 1 if it had already finished",
                     "  ladon-tasks cancel 3f0c9a6e1b2d4c5f8a7e6d5c4b3a2918 --url http://127.0.0.1:8080")
    cancel.add_argument("task_id", help="the task's id (32 hex digits)")
    remote_options(cancel)
    cancel.set_defaults(handler=cmd_cancel)

    call = command(commands, "call", "start a task on a running server; --wait shows a progress bar",
                   "  ladon-tasks call http://127.0.0.1:8080 InstanceService.cloneInstance \\\n"
                   "      instance_id=vm-7 new_instance_name=staging --wait")
    _server_and_method(call)
    call.add_argument("arguments", nargs="*", metavar="key=value",
                      help="the method's arguments; JSON lists and objects are decoded")
    call.add_argument("--wait", action="store_true", help="follow the task and print its result (JSON)")
    call.add_argument("--at", default=None, metavar="TIME",
                      help="start not before TIME: seconds since the epoch, or ISO 8601 (2030-01-31T18:00+01:00)")
    call.add_argument("--in", dest="start_in", default=None, metavar="DELAY",
                      help="start DELAY from now: seconds, or 90s, 15m, 2h, 1d")
    _follow_options(call, "with --wait: ")
    call.set_defaults(handler=cmd_call)

    wait = command(commands, "wait", "follow a started task: a progress bar, then its result",
                   "  ladon-tasks wait http://127.0.0.1:8080 InstanceService.cloneInstance "
                   "3f0c9a6e1b2d4c5f8a7e6d5c4b3a2918")
    _server_and_method(wait)
    wait.add_argument("task_id", help="the task's id, as call printed it")
    _follow_options(wait)
    wait.set_defaults(handler=cmd_wait)
