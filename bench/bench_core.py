"""Core bench: ladon-tasks against Ladon 1.0.7's own thread-mode tasktype, in one run.

Both sides serve the same file (``bench/services/bench_service.py``) on the same HTTP
server (Werkzeug's threaded server, :mod:`bench.ladon_server`), each in its own child
process: Ladon keeps its services and its tasks in module globals, so two servers in one
process would measure each other. The anchor is Ladon on its own
(:mod:`bench.plain_ladon`: ladon-tasks is never imported there, so its plugin is not
active); ours is the same file through ``ladon_tasks.wsgi.make_application``, twice:
with the embedded defaults (in-process store) and with the Redis store (a
``redis-server`` of its own). Clients
speak JSON-WSP with the keep-alive client of ``tests.support.jsonwsp``, the same on both
sides.

What is measured, every figure for both servers in the same run:

1. start-call latency relative to a plain call (median start / median plain);
2. ``_progress`` requests per second from several client threads, relative to plain
   calls from the same threads;
3. end-to-end no-op tasks per second (start, until done, result) from several client
   threads - ladon-tasks with ``_wait_result``, and both with polling ``_progress`` as Ladon's
   clients must;
4. the server's RSS after 10k, 20k and 30k finished tasks, and the end-to-end rate at
   the first and last of those: Ladon keeps every task forever in global lists it scans
   (not on the Redis store, whose records live in Redis).

A fault is counted, by kind, in its server's column (Ladon's ``_progress`` fails now
and then while its task thread has not set the start time yet); a phase that fails
outright (a crashed server) is reported and the run goes on, so every figure measured
is written. Limits: client and server share the machine's cores, so absolute rates
depend on the client too; the ratios are what travel between machines, and the run says
how much CPU others took (:mod:`bench.noise`). ``--quick`` is a smoke run, too short
for figures worth comparing.

    python -m bench.bench_core [--quick] [--clients 8] [--only PHASE...] [--output bench/output/core.json]
"""

from __future__ import annotations

import functools
import itertools
import json
import math
import statistics
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

from bench import ladon_server
from bench.benchlib import (
    REQUEST_TIMEOUT, SERVICES_DIR, TASK_DEADLINE, Faults, arguments, attempt, environment, in_threads, text_table,
    wait_result, wanted,
)
from bench.noise import TICKS, CpuAccount, CpuShare
from tests.support.jsonwsp import JsonWsp, WireFault
from tests.support.redis_server import RedisServer, start_redis
from tests.support.servers import RunningServer

SERVICE = "BenchService"
SERVICE_MODULE = "bench_service"
KINDS = ("ours", "redis", "ladon")
LABELS = {"ours": "ladon-tasks", "redis": "ladon-tasks, Redis", "ladon": "Ladon 1.0.7"}
#: The servers of ladon-tasks: they follow tasks with ``_wait_result``, and the targets judge them.
OURS = ("ours", "redis")
NAN = float("nan")


@dataclass(frozen=True)
class Plan:
    """How much of each measurement to do; ``--quick`` shrinks every count."""

    latency_rounds: int = 5
    latency_calls: int = 400
    #: ``_progress`` against plain calls: quads of slots (:data:`QUAD`), each this long.
    rps_quads: int = 96
    rps_slot_seconds: float = 0.1
    e2e_tasks: int = 3000
    checkpoints: tuple[int, ...] = (10_000, 20_000, 30_000)
    rate_window: int = 2000
    clients: int = 8
    warmup_calls: int = 200
    #: Too few calls for the figures to mean much: targets are not judged.
    quick: bool = False


QUICK_PLAN = Plan(
    latency_rounds=2, latency_calls=100, rps_quads=10, rps_slot_seconds=0.1, e2e_tasks=400,
    checkpoints=(1000, 2000, 3000), rate_window=300, warmup_calls=50, quick=True,
)


@dataclass
class Figures:
    """Everything measured on one server, with the faults it answered and the phases
    that failed outright."""

    plain_ms: float = NAN
    start_ms: float = NAN
    plain_rps: float = NAN
    progress_rps: float = NAN
    #: ``_progress`` calls over plain calls, one per quad of slots (:data:`QUAD`).
    progress_ratios: list[float] = field(default_factory=list)
    #: Server CPU per call (the server process's user + system time over its calls).
    plain_cpu_us: float = NAN
    progress_cpu_us: float = NAN
    e2e_wait_per_s: float | None = None
    e2e_poll_per_s: float = NAN
    rss_mib: dict[int, float] = field(default_factory=dict)
    rate_at: dict[int, float] = field(default_factory=dict)
    rss_baseline_mib: float = NAN
    faults: Faults = field(default_factory=Faults)
    failed_phases: dict[str, str] = field(default_factory=dict)
    cpu: CpuShare = field(default_factory=CpuShare)

    @property
    def start_over_plain(self) -> float:
        return self.start_ms / self.plain_ms

    @property
    def progress_over_plain(self) -> float:
        """The median of the quads' ratios: a burst of other work on the machine falls on
        a few quads, not on the figure."""
        if self.progress_ratios:
            return statistics.median(self.progress_ratios)
        return self.progress_rps / self.plain_rps

    @property
    def progress_cpu_over_plain(self) -> float:
        return self.progress_cpu_us / self.plain_cpu_us

    @property
    def e2e_best_per_s(self) -> float:
        """The rate a client of this server gets: ``_wait`` where there is one."""
        return self.e2e_wait_per_s or self.e2e_poll_per_s

    def to_json(self) -> dict[str, Any]:
        return {"plain_ms": self.plain_ms, "start_ms": self.start_ms, "plain_rps": self.plain_rps,
                "progress_rps": self.progress_rps, "progress_ratios": self.progress_ratios,
                "plain_cpu_us": self.plain_cpu_us, "progress_cpu_us": self.progress_cpu_us,
                "e2e_wait_per_s": self.e2e_wait_per_s,
                "e2e_poll_per_s": self.e2e_poll_per_s, "rss_mib": self.rss_mib, "rate_at": self.rate_at,
                "rss_baseline_mib": self.rss_baseline_mib, "faults": self.faults.to_json(),
                "failed_phases": self.failed_phases, "cpu": self.cpu.to_json()}


@dataclass
class Server:
    """One bench server (:mod:`bench.ladon_server`), known by pid so only it is ever stopped."""

    kind: str
    running: RunningServer
    figures: Figures
    tasks_started: int = 0
    redis: RedisServer | None = None

    @classmethod
    def start(cls, kind: str, log_dir: Path) -> "Server":
        redis = start_redis(log_dir / "core-redis") if kind == "redis" else None
        try:
            running = ladon_server.start(SERVICES_DIR, [SERVICE_MODULE], log_dir / f"core-server-{kind}.log",
                                         ladon_tasks=kind in OURS, redis_url=redis.url if redis else "")
        except BaseException:
            if redis is not None:
                redis.stop()
            raise
        return cls(kind, running, Figures(), redis=redis)

    def stop(self) -> None:
        self.running.stop()
        if self.redis is not None:
            self.redis.stop()

    def client(self) -> JsonWsp:
        return JsonWsp(self.running, SERVICE)

    def died(self) -> list[str]:
        """The server process, if it has exited."""
        code = self.running.process.poll()
        return [] if code is None else [f"server exited with {code}"]

    def cpu_seconds(self) -> float:
        """User + system CPU the server process has used so far."""
        with open(f"/proc/{self.running.process.pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICKS

    def rss_mib(self) -> float:
        with open(f"/proc/{self.running.process.pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024.0
        raise RuntimeError("no VmRSS line")


# -- the client side ----------------------------------------------------------------


def _is_done(progress: dict[str, Any]) -> bool:
    """ladon-tasks says ``finished``; Ladon's only sign is progress 1.0, set at the end."""
    return bool(progress.get("finished", progress["progress"] >= 1.0))


def wait_by_polling(client: JsonWsp, task_id: str, faults: Faults) -> Any:
    """How a Ladon client learns a task is done: ask ``_progress`` until it says so.

    Ladon writes a task's first progress from the task's own thread, so a poll that
    arrives before that thread has run gets "does not seem to exist", or fails on the
    start time it has not set yet: such faults are counted, and the client keeps asking.
    Back-off from 0 to 10 ms, as a sensible client would, so polls don't starve the task.
    """
    deadline = time.monotonic() + TASK_DEADLINE
    pause = 0.0
    while True:
        try:
            if _is_done(client("noop_progress", task_id=task_id)):
                return client("noop_result", task_id=task_id)
        except WireFault as fault:
            faults.count(fault)
        if time.monotonic() > deadline:
            raise TimeoutError(f"task {task_id} not done after {TASK_DEADLINE}s")
        time.sleep(pause)
        pause = min(0.01, max(0.001, pause * 2))


def wait_by_waiting(client: JsonWsp, task_id: str, faults: Faults) -> Any:
    """ladon-tasks' ``_wait_result``: one request that returns the result the moment the
    task has finished (:func:`bench.benchlib.wait_result`)."""
    return wait_result(client, "noop", task_id)


Waiter = Callable[[JsonWsp, str, Faults], Any]


def run_task(client: JsonWsp, value: int, waiter: Waiter, faults: Faults) -> None:
    """One whole task as a client sees it, its result checked so errors can't pass as speed."""
    task_id = client("noop", value=value)["task_id"]
    result = waiter(client, task_id, faults)
    if result != value:
        raise ValueError(f"task {task_id}: result {result!r}, expected {value!r}")


# -- the measurements -----------------------------------------------------------------


def measure_latency(server: Server, plan: Plan) -> None:
    """Sequential calls on one connection, plain and start in alternating rounds, so
    drift in the machine's speed falls on both alike; medians resist the odd stall."""
    client = server.client()
    try:
        for number in range(plan.warmup_calls):
            client("echo", value=number + 1)
            client("noop", value=number + 1)
        server.tasks_started += plan.warmup_calls
        plain: list[float] = []
        start: list[float] = []
        for _ in range(plan.latency_rounds):
            plain += _timed_calls(client, "echo", plan.latency_calls)
            start += _timed_calls(client, "noop", plan.latency_calls)
            server.tasks_started += plan.latency_calls
    finally:
        client.close()
    server.figures.plain_ms = statistics.median(plain) * 1000
    server.figures.start_ms = statistics.median(start) * 1000


def _timed_calls(client: JsonWsp, method: str, count: int) -> list[float]:
    times = []
    for number in range(count):
        began = time.perf_counter()
        client(method, value=number + 1)
        times.append(time.perf_counter() - began)
    return times


#: The order of the two methods over four slots: drift in the machine's speed across a
#: quad (a linear one, whatever its sign) falls on both methods alike.
QUAD = (0, 1, 1, 0)


def measure_progress_rate(server: Server, plan: Plan) -> None:
    """Requests per second from ``clients`` threads, plain and ``_progress`` (of one
    finished task) taking turns in short slots: every thread calls the same method in a
    slot, all switching at the same instants, in the order of :data:`QUAD`. Others' work
    on a shared machine comes and goes within a second, so it falls on both methods of a
    quad alike. A quad's ratio is its plain calls' mean time over its ``_progress``
    calls' (each call timed where it was made, so a call that started in one slot and
    ended in the next counts for its own method); the figure is the median of the
    quads'. The server's CPU per call is read at each slot's edges: what a call costs
    the server, whatever else the machine ran."""
    client = server.client()
    try:
        task_id = client("noop", value=1)["task_id"]
        wait_by_polling(client, task_id, server.figures.faults)
        client("noop_progress", task_id=task_id)  # a finished record is read as clients poll it
    finally:
        client.close()
    server.tasks_started += 1
    calls = (("echo", {"value": 1}), ("noop_progress", {"task_id": task_id}))
    slots, length = plan.rps_quads * len(QUAD), plan.rps_slot_seconds
    order = [QUAD[slot % len(QUAD)] for slot in range(slots)]
    counts = [0] * slots
    spent = [0.0] * slots  # seconds the calls started in each slot took, summed over threads
    count_lock = threading.Lock()
    begin: list[float] = []  # the first slot's start, set by the first thread released
    begun = threading.Event()
    cpu_at: list[float] = []

    def work(client: JsonWsp) -> None:
        with count_lock:
            if not begin:
                begin.append(time.perf_counter() + 0.05)
                begun.set()
        first = begin[0]
        mine, took = [0] * slots, [0.0] * slots
        while (now := time.perf_counter()) < first + slots * length:
            if now < first:
                time.sleep(first - now)
                continue
            slot = int((now - first) / length)
            method, args = calls[order[slot]]
            client(method, **args)
            mine[slot] += 1
            took[slot] += time.perf_counter() - now
        with count_lock:
            for slot in range(slots):
                counts[slot] += mine[slot]
                spent[slot] += took[slot]

    def sample_cpu() -> None:
        begun.wait(REQUEST_TIMEOUT)
        for edge in range(slots + 1):
            pause = begin[0] + edge * length - time.perf_counter()
            if pause > 0:
                time.sleep(pause)
            cpu_at.append(server.cpu_seconds())

    sampler = threading.Thread(target=sample_cpu, daemon=True)
    sampler.start()
    in_threads(server.running, SERVICE, plan.clients, work)
    sampler.join(REQUEST_TIMEOUT)
    totals = [[0, 0.0, 0.0], [0, 0.0, 0.0]]  # per method: calls, seconds, server CPU seconds
    for slot, method in enumerate(order):
        totals[method][0] += counts[slot]
        totals[method][1] += length
        if len(cpu_at) > slot + 1:
            totals[method][2] += cpu_at[slot + 1] - cpu_at[slot]

    def mean_time(quad: int, method: int) -> float:
        mine = [slot for slot in range(quad, quad + len(QUAD)) if order[slot] == method]
        return sum(spent[slot] for slot in mine) / max(1, sum(counts[slot] for slot in mine))

    figures = server.figures
    figures.progress_ratios = [mean_time(quad, 0) / mean_time(quad, 1) for quad in range(0, slots, len(QUAD))
                               if mean_time(quad, 1) > 0]
    (plain_calls, plain_seconds, plain_cpu), (progress_calls, progress_seconds, progress_cpu) = totals
    figures.plain_rps = plain_calls / plain_seconds
    figures.progress_rps = progress_calls / progress_seconds
    figures.plain_cpu_us = plain_cpu / plain_calls * 1e6
    figures.progress_cpu_us = progress_cpu / progress_calls * 1e6


def end_to_end(server: Server, plan: Plan, tasks: int, waiter: Waiter) -> float:
    """``tasks`` whole tasks shared by ``clients`` threads; completed tasks per second.
    Past a twentieth of the tasks failing (and ten more) the phase gives up."""
    numbers = itertools.count(1)  # next() on it is atomic under the GIL
    completed = itertools.count()
    faults = server.figures.faults
    faults.limit = faults.total + 10 + tasks // 20

    def work(client: JsonWsp) -> None:
        while (number := next(numbers)) <= tasks:
            if attempt(faults, functools.partial(run_task, client, number, waiter, faults), died=server.died):
                next(completed)

    try:
        seconds = in_threads(server.running, SERVICE, plan.clients, work)
    finally:
        faults.limit = None
        server.tasks_started += tasks
    return next(completed) / seconds


def measure_end_to_end(server: Server, plan: Plan) -> None:
    if server.kind in OURS:
        server.figures.e2e_wait_per_s = end_to_end(server, plan, plan.e2e_tasks, wait_by_waiting)
    server.figures.e2e_poll_per_s = end_to_end(server, plan, plan.e2e_tasks, wait_by_polling)


Phase = Callable[[Server, Plan], None]

#: Phases measured on the Redis store too; the growth phases are about the memory of
#: the web process, where the in-process store keeps its records.
BOTH_STORES = ("start-call latency", "_progress rate", "end-to-end rate")


def grow_to(checkpoint: int) -> Phase:
    """The step for one checkpoint: finish tasks up to it, read RSS, and at the first and
    last checkpoints time a window of tasks. Tasks of earlier phases count: each one
    finished. One step per checkpoint, so both servers grow in alternation and drift in
    the machine's speed does not fall on one of them only."""

    def step(server: Server, plan: Plan) -> None:
        figures = server.figures
        waiter = wait_by_waiting if server.kind in OURS else wait_by_polling
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
    #: The same figure on the Redis store; NaN where it is not measured there.
    redis: float = NAN

    @property
    def ratio(self) -> float:
        return self.ours / self.ladon if self.ladon else NAN


def build_rows(ours: Figures, ladon: Figures, plan: Plan, redis: Figures | None = None) -> list[Row]:
    """The table; a figure a failed or skipped phase did not measure is NaN, and its
    target is judged on the figures there are (not at all without any)."""
    redis = redis if redis is not None else Figures()
    first, last = plan.checkpoints[0], plan.checkpoints[-1]

    def judged(met: Callable[[float], bool], *figures: float) -> bool | None:
        measured = [figure for figure in figures if not math.isnan(figure)]
        return None if plan.quick or not measured else all(met(figure) for figure in measured)

    def growth(figures: Figures) -> float:
        return (figures.rss_mib.get(last, NAN) - figures.rss_mib.get(first, NAN)) * 10_000 / (last - first)

    def keep(figures: Figures) -> float:
        return figures.rate_at.get(last, NAN) / figures.rate_at.get(first, NAN)

    ours_e2e, redis_e2e, ladon_e2e = ours.e2e_best_per_s, redis.e2e_best_per_s, ladon.e2e_poll_per_s
    rows = [
        Row("plain call latency, median", ours.plain_ms, ladon.plain_ms, "ms", redis=redis.plain_ms),
        Row("start call latency, median", ours.start_ms, ladon.start_ms, "ms", redis=redis.start_ms),
        Row("start / plain latency", ours.start_over_plain, ladon.start_over_plain, "x",
            "ours <= 1.2x", judged(lambda ratio: ratio <= 1.2, ours.start_over_plain, redis.start_over_plain),
            redis=redis.start_over_plain),
        Row(f"plain calls/s, {plan.clients} threads", ours.plain_rps, ladon.plain_rps, "/s", redis=redis.plain_rps),
        Row(f"_progress calls/s, {plan.clients} threads", ours.progress_rps, ladon.progress_rps, "/s",
            redis=redis.progress_rps),
        Row("_progress / plain calls/s (median of quads)", ours.progress_over_plain, ladon.progress_over_plain, "x",
            "ours >= 0.95x", judged(lambda ratio: ratio >= 0.95, ours.progress_over_plain, redis.progress_over_plain),
            redis=redis.progress_over_plain),
        Row("server CPU per plain call", ours.plain_cpu_us, ladon.plain_cpu_us, "us", redis=redis.plain_cpu_us),
        Row("server CPU per _progress call", ours.progress_cpu_us, ladon.progress_cpu_us, "us",
            redis=redis.progress_cpu_us),
        Row("_progress / plain server CPU per call", ours.progress_cpu_over_plain, ladon.progress_cpu_over_plain, "x",
            redis=redis.progress_cpu_over_plain),
        Row("end-to-end tasks/s (ours _wait_result, Ladon polls)", ours_e2e, ladon_e2e, "/s",
            "ours/Ladon >= 1.5", judged(lambda rate: rate >= 1.5 * ladon_e2e, ours_e2e)
            if not math.isnan(ladon_e2e) else None, redis=redis_e2e),
        Row("end-to-end tasks/s (both poll _progress)", ours.e2e_poll_per_s, ladon.e2e_poll_per_s, "/s",
            redis=redis.e2e_poll_per_s),
        Row("RSS before the growth phase", ours.rss_baseline_mib, ladon.rss_baseline_mib, "MiB"),
    ]
    rows += [
        Row(f"RSS after {checkpoint:,} finished tasks", ours.rss_mib.get(checkpoint, NAN),
            ladon.rss_mib.get(checkpoint, NAN), "MiB")
        for checkpoint in plan.checkpoints
    ]
    rows.append(Row(f"RSS growth per 10k tasks ({first:,} -> {last:,})", growth(ours), growth(ladon), "MiB",
                    "ours flat (< 1 MiB)", judged(lambda mib: mib < 1.0, growth(ours))))
    rows += [
        Row(f"end-to-end tasks/s at {checkpoint:,} finished", ours.rate_at.get(checkpoint, NAN),
            ladon.rate_at.get(checkpoint, NAN), "/s")
        for checkpoint in (first, last)
    ]
    rows.append(Row(f"rate at {last:,} / rate at {first:,}", keep(ours), keep(ladon), "x",
                    "ours >= 0.9x", judged(lambda ratio: ratio >= 0.9, keep(ours))))
    rows.append(Row("faults answered (counted, not fatal)", ours.faults.total, ladon.faults.total, "faults",
                    redis=redis.faults.total))
    return rows


def format_table(rows: list[Row]) -> str:
    lines = [("measure", LABELS["ours"], LABELS["redis"], LABELS["ladon"], "ours/Ladon", "target")]

    def cell(value: float, row: Row) -> str:
        digits = 0 if row.unit == "faults" else 2
        return "-" if math.isnan(value) else f"{value:,.{digits}f} {row.unit}".strip()

    for row in rows:
        verdict = "" if row.met is None else (" ok" if row.met else " MISSED")
        lines.append((row.name, cell(row.ours, row), cell(row.redis, row), cell(row.ladon, row),
                      f"{row.ratio:.2f}", (row.target + verdict).strip()))
    return text_table(lines)


def format_problems(figures: dict[str, Figures]) -> str:
    """Faults by kind and failed phases, per server; empty when there were none."""
    lines = []
    for kind in KINDS:
        for phase, error in figures[kind].failed_phases.items():
            lines.append(f"{LABELS[kind]}: {phase} failed: {error}")
        if figures[kind].faults.total:
            lines.append(f"{LABELS[kind]} faults: " + ", ".join(figures[kind].faults.summary()))
    return "\n".join(lines)


# -- main -----------------------------------------------------------------------------


def run(plan: Plan, output: Path, only: list[str] | None = None) -> int:
    output.parent.mkdir(parents=True, exist_ok=True)
    began = time.perf_counter()
    account = CpuAccount()
    servers: dict[str, Server] = {}
    failed_starts: dict[str, str] = {}
    try:
        for kind in KINDS:
            try:
                servers[kind] = Server.start(kind, output.parent)
            except Exception as error:  # noqa: BLE001 - a missing redis-server: reported, the rest measured
                failed_starts[kind] = f"{type(error).__name__}: {str(error)[:300]}"
                print(f"  {LABELS[kind]} could not start: {failed_starts[kind]}", file=sys.stderr, flush=True)
        for title, phase in phases(plan):
            if not wanted(title, only):
                continue
            for kind, server in servers.items():  # phase by phase, so all see the machine in the same mood
                if kind == "redis" and title not in BOTH_STORES:
                    continue
                step = time.perf_counter()
                note = ""
                try:
                    with account.window() as share:
                        phase(server, plan)
                except Exception as error:  # noqa: BLE001 - reported, and the run goes on
                    alive = server.running.process.poll() is None
                    server.figures.failed_phases[title] = f"{type(error).__name__}: {str(error)[:300]}" + (
                        "" if alive else f" (server exited with {server.running.process.returncode})")
                    note = "  FAILED: " + server.figures.failed_phases[title]
                server.figures.cpu = server.figures.cpu + share
                print(f"  {title:<24} {LABELS[kind]:<20} {time.perf_counter() - step:6.1f} s{note}",
                      file=sys.stderr, flush=True)
    finally:
        for server in servers.values():
            server.stop()
    elapsed = time.perf_counter() - began
    figures = {kind: servers[kind].figures if kind in servers else Figures() for kind in KINDS}
    for kind, error in failed_starts.items():
        figures[kind].failed_phases["start"] = error
    rows = build_rows(figures["ours"], figures["ladon"], plan, figures["redis"])
    print(format_table(rows))
    problems = format_problems(figures)
    if problems:
        print("\n" + problems)
    print(f"\n{plan.clients} client threads; took {elapsed:.0f} s")
    print(account.total.describe())
    if plan.quick:
        print("quick run: too short for the figures to be judged against the targets")
    report = {
        "environment": environment(),
        "plan": asdict(plan),
        "seconds": round(elapsed, 1),
        "cpu": account.total.to_json(),
        "figures": {kind: figures[kind].to_json() for kind in KINDS},
        "rows": [
            {"measure": row.name, "ours": row.ours, "redis": row.redis, "ladon": row.ladon, "ratio": row.ratio,
             "unit": row.unit, "target": row.target, "met": row.met}
            for row in rows
        ],
    }
    output.write_text(json.dumps(report, indent=2) + "\n")
    print(f"figures written to {output}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = arguments(__doc__, "core", "small counts, under a minute")
    parser.add_argument("--clients", type=int, default=None, help="client threads (default 8)")
    parser.add_argument("--only", nargs="+", metavar="PHASE",
                        help="only the phases whose title holds one of these words (latency, _progress, end-to-end, "
                        "growth); the rest are not measured")
    args = parser.parse_args(argv)
    plan = QUICK_PLAN if args.quick else Plan()
    if args.clients is not None:
        if args.clients < 1:
            parser.error("--clients must be at least 1")
        plan = Plan(**{**asdict(plan), "clients": args.clients})
    return run(plan, args.output, args.only)


if __name__ == "__main__":
    sys.exit(main())
