"""Queue bench: ladon-tasks workers against RQ 3.0, Celery 5.7, huey 3.5 and dramatiq 2.2,
in one run.

Every system pushes the same no-op task end to end through Redis, each on its own fresh
``redis-server`` (loopback, free port, no persistence) so that memory and command counts
belong to that system alone:

* **ladon-tasks, web**: ``ladon-tasks serve --redis URL`` and one ``ladon-tasks worker
  --concurrency N`` (N = 1 and 2); a client starts ``noop`` over JSON-WSP, then calls
  ``noop_wait`` and ``noop_result`` - the path a real client takes;
* **ladon-tasks, Python API**: the same worker, submitted from this process with
  ``TaskRuntime.start`` (queue executor) and ``RedisStore.wait``, so the queue's own cost
  shows without HTTP;
* **RQ**: one ``rq worker``, the default ``Worker`` (a fork per job) and ``SimpleWorker``;
  ``Queue.enqueue`` then ``Job.latest_result(timeout=...)``, RQ's blocking wait;
* **Celery**: one ``celery worker`` with the Redis broker and result backend, ``prefork``
  and ``threads`` pools; ``delay`` then ``AsyncResult.get``. Gossip, mingle and worker
  heartbeats are off, as they usually are in production: that flatters Celery's command
  count, not ours;
* **huey**: one ``huey_consumer`` with 2 worker threads, ``notify_result`` on (a blocking
  ``Result.get`` waits on ``BLPOP``, not on polling); calling the task, then ``get``;
* **dramatiq**: one ``dramatiq`` worker process with 2 threads, Redis broker and result
  backend; ``enqueue``, then a blocking ``get_result``.

Per system: round-trip latency (submit one, wait for its result, repeat: p50, p99),
end-to-end tasks per second from several producer threads (each submits one task, waits
for it, repeats; a fixed number of tasks), Redis commands per task over that phase
(``INFO commandstats``, commands run inside Lua scripts included), Redis memory per
finished task kept (``MEMORY STATS`` ``dataset.bytes`` - ``used_memory`` without client
buffers and other overhead - delta over that phase / tasks) and, from a short
``MONITOR`` sample of sequential tasks, the commands a client sends per task (round
trips; script-internal commands apart). For the web path also ``noop_progress`` of a
finished task against the plain ``echo`` on the same server. Then one task's whole
lifecycle on the ladon-tasks path, command by command, attributed to the step it serves.

A system that faults or crashes is counted and reported in its row, and the run goes on
with the next. Limits: bench, servers, workers and Redis share the machine's cores; the
ratios within one run are what travel, and the run says how much CPU others took
(:mod:`bench.noise`). ``--quick`` is a smoke run whose figures are not judged.

    python -m bench.bench_queue [--quick] [--producers 8] [--output bench/output/queue.json]
"""

from __future__ import annotations

import functools
import itertools
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Callable

from bench import peers
from bench.benchlib import (
    BENCH_COMMANDS, SERVICES_DIR, TASK_DEADLINE, Faults, arguments, attempt, call_rate, environment, ratio,
    run_together, text_table, wanted,
)
from bench.monitor import Command, Monitor, format_lifecycle, lifecycle
from bench.noise import CpuAccount, CpuShare, CpuSplit
from tests.support.jsonwsp import JsonWsp
from tests.support.processes import stop_process_group
from tests.support.redis_server import RedisServer, start_redis
from tests.support.servers import RunningServer, start_server
from tests.support.workers import Workers

SERVICE = "QueueBenchService"

#: The parts a task's CPU is split into, in the order they are printed.
CPU_PARTS = ("producer", "web", "workers", "redis")
SERVICE_FILE = SERVICES_DIR / "queue_service.py"

@dataclass(frozen=True)
class Plan:
    """How much of each measurement to do; ``--quick`` shrinks every count."""

    warmup: int = 50
    latency_tasks: int = 500
    e2e_tasks: int = 3000
    #: RQ's default worker forks per job (tens of tasks a second): smaller counts.
    slow_latency_tasks: int = 100
    slow_e2e_tasks: int = 400
    monitor_tasks: int = 20
    producers: int = 8
    progress_seconds: float = 2.0
    progress_rounds: int = 2
    quick: bool = False


QUICK_PLAN = Plan(
    warmup=10, latency_tasks=60, e2e_tasks=300, slow_latency_tasks=15, slow_e2e_tasks=40,
    monitor_tasks=5, progress_seconds=0.5, progress_rounds=1, quick=True,
)


# -- the systems --------------------------------------------------------------------------


class System:
    """One queue system on its own Redis: started, measured through ``round_trip``, stopped.

    ``round_trip`` submits one task and returns once its result is back; ``handle`` gives
    each producer thread what it needs (a connection, a client), so threads share nothing
    they would contend on in the bench itself."""

    label = "system"
    slow = False

    def __init__(self, redis_server: RedisServer, log_dir: Path) -> None:
        self.redis = redis_server
        self.log_dir = log_dir
        self.processes: list[subprocess.Popen] = []
        self.servers: list[RunningServer] = []
        self.workers: list[Workers] = []

    def start(self) -> None:
        raise NotImplementedError

    def start_worker(self, concurrency: int, *extra: str) -> None:
        """One ``ladon-tasks worker`` of the bench service; returns once it serves."""
        workers = Workers(self.redis.url, self.log_dir, [str(SERVICE_FILE)],
                          options=("--log-level", "WARNING", "--concurrency", str(concurrency), *extra))
        self.workers.append(workers)
        workers.start()

    def handle(self) -> Any:
        return None

    def close_handle(self, handle: Any) -> None:
        pass

    def round_trip(self, handle: Any, value: int) -> None:
        raise NotImplementedError

    def crashed(self) -> list[str]:
        """The processes of this system that have exited, with their exit codes."""
        processes = [*self.processes, *(s.process for s in self.servers),
                     *(p for w in self.workers for p in w.processes)]
        return [f"pid {p.pid} exited with {p.returncode}" for p in processes if p.poll() is not None]

    def cpu_groups(self) -> dict[str, list[int]]:
        """The processes of each part of this system, for :class:`CpuSplit`."""
        redis_process = self.redis.process
        return {
            "web": [server.process.pid for server in self.servers],
            "workers": [p.pid for w in self.workers for p in w.processes] + [p.pid for p in self.processes],
            "redis": [redis_process.pid] if redis_process is not None else [],
        }

    def stop(self) -> None:
        for server in self.servers:
            server.stop()
        for workers in self.workers:
            workers.stop_all()
        for process in reversed(self.processes):
            stop_process_group(process)


def _check(value: int, got: Any, what: str) -> None:
    if got != value:
        raise RuntimeError(f"{what}: result {got!r}, expected {value!r}")


def _slots(concurrency: int) -> str:
    return f"{concurrency} slot{'s' if concurrency > 1 else ''}"


class OursWeb(System):
    """``ladon-tasks serve --redis`` + ``ladon-tasks worker``; JSON-WSP start, wait, result."""

    def __init__(self, redis_server: RedisServer, log_dir: Path, concurrency: int) -> None:
        super().__init__(redis_server, log_dir)
        self.concurrency = concurrency
        self.label = f"ladon-tasks web, {_slots(concurrency)}"
        self.server: RunningServer | None = None

    def start(self) -> None:
        self.start_worker(self.concurrency)
        self.server = start_server([str(SERVICE_FILE)], self.log_dir, "--redis", self.redis.url, "--no-dashboard",
                                   "--log-level", "WARNING")
        self.servers.append(self.server)

    def handle(self) -> JsonWsp:
        assert self.server is not None
        return JsonWsp(self.server, SERVICE)

    def close_handle(self, handle: JsonWsp) -> None:
        handle.close()

    def round_trip(self, handle: JsonWsp, value: int) -> None:
        task_id = handle("noop", value=value)["task_id"]
        deadline = time.monotonic() + TASK_DEADLINE
        while not handle("noop_wait", task_id=task_id, seconds=10.0)["finished"]:
            if time.monotonic() > deadline:
                raise TimeoutError(f"task {task_id} not done after {TASK_DEADLINE}s")
        _check(value, handle("noop_result", task_id=task_id), task_id)


class OursApi(System):
    """The same worker, fed from this process: ``TaskRuntime.start`` + ``RedisStore.wait``."""

    def __init__(self, redis_server: RedisServer, log_dir: Path, concurrency: int, threads: bool = False) -> None:
        super().__init__(redis_server, log_dir)
        self.concurrency = concurrency
        self.threads = threads
        self.label = f"ladon-tasks API, {_slots(concurrency)}" + (", --threads" if threads else "")
        self.runtime: Any = None
        self.spec: Any = None
        self.decode: Any = None

    def start(self) -> None:
        from ladon_tasks import codec
        from ladon_tasks.redis import RedisStore
        from ladon_tasks.runtime import TaskRuntime

        if str(SERVICES_DIR) not in sys.path:
            sys.path.insert(0, str(SERVICES_DIR))
        import queue_service  # the module name the worker resolves the job's reference to

        self.spec = queue_service.QueueBenchService.__dict__["noop"].spec
        self.start_worker(self.concurrency, *(["--threads"] if self.threads else []))
        self.runtime = TaskRuntime(RedisStore(self.redis.url))
        self.decode = codec.decode

    def round_trip(self, handle: Any, value: int) -> None:
        record = self.runtime.start(self.spec, (value,), {})
        done = self.runtime.store.wait(record.task_id, TASK_DEADLINE)
        if done is None or not done.finished:
            raise TimeoutError(f"task {record.task_id} not done after {TASK_DEADLINE}s")
        _check(value, self.decode(self.spec.rtype, done.result), record.task_id)

    def stop(self) -> None:
        if self.runtime is not None:
            self.runtime.shutdown(wait=False)
        super().stop()


class PeerSystem(System):
    """A peer's own worker (:mod:`bench.peers`); its producer submits, then waits."""

    def __init__(self, redis_server: RedisServer, log_dir: Path, peer: peers.Peer) -> None:
        super().__init__(redis_server, log_dir)
        self.peer = peer
        self.label = peer.label
        self.slow = peer.slow

    def start(self) -> None:
        slug = "".join(c if c.isalnum() else "-" for c in self.label.lower())
        self.processes.append(self.peer.start_worker(self.redis.url, self.log_dir / f"{slug}.log"))

    def handle(self) -> Any:
        return self.peer.producer(self.redis.url)

    def close_handle(self, handle: Any) -> None:
        handle.close()

    def round_trip(self, handle: Any, value: int) -> None:
        job_id = handle.start(value)
        _check(value, handle.result(job_id, TASK_DEADLINE), job_id)


# -- the measurements -----------------------------------------------------------------------


@dataclass
class Figures:
    """Everything measured on one system."""

    label: str
    kind: str
    latency_p50_ms: float = 0.0
    latency_p99_ms: float = 0.0
    latency_tasks: int = 0
    tasks_per_s: float = 0.0
    e2e_tasks: int = 0
    commands_per_task: float = 0.0
    commands: dict[str, int] = field(default_factory=dict)
    bytes_per_task: float = 0.0
    round_trips_per_task: float = 0.0
    script_commands_per_task: float = 0.0
    sent_per_task: dict[str, float] = field(default_factory=dict)
    progress_rps: float | None = None
    plain_rps: float | None = None
    lifecycle: list[dict[str, Any]] | None = None
    #: Failed round trips by kind; the phase in which the system gave up or crashed.
    faults: Faults = field(default_factory=Faults)
    error: str | None = None
    cpu: CpuShare = field(default_factory=CpuShare)
    #: CPU per task over the tasks/s phase by part (producer, web, workers, redis), in µs.
    cpu_per_task_us: dict[str, float] = field(default_factory=dict)

    @property
    def progress_over_plain(self) -> float | None:
        return self.progress_rps / self.plain_rps if self.progress_rps and self.plain_rps else None

    @property
    def complete(self) -> bool:
        """Measured to the end: its figures can stand beside the others'."""
        return self.error is None and self.tasks_per_s > 0

    def to_json(self) -> dict[str, Any]:
        plain = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in ("faults", "cpu")}
        return {**plain, "progress_over_plain": self.progress_over_plain, "faults": self.faults.to_json(),
                "cpu": self.cpu.to_json()}


def _fault_limit(tasks: int) -> int:
    """Failed round trips a phase of ``tasks`` tolerates before giving up (a dead worker
    makes each wait run out: without a bound one phase would take hours)."""
    return 10 + tasks // 20


def latency(system: System, count: int, faults: Faults) -> list[float]:
    """Sequential round trips from one producer; seconds each (the successful ones)."""
    handle = system.handle()
    try:
        times = []
        for value in range(1, count + 1):
            began = time.perf_counter()
            if attempt(faults, functools.partial(system.round_trip, handle, value), died=system.crashed):
                times.append(time.perf_counter() - began)
        return times
    finally:
        system.close_handle(handle)


def throughput(system: System, tasks: int, handles: list[Any], faults: Faults) -> float:
    """``tasks`` round trips shared by one thread per handle, started together; completed
    tasks per second.

    The handles are opened (and used once) by the caller before its counters start, so
    connection set-up and subscriptions are neither in the rate nor in the counts."""
    numbers = itertools.count(1)  # next() on it is atomic under the GIL
    completed = itertools.count()

    def work(handle: Any) -> None:
        while (number := next(numbers)) <= tasks:
            if attempt(faults, functools.partial(system.round_trip, handle, number), died=system.crashed):
                next(completed)

    # generous, but a bound: about 1 task/s at worst
    seconds = run_together(handles, work, TASK_DEADLINE + tasks)
    return next(completed) / seconds


def progress_vs_plain(system: OursWeb, plan: Plan, figures: Figures) -> None:
    """``noop_progress`` of a finished task (a Redis read) against ``echo`` on the same
    server, from ``producers`` threads, in alternating rounds."""
    assert system.server is not None
    client = system.handle()
    try:
        task_id = client("noop", value=1)["task_id"]
        client("noop_wait", task_id=task_id, seconds=10.0)
    finally:
        client.close()
    totals = {"echo": [0, 0.0], "noop_progress": [0, 0.0]}
    for _ in range(plan.progress_rounds):
        for method, args in (("echo", {"value": 1}), ("noop_progress", {"task_id": task_id})):
            calls, seconds = call_rate(system.server, SERVICE, plan.producers, plan.progress_seconds, method, args)
            totals[method][0] += calls
            totals[method][1] += seconds
    figures.plain_rps = totals["echo"][0] / totals["echo"][1]
    figures.progress_rps = totals["noop_progress"][0] / totals["noop_progress"][1]


def sample_commands(system: System, count: int, figures: Figures) -> list[Command]:
    """Sequential tasks under MONITOR: commands clients send per task, and script-internal
    ones apart. Started after a pause so the phase before has settled."""
    time.sleep(0.3)
    handle = system.handle()
    try:
        system.round_trip(handle, 1)  # connections and subscriptions exist before the sample
        with Monitor(system.redis) as monitor:
            for value in range(1, count + 1):
                system.round_trip(handle, value)
            time.sleep(0.2)  # deferred work (batched acknowledgements) falls in the sample
    finally:
        system.close_handle(handle)
    sent = [c for c in monitor.commands if c.client != "lua"]
    inner = [c for c in monitor.commands if c.client == "lua"]
    figures.round_trips_per_task = len(sent) / count
    figures.script_commands_per_task = len(inner) / count
    by_name: dict[str, int] = {}
    for command in sent:
        by_name[command.name] = by_name.get(command.name, 0) + 1
    figures.sent_per_task = {name: n / count for name, n in sorted(by_name.items(), key=lambda kv: -kv[1])}
    return monitor.commands


def measure(system: System, plan: Plan, account: CpuAccount) -> Figures:
    """Every figure of one system. A fault is counted in the row; an error that ends a
    phase (a crash, too many faults) is the row's ``error``, with what was measured before."""
    figures = Figures(system.label, type(system).__name__)
    phase = "start"
    try:
        system.start()
        phase = "warm-up"
        handle = system.handle()
        try:
            for value in range(1, plan.warmup + 1):
                system.round_trip(handle, value)
        finally:
            system.close_handle(handle)
        with account.window() as figures.cpu:
            phase = "latency"
            lat_n = plan.slow_latency_tasks if system.slow else plan.latency_tasks
            figures.faults.limit = _fault_limit(lat_n)
            times = sorted(latency(system, lat_n, figures.faults))
            figures.latency_tasks = len(times)
            figures.latency_p50_ms = statistics.median(times) * 1000
            figures.latency_p99_ms = times[min(len(times) - 1, int(round(0.99 * (len(times) - 1))))] * 1000
            time.sleep(0.3)  # background work of the latency phase settles before counting
            phase = "tasks/s"
            e2e_n = plan.slow_e2e_tasks if system.slow else plan.e2e_tasks
            figures.faults.limit = figures.faults.total + _fault_limit(e2e_n)
            handles = [system.handle() for _ in range(plan.producers)]
            try:
                for handle in handles:  # connections and subscriptions exist before counting
                    system.round_trip(handle, 1)
                time.sleep(0.2)
                memory_before = system.redis.reset_stats()
                split = CpuSplit(system.cpu_groups())
                with split.window():
                    figures.tasks_per_s = throughput(system, e2e_n, handles, figures.faults)
                figures.cpu_per_task_us = {part: seconds * 1e6 / e2e_n for part, seconds in split.seconds.items()}
                figures.e2e_tasks = e2e_n
                figures.commands = system.redis.commands(BENCH_COMMANDS)
                figures.commands_per_task = sum(figures.commands.values()) / e2e_n
                time.sleep(0.2)
                figures.bytes_per_task = (system.redis.dataset_bytes() - memory_before) / e2e_n
            finally:
                for handle in handles:
                    system.close_handle(handle)
        phase = "MONITOR sample"
        commands = sample_commands(system, plan.monitor_tasks, figures)
        if isinstance(system, OursWeb):
            phase = "_progress rate"
            progress_vs_plain(system, plan, figures)
        if isinstance(system, (OursWeb, OursApi)) and system.concurrency == 1:
            figures.lifecycle = lifecycle(commands)
    except Exception as error:  # noqa: BLE001 - the row reports it, the run goes on
        crashed = system.crashed()
        figures.error = f"{phase}: {type(error).__name__}: {str(error)[:300]}" + (
            f" ({'; '.join(crashed)})" if crashed else "")
    return figures


# -- the report -----------------------------------------------------------------------------


def system_factories(log_dir: Path) -> list[Callable[[RedisServer], System]]:
    """Every system of the run, ours first; each gets its own redis-server."""
    return [
        lambda r: OursWeb(r, log_dir, 1),
        lambda r: OursWeb(r, log_dir, 2),
        lambda r: OursApi(r, log_dir, 1),
        lambda r: OursApi(r, log_dir, 2),
        lambda r: OursApi(r, log_dir, 2, threads=True),
        lambda r: PeerSystem(r, log_dir, peers.rq("Worker")),
        lambda r: PeerSystem(r, log_dir, peers.rq("SimpleWorker")),
        lambda r: PeerSystem(r, log_dir, peers.celery("prefork")),
        lambda r: PeerSystem(r, log_dir, peers.celery("threads")),
        lambda r: PeerSystem(r, log_dir, peers.huey()),
        lambda r: PeerSystem(r, log_dir, peers.dramatiq()),
    ]


def format_table(results: list[Figures], plan: Plan) -> str:
    complete = [f for f in results if f.complete]
    ours = [f for f in results if f.kind.startswith("Ours")]
    others = [f for f in results if not f.kind.startswith("Ours")]
    rivals = [f for f in others if f.complete]
    best = {
        "tps": max((f.tasks_per_s for f in rivals), default=0.0),
        "p50": min((f.latency_p50_ms for f in rivals), default=0.0),
        "cmd": min((f.commands_per_task for f in rivals), default=0.0),
        "mem": min((f.bytes_per_task for f in rivals), default=0.0),
    }
    rows = [("system", "tasks/s", "vs peer", "p50 ms", "vs peer", "p99 ms", "cmds/task", "vs peer",
             "sent/task", "B/task", "vs peer", "errors", "CPU elsewhere")]
    for f in ours + others:
        rows.append((
            f.label, f"{f.tasks_per_s:,.0f}", ratio(f.tasks_per_s, best["tps"]),
            f"{f.latency_p50_ms:.2f}", ratio(f.latency_p50_ms, best["p50"]), f"{f.latency_p99_ms:.2f}",
            f"{f.commands_per_task:.1f}", ratio(f.commands_per_task, best["cmd"]),
            f"{f.round_trips_per_task:.1f}", f"{f.bytes_per_task:,.0f}", ratio(f.bytes_per_task, best["mem"]),
            f"{f.faults.total:,}" + (" +crash" if f.error else ""),
            f"{100 * (f.cpu.steal_share + f.cpu.others_share):.0f} %" + (" noisy" if f.cpu.noisy else ""),
        ))
    text = [text_table(rows), ""]
    for f in results:
        if f.faults.total or f.error:
            text.append(f"{f.label}: " + "; ".join(f.faults.summary() + ([f"stopped in {f.error}"] if f.error else [])))
    text += [
        "'vs peer': against the best peer (RQ, Celery, huey, dramatiq) on that column - fastest, or fewest.",
        "cmds/task: INFO commandstats over the tasks/s phase, commands inside Lua scripts included;",
        "sent/task: commands clients sent per task (MONITOR, sequential tasks), scripts counted once.",
        "CPU elsewhere: stolen by the hypervisor or used by other processes, share of the machine while measured.",
        "",
        targets(complete, best, plan),
    ]
    return "\n".join(text)


def targets(results: list[Figures], best: dict[str, float], plan: Plan) -> str:
    """The issue's targets next to the best ladon-tasks figure of each kind."""
    web = [f for f in results if f.kind == "OursWeb"]
    ours = [f for f in results if f.kind.startswith("Ours")]
    if not ours:
        return "targets: not judged, no ladon-tasks system measured to the end"
    top = max(ours, key=lambda f: f.tasks_per_s)
    fast = min(ours, key=lambda f: f.latency_p50_ms)
    lean = min(ours, key=lambda f: f.round_trips_per_task)
    counted = min(ours, key=lambda f: f.commands_per_task)
    small = min(ours, key=lambda f: f.bytes_per_task)
    progress = min((f.progress_over_plain or 0.0 for f in web), default=0.0)

    def verdict(met: bool) -> str:
        return "(not judged: quick run)" if plan.quick else ("ok" if met else "MISSED")

    rows = [
        ("end-to-end >= 1.5x fastest peer", f"{ratio(top.tasks_per_s, best['tps'])} ({top.label})",
         verdict(top.tasks_per_s >= 1.5 * best["tps"])),
        ("p50 round trip <= 1.5 ms", f"{fast.latency_p50_ms:.2f} ms ({fast.label})",
         verdict(fast.latency_p50_ms <= 1.5)),
        ("<= 10 Redis commands per task (sent)", f"{lean.round_trips_per_task:.1f} ({lean.label})",
         verdict(lean.round_trips_per_task <= 10)),
        ("<= 10 Redis commands per task (commandstats)", f"{counted.commands_per_task:.1f} ({counted.label}), "
         "script-internal ones included", verdict(counted.commands_per_task <= 10)),
        ("< 1 KB Redis memory per finished task", f"{small.bytes_per_task:,.0f} B ({small.label})",
         verdict(small.bytes_per_task < 1024)),
        ("_progress / plain call >= 0.9x (serve --redis)", f"{progress:.2f}x", verdict(progress >= 0.9)),
    ]
    width = max(len(r[0]) for r in rows)
    return "targets:\n" + "\n".join(f"  {name.ljust(width)}  {value}  {v}" for name, value, v in rows)


# -- main -------------------------------------------------------------------------------------


def run(plan: Plan, output: Path, only: list[str] | None) -> int:
    output.parent.mkdir(parents=True, exist_ok=True)
    log_dir = output.parent / "queue-logs"
    shutil.rmtree(log_dir, ignore_errors=True)
    log_dir.mkdir()
    began = time.perf_counter()
    account = CpuAccount()
    results: list[Figures] = []
    with tempfile.TemporaryDirectory(prefix="bench-queue-redis-") as scratch:
        for number, factory in enumerate(system_factories(log_dir)):
            redis_server = start_redis(Path(scratch) / str(number))
            system = factory(redis_server)
            if not wanted(system.label, only):
                redis_server.stop()
                continue
            step = time.perf_counter()
            try:
                figures = measure(system, plan, account)
            finally:
                system.stop()
                redis_server.stop()
            results.append(figures)
            print(f"  {system.label:<32} {time.perf_counter() - step:6.1f} s"
                  + (f"  FAILED: {figures.error}" if figures.error else ""), file=sys.stderr, flush=True)
    elapsed = time.perf_counter() - began
    print(format_table(results, plan))
    for figures in results:
        if figures.progress_rps:
            print(f"\n_progress vs plain, {figures.label}: {figures.progress_rps:,.0f} vs {figures.plain_rps:,.0f} "
                  f"calls/s = {figures.progress_over_plain:.2f}x ({plan.producers} threads)")
    for figures in results:
        if figures.sent_per_task:
            print(f"\ncommands sent per task, {figures.label}: "
                  + ", ".join(f"{name.upper()} {n:.2f}" for name, n in figures.sent_per_task.items())
                  + f"; inside scripts {figures.script_commands_per_task:.1f}")
    print("\nCPU per task over the tasks/s phase, by process (µs; /proc utime + stime):")
    for figures in results:
        if figures.cpu_per_task_us:
            parts = figures.cpu_per_task_us
            print(f"  {figures.label:<36} "
                  + ", ".join(f"{part} {parts[part]:,.0f}" for part in CPU_PARTS if part in parts)
                  + f"; all {sum(parts.values()):,.0f}")
    for figures in results:
        if figures.lifecycle:
            print("\n" + format_lifecycle(figures.label, figures.lifecycle))
    print(f"\n{plan.producers} producer threads; took {elapsed:.0f} s")
    print(account.total.describe())
    if plan.quick:
        print("quick run: too short for the figures to be judged against the targets")
    report = {
        "environment": {**environment("rq", "celery", "huey", "dramatiq"), "redis-server": _redis_version()},
        "plan": asdict(plan),
        "seconds": round(elapsed, 1),
        "cpu": account.total.to_json(),
        "systems": [figures.to_json() for figures in results],
    }
    output.write_text(json.dumps(report, indent=2) + "\n")
    print(f"figures written to {output}")
    return 0


def _redis_version() -> str:
    server = subprocess.run(["redis-server", "--version"], capture_output=True, text=True, timeout=10).stdout
    return server.split()[2].removeprefix("v=") if server else "?"


def main(argv: list[str] | None = None) -> int:
    parser = arguments(__doc__, "queue", "small counts, under a minute")
    parser.add_argument("--producers", type=int, default=None, help="producer threads for tasks/s (default 8)")
    parser.add_argument("--only", nargs="+", default=None, help="run only systems whose label has one of these words")
    args = parser.parse_args(argv)
    plan = QUICK_PLAN if args.quick else Plan()
    if args.producers is not None:
        if args.producers < 1:
            parser.error("--producers must be at least 1")
        plan = Plan(**{**asdict(plan), "producers": args.producers})
    return run(plan, args.output, args.only)


if __name__ == "__main__":
    sys.exit(main())
