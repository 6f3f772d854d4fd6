"""Followers bench: many clients, each starting a task of a few seconds and following it
to its end, while a plain call is timed beside them - the usage the wait budget is for.

Rows, each on its own servers (and its own fresh ``redis-server`` where it has one):

- ``ladon-tasks serve`` with the in-process store, and with the Redis store (32 request
  threads, 16 of them for waits);
- mod_wsgi with the README's settings: 3 daemon processes x 25 threads, Redis store;
- Ladon + huey wired by hand (``bench/services/peer_service.py``: ``startSleep`` enqueues,
  ``peek`` says whether the job has ended), on Werkzeug's threaded server, its clients
  polling every 0.5 s - what Ladon users do today.

ladon-tasks' clients do what the README tells a client to do: ``_wait`` (20 s); unless
the task has finished, let ``poll_after`` seconds pass and ask again. The ``--clients``
clients start their tasks spread evenly over ``--ramp`` seconds; each task sleeps
``--task-seconds`` give or take a third, spread evenly (the bodies run in thread pools big
enough for all that run at once, so no task queues). Clients are coroutines of one asyncio loop speaking raw HTTP/1.1,
one connection per request (the servers' keep-alive limits do not enter). A separate
process calls the plain method every ``--probe-interval`` seconds, each call on a new
connection, from the first start to the last end.

Per row: plain-call p50/p99/max; the time from a task's finish (its record's
``finishtime``; for huey the time its body returned) to its client seeing it, p50/p99;
requests per followed task (start included), and the waits answered at once for want
of a place in the budget; CPU per followed task, by process (the clients, the web
server - Apache and all its daemons -, Redis, huey's consumer); errors by kind.

    python -m bench.bench_clients [--quick] [--clients 1000] [--task-seconds 3] [--ramp 10]
                                  [--only WORD ...] [--output bench/output/clients.json]

mod_wsgi needs Apache, and its daemons' user must reach this Python: that row reports
what is missing otherwise.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import math
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

from bench import ladon_server, peers
from bench.benchlib import (
    SERVICES_DIR, Faults, arguments, environment, percentile, stop_each, text_table, wanted,
)
from bench.noise import CpuAccount, own_ticks, process_ticks, processes_below, TICKS
from tests.support.apache import HANDLER, ModWsgi
from tests.support.jsonwsp import WireFault
from tests.support.processes import stop_process_group
from tests.support.redis_server import RedisServer, start_redis
from tests.support.servers import RunningServer, start_server

OUR_SERVICE = "CrowdService"
OUR_SERVICE_FILE = SERVICES_DIR / "crowd_service.py"
PEER_SERVICE = "PeerService"
#: How long one ``_wait`` of a follower asks for, as a generated client following the README.
WAIT_SECONDS = 20.0
#: How often the hand-wired Ladon + huey clients poll, as Ladon users do.
HAND_POLL = 0.5
#: Longest a follower follows past its task's length before it counts the task as lost.
FOLLOW_MARGIN = 60.0
#: Longest one request may take.
REQUEST_TIMEOUT = 60.0
#: mod_wsgi with the README's settings.
APACHE_PROCESSES = 3
APACHE_THREADS = 25


@dataclass(frozen=True)
class Plan:
    clients: int = 1000
    task_seconds: float = 3.0
    ramp: float = 10.0
    probe_interval: float = 0.05
    quick: bool = False

    @property
    def slots(self) -> int:
        """Bodies that may run at once: half again the tasks running together on average,
        so that no task queues for a slot."""
        together = self.clients * self.task_seconds / max(self.ramp, self.task_seconds)
        return min(self.clients, math.ceil(1.5 * together) + 10)


QUICK_PLAN = Plan(clients=100, task_seconds=1.0, ramp=2.0, quick=True)


def task_length(plan: Plan, number: int) -> float:
    """Client ``number``'s task: ``task_seconds`` give or take a third, spread evenly over
    the clients. Tasks of one same length would finish in step with the clients' asks
    every ``poll_after`` (1 s) - just after one ask, or just before it, by a few
    milliseconds that depend on the server - and the finish-to-seen figures would say
    more about that step than about the server."""
    spread = (number * 0.6180339887) % 1.0 - 0.5  # evenly over [-0.5, 0.5), no two alike
    return plan.task_seconds * (1.0 + 2.0 * spread / 3.0)


# -- the clients ----------------------------------------------------------------------


class Http:
    """JSON-WSP over raw HTTP/1.1 from a coroutine: one connection per request."""

    def __init__(self, port: int, service: str) -> None:
        self.port = port
        self.path = f"/{service}/jsonwsp"

    async def call(self, method: str, **args: Any) -> Any:
        body = json.dumps({"methodname": method, "args": args}).encode()
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        try:
            writer.write(
                f"POST {self.path} HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode() + body
            )
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            status = int(lines[0].split()[1])
            length = next((int(line.split(":", 1)[1]) for line in lines[1:]
                           if line.lower().startswith("content-length:")), None)
            data = await (reader.readexactly(length) if length is not None else reader.read())
        finally:
            writer.close()
        if status != 200 and not data.startswith(b"{"):
            raise http.client.HTTPException(f"HTTP {status}: {data[:100]!r}")
        answer = json.loads(data)
        if answer.get("type") == "jsonwsp/fault":
            raise WireFault(answer.get("fault") or {})
        return answer["result"]


@dataclass
class Followed:
    """What the clients of one row saw."""

    seen_after: list[float] = field(default_factory=list)
    #: Of each follower, the time its last request (the one that saw the end) took, and
    #: whether its end was seen late (past a second) and how: the wait it asked before
    #: the end, its pause, or the answer's own time.
    last_request: list[float] = field(default_factory=list)
    asked_before_end: list[float] = field(default_factory=list)
    requests: int = 0
    told_to_wait: int = 0
    lost: int = 0
    faults: Faults = field(default_factory=Faults)


async def follow_ours(client: Http, seconds: float, seen: Followed) -> None:
    """Start, then ``_wait``; unless finished, sleep ``poll_after`` and ask again."""
    task_id = (await client.call("sleepy", seconds=seconds))["task_id"]
    seen.requests += 1
    deadline = time.monotonic() + seconds + FOLLOW_MARGIN
    while time.monotonic() < deadline:
        asked = time.time()
        status = await client.call("sleepy_wait", task_id=task_id, seconds=WAIT_SECONDS)
        seen.requests += 1
        if status["finished"]:
            seen.seen_after.append(time.time() - status["finishtime"])
            seen.last_request.append(time.time() - asked)
            seen.asked_before_end.append(status["finishtime"] - asked)
            return
        if status["poll_after"] > 0:
            seen.told_to_wait += 1
        await asyncio.sleep(status["poll_after"])
    seen.lost += 1


async def follow_by_hand(client: Http, seconds: float, seen: Followed) -> None:
    """Start, then ``peek`` every ``HAND_POLL`` seconds until the job has ended."""
    job_id = await client.call("startSleep", seconds=seconds)
    seen.requests += 1
    deadline = time.monotonic() + seconds + FOLLOW_MARGIN
    while time.monotonic() < deadline:
        await asyncio.sleep(HAND_POLL)
        asked = time.time()
        ended = await client.call("peek", job_id=job_id)
        seen.requests += 1
        if ended:
            seen.seen_after.append(time.time() - ended)
            seen.last_request.append(time.time() - asked)
            seen.asked_before_end.append(ended - asked)
            return
    seen.lost += 1


async def crowd(port: int, service: str, plan: Plan, follow: Callable[..., Any], seen: Followed) -> None:
    """``plan.clients`` followers, started evenly over ``plan.ramp`` seconds."""
    client = Http(port, service)

    async def one(number: int) -> None:
        await asyncio.sleep(plan.ramp * number / plan.clients)
        try:
            seconds = task_length(plan, number)
            await asyncio.wait_for(follow(client, seconds, seen), seconds + FOLLOW_MARGIN + REQUEST_TIMEOUT)
        except Exception as error:  # noqa: BLE001 - counted in the row
            seen.faults.count(error)

    await asyncio.gather(*(one(number) for number in range(plan.clients)))


# -- the plain call beside them --------------------------------------------------------


def probe(port: int, service: str, interval: float) -> None:
    """In a process of its own: the plain method every ``interval`` seconds, each call on
    a new connection, until stdin closes; then the seconds each took (``null`` for a
    failed one) as JSON on stdout."""
    stop = threading.Event()
    threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
    took: list[float | None] = []
    body = json.dumps({"methodname": "echo", "args": {"value": 7}})
    while not stop.is_set():
        began = time.perf_counter()
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=REQUEST_TIMEOUT)
        try:
            connection.request("POST", f"/{service}/jsonwsp", body, {"Content-Type": "application/json"})
            answer = json.loads(connection.getresponse().read())
            took.append(time.perf_counter() - began if answer.get("result") == 7 else None)
        except Exception:  # noqa: BLE001 - a failed plain call is a figure
            took.append(None)
        finally:
            connection.close()
        stop.wait(interval)
    print(json.dumps(took))


class Prober:
    def __init__(self, port: int, service: str, interval: float) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bench.bench_clients", "--probe", str(port), service, str(interval)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=Path(__file__).resolve().parents[1],
        )

    def finish(self) -> list[float | None]:
        out, _ = self.process.communicate("", timeout=REQUEST_TIMEOUT + 30)
        return json.loads(out)


# -- the systems ----------------------------------------------------------------------


@dataclass
class System:
    label: str
    kind: str  # serve-memory, serve-redis, apache, huey
    redis: RedisServer | None = None
    web: RunningServer | ModWsgi | None = None
    worker: subprocess.Popen | None = None

    @property
    def ours(self) -> bool:
        return self.kind != "huey"

    @property
    def service(self) -> str:
        return OUR_SERVICE if self.ours else PEER_SERVICE

    def start(self, plan: Plan, work_dir: Path, log_dir: Path) -> None:
        work_dir.mkdir(parents=True)
        if self.kind != "serve-memory":
            self.redis = start_redis(work_dir / "redis")
        quiet = ("--no-dashboard", "--log-level", "WARNING")
        if self.kind == "serve-memory":
            self.web = start_server([str(OUR_SERVICE_FILE)], log_dir, "--thread-workers", str(plan.slots), *quiet)
        elif self.kind == "serve-redis":
            assert self.redis is not None
            self.web = start_server([str(OUR_SERVICE_FILE)], log_dir, "--thread-workers", str(plan.slots),
                                    "--redis", self.redis.url, *quiet)
        elif self.kind == "apache":
            assert self.redis is not None
            per_daemon = math.ceil(1.5 * plan.slots / APACHE_PROCESSES)
            settings = {"LADON_TASKS_SERVICES": str(OUR_SERVICE_FILE), "LADON_TASKS_REDIS_URL": self.redis.url,
                        "LADON_TASKS_THREAD_WORKERS": str(per_daemon)}
            self.web = ModWsgi(work_dir / "apache", APACHE_PROCESSES, settings, HANDLER,
                               threads=APACHE_THREADS).start()
        else:
            assert self.redis is not None
            consumer = peers.Peer("huey", "huey", "huey_consumer", (
                "peer_huey.huey", "--workers", str(plan.slots), "--worker-type", "thread", "--logfile", "/dev/null",
                "--quiet"))
            self.worker = consumer.start_worker(self.redis.url, log_dir / "clients-huey-worker.log")
            self.web = ladon_server.start(SERVICES_DIR, ["peer_service"], log_dir / "clients-huey-web.log",
                                          env={"BENCH_PEER": "huey", "BENCH_REDIS_URL": self.redis.url})

    def roots(self) -> dict[str, int]:
        """The process trees whose CPU is reported, by role."""
        found: dict[str, int] = {}
        if isinstance(self.web, ModWsgi):
            pid = self.web.main_pid()
            if pid:
                found["web"] = pid
        elif self.web is not None:
            found["web"] = self.web.process.pid
        if self.redis is not None and self.redis.process is not None:
            found["redis"] = self.redis.process.pid
        if self.worker is not None:
            found["huey consumer"] = self.worker.pid
        return found

    def stop(self, log_dir: Path) -> None:
        steps: list[Callable[[], None]] = []
        if isinstance(self.web, ModWsgi):
            web = self.web
            steps.append(lambda: (log_dir / "clients-apache-error.log").write_text(web.error_log()))
        if self.web is not None:
            steps.append(self.web.stop)
        if self.worker is not None:
            worker = self.worker
            steps.append(lambda: stop_process_group(worker))
        if self.redis is not None:
            steps.append(self.redis.stop)
        stop_each(steps)


def systems() -> list[System]:
    return [
        System("ladon-tasks serve, in-process store", "serve-memory"),
        System("ladon-tasks serve, Redis store", "serve-redis"),
        System(f"ladon-tasks mod_wsgi {APACHE_PROCESSES}x{APACHE_THREADS}, Redis store", "apache"),
        System(f"Ladon + huey by hand, polling every {HAND_POLL:g} s", "huey"),
    ]


# -- one row --------------------------------------------------------------------------


@dataclass
class Row:
    label: str
    followed: Followed = field(default_factory=Followed)
    plain: list[float | None] = field(default_factory=list)
    cpu_seconds: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0
    error: str | None = None
    noise: dict[str, Any] = field(default_factory=dict)

    @property
    def plain_ok(self) -> list[float]:
        return [took for took in self.plain if took is not None]

    def to_json(self) -> dict[str, Any]:
        followed = self.followed
        done = len(followed.seen_after)
        seen_and_asked = list(zip(followed.seen_after, followed.asked_before_end, strict=True))
        seen_under_way = [after for after, before in seen_and_asked if before >= 0]
        seen_asked_after = [after for after, before in seen_and_asked if before < 0]
        request_asked_after = [took for took, before
                               in zip(followed.last_request, followed.asked_before_end, strict=True) if before < 0]
        return {
            "system": self.label, "error": self.error, "seconds": self.seconds,
            "plain_calls": len(self.plain), "plain_failed": len(self.plain) - len(self.plain_ok),
            "plain_p50_ms": 1000 * percentile(self.plain_ok, 0.5),
            "plain_p99_ms": 1000 * percentile(self.plain_ok, 0.99),
            "plain_max_ms": 1000 * max(self.plain_ok, default=float("nan")),
            "followed": done, "lost": followed.lost,
            "seen_p50_ms": 1000 * percentile(followed.seen_after, 0.5),
            "seen_p99_ms": 1000 * percentile(followed.seen_after, 0.99),
            "seen_within_1s": sum(1 for after in followed.seen_after if after <= 1.0) / done if done else float("nan"),
            "last_request_p50_ms": 1000 * percentile(followed.last_request, 0.5),
            "last_request_p99_ms": 1000 * percentile(followed.last_request, 0.99),
            # the last request was under way when the task ended: a held wait, or a
            # refused one whose answer was read after the end
            "seen_by_a_request_under_way": sum(1 for before in followed.asked_before_end if before >= 0) / done
            if done else float("nan"),
            # the finish-to-seen time of those followers, and of the others (who asked
            # after the end: their pause, then their request)
            "seen_under_way_p50_ms": 1000 * percentile(seen_under_way, 0.5),
            "seen_under_way_p99_ms": 1000 * percentile(seen_under_way, 0.99),
            "seen_asked_after_p50_ms": 1000 * percentile(seen_asked_after, 0.5),
            "seen_asked_after_p99_ms": 1000 * percentile(seen_asked_after, 0.99),
            "asked_after_request_p50_ms": 1000 * percentile(request_asked_after, 0.5),
            "asked_after_request_p99_ms": 1000 * percentile(request_asked_after, 0.99),
            "requests_per_task": followed.requests / done if done else float("nan"),
            "told_to_wait_per_task": followed.told_to_wait / done if done else float("nan"),
            "cpu_ms_per_task": {role: 1000 * seconds / done if done else float("nan")
                                for role, seconds in self.cpu_seconds.items()},
            "faults": followed.faults.to_json(), "noise": self.noise,
        }


def role_ticks(roots: dict[str, int]) -> dict[str, int]:
    ticks, children = process_ticks()
    found = {role: sum(ticks[pid] for pid in processes_below([root], ticks, children))
             for role, root in roots.items()}
    found["clients"] = own_ticks()
    return found


def measure(system: System, plan: Plan, account: CpuAccount) -> Row:
    row = Row(system.label)
    assert system.web is not None
    follow = follow_ours if system.ours else follow_by_hand
    roots = system.roots()
    for pid in roots.values():
        account.add_root(pid)
    prober = Prober(system.web.port, system.service, plan.probe_interval)
    began = time.perf_counter()
    before = role_ticks(roots)
    try:
        with account.window() as share:
            asyncio.run(crowd(system.web.port, system.service, plan, follow, row.followed))
    finally:
        after = role_ticks(roots)
        row.seconds = time.perf_counter() - began
        row.plain = prober.finish()
    row.cpu_seconds = {role: (after.get(role, 0) - ticks) / TICKS for role, ticks in before.items()}
    row.noise = share.to_json()
    return row


# -- the report -----------------------------------------------------------------------


def format_rows(rows: list[Row], plan: Plan) -> str:
    roles = ["clients", "web", "redis", "huey consumer"]
    header = ("system", "plain p50 ms", "plain p99 ms", "plain max ms", "seen p50 ms", "seen p99 ms", "seen <= 1 s",
              "requests/task", "told to wait/task", *(f"CPU ms/task {role}" for role in roles), "errors")
    table = [header]
    for row in rows:
        figures = row.to_json()
        cpu = figures["cpu_ms_per_task"]
        errors = figures["faults"]["total"] + figures["lost"] + figures["plain_failed"]
        table.append((
            row.label, f"{figures['plain_p50_ms']:.1f}", f"{figures['plain_p99_ms']:.1f}",
            f"{figures['plain_max_ms']:.0f}", f"{figures['seen_p50_ms']:.0f}", f"{figures['seen_p99_ms']:.0f}",
            f"{100 * figures['seen_within_1s']:.1f} %", f"{figures['requests_per_task']:.1f}",
            f"{figures['told_to_wait_per_task']:.1f}" if "huey" not in row.label else "-",
            *(f"{cpu[role]:.1f}" if role in cpu else "-" for role in roles),
            f"{errors:,}" + (" +failed" if row.error else ""),
        ))
    lines = [f"{plan.clients} clients, each following a task of {plan.task_seconds:g} s (+-1/3), started over "
             f"{plan.ramp:g} s; a plain call every {plan.probe_interval:g} s beside them", text_table(table)]
    for row in rows:
        problems = row.followed.faults.summary() + ([f"{row.followed.lost} lost"] if row.followed.lost else [])
        failed_plain = len(row.plain) - len(row.plain_ok)
        problems += [f"{failed_plain} plain calls failed"] if failed_plain > 0 else []
        problems += [f"failed: {row.error}"] if row.error else []
        if problems:
            lines.append(f"{row.label}: " + "; ".join(problems))
    return "\n".join(lines)


def run(plan: Plan, output: Path, only: list[str] | None) -> int:
    output.parent.mkdir(parents=True, exist_ok=True)
    log_dir = output.parent / "clients-logs"
    shutil.rmtree(log_dir, ignore_errors=True)
    log_dir.mkdir()
    scratch = output.parent / "clients-work"  # beside the repository: Apache's daemons (www-data) reach it
    shutil.rmtree(scratch, ignore_errors=True)
    account = CpuAccount()
    rows: list[Row] = []
    began = time.perf_counter()
    try:
        for number, system in enumerate(s for s in systems() if wanted(s.label, only)):
            try:
                system.start(plan, scratch / str(number), log_dir)
                row = measure(system, plan, account)
            except Exception as error:  # noqa: BLE001 - reported in its row
                row = Row(system.label, error=" ".join(f"{type(error).__name__}: {error}".split())[:300])
            finally:
                system.stop(log_dir)
            print(f"  {system.label}: {row.seconds:.0f} s" + (f"  FAILED: {row.error}" if row.error else ""),
                  file=sys.stderr, flush=True)
            rows.append(row)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    elapsed = time.perf_counter() - began
    print(format_rows(rows, plan))
    print(f"took {elapsed:.0f} s; {account.total.describe()}")
    if plan.quick:
        print("quick run: too small for the figures to be judged")
    report = {"environment": environment("huey", "mod_wsgi"), "plan": asdict(plan), "seconds": round(elapsed, 1),
              "cpu": account.total.to_json(), "rows": [row.to_json() for row in rows]}
    output.write_text(json.dumps(report, indent=2) + "\n")
    print(f"figures written to {output}")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--probe"]:
        probe(int(argv[1]), argv[2], float(argv[3]))
        return 0
    parser = arguments(__doc__, "clients", "100 clients, tasks of 1 s")
    parser.add_argument("--clients", type=int, default=None, help="followers (default 1,000)")
    parser.add_argument("--task-seconds", type=float, default=None, help="length of each task (default 3)")
    parser.add_argument("--ramp", type=float, default=None, help="seconds over which the clients start (default 10)")
    parser.add_argument("--only", nargs="+", default=None, help="only systems whose label has one of these words")
    args = parser.parse_args(argv)
    plan = QUICK_PLAN if args.quick else Plan()
    changes = {name: value for name, value in (("clients", args.clients), ("task_seconds", args.task_seconds),
                                               ("ramp", args.ramp)) if value is not None}
    plan = Plan(**{**asdict(plan), **changes})
    if plan.clients < 1 or plan.task_seconds <= 0 or plan.ramp < 0:
        parser.error("--clients, --task-seconds and --ramp must be positive")
    return run(plan, args.output, args.only)


if __name__ == "__main__":
    sys.exit(main())
