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

Limits: bench, servers, workers and Redis share the machine's cores; the ratios within
one run are what travel. ``--quick`` is a smoke run whose figures are not judged.

    python bench/bench_queue.py [--quick] [--producers 8] [--output bench/output/queue.json]
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import itertools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))
from benchlib import (  # noqa: E402  (the bench directory is not a package)
    STARTUP_DEADLINE,
    TASK_DEADLINE,
    Client,
    environment,
    free_port,
    in_threads,
    run_together,
    stop_process,
    stop_process_group,
)

import redis  # noqa: E402

SERVICES_DIR = BENCH_DIR / "services"
ROOT = BENCH_DIR.parent
OUTPUT_DIR = BENCH_DIR / "output"
SERVICE = "QueueBenchService"
SERVICE_FILE = SERVICES_DIR / "queue_service.py"
PREFIX = "ladon-tasks:"

#: Commands the bench itself sends while measuring; they are not the system's.
OWN_COMMANDS = frozenset({"info", "config|resetstat", "config", "monitor", "echo", "client|list"})


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
    celery_concurrency: int = 2
    quick: bool = False


QUICK_PLAN = Plan(
    warmup=10, latency_tasks=60, e2e_tasks=300, slow_latency_tasks=15, slow_e2e_tasks=40,
    monitor_tasks=5, progress_seconds=0.5, progress_rounds=1, quick=True,
)


# -- Redis ------------------------------------------------------------------------------


class RedisServer:
    """A throw-away redis-server on a free loopback port, no persistence, stopped by pid."""

    def __init__(self, directory: Path) -> None:
        self.port = free_port()
        self.directory = directory
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(directory), "--logfile", str(directory / "redis.log")],
            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, start_new_session=True,
        )
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.client = redis.Redis(host="127.0.0.1", port=self.port, decode_responses=True)
        deadline = time.monotonic() + STARTUP_DEADLINE
        while True:
            try:
                self.client.ping()
                return
            except redis.ConnectionError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"redis-server on port {self.port} did not start") from None
                time.sleep(0.02)

    def reset_stats(self) -> int:
        """Zero the command counters; returns :meth:`dataset_bytes` at this moment."""
        self.client.config_resetstat()
        return self.dataset_bytes()

    def commands(self) -> dict[str, int]:
        """Calls per command since the last reset, the bench's own commands left out."""
        stats = self.client.info("commandstats")
        calls = {name.removeprefix("cmdstat_"): int(value["calls"]) for name, value in stats.items()}
        return {name: count for name, count in calls.items() if name not in OWN_COMMANDS}

    def dataset_bytes(self) -> int:
        """``used_memory`` less Redis' overhead (client buffers, script cache, replication):
        the keys alone, so producer connections and their buffers do not count as tasks."""
        stats = self.client.memory_stats()
        return int(stats["dataset.bytes"])

    def stop(self) -> None:
        self.client.close()
        stop_process(self.process)


@dataclass
class Command:
    """One command as MONITOR showed it: who sent it (``lua`` for script-internal ones)."""

    at: float
    client: str
    args: list[str]

    @property
    def name(self) -> str:
        return self.args[0].lower() if self.args else ""


class Monitor:
    """Every command Redis runs while the block is open, read on a side connection.

    MONITOR costs Redis time, so it only wraps short samples. The end is marked with an
    ``ECHO`` of a unique token, so the reader stops exactly after the sample.
    """

    def __init__(self, server: RedisServer) -> None:
        self.server = server
        self.commands: list[Command] = []
        self._token = f"bench-monitor-end-{time.time_ns()}"
        self._connection = redis.Redis(host="127.0.0.1", port=server.port, decode_responses=True)
        self._monitor = self._connection.monitor()
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()

    def __enter__(self) -> "Monitor":
        self._monitor.__enter__()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()
        return self

    def _read(self) -> None:
        connection = self._monitor.connection
        while True:
            line = connection.read_response()
            if isinstance(line, bytes):
                line = line.decode(errors="replace")
            stamp, _, rest = line.partition(" ")
            client = rest[rest.index(" ") + 1: rest.index("]")]
            args = _split_monitor_args(rest[rest.index("]") + 2:])
            if args[:2] == ["ECHO", self._token] or args[:2] == ["echo", self._token]:
                return
            self.commands.append(Command(float(stamp), client, args))

    def __exit__(self, *exc: Any) -> None:
        self.server.client.echo(self._token)
        assert self._thread is not None
        self._thread.join(timeout=10)
        self._monitor.__exit__(*exc)
        self._connection.close()


def _split_monitor_args(text: str) -> list[str]:
    """MONITOR quotes each argument and escapes quotes and backslashes inside it."""
    args: list[str] = []
    i = 0
    while i < len(text):
        if text[i] != '"':
            i += 1
            continue
        i += 1
        piece: list[str] = []
        while i < len(text) and text[i] != '"':
            if text[i] == "\\" and i + 1 < len(text):
                i += 1
            piece.append(text[i])
            i += 1
        args.append("".join(piece))
        i += 1
    return args


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

    def spawn(self, name: str, command: list[str], cwd: Path = ROOT, env: dict[str, str] | None = None) -> None:
        log = open(self.log_dir / f"queue-{name}.log", "wb")
        process = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, cwd=str(cwd), start_new_session=True,
            env={**os.environ, "BENCH_REDIS_URL": self.redis.url, **(env or {})},
        )
        log.close()
        self.processes.append(process)

    def spawn_peer(self, name: str, program: str, args: list[str]) -> None:
        """A peer's own command-line worker, installed beside this Python, run in the
        directory of the peers' task modules."""
        self.spawn(name, [str(Path(sys.executable).with_name(program)), *args],
                   cwd=SERVICES_DIR, env={"PYTHONPATH": str(SERVICES_DIR)})

    def start(self) -> None:
        raise NotImplementedError

    def handle(self) -> Any:
        return None

    def close_handle(self, handle: Any) -> None:
        pass

    def round_trip(self, handle: Any, value: int) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        for process in reversed(self.processes):
            stop_process_group(process)


def _check(value: int, got: Any, what: str) -> None:
    if got != value:
        raise RuntimeError(f"{what}: result {got!r}, expected {value!r}")


class OursWeb(System):
    """``ladon-tasks serve --redis`` + ``ladon-tasks worker``; JSON-WSP start, wait, result."""

    def __init__(self, redis_server: RedisServer, log_dir: Path, concurrency: int) -> None:
        super().__init__(redis_server, log_dir)
        self.concurrency = concurrency
        self.label = f"ladon-tasks web, {concurrency} slot{'s' if concurrency > 1 else ''}"
        self.port = 0

    def start(self) -> None:
        python = [sys.executable, "-m", "ladon_tasks", "--log-level", "WARNING"]
        self.spawn(f"worker-{self.concurrency}", python + [
            "worker", str(SERVICE_FILE), "--redis", self.redis.url, "--concurrency", str(self.concurrency)])
        self.port = free_port()
        self.spawn(f"serve-{self.concurrency}", python + [
            "serve", str(SERVICE_FILE), "--redis", self.redis.url, "--port", str(self.port), "--no-dashboard"])
        deadline = time.monotonic() + STARTUP_DEADLINE
        while True:
            try:
                client = Client(self.port, SERVICE)
                try:
                    if client.call("echo", value=7) == 7:
                        return
                finally:
                    client.close()
            except OSError:
                if time.monotonic() > deadline or any(p.poll() is not None for p in self.processes):
                    raise RuntimeError("ladon-tasks serve did not come up") from None
                time.sleep(0.05)

    def handle(self) -> Client:
        return Client(self.port, SERVICE)

    def close_handle(self, handle: Client) -> None:
        handle.close()

    def round_trip(self, handle: Client, value: int) -> None:
        task_id = handle.call("noop", value=value)["task_id"]
        deadline = time.monotonic() + TASK_DEADLINE
        while not handle.call("noop_wait", task_id=task_id, seconds=10.0)["finished"]:
            if time.monotonic() > deadline:
                raise RuntimeError(f"task {task_id} not done after {TASK_DEADLINE}s")
        _check(value, handle.call("noop_result", task_id=task_id), task_id)


class OursApi(System):
    """The same worker, fed from this process: ``TaskRuntime.start`` + ``RedisStore.wait``."""

    def __init__(self, redis_server: RedisServer, log_dir: Path, concurrency: int, threads: bool = False) -> None:
        super().__init__(redis_server, log_dir)
        self.concurrency = concurrency
        self.threads = threads
        self.label = (f"ladon-tasks API, {concurrency} slot{'s' if concurrency > 1 else ''}"
                      + (", --threads" if threads else ""))
        self.runtime: Any = None
        self.method: Any = None
        self.decode: Any = None

    def start(self) -> None:
        from ladon_tasks import codec
        from ladon_tasks.runtime import TaskRuntime
        from ladon_tasks.redis.store import RedisStore

        if str(SERVICES_DIR) not in sys.path:
            sys.path.insert(0, str(SERVICES_DIR))
        import queue_service  # the module name the worker resolves the job's reference to

        self.method = queue_service.QueueBenchService.__dict__["noop"]
        self.spawn(f"worker-api-{self.concurrency}{'-threads' if self.threads else ''}", [
            sys.executable, "-m", "ladon_tasks", "--log-level", "WARNING", "worker", str(SERVICE_FILE),
            "--redis", self.redis.url, "--concurrency", str(self.concurrency),
            *(["--threads"] if self.threads else [])])
        self.runtime = TaskRuntime(RedisStore(self.redis.url))
        self.decode = codec.decode

    def round_trip(self, handle: Any, value: int) -> None:
        record = self.runtime.start(self.method, (value,), {})
        done = self.runtime.store.wait(record.task_id, TASK_DEADLINE)
        if done is None or not done.finished:
            raise RuntimeError(f"task {record.task_id} not done after {TASK_DEADLINE}s")
        _check(value, self.decode(self.method.rtype, done.result), record.task_id)

    def stop(self) -> None:
        if self.runtime is not None:
            self.runtime.shutdown(wait=False)
        super().stop()


class RqSystem(System):
    """One ``rq worker`` (long-running) of the given class; enqueue, then RQ's blocking wait."""

    def __init__(self, redis_server: RedisServer, log_dir: Path, worker_class: str) -> None:
        super().__init__(redis_server, log_dir)
        self.worker_class = worker_class
        short = worker_class.rsplit(".", 1)[-1]
        self.label = f"RQ 3.0 {short}"
        self.slow = short == "Worker"
        self.short = short

    def start(self) -> None:
        self.spawn_peer(f"rq-{self.short}", "rq", [
            "worker", "--url", self.redis.url, "--worker-class", self.worker_class,
            "--path", str(SERVICES_DIR), "--logging_level", "WARNING", "--disable-job-desc-logging"])

    def handle(self) -> Any:
        from rq import Queue

        import peer_tasks

        connection = redis.Redis.from_url(self.redis.url)
        return Queue("default", connection=connection), connection, peer_tasks.noop

    def close_handle(self, handle: Any) -> None:
        handle[1].close()

    def round_trip(self, handle: Any, value: int) -> None:
        queue, _, noop = handle
        job = queue.enqueue(noop, value)
        result = job.latest_result(timeout=int(TASK_DEADLINE))
        if result is None:
            raise RuntimeError(f"RQ job {job.id} not done after {TASK_DEADLINE}s")
        _check(value, result.return_value, job.id)


class CelerySystem(System):
    """One ``celery worker`` with the given pool; ``delay`` then ``AsyncResult.get``.

    Each producer thread gets its own Celery app: an app's result consumer is one pub/sub
    connection, not meant to be drained from several threads at once."""

    def __init__(self, redis_server: RedisServer, log_dir: Path, pool: str, concurrency: int) -> None:
        super().__init__(redis_server, log_dir)
        self.pool = pool
        self.concurrency = concurrency
        self.label = f"Celery 5.7 {pool}, {concurrency} slots"

    def start(self) -> None:
        self.spawn_peer(f"celery-{self.pool}", "celery", [
            "-A", "peer_tasks", "worker", "--pool", self.pool, "--concurrency", str(self.concurrency),
            "--loglevel", "WARNING", "--without-gossip", "--without-mingle", "--without-heartbeat"])

    def handle(self) -> Any:
        from celery import Celery

        app = Celery("bench-producer", broker=self.redis.url, backend=self.redis.url)
        app.conf.update(task_serializer="json", result_serializer="json", accept_content=["json"])
        return app

    def close_handle(self, handle: Any) -> None:
        handle.close()

    def round_trip(self, handle: Any, value: int) -> None:
        result = handle.send_task("peer_tasks.celery_noop", args=(value,))
        _check(value, result.get(timeout=TASK_DEADLINE), result.id)


class HueySystem(System):
    """One ``huey_consumer`` with a thread pool; calling the task, then a blocking
    ``Result.get``. ``notify_result`` is on (see ``services/peer_huey.py``)."""

    def __init__(self, redis_server: RedisServer, log_dir: Path, concurrency: int) -> None:
        super().__init__(redis_server, log_dir)
        self.concurrency = concurrency
        self.label = f"huey 3.5 threads, {concurrency} slots"

    def start(self) -> None:
        self.spawn_peer("huey", "huey_consumer", [
            "peer_huey.huey", "--workers", str(self.concurrency), "--worker-type", "thread",
            "--logfile", os.devnull, "--quiet"])

    def handle(self) -> Any:
        import peer_huey

        return peer_huey.make_huey(self.redis.url).task(name=peer_huey.TASK_NAME)(peer_huey.noop)

    def round_trip(self, handle: Any, value: int) -> None:
        result = handle(value)
        _check(value, result.get(blocking=True, timeout=TASK_DEADLINE), result.id)


class DramatiqSystem(System):
    """One ``dramatiq`` worker process with threads; ``enqueue``, then a blocking
    ``get_result`` from the Redis result backend."""

    def __init__(self, redis_server: RedisServer, log_dir: Path, concurrency: int) -> None:
        super().__init__(redis_server, log_dir)
        self.concurrency = concurrency
        self.label = f"dramatiq 2.2, {concurrency} threads"

    def start(self) -> None:
        self.spawn_peer("dramatiq", "dramatiq", [
            "peer_dramatiq", "--processes", "1", "--threads", str(self.concurrency)])

    def handle(self) -> Any:
        import dramatiq
        import peer_dramatiq

        return (*peer_dramatiq.make_broker(self.redis.url),
                functools.partial(dramatiq.Message, queue_name="default", actor_name=peer_dramatiq.ACTOR_NAME,
                                  kwargs={}, options={}))

    def close_handle(self, handle: Any) -> None:
        handle[0].close()

    def round_trip(self, handle: Any, value: int) -> None:
        broker, backend, message_of = handle
        message = broker.enqueue(message_of(args=(value,)))
        _check(value, message.get_result(backend=backend, block=True, timeout=int(TASK_DEADLINE * 1000)),
               message.message_id)


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

    @property
    def progress_over_plain(self) -> float | None:
        return self.progress_rps / self.plain_rps if self.progress_rps and self.plain_rps else None


def latency(system: System, count: int) -> list[float]:
    """Sequential round trips from one producer; seconds each."""
    handle = system.handle()
    try:
        times = []
        for value in range(1, count + 1):
            began = time.perf_counter()
            system.round_trip(handle, value)
            times.append(time.perf_counter() - began)
        return times
    finally:
        system.close_handle(handle)


def throughput(system: System, tasks: int, handles: list[Any]) -> float:
    """``tasks`` round trips shared by one thread per handle, started together; tasks/s.

    The handles are opened (and used once) by the caller before its counters start, so
    connection set-up and subscriptions are neither in the rate nor in the counts."""
    numbers = itertools.count(1)  # next() on it is atomic under the GIL

    def work(handle: Any) -> None:
        while (number := next(numbers)) <= tasks:
            system.round_trip(handle, number)

    # generous, but a bound: about 1 task/s at worst
    return tasks / run_together(handles, work, TASK_DEADLINE + tasks)


def progress_vs_plain(system: OursWeb, plan: Plan, figures: Figures) -> None:
    """``noop_progress`` of a finished task (a Redis read) against ``echo`` on the same
    server, from ``producers`` threads, in alternating rounds."""
    client = system.handle()
    try:
        task_id = client.call("noop", value=1)["task_id"]
        client.call("noop_wait", task_id=task_id, seconds=10.0)
    finally:
        client.close()
    totals = {"echo": [0, 0.0], "noop_progress": [0, 0.0]}
    for _ in range(plan.progress_rounds):
        for method, args in (("echo", {"value": 1}), ("noop_progress", {"task_id": task_id})):
            counts: list[int] = []

            def work(client: Client, method: str = method, args: dict[str, Any] = args) -> None:
                deadline = time.perf_counter() + plan.progress_seconds
                done = 0
                while time.perf_counter() < deadline and done < 1_000_000:
                    client.call(method, **args)
                    done += 1
                counts.append(done)

            seconds = in_threads(system.port, plan.producers, work, service=SERVICE)
            totals[method][0] += sum(counts)
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


def measure(system: System, plan: Plan) -> Figures:
    figures = Figures(system.label, type(system).__name__)
    system.start()
    handle = system.handle()
    try:
        for value in range(1, plan.warmup + 1):
            system.round_trip(handle, value)
    finally:
        system.close_handle(handle)
    lat_n = plan.slow_latency_tasks if system.slow else plan.latency_tasks
    times = sorted(latency(system, lat_n))
    figures.latency_tasks = lat_n
    figures.latency_p50_ms = statistics.median(times) * 1000
    figures.latency_p99_ms = times[min(len(times) - 1, int(round(0.99 * (len(times) - 1))))] * 1000
    time.sleep(0.3)  # background work of the latency phase settles before counting
    e2e_n = plan.slow_e2e_tasks if system.slow else plan.e2e_tasks
    handles = [system.handle() for _ in range(plan.producers)]
    try:
        for handle in handles:  # connections and subscriptions exist before counting
            system.round_trip(handle, 1)
        time.sleep(0.2)
        memory_before = system.redis.reset_stats()
        figures.tasks_per_s = throughput(system, e2e_n, handles)
        figures.e2e_tasks = e2e_n
        figures.commands = system.redis.commands()
        figures.commands_per_task = sum(figures.commands.values()) / e2e_n
        time.sleep(0.2)
        figures.bytes_per_task = (system.redis.dataset_bytes() - memory_before) / e2e_n
    finally:
        for handle in handles:
            system.close_handle(handle)
    commands = sample_commands(system, plan.monitor_tasks, figures)
    if isinstance(system, OursWeb):
        progress_vs_plain(system, plan, figures)
    if isinstance(system, (OursWeb, OursApi)) and system.concurrency == 1:
        figures.lifecycle = lifecycle(system, commands)
    return figures


# -- one task's lifecycle, attributed ------------------------------------------------------


def _script_names() -> dict[str, str]:
    """SHA1 of each Lua script of the Redis backend -> a readable name."""
    from ladon_tasks.redis import scripts

    return {hashlib.sha1(scripts.source(name).encode()).hexdigest(): name for name in scripts.names()}


def _step(command: Command, scripts: dict[str, str], finished: bool) -> str:
    """Which step of a task's life a command serves, judged from the command alone."""
    name = command.name
    if name == "evalsha":
        script = scripts.get(command.args[1], "script " + command.args[1][:8])
        if script == "transition":
            target = command.args[5] if len(command.args) > 5 else "?"
            return {"running": "transition to running", "succeeded": "finish transition"}.get(
                target, f"transition to {target}")
        return {
            "create": "store create + enqueue", "report": "progress flush / cancel check",
            "move_due": "housekeeping (due retries)", "sweep": "housekeeping (index sweep)",
        }.get(script, script)
    if name == "xreadgroup":
        return "claim (XREADGROUP)"
    if name == "xack":
        return "acknowledge (lease release)"
    if name in ("xpending", "xclaim", "xinfo", "xtrim"):
        return "housekeeping (leases, trim)"
    if name in ("subscribe", "psubscribe"):
        return "wait subscription"
    if name == "hgetall":
        return "record read after finish" if finished else "record read before finish"
    return name


def lifecycle(system: System, commands: list[Command]) -> list[dict[str, Any]]:
    """The commands of the last task of the MONITOR sample, from its creation to the
    last read of its record: client, step, command, and the commands its script ran."""
    scripts = _script_names()
    creates = [i for i, c in enumerate(commands) if c.name == "evalsha" and scripts.get(c.args[1]) == "create"]
    if not creates:
        return []
    start = creates[-1]
    # the read before the next task's create (or the end) closes this task's life
    rows: list[dict[str, Any]] = []
    clients: dict[str, str] = {}
    finished = False
    t0 = commands[start].at
    current: dict[str, Any] | None = None
    for command in commands[start:]:
        if command.client == "lua":
            if current is not None:
                current["in_script"].append(command.name.upper())
            continue
        client = clients.setdefault(command.client, f"c{len(clients) + 1}")
        step = _step(command, scripts, finished)
        current = {"ms": round((command.at - t0) * 1000, 3), "client": client, "step": step,
                   "command": " ".join(a if len(a) <= 24 else a[:21] + "..." for a in command.args[:6]),
                   "in_script": []}
        rows.append(current)
        if step == "finish transition":
            finished = True
    return rows


# -- the report -----------------------------------------------------------------------------


def system_factories(plan: Plan, log_dir: Path) -> list[Callable[[RedisServer], System]]:
    """Every system of the run, ours first; each gets its own redis-server."""
    return [
        lambda r: OursWeb(r, log_dir, 1),
        lambda r: OursWeb(r, log_dir, 2),
        lambda r: OursApi(r, log_dir, 1),
        lambda r: OursApi(r, log_dir, 2),
        lambda r: OursApi(r, log_dir, 2, threads=True),
        lambda r: RqSystem(r, log_dir, "rq.worker.Worker"),
        lambda r: RqSystem(r, log_dir, "rq.worker.SimpleWorker"),
        lambda r: CelerySystem(r, log_dir, "prefork", plan.celery_concurrency),
        lambda r: CelerySystem(r, log_dir, "threads", plan.celery_concurrency),
        lambda r: HueySystem(r, log_dir, plan.celery_concurrency),
        lambda r: DramatiqSystem(r, log_dir, plan.celery_concurrency),
    ]


def _ratio(value: float, best: float) -> str:
    return f"{value / best:.2f}x" if best else "-"


def format_table(results: list[Figures], plan: Plan) -> str:
    ours = [f for f in results if f.kind.startswith("Ours")]
    peers = [f for f in results if not f.kind.startswith("Ours")]
    best = {
        "tps": max((f.tasks_per_s for f in peers), default=0.0),
        "p50": min((f.latency_p50_ms for f in peers), default=0.0),
        "cmd": min((f.commands_per_task for f in peers), default=0.0),
        "rt": min((f.round_trips_per_task for f in peers), default=0.0),
        "mem": min((f.bytes_per_task for f in peers), default=0.0),
    }
    header = ("system", "tasks/s", "vs peer", "p50 ms", "vs peer", "p99 ms", "cmds/task", "vs peer",
              "sent/task", "B/task", "vs peer")
    lines = [header]
    for f in ours + peers:
        lines.append((
            f.label, f"{f.tasks_per_s:,.0f}", _ratio(f.tasks_per_s, best["tps"]),
            f"{f.latency_p50_ms:.2f}", _ratio(f.latency_p50_ms, best["p50"]), f"{f.latency_p99_ms:.2f}",
            f"{f.commands_per_task:.1f}", _ratio(f.commands_per_task, best["cmd"]),
            f"{f.round_trips_per_task:.1f}", f"{f.bytes_per_task:,.0f}", _ratio(f.bytes_per_task, best["mem"]),
        ))
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    text = []
    for number, line in enumerate(lines):
        text.append("  ".join([line[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(line[1:], widths[1:])]))
        if number == 0:
            text.append("  ".join("-" * w for w in widths))
    text.append("")
    text.append("'vs peer': against the best peer (RQ, Celery, huey, dramatiq) on that column - fastest, or fewest.")
    text.append("cmds/task: INFO commandstats over the tasks/s phase, commands inside Lua scripts included;")
    text.append("sent/task: commands clients sent per task (MONITOR, sequential tasks), scripts counted once.")
    text.append("")
    text.append(targets(results, best, plan))
    return "\n".join(text)


def targets(results: list[Figures], best: dict[str, float], plan: Plan) -> str:
    """The issue's targets next to the best ladon-tasks figure of each kind."""
    web = [f for f in results if f.kind == "OursWeb"]
    ours = [f for f in results if f.kind.startswith("Ours")]
    if not ours:
        return ""
    top = max(ours, key=lambda f: f.tasks_per_s)
    fast = min(ours, key=lambda f: f.latency_p50_ms)
    lean = min(ours, key=lambda f: f.round_trips_per_task)
    counted = min(ours, key=lambda f: f.commands_per_task)
    small = min(ours, key=lambda f: f.bytes_per_task)
    progress = min((f.progress_over_plain or 0.0 for f in web), default=0.0)

    def verdict(met: bool) -> str:
        return "(not judged: quick run)" if plan.quick else ("ok" if met else "MISSED")

    rows = [
        ("end-to-end >= 1.5x fastest peer", f"{_ratio(top.tasks_per_s, best['tps'])} ({top.label})",
         verdict(top.tasks_per_s >= 1.5 * best["tps"])),
        ("p50 round trip <= 1.5 ms", f"{fast.latency_p50_ms:.2f} ms ({fast.label})", verdict(fast.latency_p50_ms <= 1.5)),
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


def format_lifecycle(figures: Figures) -> str:
    if not figures.lifecycle:
        return ""
    lines = [f"one task's lifecycle, {figures.label} (MONITOR; c1, c2...: client connections in order seen)"]
    for row in figures.lifecycle:
        inner = f"  [{len(row['in_script'])} in script: {' '.join(row['in_script'])}]" if row["in_script"] else ""
        lines.append(f"  {row['ms']:8.3f} ms  {row['client']:<4} {row['step']:<28} {row['command']}{inner}")
    steps: dict[str, list[int]] = {}
    for row in figures.lifecycle:
        entry = steps.setdefault(row["step"], [0, 0])
        entry[0] += 1
        entry[1] += len(row["in_script"])
    lines.append("  per step: " + "; ".join(f"{s} {n} (+{i})" for s, (n, i) in steps.items()))
    return "\n".join(lines)


# -- main -------------------------------------------------------------------------------------


def run(plan: Plan, output: Path, only: list[str] | None) -> int:
    output.parent.mkdir(parents=True, exist_ok=True)
    began = time.perf_counter()
    results: list[Figures] = []
    if str(SERVICES_DIR) not in sys.path:
        sys.path.insert(0, str(SERVICES_DIR))
    with tempfile.TemporaryDirectory(prefix="bench-queue-redis-") as scratch:
        for number, factory in enumerate(system_factories(plan, output.parent)):
            directory = Path(scratch) / str(number)
            directory.mkdir()
            redis_server = RedisServer(directory)
            system = factory(redis_server)
            if only and not any(word.lower() in system.label.lower() for word in only):
                redis_server.stop()
                continue
            step = time.perf_counter()
            try:
                results.append(measure(system, plan))
            finally:
                system.stop()
                redis_server.stop()
            print(f"  {system.label:<32} {time.perf_counter() - step:6.1f} s", file=sys.stderr, flush=True)
    elapsed = time.perf_counter() - began
    print(format_table(results, plan))
    for figures in results:
        if figures.progress_rps:
            print(f"\n_progress vs plain, {figures.label}: {figures.progress_rps:,.0f} vs {figures.plain_rps:,.0f} "
                  f"calls/s = {figures.progress_over_plain:.2f}x ({plan.producers} threads)")
    for figures in results:
        print(f"\ncommands sent per task, {figures.label}: "
              + ", ".join(f"{name.upper()} {n:.2f}" for name, n in figures.sent_per_task.items())
              + f"; inside scripts {figures.script_commands_per_task:.1f}")
    for figures in results:
        if figures.lifecycle:
            print("\n" + format_lifecycle(figures))
    print(f"\n{plan.producers} producer threads; took {elapsed:.0f} s")
    if plan.quick:
        print("quick run: too short for the figures to be judged against the targets")
    report = {
        "environment": {**environment(), **_versions()},
        "plan": asdict(plan),
        "seconds": round(elapsed, 1),
        "systems": [{**asdict(f), "progress_over_plain": f.progress_over_plain} for f in results],
    }
    output.write_text(json.dumps(report, indent=2) + "\n")
    print(f"figures written to {output}")
    return 0


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    def installed(name: str) -> str:  # a run with --only leaves the peers out
        try:
            return version(name)
        except PackageNotFoundError:
            return "not installed"

    server = subprocess.run(["redis-server", "--version"], capture_output=True, text=True, timeout=10).stdout
    return {"rq": installed("rq"), "celery": installed("celery"), "redis-py": installed("redis"),
            "redis-server": server.split()[2].removeprefix("v=") if server else "?"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small counts: a smoke run in under a minute")
    parser.add_argument("--producers", type=int, default=None, help="producer threads for tasks/s (default 8)")
    parser.add_argument("--only", nargs="+", default=None, help="run only systems whose label has one of these words")
    parser.add_argument("--output", type=Path, default=OUTPUT_DIR / "queue.json", help="where the JSON goes")
    args = parser.parse_args(argv)
    plan = QUICK_PLAN if args.quick else Plan()
    if args.producers is not None:
        if args.producers < 1:
            parser.error("--producers must be at least 1")
        plan = Plan(**{**asdict(plan), "producers": args.producers})
    return run(plan, args.output, args.only)


if __name__ == "__main__":
    sys.exit(main())
