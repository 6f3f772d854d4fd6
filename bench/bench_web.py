"""Web-path bench: what a Ladon user compares. The same Ladon HTTP stack, 8 JSON-WSP
clients each making whole tasks (start, then result), with ladon-tasks against a Ladon
service that hands the work to huey, dramatiq, RQ or Celery by hand, and the ceiling of
two plain calls - in one run, in alternating rounds.

The systems (:mod:`bench.web_systems`), each on its own fresh ``redis-server``:

- ladon-tasks with the queue executor (``ladon-tasks serve --redis`` and a ``ladon-tasks
  worker`` with 2 slots, threads or processes), and with the thread executor (bodies in
  the web process, Redis store);
- Ladon + huey, dramatiq, RQ (``SimpleWorker``) and Celery (threads), each with its own
  worker of 2 slots: a plain Ladon service whose ``start`` enqueues and whose
  ``result`` blocks on the queue's result, in Ladon's own ``LadonWSGIApplication``;
- the ceiling: two plain ``echo`` calls, on ladon-tasks' stack and on plain Ladon.

First on ``serve``: ``ladon-tasks serve`` on waitress, the peers in Ladon's own
application on the same waitress set-up, and Ladon + huey and plain Ladon also on
Werkzeug's threaded server, as a Ladon user runs them today. Then, unless
``--no-apache``, with Apache's HTTP layer for both (``mod_wsgi-express`` with the same
settings). All systems
of a stack run at once; each round measures each system in turn (the order reversed
every other round), so drift in the machine's speed falls on all of them:

- tasks/s: ``--clients`` threads, each making tasks for ``--seconds``, counted when the
  right result is back (a task started before the end is waited for);
- p50/p99: one client making tasks one after another;
- cmds/task: ``INFO commandstats`` over the tasks/s windows (commands in Lua scripts
  included) / tasks.

Ratios: against the best hand-wired peer on the same HTTP server, and against the
ceilings (plain Ladon's on the same HTTP server, and that of the row's own application).
A fault is counted in its row, a crashed system is reported and left out of later rounds, and the run goes on; the CPU
stolen and used by other processes while each row was measured is reported beside it.
``--quick`` is a smoke run: one short round, figures not judged.

    python -m bench.bench_web [--quick] [--rounds 3] [--seconds 6] [--clients 8] [--no-apache]
                              [--only WORD ...] [--output bench/output/web.json]
"""

from __future__ import annotations

import functools
import itertools
import json
import shutil
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench.benchlib import (
    BENCH_COMMANDS, Faults, arguments, attempt, environment, percentile, ratio, run_together, text_table, wanted,
)
from bench.noise import CpuAccount, CpuShare
from bench.web_systems import STACKS, ApacheSettings, WebSystem, systems
from tests.support.jsonwsp import JsonWsp

#: Failed tasks one window tolerates: a dead server fails every call at once.
WINDOW_FAULTS = 200
#: Pause of a client after a failed task, so a broken system is not hammered in a loop.
FAULT_PAUSE = 0.01
#: Longest the one-client latency phase of a round may take, in seconds: a system whose
#: tasks take seconds each has answered the question long before its count is done.
LATENCY_BOUND = 30.0


@dataclass(frozen=True)
class Plan:
    """How much of each measurement to do; ``--quick`` shrinks it to a smoke run."""

    rounds: int = 3
    seconds: float = 6.0
    latency_tasks: int = 100
    warmup_tasks: int = 30
    clients: int = 8
    stacks: tuple[str, ...] = STACKS
    apache: ApacheSettings = ApacheSettings()
    quick: bool = False


QUICK_PLAN = Plan(rounds=1, seconds=1.5, latency_tasks=20, warmup_tasks=10, quick=True)


@dataclass
class Figures:
    """Everything measured on one system, summed over its rounds."""

    tasks: int = 0
    seconds: float = 0.0
    round_rates: list[float] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)
    commands: int = 0
    faults: Faults = field(default_factory=Faults)
    error: str | None = None
    cpu: CpuShare = field(default_factory=CpuShare)

    @property
    def tasks_per_s(self) -> float:
        return self.tasks / self.seconds if self.seconds else 0.0

    @property
    def commands_per_task(self) -> float:
        return self.commands / self.tasks if self.tasks else float("nan")

    def to_json(self) -> dict[str, Any]:
        return {"tasks": self.tasks, "seconds": self.seconds, "tasks_per_s": self.tasks_per_s,
                "round_rates": self.round_rates, "p50_ms": 1000 * percentile(self.latencies, 0.5),
                "p99_ms": 1000 * percentile(self.latencies, 0.99), "latency_tasks": len(self.latencies),
                "commands_per_task": self.commands_per_task, "faults": self.faults.to_json(),
                "error": self.error, "cpu": self.cpu.to_json()}


@dataclass
class Row:
    system: WebSystem
    figures: Figures = field(default_factory=Figures)


# -- measuring ------------------------------------------------------------------------


def measure_latency(system: WebSystem, count: int, figures: Figures) -> None:
    """``count`` tasks one after another from one client (at most ``LATENCY_BOUND``
    seconds of them); seconds each, of the good ones."""
    client = system.client()
    bound = time.monotonic() + LATENCY_BOUND
    try:
        client.open()
        for value in range(1, count + 1):
            if time.monotonic() > bound:
                break
            began = time.perf_counter()
            if attempt(figures.faults, functools.partial(system.task, client, value), FAULT_PAUSE, system.gone):
                figures.latencies.append(time.perf_counter() - began)
    finally:
        client.close()


def measure_rate(system: WebSystem, plan: Plan, figures: Figures) -> None:
    """``clients`` threads making tasks for ``seconds``; the tasks completed, the wall time
    until the last one was back, and the Redis commands meanwhile."""
    numbers = itertools.count(1)  # next() on it is atomic under the GIL
    completed = itertools.count()

    def work(client: JsonWsp) -> None:
        deadline = time.perf_counter() + plan.seconds
        while time.perf_counter() < deadline:
            if attempt(figures.faults, functools.partial(system.task, client, next(numbers)), FAULT_PAUSE,
                       system.gone):
                next(completed)

    clients = [system.client() for _ in range(plan.clients)]
    assert system.redis is not None
    system.redis.reset_stats()
    try:
        seconds = run_together(clients, work, plan.seconds + 2 * 30.0, prepare=JsonWsp.open)
    finally:
        for client in clients:
            client.close()
    done = next(completed)
    figures.commands += sum(system.redis.commands(BENCH_COMMANDS).values())
    figures.tasks += done
    figures.seconds += seconds
    figures.round_rates.append(done / seconds)


def measure_round(row: Row, plan: Plan, account: CpuAccount) -> None:
    """One round of one system: latency, then rate; a crash or a window given up ends the
    system's run, with what it measured before kept."""
    figures = row.figures
    figures.faults.limit = figures.faults.total + WINDOW_FAULTS
    try:
        with account.window() as share:
            measure_latency(row.system, plan.latency_tasks, figures)
            measure_rate(row.system, plan, figures)
        figures.cpu = figures.cpu + share
    except Exception as error:  # noqa: BLE001 - the row reports it, the run goes on
        figures.error = describe(error)
    gone = row.system.gone()
    if gone and "crashed" not in (figures.error or ""):
        figures.error = (figures.error + "; " if figures.error else "") + "crashed: " + "; ".join(gone)


def describe(error: BaseException) -> str:
    """An error on one line of at most 300 characters (an HTML error page is long)."""
    return " ".join(f"{type(error).__name__}: {error}".split())[:300]


def warm_up(row: Row, plan: Plan) -> None:
    """A few tasks before any measurement: workers and connections are up, and a system
    that cannot make a task at all is found now."""
    client = row.system.client()
    try:
        for value in range(1, plan.warmup_tasks + 1):
            row.system.task(client, value)
    finally:
        client.close()


def run_stack(stack: str, plan: Plan, only: list[str] | None, work_dir: Path, log_dir: Path,
              account: CpuAccount) -> list[Row]:
    """Start every system of ``stack``, measure them in alternating rounds, stop them."""
    rows = [Row(system) for system in systems(stack) if wanted(system.label, only)]
    try:
        for number, row in enumerate(rows):
            began = time.perf_counter()
            try:
                row.system.start(work_dir / str(number), log_dir, plan.apache, account)
                warm_up(row, plan)
            except Exception as error:  # noqa: BLE001 - reported in its row
                row.figures.error = "start: " + describe(error)
            note = f"  FAILED: {row.figures.error}" if row.figures.error else ""
            print(f"  {stack}: {row.system.label:<48} up in {time.perf_counter() - began:5.1f} s{note}",
                  file=sys.stderr, flush=True)
        for number in range(plan.rounds):
            began = time.perf_counter()
            for row in rows if number % 2 == 0 else list(reversed(rows)):
                if row.figures.error is None:
                    measure_round(row, plan, account)
            print(f"  {stack}: round {number + 1} of {plan.rounds} in {time.perf_counter() - began:5.1f} s",
                  file=sys.stderr, flush=True)
    finally:
        for row in rows:
            row.system.stop()
    return rows


# -- the report -----------------------------------------------------------------------


def ceilings(rows: list[Row]) -> dict[tuple[bool, str], float]:
    """The ceiling of each application on each HTTP server, by ``(ours_stack, http)``."""
    return {(row.system.ours_stack, row.system.http): row.figures.tasks_per_s
            for row in rows if row.system.group == "ceiling"}


def best_peer(rows: list[Row], http: str) -> Row | None:
    """The fastest hand-wired peer on the HTTP server ``http``."""
    peers = [row for row in rows if row.system.group == "peer" and row.system.http == http and row.figures.tasks_per_s]
    return max(peers, key=lambda row: row.figures.tasks_per_s, default=None)


def main_http(stack: str) -> str:
    """The HTTP server that ladon-tasks and its peers share on ``stack``."""
    return "waitress" if stack == "serve" else "apache"


def format_stack(stack: str, rows: list[Row], plan: Plan) -> str:
    best = best_peer(rows, main_http(stack))
    ceiling = ceilings(rows)
    header = ("system", "tasks/s", "per round", "vs best hand-wired", "vs Ladon ceiling", "vs own ceiling",
              "p50 ms", "p99 ms", "cmds/task", "errors", "CPU elsewhere")
    table = [header]
    for row in rows:
        f, http = row.figures, row.system.http
        own = ceiling.get((row.system.ours_stack, http), 0.0)
        peer = best_peer(rows, http)
        table.append((
            row.system.label, f"{f.tasks_per_s:,.0f}", "/".join(f"{rate:.0f}" for rate in f.round_rates) or "-",
            ratio(f.tasks_per_s, peer.figures.tasks_per_s if peer else 0.0),
            ratio(f.tasks_per_s, ceiling.get((False, http), 0.0)), ratio(f.tasks_per_s, own),
            f"{1000 * percentile(f.latencies, 0.5):.1f}", f"{1000 * percentile(f.latencies, 0.99):.1f}",
            f"{f.commands_per_task:.1f}", f"{f.faults.total:,}" + (" +failed" if f.error else ""),
            f"{100 * (f.cpu.steal_share + f.cpu.others_share):.0f} %" + (" noisy" if f.cpu.noisy else ""),
        ))
    server = ("waitress for ladon-tasks serve and the peers (the rows 'on Werkzeug': Werkzeug's threaded server)"
              if stack == "serve" else f"mod_wsgi-express for both, {plan.apache.processes} daemon processes x "
                                       f"{plan.apache.threads} threads")
    lines = [f"{stack}: {server}; {plan.clients} clients, {plan.rounds} round(s) x {plan.seconds:g} s",
             "ratios: against rows on the same HTTP server", text_table(table)]
    if best:
        lines.append(f"best hand-wired on {main_http(stack)}: {best.system.label}"
                     f" ({best.figures.tasks_per_s:,.0f} tasks/s)")
    for row in rows:
        problems = row.figures.faults.summary() + ([f"failed: {row.figures.error}"] if row.figures.error else [])
        if problems:
            lines.append(f"{row.system.label}: " + "; ".join(problems))
    lines.append(targets(rows, plan))
    return "\n".join(lines)


#: The web-path target against the best hand-wired peer on the same server, per stack.
PEER_TARGET = {"serve": 1.5, "apache": 1.2}


def targets(rows: list[Row], plan: Plan) -> str:
    """The web-path targets, for the best queue row of the stack."""
    stack = rows[0].system.stack if rows else "serve"
    http = main_http(stack)
    queue = [row for row in rows if row.system.group == "ours" and row.system.executor == "queue"
             and row.figures.tasks_per_s]
    thread = [row for row in rows if row.system.group == "ours" and row.system.executor == "thread"]
    best = best_peer(rows, http)
    ladon_ceiling = ceilings(rows).get((False, http), 0.0)
    goal = PEER_TARGET.get(stack, 1.5)
    if not queue or best is None or not ladon_ceiling:
        return "targets: not judged (a queue row, a hand-wired peer or the Ladon ceiling is missing)"
    top = max(queue, key=lambda row: row.figures.tasks_per_s).figures.tasks_per_s
    thread_rate = thread[0].figures.tasks_per_s if thread else 0.0

    def verdict(met: bool) -> str:
        return "not judged: quick run" if plan.quick else ("ok" if met else "MISSED")

    return "\n".join([
        "targets:",
        f"  queue >= {goal}x best hand-wired on {http}: {ratio(top, best.figures.tasks_per_s)}"
        f" ({verdict(top >= goal * best.figures.tasks_per_s)})",
        f"  queue >= 0.85x Ladon ceiling: {ratio(top, ladon_ceiling)} ({verdict(top >= 0.85 * ladon_ceiling)})",
        f"  thread executor >= queue: {ratio(thread_rate, top)} ({verdict(thread_rate >= top)})",
    ])


# -- main -------------------------------------------------------------------------------


def run(plan: Plan, output: Path, only: list[str] | None) -> int:
    output.parent.mkdir(parents=True, exist_ok=True)
    log_dir = output.parent / "web-logs"
    shutil.rmtree(log_dir, ignore_errors=True)
    log_dir.mkdir()
    began = time.perf_counter()
    account = CpuAccount()
    results: dict[str, list[Row]] = {}
    scratch = output.parent / "web-work"  # beside the repository: Apache's daemons (www-data) reach it
    try:
        for stack in plan.stacks:
            work_dir = scratch / stack
            shutil.rmtree(work_dir, ignore_errors=True)
            work_dir.mkdir(parents=True)
            results[stack] = run_stack(stack, plan, only, work_dir, log_dir, account)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    elapsed = time.perf_counter() - began
    for stack, rows in results.items():
        print(format_stack(stack, rows, plan))
        print()
    print("vs own ceiling: against two echo calls on the row's own server (ladon-tasks' for ours, plain Ladon's "
          "for the peers).")
    print("CPU elsewhere: stolen by the hypervisor or used by other processes, share of the machine while measured.")
    print(f"took {elapsed:.0f} s; {account.total.describe()}")
    if plan.quick:
        print("quick run: too short for the figures to be judged against the targets")
    report = {
        "environment": environment("rq", "celery", "huey", "dramatiq", "mod_wsgi"),
        "plan": asdict(plan),
        "seconds": round(elapsed, 1),
        "cpu": account.total.to_json(),
        "stacks": {stack: [{"system": row.system.label, "group": row.system.group, "http": row.system.http,
                            "executor": row.system.executor if row.system.group == "ours" else None,
                            **row.figures.to_json()}
                           for row in rows] for stack, rows in results.items()},
    }
    output.write_text(json.dumps(report, indent=2) + "\n")
    print(f"figures written to {output}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = arguments(__doc__, "web", "one short round, under a minute")
    parser.add_argument("--rounds", type=int, default=None, help="rounds per stack (default 3)")
    parser.add_argument("--seconds", type=float, default=None, help="tasks/s window per system and round (default 6)")
    parser.add_argument("--clients", type=int, default=None, help="client threads (default 8)")
    parser.add_argument("--no-apache", action="store_true", help="only the serve stack")
    parser.add_argument("--apache-processes", type=int, default=None, help="mod_wsgi daemon processes (default 2)")
    parser.add_argument("--apache-threads", type=int, default=None, help="threads per daemon process (default 16)")
    parser.add_argument("--only", nargs="+", default=None, help="only systems whose label has one of these words")
    args = parser.parse_args(argv)
    plan = QUICK_PLAN if args.quick else Plan()
    changes: dict[str, Any] = {name: value for name, value in
                               (("rounds", args.rounds), ("seconds", args.seconds), ("clients", args.clients))
                               if value is not None}
    if args.no_apache:
        changes["stacks"] = ("serve",)
    changes["apache"] = ApacheSettings(args.apache_processes or plan.apache.processes,
                                       args.apache_threads or plan.apache.threads)
    plan = Plan(**{**{f: getattr(plan, f) for f in plan.__dataclass_fields__}, **changes})
    if plan.rounds < 1 or plan.seconds <= 0 or plan.clients < 1:
        parser.error("--rounds, --seconds and --clients must be positive")
    return run(plan, args.output, args.only)


if __name__ == "__main__":
    sys.exit(main())
