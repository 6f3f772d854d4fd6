"""Apache/mod_wsgi under load: 50 clients start and poll short tasks for 30 seconds.

The deployment is the one ``deploy/apache`` describes, started for real: a
``redis-server`` on a free loopback port and ``mod_wsgi-express`` with three daemon
processes serving ``deploy/apache/handler.wsgi`` (Redis store, thread executor). Each
client thread keeps one keep-alive ``http.client`` connection and mixes JSON-WSP calls:

- ``steps`` starts a task that reports progress four times and ends after about 0.4 s;
- ``steps_progress`` of its own tasks and of tasks other clients started, so the calls
  for one task land in different daemon processes;
- ``steps_result`` once its own task has finished, checked to be a daemon's pid;
- now and then ``servingProcess``, a plain call naming the daemon that answered.

It prints requests per second overall and per call kind, p50/p99 latency per kind, the
errors split by kind - HTTP errors, connection errors, faults; any ``UnknownTask`` for
a task that was started is an error - the daemon pids seen and the tasks completed, and
writes them to ``bench/output/apache.json``. The target is zero errors.

For comparison the same load runs, unless ``--no-anchor``, against Ladon 1.0.7's own
tasktype under the same mod_wsgi with two daemon processes (``plain_ladon.wsgi``: Ladon on
its own, ladon-tasks never imported): each process keeps its tasks in its own memory, so
calls landing in the other process answer "Task ID ... does not seem to exist".

    python -m bench.bench_apache [--quick] [--seconds 30] [--clients 50] [--no-anchor]

Needs Apache 2.4, ``mod_wsgi-express`` beside the Python running this script and
``redis-server`` (``tests.support`` starts both). Started as root, the daemons run as
``www-data``, which must be able to reach this Python and the repository. Client and
server share the machine's cores; the run says how much CPU others took
(:mod:`bench.noise`). A deployment that cannot start is reported and the run goes on.
"""

from __future__ import annotations

import http.client
import json
import random
import shutil
import sys
import threading
import time
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench.benchlib import SERVICES_DIR, arguments, environment, percentile
from bench.noise import CpuAccount
from tests.support.apache import HANDLER, ModWsgi
from tests.support.jsonwsp import HttpError, JsonWsp, WireFault
from tests.support.redis_server import RedisServer, start_redis
from tests.support.servers import ROOT

ANCHOR_HANDLER = SERVICES_DIR / "plain_ladon.wsgi"
SERVICE = "ApacheBenchService"
OUR_SERVICES = f"{ROOT / 'services' / 'instance_service.py'}:{SERVICES_DIR / 'apache_bench_service.py'}"

#: Longest one request may take: beyond it the client counts a connection error.
REQUEST_TIMEOUT = 30.0
#: Longest a task may take from start to finished before its client calls it stuck;
#: the body takes about 0.4 s, so only a lost or hung task gets near this.
TASK_DEADLINE = 30.0
#: Longest Apache and the first application build may take to answer.
STARTUP_DEADLINE = 60.0
#: Longest clients may spend after the measured window finishing their own tasks.
DRAIN_DEADLINE = 30.0
#: Tasks a client keeps in flight: with two, one of them is usually running while polled.
IN_FLIGHT = 2
#: Progress reports per task (``STEP_SECONDS`` apart in the service).
STEPS = 4
#: Every this many rounds a client asks which daemon process serves it.
PLAIN_EVERY = 10
#: Recent task ids clients pick "other clients' tasks" from.
SHARED_WINDOW = 500
#: ``_result`` attempts before a finished task counts as lost (the anchor loses results
#: held by the other process).
RESULT_ATTEMPTS = 5
#: Example messages kept per error kind, for the report.
EXAMPLES = 3

KINDS = ("start", "progress_own", "progress_other", "result", "plain")


@dataclass(frozen=True)
class Deployment:
    """One mod_wsgi deployment the load runs against."""

    name: str
    label: str
    handler: Path
    processes: int
    threads: int
    redis: bool
    #: Ladon 1.0.7 says a task is done only by progress 1.0; ours says ``finished``.
    anchor: bool = False


@dataclass(frozen=True)
class Plan:
    seconds: float = 30.0
    clients: int = 50
    processes: int = 3
    threads: int = 25
    thread_workers: int = 16
    #: Apache's front-end MPM: "" lets mod_wsgi-express choose (event when available).
    server_mpm: str = ""
    #: Further ``mod_wsgi-express setup-server`` options, e.g. ``--initial-workers=1``.
    express_options: tuple[str, ...] = ()
    anchor: bool = True
    quick: bool = False


# -- servers --------------------------------------------------------------------------


def start_apache(deployment: Deployment, plan: Plan, server_root: Path, settings: dict[str, str]) -> ModWsgi:
    """``mod_wsgi-express`` for ``deployment`` (``tests.support.apache``), then
    ``servingProcess`` until every daemon has answered once (each builds the application
    on its first request) or the deadline passes."""
    shutil.rmtree(server_root, ignore_errors=True)
    express_options = [*plan.express_options, *(["--server-mpm", plan.server_mpm] if plan.server_mpm else [])]
    apache = ModWsgi(server_root, deployment.processes, settings, deployment.handler, threads=deployment.threads,
                     express_options=express_options).start()
    client = JsonWsp(apache, SERVICE, timeout=REQUEST_TIMEOUT)
    deadline = time.monotonic() + STARTUP_DEADLINE
    pids: set[int] = set()
    try:
        while len(pids) < deployment.processes and time.monotonic() < deadline:
            try:
                pids.add(int(client("servingProcess")))
            except (OSError, http.client.HTTPException, WireFault, HttpError):
                client.close()
                time.sleep(0.1)
    finally:
        client.close()
    if not pids:
        apache.stop()
        raise RuntimeError(f"no daemon answered within {STARTUP_DEADLINE}s:\n{apache.error_log()[-4000:]}")
    return apache  # serving; the run reports how many daemons it saw


# -- the client -----------------------------------------------------------------------


def fault_kind(message: str) -> str:
    """Name a fault so the report can group it: ladon-tasks' faults start with their
    name; Ladon's are prose, of which two sentences mean "that process does not know
    this task"."""
    if message.startswith("UnknownTask") or "does not seem to exist" in message:
        return "UnknownTask"
    if "has no result and is not running either" in message:
        return "ResultNotFound"
    head = message.split(":", 1)[0].strip()
    return head if head and len(head) <= 40 and " " not in head else "Fault"


@dataclass
class Tally:
    """What one client saw; merged after the run, so clients never share a lock for it."""

    calls: Counter = field(default_factory=Counter)
    window_calls: Counter = field(default_factory=Counter)
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    errors: Counter = field(default_factory=Counter)
    examples: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    #: Errors by whole second since the start of the measured window: a burst at the
    #: start (servers warming up) reads differently from errors all along.
    error_seconds: Counter = field(default_factory=Counter)
    serving_pids: Counter = field(default_factory=Counter)
    ran_in_pids: Counter = field(default_factory=Counter)
    started: int = 0
    completed: int = 0
    lost: int = 0

    def error(self, kind: str, call: str, message: str, second: int = -1) -> None:
        key = f"{kind} ({call})"
        self.errors[key] += 1
        self.error_seconds[second] += 1
        if len(self.examples[key]) < EXAMPLES:
            self.examples[key].append(message[:300])

    def merge(self, other: "Tally") -> None:
        self.calls.update(other.calls)
        self.window_calls.update(other.window_calls)
        for kind, values in other.latencies.items():
            self.latencies[kind].extend(values)
        self.errors.update(other.errors)
        self.error_seconds.update(other.error_seconds)
        for key, messages in other.examples.items():
            self.examples[key].extend(messages[: EXAMPLES - len(self.examples[key])])
        self.serving_pids.update(other.serving_pids)
        self.ran_in_pids.update(other.ran_in_pids)
        self.started += other.started
        self.completed += other.completed
        self.lost += other.lost


@dataclass
class OwnTask:
    task_id: str
    started_at: float
    finished: bool = False
    result_attempts: int = 0


class SharedIds:
    """Task ids recently started by any client, for polls of other clients' tasks."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ids: list[tuple[str, int]] = []

    def add(self, task_id: str, owner: int) -> None:
        with self._lock:
            self._ids.append((task_id, owner))
            if len(self._ids) > 2 * SHARED_WINDOW:
                del self._ids[:SHARED_WINDOW]

    def pick(self, not_owner: int) -> str | None:
        with self._lock:
            recent = self._ids[-SHARED_WINDOW:]
        for _ in range(8):
            if not recent:
                return None
            task_id, owner = random.choice(recent)
            if owner != not_owner:
                return task_id
        return None


class LoadClient:
    """One client thread: a connection, its own tasks in flight, a tally."""

    def __init__(self, number: int, port: int, deployment: Deployment, shared: SharedIds) -> None:
        self.number = number
        self.client = JsonWsp(f"http://127.0.0.1:{port}", SERVICE, timeout=REQUEST_TIMEOUT, retry_reused=False)
        self.deployment = deployment
        self.shared = shared
        self.tally = Tally()
        self.own: list[OwnTask] = []
        self.window_start = 0.0
        self.window_end = 0.0

    def fail(self, kind: str, call: str, message: str) -> None:
        """Count an error, with the second of the run it happened in."""
        self.tally.error(kind, call, message, int(time.perf_counter() - self.window_start))

    def timed(self, kind: str, method: str, **args: Any) -> tuple[bool, Any]:
        """One call, timed and tallied; ``(True, result)`` or ``(False, None)`` after an
        error, which is counted here by its kind."""
        began = time.perf_counter()
        try:
            result = self.client(method, **args)
        except WireFault as fault:
            self._count(kind, began)
            self.fail(f"fault {fault_kind(fault.string)}", kind, fault.string)
            return False, None
        except HttpError as error:
            self._count(kind, began)
            self.fail(f"http {error.status}", kind, str(error))
            return False, None
        except (OSError, http.client.HTTPException) as error:
            self._count(kind, began)
            where = "reused keep-alive connection" if self.client.last_call_reused else "new connection"
            self.fail(f"connection, {where}", kind, f"{type(error).__name__}: {error}")
            self.client.close()  # the next request opens a new connection
            return False, None
        self._count(kind, began)
        return True, result

    def _count(self, kind: str, began: float) -> None:
        now = time.perf_counter()
        self.tally.latencies[kind].append(now - began)
        self.tally.calls[kind] += 1
        if now <= self.window_end:
            self.tally.window_calls[kind] += 1

    def is_finished(self, progress: dict[str, Any]) -> bool:
        if self.deployment.anchor:
            return float(progress.get("progress") or 0.0) >= 1.0
        state = progress.get("state")
        if state in ("failed", "cancelled"):
            self.fail(f"task {state}", "progress_own", json.dumps(progress)[:300])
        return bool(progress.get("finished"))

    def start_task(self) -> None:
        ok, info = self.timed("start", "steps", count=STEPS)
        if ok:
            task_id = str(info["task_id"])
            self.tally.started += 1
            self.own.append(OwnTask(task_id, time.monotonic()))
            self.shared.add(task_id, self.number)

    def advance_own(self) -> None:
        """Poll the oldest own task; once finished, fetch and check its result."""
        task = self.own[0]
        if not task.finished:
            ok, progress = self.timed("progress_own", "steps_progress", task_id=task.task_id)
            if ok and self.is_finished(progress):
                task.finished = True
            elif time.monotonic() - task.started_at > TASK_DEADLINE:
                self.fail("stuck task", "progress_own", f"{task.task_id} not finished after {TASK_DEADLINE}s")
                self.tally.lost += 1
                self.own.pop(0)
                return
        if task.finished:
            task.result_attempts += 1
            ok, result = self.timed("result", "steps_result", task_id=task.task_id)
            if ok:
                if isinstance(result, int) and result > 0:
                    self.tally.completed += 1
                    self.tally.ran_in_pids[result] += 1
                else:
                    self.fail("wrong result", "result", repr(result)[:300])
                self.own.pop(0)
            elif task.result_attempts >= RESULT_ATTEMPTS:
                self.fail("result given up", "result", f"{task.task_id}: {RESULT_ATTEMPTS} failed attempts")
                self.tally.lost += 1
                self.own.pop(0)

    def poll_other(self) -> None:
        task_id = self.shared.pick(self.number)
        if task_id is not None:
            self.timed("progress_other", "steps_progress", task_id=task_id)

    def plain(self) -> None:
        ok, pid = self.timed("plain", "servingProcess")
        if ok:
            self.tally.serving_pids[int(pid)] += 1

    def run(self, barrier: threading.Barrier, seconds: float) -> None:
        try:
            self.client.open()  # before the clock starts
        except OSError:
            pass  # the first call meets the same error, and counts it
        barrier.wait()
        self.window_start = time.perf_counter()
        self.window_end = self.window_start + seconds
        rounds = 0
        try:
            while time.perf_counter() < self.window_end:
                rounds += 1
                if len(self.own) < IN_FLIGHT:
                    self.start_task()
                if self.own:
                    self.advance_own()
                self.poll_other()
                if rounds % PLAIN_EVERY == 0:
                    self.plain()
            drain_end = time.monotonic() + DRAIN_DEADLINE
            while self.own and time.monotonic() < drain_end:
                self.advance_own()
                time.sleep(0.01)
            if self.own:
                self.fail("stuck task", "drain", f"{len(self.own)} tasks unfinished after the drain")
                self.tally.lost += len(self.own)
        except Exception as error:  # a bug in the bench itself: report, don't hang the run
            self.fail("client crashed", "bench", f"{type(error).__name__}: {error}")
        finally:
            self.client.close()


# -- one deployment under load --------------------------------------------------------


class RedisClients:
    """Samples Redis' ``connected_clients`` once a second during the run: a pool that
    grows without bound shows here long before Redis refuses connections."""

    def __init__(self, server: RedisServer | None) -> None:
        self.server = server
        self.samples: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        assert self.server is not None
        client = self.server.client()
        try:
            while not self._stop.wait(1.0):
                try:
                    self.samples.append(int(client.info("clients")["connected_clients"]))
                except Exception:  # noqa: BLE001 - a missed sample is not a bench error
                    pass
        finally:
            client.close()

    def __enter__(self) -> "RedisClients":
        if self.server is not None:
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5)


def run_load(server: ModWsgi, deployment: Deployment, plan: Plan, redis: RedisServer | None) -> dict[str, Any]:
    """``plan.clients`` threads for ``plan.seconds``, then a bounded drain; the figures."""
    shared = SharedIds()
    clients = [LoadClient(number, server.port, deployment, shared) for number in range(plan.clients)]
    barrier = threading.Barrier(plan.clients + 1)
    threads = [threading.Thread(target=c.run, args=(barrier, plan.seconds), daemon=True) for c in clients]
    for thread in threads:
        thread.start()
    with RedisClients(redis) as redis_clients:
        barrier.wait()
        began = time.perf_counter()
        join_by = time.monotonic() + plan.seconds + DRAIN_DEADLINE + 2 * REQUEST_TIMEOUT
        for thread in threads:
            thread.join(max(0.1, join_by - time.monotonic()))
        elapsed = time.perf_counter() - began
    tally = Tally()
    hung = sum(thread.is_alive() for thread in threads)
    for load_client in clients:
        tally.merge(load_client.tally)
    if hung:
        tally.error("hung client", "bench", f"{hung} client threads still in a request at the end")
    window_total = sum(tally.window_calls.values())
    per_kind = {
        kind: {
            "calls": tally.calls[kind],
            "rps": tally.window_calls[kind] / plan.seconds,
            "p50_ms": percentile(tally.latencies[kind], 0.50) * 1000,
            "p99_ms": percentile(tally.latencies[kind], 0.99) * 1000,
            "max_ms": max(tally.latencies[kind], default=float("nan")) * 1000,
        }
        for kind in KINDS
    }
    all_latencies = [value for values in tally.latencies.values() for value in values]
    log = server.error_log()
    return {
        "deployment": asdict(deployment) | {"handler": str(deployment.handler.relative_to(ROOT))},
        "seconds": plan.seconds,
        "elapsed_with_drain": round(elapsed, 1),
        "clients": plan.clients,
        "requests": sum(tally.calls.values()),
        "rps": window_total / plan.seconds,
        "p50_ms": percentile(all_latencies, 0.50) * 1000,
        "p99_ms": percentile(all_latencies, 0.99) * 1000,
        "per_kind": per_kind,
        "errors": sum(tally.errors.values()),
        "errors_by_kind": dict(sorted(tally.errors.items())),
        "errors_by_second": {str(second): n for second, n in sorted(tally.error_seconds.items())},
        "error_examples": {key: values for key, values in sorted(tally.examples.items())},
        "error_rates": {
            kind: sum(n for key, n in tally.errors.items() if key.endswith(f"({kind})")) / tally.calls[kind]
            for kind in KINDS if tally.calls[kind]
        },
        "serving_pids": sorted(tally.serving_pids),
        "task_ran_in_pids": sorted(tally.ran_in_pids),
        "tasks_started": tally.started,
        "tasks_completed": tally.completed,
        "tasks_lost": tally.lost,
        "redis_connected_clients_max": max(redis_clients.samples, default=None),
        "redis_connected_clients_last": redis_clients.samples[-1] if redis_clients.samples else None,
        "apache_error_log": {
            "tracebacks": log.count("Traceback (most recent call last)"),
            "timeouts": sum(1 for line in log.splitlines() if "imeout" in line),
            "tail": log.splitlines()[-15:],
        },
    }


def run_deployment(deployment: Deployment, plan: Plan, work_dir: Path, account: CpuAccount) -> dict[str, Any]:
    """Start Redis (if the deployment uses it) and Apache, load them, stop both. A
    deployment that cannot start or be measured is a result with its ``error``."""
    redis_server: RedisServer | None = None
    apache: ModWsgi | None = None
    try:
        settings = {"LADON_TASKS_THREAD_WORKERS": str(plan.thread_workers)}
        if deployment.redis:
            redis_server = start_redis(work_dir / f"{deployment.name}-redis")
            settings |= {"LADON_TASKS_SERVICES": OUR_SERVICES, "LADON_TASKS_REDIS_URL": redis_server.url}
        if deployment.anchor:
            settings["BENCH_LADON_SERVICES"] = "apache_bench_service"
        print(f"  {deployment.label}: starting Apache", file=sys.stderr)
        apache = start_apache(deployment, plan, work_dir / f"{deployment.name}-root", settings)
        account.add_root(apache.main_pid())
        print(f"  {deployment.label}: {plan.clients} clients for {plan.seconds:g} s", file=sys.stderr)
        with account.window() as share:
            result = run_load(apache, deployment, plan, redis_server)
        return result | {"cpu": share.to_json()}
    except Exception as error:  # noqa: BLE001 - reported in its place, and the run goes on
        print(f"  {deployment.label}: FAILED: {type(error).__name__}: {error}", file=sys.stderr)
        return {"deployment": asdict(deployment) | {"handler": str(deployment.handler.relative_to(ROOT))},
                "error": f"{type(error).__name__}: {str(error)[:2000]}"}
    finally:
        if apache is not None:
            apache.stop()
        if redis_server is not None:
            redis_server.stop()


# -- the report -----------------------------------------------------------------------


def format_report(result: dict[str, Any]) -> str:
    deployment = result["deployment"]
    if "error" in result:
        return f"{deployment['label']}: not measured: {result['error']}"
    lines = [
        f"{deployment['label']}: {deployment['processes']} daemon processes x {deployment['threads']} threads, "
        f"{result['clients']} clients, {result['seconds']:g} s",
        f"{'call':<16}{'calls':>9}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}{'max ms':>10}{'errors':>9}",
    ]
    for kind, figures in result["per_kind"].items():
        errors = sum(n for key, n in result["errors_by_kind"].items() if key.endswith(f"({kind})"))
        lines.append(f"{kind:<16}{figures['calls']:>9,}{figures['rps']:>10,.1f}{figures['p50_ms']:>10.1f}"
                     f"{figures['p99_ms']:>10.1f}{figures['max_ms']:>10.1f}{errors:>9,}")
    lines.append(f"{'all':<16}{result['requests']:>9,}{result['rps']:>10,.1f}{result['p50_ms']:>10.1f}"
                 f"{result['p99_ms']:>10.1f}{'':>10}{result['errors']:>9,}")
    lines.append(f"errors: {result['errors']}" + ("  (target: zero)" if not deployment["anchor"] else ""))
    for key, count in result["errors_by_kind"].items():
        rate = ""
        call = key.rsplit("(", 1)[-1].rstrip(")")
        if call in result["per_kind"] and result["per_kind"][call]["calls"]:
            rate = f"  ({100.0 * count / result['per_kind'][call]['calls']:.1f}% of {call} calls)"
        lines.append(f"  {key}: {count:,}{rate}")
        for example in result["error_examples"].get(key, [])[:1]:
            lines.append(f"      e.g. {example[:160]}")
    if result["errors_by_second"]:
        timeline = ", ".join(f"{second}s: {n}" for second, n in result["errors_by_second"].items())
        lines.append(f"  errors by second of the run: {timeline}")
    lines.append(f"daemon pids serving plain calls: {len(result['serving_pids'])} {result['serving_pids']}")
    lines.append(f"daemon pids that ran task bodies: {len(result['task_ran_in_pids'])}")
    lines.append(f"tasks started {result['tasks_started']:,}, completed with a checked result "
                 f"{result['tasks_completed']:,}, lost {result['tasks_lost']:,}")
    if result["redis_connected_clients_max"] is not None:
        lines.append(f"Redis connected clients: max {result['redis_connected_clients_max']}, "
                     f"at the end {result['redis_connected_clients_last']}")
    log = result["apache_error_log"]
    lines.append(f"Apache error log: {log['tracebacks']} tracebacks, {log['timeouts']} timeout lines")
    cpu = result["cpu"]
    lines.append(f"CPU elsewhere while measured: stolen {100 * cpu['steal_share']:.1f} %, other processes "
                 f"{100 * cpu['others_share']:.1f} %" + (" (too noisy to judge)" if cpu["noisy"] else ""))
    return "\n".join(lines)


def run(plan: Plan, output: Path) -> int:
    output.parent.mkdir(parents=True, exist_ok=True)
    work_dir = output.parent / "apache"
    deployments = [Deployment("ours", "ladon-tasks (Redis store)", HANDLER, plan.processes, plan.threads, redis=True)]
    if plan.anchor:
        deployments.append(Deployment("ladon", "Ladon 1.0.7 tasktype (anchor)", ANCHOR_HANDLER, 2, plan.threads,
                                      redis=False, anchor=True))
    began = time.perf_counter()
    account = CpuAccount()
    results = [run_deployment(deployment, plan, work_dir, account) for deployment in deployments]
    for result in results:
        print(format_report(result))
        print()
    ours = results[0]
    verdict = "met" if ours.get("errors") == 0 and ours.get("tasks_completed") else "MISSED"
    print(f"target (ladon-tasks, zero errors): {verdict}; took {time.perf_counter() - began:.0f} s")
    print(account.total.describe())
    if plan.quick:
        print("quick run: a smoke test, too short for figures worth comparing")
    report = {"environment": environment("mod_wsgi"), "plan": asdict(plan), "cpu": account.total.to_json(),
              "results": {r["deployment"]["name"]: r for r in results}, "target_zero_errors_met": verdict == "met"}
    output.write_text(json.dumps(report, indent=2, default=str) + "\n")
    print(f"figures written to {output}")
    return 0 if verdict == "met" else 1


def main(argv: list[str] | None = None) -> int:
    parser = arguments(__doc__, "apache", "10 clients for 5 s")
    parser.add_argument("--seconds", type=float, default=None, help="length of the measured window (default 30)")
    parser.add_argument("--clients", type=int, default=None, help="client threads (default 50)")
    parser.add_argument("--processes", type=int, default=3, help="daemon processes of ladon-tasks (default 3)")
    parser.add_argument("--threads", type=int, default=25, help="threads per daemon process (default 25)")
    parser.add_argument("--thread-workers", type=int, default=16,
                        help="task threads per daemon process, LADON_TASKS_THREAD_WORKERS (default 16)")
    parser.add_argument("--server-mpm", choices=("event", "worker", "prefork"), default="",
                        help="Apache's front-end MPM (default: mod_wsgi-express's choice, event)")
    parser.add_argument("--express-option", action="append", default=None, metavar="OPTION",
                        help="extra mod_wsgi-express setup-server option (default: --initial-workers=1 "
                             "--max-clients=200, as "
                             "deploy/apache/README.md recommends: every front-end child started at once, "
                             "so Apache never sheds keep-alive connections while it grows)")
    parser.add_argument("--no-anchor", action="store_true", help="skip the Ladon 1.0.7 comparison")
    args = parser.parse_args(argv)
    plan = Plan(seconds=5.0, clients=10, quick=True) if args.quick else Plan()
    changes: dict[str, Any] = {"processes": args.processes, "threads": args.threads,
                               "thread_workers": args.thread_workers, "anchor": not args.no_anchor,
                               "server_mpm": args.server_mpm,
                               "express_options": tuple(args.express_option if args.express_option is not None
                                                        else ["--initial-workers=1", "--max-clients=200"])}
    if args.seconds is not None:
        changes["seconds"] = args.seconds
    if args.clients is not None:
        changes["clients"] = args.clients
    plan = Plan(**{**asdict(plan), **changes})
    if plan.seconds <= 0 or plan.clients < 1 or plan.processes < 1 or plan.threads < 1:
        parser.error("--seconds, --clients, --processes and --threads must be positive")
    return run(plan, args.output)


if __name__ == "__main__":
    sys.exit(main())
