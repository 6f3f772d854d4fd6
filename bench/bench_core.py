"""Core bench: ladon-tasks against Ladon 1.0.7's own thread-mode tasktype, in one run.

Both sides serve the same file (``bench/services/bench_service.py``) on the same HTTP
server (Werkzeug's threaded server, as ``ladon-tasks serve`` uses), each in its own
child process: Ladon keeps its services and its tasks in module globals, so two
servers in one process would measure each other. The anchor imports only
``ladon_tasks.compat`` (the ``getargspec`` shim Ladon needs on Python 3.11) and never
activates the plugin. Clients speak JSON-WSP over raw keep-alive ``http.client``
connections, so the client costs as little as it can and costs the same on both sides.

What is measured, every figure for both servers in the same run:

1. start-call latency relative to a plain call (median start / median plain);
2. ``_progress`` requests per second from several client threads, relative to plain
   calls from the same threads;
3. end-to-end no-op tasks per second (start, until done, result) from several client
   threads - ladon-tasks with ``_wait_result``, and both with polling ``_progress`` as Ladon's
   clients must;
4. the server's RSS after 10k, 20k and 30k finished tasks, and the end-to-end rate at
   the first and last of those: Ladon keeps every task forever in global lists it scans.

Limits: client and server share the machine's cores, so absolute rates depend on the
client too; the ratios are what travel between machines. ``--quick`` is a smoke run,
too short for figures worth comparing.

    python bench/bench_core.py [--quick] [--clients 8] [--output bench/output/core.json]
"""

from __future__ import annotations

import argparse
import itertools
import json
import signal
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchlib import (  # noqa: E402  (the bench directory is not a package)
    STARTUP_DEADLINE,
    TASK_DEADLINE,
    Client,
    Fault,
    environment,
    in_threads,
    read_port,
    stop_process,
)

BENCH_DIR = Path(__file__).resolve().parent
SERVICES_DIR = BENCH_DIR / "services"
OUTPUT_DIR = BENCH_DIR / "output"
SERVICE = "BenchService"
SERVICE_MODULE = "bench_service"
KINDS = ("ours", "ladon")
LABELS = {"ours": "ladon-tasks", "ladon": "Ladon 1.0.7"}

@dataclass(frozen=True)
class Plan:
    """How much of each measurement to do; ``--quick`` shrinks every count."""

    latency_rounds: int = 5
    latency_calls: int = 400
    rps_rounds: int = 3
    rps_seconds: float = 3.0
    e2e_tasks: int = 3000
    checkpoints: tuple[int, ...] = (10_000, 20_000, 30_000)
    rate_window: int = 2000
    clients: int = 8
    warmup_calls: int = 200
    #: Too few calls for the figures to mean much: targets are not judged.
    quick: bool = False


QUICK_PLAN = Plan(
    latency_rounds=2, latency_calls=100, rps_rounds=1, rps_seconds=1.0, e2e_tasks=400,
    checkpoints=(1000, 2000, 3000), rate_window=300, warmup_calls=50, quick=True,
)


# -- the server side: runs in a child process ---------------------------------------


def serve(kind: str) -> None:
    """Build the WSGI application for ``kind``, bind a free loopback port, print it."""
    import logging

    from werkzeug.serving import WSGIRequestHandler, make_server

    logging.basicConfig(level=logging.WARNING)
    if kind == "ladon":
        import ladon_tasks.compat  # noqa: F401  (Python 3.11 shim only; the plugin stays off)
        from ladon.server.wsgi import LadonWSGIApplication

        sys.path.insert(0, str(SERVICES_DIR))
        application: Any = LadonWSGIApplication([SERVICE_MODULE], [str(SERVICES_DIR)])
    else:
        from ladon_tasks.wsgi import make_application

        application = make_application([SERVICE_MODULE], path_list=[str(SERVICES_DIR)])

    class QuietHandler(WSGIRequestHandler):
        """A line per request on stderr would cost more than some of the calls measured."""

        def log_request(self, *args: Any, **kwargs: Any) -> None:
            pass

    server = make_server("127.0.0.1", 0, application, threaded=True, request_handler=QuietHandler)
    print(f"PORT {server.server_port}", flush=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    server.serve_forever()


@dataclass
class ServerProcess:
    """A bench server in a child process, known by pid so only it is ever stopped."""

    kind: str
    process: subprocess.Popen
    port: int
    tasks_started: int = 0

    @classmethod
    def start(cls, kind: str, log_dir: Path) -> "ServerProcess":
        log = open(log_dir / f"core-server-{kind}.log", "wb")
        process = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "--serve", kind],
            stdout=subprocess.PIPE,
            stderr=log,
            cwd=str(BENCH_DIR.parent),
            start_new_session=True,
        )
        log.close()
        try:
            server = cls(kind, process, read_port(process))
            server.wait_ready()
        except BaseException:
            stop_process(process)
            raise
        return server

    def wait_ready(self) -> None:
        """The port is bound before serving starts; a real call proves the service loaded."""
        deadline = time.monotonic() + STARTUP_DEADLINE
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.kind} server exited with {self.process.returncode}")
            try:
                client = Client(self.port)
                try:
                    if client.call("echo", value=7) == 7:
                        return
                finally:
                    client.close()
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.kind} server did not answer within {STARTUP_DEADLINE}s")
            time.sleep(0.05)

    def rss_mib(self) -> float:
        with open(f"/proc/{self.process.pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024.0
        raise RuntimeError("no VmRSS line")

    def stop(self) -> None:
        stop_process(self.process)


# -- the client side ----------------------------------------------------------------


def _is_done(progress: dict[str, Any]) -> bool:
    """ladon-tasks says ``finished``; Ladon's only sign is progress 1.0, set at the end."""
    return bool(progress.get("finished", progress["progress"] >= 1.0))


def wait_by_polling(client: Client, task_id: str) -> Any:
    """How a Ladon client learns a task is done: ask ``_progress`` until it says so.

    Ladon writes a task's first progress from the task's own thread, so a poll that
    arrives before that thread has run gets "does not seem to exist": keep asking.
    Back-off from 0 to 10 ms, as a sensible client would, so polls don't starve the task.
    """
    deadline = time.monotonic() + TASK_DEADLINE
    pause = 0.0
    while True:
        try:
            if _is_done(client.call("noop_progress", task_id=task_id)):
                return client.call("noop_result", task_id=task_id)
        except Fault as fault:
            if "does not seem to exist" not in str(fault):
                raise
        if time.monotonic() > deadline:
            raise RuntimeError(f"task {task_id} not done after {TASK_DEADLINE}s")
        time.sleep(pause)
        pause = min(0.01, max(0.001, pause * 2))


def wait_by_waiting(client: Client, task_id: str) -> Any:
    """ladon-tasks' ``_wait_result``: one request that returns the result the moment the
    task has finished (``TaskNotFinished`` only if the wait runs out first)."""
    deadline = time.monotonic() + TASK_DEADLINE
    while True:
        try:
            return client.call("noop_wait_result", task_id=task_id, seconds=10.0)
        except Fault as fault:
            if not str(fault).startswith("TaskNotFinished") or time.monotonic() > deadline:
                raise


def run_task(client: Client, value: int, waiter: Callable[[Client, str], Any]) -> None:
    """One whole task as a client sees it; checks the result so errors can't pass as speed."""
    task_id = client.call("noop", value=value)["task_id"]
    result = waiter(client, task_id)
    if result != value:
        raise RuntimeError(f"task {task_id}: result {result!r}, expected {value!r}")


# -- the measurements -----------------------------------------------------------------


@dataclass
class Figures:
    """Everything measured on one server."""

    plain_ms: float = 0.0
    start_ms: float = 0.0
    start_over_plain: float = 0.0
    plain_rps: float = 0.0
    progress_rps: float = 0.0
    progress_over_plain: float = 0.0
    e2e_wait_per_s: float | None = None
    e2e_poll_per_s: float = 0.0
    rss_mib: dict[int, float] = field(default_factory=dict)
    rate_at: dict[int, float] = field(default_factory=dict)
    rss_baseline_mib: float = 0.0

    @property
    def e2e_best_per_s(self) -> float:
        """The rate a client of this server gets: ``_wait`` where there is one."""
        return self.e2e_wait_per_s or self.e2e_poll_per_s


def measure_latency(server: ServerProcess, plan: Plan, figures: Figures) -> None:
    """Sequential calls on one connection, plain and start in alternating rounds, so
    drift in the machine's speed falls on both alike; medians resist the odd stall."""
    client = Client(server.port)
    try:
        for number in range(plan.warmup_calls):
            client.call("echo", value=number + 1)
            client.call("noop", value=number + 1)
        server.tasks_started += plan.warmup_calls
        plain: list[float] = []
        start: list[float] = []
        for _ in range(plan.latency_rounds):
            plain += _timed_calls(client, "echo", plan.latency_calls)
            start += _timed_calls(client, "noop", plan.latency_calls)
            server.tasks_started += plan.latency_calls
    finally:
        client.close()
    figures.plain_ms = statistics.median(plain) * 1000
    figures.start_ms = statistics.median(start) * 1000
    figures.start_over_plain = figures.start_ms / figures.plain_ms


def _timed_calls(client: Client, method: str, count: int) -> list[float]:
    times = []
    for number in range(count):
        began = time.perf_counter()
        client.call(method, value=number + 1)
        times.append(time.perf_counter() - began)
    return times


def measure_progress_rate(server: ServerProcess, plan: Plan, figures: Figures) -> None:
    """Requests per second from ``clients`` threads for ``seconds`` each, plain and
    ``_progress`` (of one finished task) in alternating rounds."""
    client = Client(server.port)
    try:
        task_id = client.call("noop", value=1)["task_id"]
        wait_by_polling(client, task_id)
    finally:
        client.close()
    server.tasks_started += 1
    totals = {"echo": [0, 0.0], "noop_progress": [0, 0.0]}
    for _ in range(plan.rps_rounds):
        for method in totals:
            args = {"value": 1} if method == "echo" else {"task_id": task_id}
            calls, seconds = _calls_for(server.port, plan, method, args)
            totals[method][0] += calls
            totals[method][1] += seconds
    figures.plain_rps = totals["echo"][0] / totals["echo"][1]
    figures.progress_rps = totals["noop_progress"][0] / totals["noop_progress"][1]
    figures.progress_over_plain = figures.progress_rps / figures.plain_rps


def _calls_for(port: int, plan: Plan, method: str, args: dict[str, Any]) -> tuple[int, float]:
    counts: list[int] = []
    limit = 1_000_000  # a bound on the loop whatever the clock does

    def work(client: Client) -> None:
        deadline = time.perf_counter() + plan.rps_seconds
        done = 0
        while time.perf_counter() < deadline and done < limit:
            client.call(method, **args)
            done += 1
        counts.append(done)

    seconds = in_threads(port, plan.clients, work)
    return sum(counts), seconds


def end_to_end(server: ServerProcess, plan: Plan, tasks: int, waiter: Callable[[Client, str], Any]) -> float:
    """``tasks`` whole tasks shared by ``clients`` threads; tasks per second."""
    numbers = itertools.count(1)  # next() on it is atomic under the GIL

    def work(client: Client) -> None:
        while (number := next(numbers)) <= tasks:
            run_task(client, number, waiter)

    seconds = in_threads(server.port, plan.clients, work)
    server.tasks_started += tasks
    return tasks / seconds


def measure_end_to_end(server: ServerProcess, plan: Plan, figures: Figures) -> None:
    if server.kind == "ours":
        figures.e2e_wait_per_s = end_to_end(server, plan, plan.e2e_tasks, wait_by_waiting)
    figures.e2e_poll_per_s = end_to_end(server, plan, plan.e2e_tasks, wait_by_polling)


Phase = Callable[[ServerProcess, Plan, Figures], None]


def grow_to(checkpoint: int) -> Phase:
    """The step for one checkpoint: finish tasks up to it, read RSS, and at the first and
    last checkpoints time a window of tasks. Tasks of earlier phases count: each one
    finished. One step per checkpoint, so both servers grow in alternation and drift in
    the machine's speed does not fall on one of them only."""

    def step(server: ServerProcess, plan: Plan, figures: Figures) -> None:
        waiter = wait_by_waiting if server.kind == "ours" else wait_by_polling
        if not figures.rss_mib:
            figures.rss_baseline_mib = server.rss_mib()
        missing = checkpoint - server.tasks_started
        if missing > 0:
            end_to_end(server, plan, missing, waiter)
        time.sleep(0.5)  # let the last task threads exit before reading memory
        figures.rss_mib[checkpoint] = server.rss_mib()
        if checkpoint in (plan.checkpoints[0], plan.checkpoints[-1]):
            figures.rate_at[checkpoint] = end_to_end(server, plan, plan.rate_window, waiter)

    return step


def phases(plan: Plan) -> list[tuple[str, Phase]]:
    return [
        ("start-call latency", measure_latency),
        ("_progress rate", measure_progress_rate),
        ("end-to-end rate", measure_end_to_end),
    ] + [(f"growth to {checkpoint:,} tasks", grow_to(checkpoint)) for checkpoint in plan.checkpoints]


# -- the report ---------------------------------------------------------------------


@dataclass
class Row:
    name: str
    ours: float
    ladon: float
    unit: str = ""
    target: str = ""
    met: bool | None = None

    @property
    def ratio(self) -> float:
        return self.ours / self.ladon if self.ladon else float("nan")


def build_rows(ours: Figures, ladon: Figures, plan: Plan) -> list[Row]:
    first, last = plan.checkpoints[0], plan.checkpoints[-1]

    def judged(met: bool) -> bool | None:
        return None if plan.quick else met

    rows = [
        Row("plain call latency, median", ours.plain_ms, ladon.plain_ms, "ms"),
        Row("start call latency, median", ours.start_ms, ladon.start_ms, "ms"),
        Row("start / plain latency", ours.start_over_plain, ladon.start_over_plain, "x",
            "ours <= 1.2x", judged(ours.start_over_plain <= 1.2)),
        Row(f"plain calls/s, {plan.clients} threads", ours.plain_rps, ladon.plain_rps, "/s"),
        Row(f"_progress calls/s, {plan.clients} threads", ours.progress_rps, ladon.progress_rps, "/s"),
        Row("_progress / plain calls/s", ours.progress_over_plain, ladon.progress_over_plain, "x",
            "ours >= 0.95x", judged(ours.progress_over_plain >= 0.95)),
        Row("end-to-end tasks/s (ours _wait_result, Ladon polls)", ours.e2e_best_per_s, ladon.e2e_poll_per_s,
            "/s", "ours/Ladon >= 1.5", judged(ours.e2e_best_per_s >= 1.5 * ladon.e2e_poll_per_s)),
        Row("end-to-end tasks/s (both poll _progress)", ours.e2e_poll_per_s, ladon.e2e_poll_per_s, "/s"),
        Row("RSS before the growth phase", ours.rss_baseline_mib, ladon.rss_baseline_mib, "MiB"),
    ]
    rows += [
        Row(f"RSS after {checkpoint:,} finished tasks", ours.rss_mib[checkpoint], ladon.rss_mib[checkpoint], "MiB")
        for checkpoint in plan.checkpoints
    ]
    per_10k = 10_000 / (last - first)
    ours_growth = (ours.rss_mib[last] - ours.rss_mib[first]) * per_10k
    ladon_growth = (ladon.rss_mib[last] - ladon.rss_mib[first]) * per_10k
    rows.append(Row(f"RSS growth per 10k tasks ({first:,} -> {last:,})", ours_growth, ladon_growth, "MiB",
                    "ours flat (< 1 MiB)", judged(ours_growth < 1.0)))
    rows += [
        Row(f"end-to-end tasks/s at {checkpoint:,} finished", ours.rate_at[checkpoint], ladon.rate_at[checkpoint], "/s")
        for checkpoint in (first, last)
    ]
    ours_keep = ours.rate_at[last] / ours.rate_at[first]
    ladon_keep = ladon.rate_at[last] / ladon.rate_at[first]
    rows.append(Row(f"rate at {last:,} / rate at {first:,}", ours_keep, ladon_keep, "x",
                    "ours >= 0.9x", judged(ours_keep >= 0.9)))
    return rows


def format_table(rows: list[Row]) -> str:
    header = ("measure", LABELS["ours"], LABELS["ladon"], "ours/Ladon", "target")
    lines = [header]
    for row in rows:
        verdict = "" if row.met is None else (" ok" if row.met else " MISSED")
        lines.append((
            row.name,
            f"{row.ours:,.2f} {row.unit}".strip(),
            f"{row.ladon:,.2f} {row.unit}".strip(),
            f"{row.ratio:.2f}",
            (row.target + verdict).strip(),
        ))
    widths = [max(len(line[column]) for line in lines) for column in range(len(header))]
    text = []
    for number, line in enumerate(lines):
        cells = [line[0].ljust(widths[0])] + [cell.rjust(width) for cell, width in zip(line[1:4], widths[1:4])]
        text.append("  ".join(cells + [line[4]]).rstrip())
        if number == 0:
            text.append("  ".join("-" * width for width in widths))
    return "\n".join(text)


# -- main -----------------------------------------------------------------------------


def run(plan: Plan, output: Path) -> int:
    output.parent.mkdir(parents=True, exist_ok=True)
    began = time.perf_counter()
    servers: dict[str, ServerProcess] = {}
    figures = {kind: Figures() for kind in KINDS}
    try:
        for kind in KINDS:
            servers[kind] = ServerProcess.start(kind, output.parent)
        for title, phase in phases(plan):
            for kind in KINDS:  # phase by phase, so both see the machine in the same mood
                step = time.perf_counter()
                phase(servers[kind], plan, figures[kind])
                print(f"  {title:<24} {LABELS[kind]:<12} {time.perf_counter() - step:6.1f} s", file=sys.stderr)
    finally:
        for server in servers.values():
            server.stop()
    elapsed = time.perf_counter() - began
    rows = build_rows(figures["ours"], figures["ladon"], plan)
    print(format_table(rows))
    print(f"\n{plan.clients} client threads; took {elapsed:.0f} s")
    if plan.quick:
        print("quick run: too short for the figures to be judged against the targets")
    report = {
        "environment": environment(),
        "plan": asdict(plan),
        "seconds": round(elapsed, 1),
        "figures": {kind: asdict(figures[kind]) for kind in KINDS},
        "rows": [
            {"measure": row.name, "ours": row.ours, "ladon": row.ladon, "ratio": row.ratio,
             "unit": row.unit, "target": row.target, "met": row.met}
            for row in rows
        ],
    }
    output.write_text(json.dumps(report, indent=2) + "\n")
    print(f"figures written to {output}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small counts: a smoke run in under a minute")
    parser.add_argument("--clients", type=int, default=None, help="client threads (default 8)")
    parser.add_argument("--output", type=Path, default=OUTPUT_DIR / "core.json", help="where the JSON goes")
    parser.add_argument("--serve", choices=KINDS, help=argparse.SUPPRESS)  # the child-process side
    args = parser.parse_args(argv)
    if args.serve:
        serve(args.serve)
        return 0
    plan = QUICK_PLAN if args.quick else Plan()
    if args.clients is not None:
        if args.clients < 1:
            parser.error("--clients must be at least 1")
        plan = Plan(**{**asdict(plan), "clients": args.clients})
    return run(plan, args.output)


if __name__ == "__main__":
    sys.exit(main())
