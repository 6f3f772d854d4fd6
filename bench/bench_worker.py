"""Worker bench: what one worker costs per task when its queue is full, against huey's
consumer on the same load.

N no-op tasks are queued first, through each system's own API (ladon-tasks:
``TaskRuntime.start`` with the queue executor, as ``bench_queue``'s "ladon-tasks API"
rows; huey: calling the task), with no worker running. Then the worker starts and works
until the queue is empty: ``ladon-tasks worker --threads --concurrency S --burst`` (it
exits when no job is left), and ``huey_consumer`` with S worker threads (stopped once
every result is stored). Per system:

* **worker CPU per task**: the worker process's user + system time (``wait4``'s rusage
  for ours, ``/proc/PID/stat`` for huey's consumer, which does not exit by itself), less
  that of the same worker started on an empty queue (imports, connections, its first
  read), divided by N;
* **Redis commands per task**: ``INFO commandstats`` from just before the worker starts
  until the queue is empty (commands inside Lua scripts included; the bench's own polls
  left out), less the empty run's, divided by N;
* **tasks/s**: N over the drain's wall time less the empty run's.

CPU per task and commands per task are the figures that travel on a busy machine; the
rate moves with whatever else runs. The run reports the load average and the share of
the machine other processes used (:mod:`bench.noise`).

``--profile PATH`` runs our worker under ``py-spy record`` (the thread holding the GIL
at each sample, raw folded stacks written to PATH; py-spy must be installed): its
figures include py-spy's own time and are not judged.

    python -m bench.bench_worker [--quick] [--tasks 3000] [--slots 2 8] [--rounds 3] [--only ours|huey]
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from bench import peers
from bench.benchlib import BENCH_COMMANDS, SERVICES_DIR, arguments, environment, ratio, text_table, wanted
from bench.noise import TICKS, CpuAccount
from tests.support.processes import spawn, stop_process_group
from tests.support.redis_server import RedisServer, start_redis
from tests.support.servers import ROOT

SERVICE_FILE = SERVICES_DIR / "queue_service.py"
#: Longest a drain may take (about 1 task/s at worst, as the queue bench allows).
DRAIN_DEADLINE = 600.0
#: Seconds between the bench's looks at huey's result hash while its consumer drains.
POLL = 0.01


@dataclass
class Drain:
    """One worker run on a queue of ``tasks`` jobs: its CPU seconds, wall seconds and
    Redis commands."""

    tasks: int
    cpu: float
    wall: float
    commands: dict[str, int] = field(default_factory=dict)
    #: Of ``cpu``, the seconds spent in the kernel (system calls, thread switches).
    system: float = 0.0

    @property
    def command_count(self) -> int:
        return sum(self.commands.values())


@dataclass
class Row:
    """One system at one number of slots, over the rounds of the run."""

    label: str
    #: ``ours`` or ``huey``: what the row measures, for readers of the JSON.
    kind: str
    slots: int
    tasks: int
    cpu_us: list[float] = field(default_factory=list)
    commands: list[float] = field(default_factory=list)
    rates: list[float] = field(default_factory=list)
    empty_cpu_ms: list[float] = field(default_factory=list)
    #: Of the CPU per task, the share spent in the kernel, per round.
    system_share: list[float] = field(default_factory=list)
    #: Per task, by command, in the last round (the empty run's left out).
    per_task: dict[str, float] = field(default_factory=dict)
    error: str | None = None

    def add(self, full: Drain, empty: Drain) -> None:
        self.cpu_us.append((full.cpu - empty.cpu) * 1e6 / full.tasks)
        self.commands.append((full.command_count - empty.command_count) / full.tasks)
        self.rates.append(full.tasks / max(1e-6, full.wall - empty.wall))
        self.empty_cpu_ms.append(empty.cpu * 1e3)
        spent = full.cpu - empty.cpu
        self.system_share.append((full.system - empty.system) / spent if spent > 0 else 0.0)
        self.per_task = {name: round((count - empty.commands.get(name, 0)) / full.tasks, 3)
                         for name, count in sorted(full.commands.items(), key=lambda item: -item[1])}

    @staticmethod
    def _median(values: list[float]) -> float:
        ordered = sorted(values)
        return ordered[len(ordered) // 2] if ordered else 0.0

    @property
    def cpu(self) -> float:
        return self._median(self.cpu_us)

    @property
    def cpu_least(self) -> float:
        """The least CPU per task of the rounds: others' work on the machine only adds
        (cache misses, lock hand-offs), so the least is the steadiest figure of a busy run."""
        return min(self.cpu_us, default=0.0)

    @property
    def cmds(self) -> float:
        return self._median(self.commands)

    @property
    def rate(self) -> float:
        return self._median(self.rates)


def _stat_of(pid: int) -> list[str]:
    """The fields of ``/proc/PID/stat`` after the command name."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def _cpu_of(pid: int) -> float:
    """User + system seconds of a live process."""
    fields_ = _stat_of(pid)
    return (int(fields_[11]) + int(fields_[12])) / TICKS


def _system_of(pid: int) -> float:
    """System seconds of a live process."""
    return int(_stat_of(pid)[12]) / TICKS


# -- ladon-tasks ------------------------------------------------------------------------------


def queue_ours(redis_server: RedisServer, tasks: int) -> None:
    """``tasks`` no-op tasks queued through the shipped API, no worker running."""
    from ladon_tasks.redis import RedisStore
    from ladon_tasks.runtime import TaskRuntime

    if str(SERVICES_DIR) not in sys.path:
        sys.path.insert(0, str(SERVICES_DIR))
    import queue_service  # the module name the worker resolves the job's reference to

    spec = queue_service.QueueBenchService.__dict__["noop"].spec
    runtime = TaskRuntime(RedisStore(redis_server.url))
    try:
        for value in range(tasks):
            runtime.start(spec, (value,), {})
    finally:
        runtime.shutdown(wait=False)


def drain_ours(redis_server: RedisServer, tasks: int, slots: int, log_dir: Path,
               profile: Path | None = None) -> Drain:
    """Queue ``tasks`` jobs, then one ``ladon-tasks worker --threads --burst`` until the
    queue is empty; its rusage from ``wait4``."""
    redis_server.counter().flushall()
    queue_ours(redis_server, tasks)
    redis_server.reset_stats()
    command = [sys.executable, "-m", "ladon_tasks", "worker", str(SERVICE_FILE), "--redis", redis_server.url,
               "--threads", "--concurrency", str(slots), "--burst", "--log-level", "WARNING"]
    if profile is not None:
        command = [str(Path(sys.executable).with_name("py-spy")), "record", "--format", "raw", "--threads", "--gil",
                   "--rate", "500", "--output", str(profile), "--", *command]
    began = time.perf_counter()
    process = spawn(command, log_dir / f"ours-{slots}-{tasks}-{time.time_ns()}.log", ROOT)
    try:
        deadline = time.monotonic() + DRAIN_DEADLINE
        while True:
            pid, status, usage = os.wait4(process.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"the worker did not empty its queue of {tasks} in {DRAIN_DEADLINE:.0f}s")
            time.sleep(POLL)
        wall = time.perf_counter() - began
        process.returncode = os.waitstatus_to_exitcode(status)
    finally:
        stop_process_group(process)
    if process.returncode != 0:
        raise RuntimeError(f"the worker exited with {process.returncode}")
    commands = redis_server.commands(BENCH_COMMANDS)
    _check_ours(redis_server, tasks)
    return Drain(tasks, usage.ru_utime + usage.ru_stime, wall, commands, usage.ru_stime)


def _check_ours(redis_server: RedisServer, tasks: int) -> None:
    from ladon_tasks.redis import RedisStore

    store = RedisStore(redis_server.url)
    try:
        counts = store.counts()
    finally:
        store.close()
    done = sum(method.finished("succeeded") for method in counts.methods.values())
    if done != tasks:
        raise RuntimeError(f"{done} of {tasks} tasks succeeded")


# -- huey ---------------------------------------------------------------------------------------


def drain_huey(redis_server: RedisServer, tasks: int, slots: int, log_dir: Path) -> Drain:
    """Queue ``tasks`` jobs by calling huey's task, then ``huey_consumer`` with ``slots``
    threads until every result is stored (``HLEN`` of its result hash, polled; those polls
    are left out of the counts). On an empty queue, until one of its threads waits on the
    queue (``BRPOP`` in ``CLIENT LIST``)."""
    redis_server.counter().flushall()
    peer = peers.huey(slots)
    producer = peer.producer(redis_server.url)
    try:
        for value in range(tasks):
            producer.start(value)
    finally:
        producer.close()
    redis_server.reset_stats()
    counter = redis_server.counter()
    results_key = "huey.results.bench"
    began = time.perf_counter()
    process = peer.start_worker(redis_server.url, log_dir / f"huey-{slots}-{tasks}-{time.time_ns()}.log")
    polls = 0
    try:
        deadline = time.monotonic() + DRAIN_DEADLINE
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"huey_consumer exited with {process.returncode}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"huey did not empty its queue of {tasks} in {DRAIN_DEADLINE:.0f}s")
            if tasks:
                polls += 1
                if counter.hlen(results_key) >= tasks:
                    break
            elif any(client.get("cmd") == "brpop" for client in counter.client_list()):
                break  # started: its threads wait on the empty queue
            time.sleep(POLL)
        wall = time.perf_counter() - began
        cpu, system = _cpu_of(process.pid), _system_of(process.pid)
        commands = redis_server.commands(BENCH_COMMANDS)
    finally:
        stop_process_group(process)
    if polls:
        commands["hlen"] = commands.get("hlen", 0) - polls
    return Drain(tasks, cpu, wall, commands, system)


# -- the run -------------------------------------------------------------------------------------


def run(tasks: int, slot_counts: list[int], rounds: int, only: list[str] | None, output: Path,
        profile: Path | None, quick: bool) -> int:
    output.parent.mkdir(parents=True, exist_ok=True)
    log_dir = output.parent / "worker-logs"
    shutil.rmtree(log_dir, ignore_errors=True)
    log_dir.mkdir()
    account = CpuAccount()
    load_before = os.getloadavg()
    rows: list[Row] = []
    began = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-worker-redis-") as scratch:
        redis_server = start_redis(Path(scratch) / "redis")
        try:
            for slots in slot_counts:
                systems = [("ladon-tasks worker --threads", "ours"), ("huey 3.5 consumer, threads", "huey")]
                for label, kind in systems:
                    if not wanted(kind, only):
                        continue
                    row = Row(f"{label}, {slots} slots", kind, slots, tasks)
                    rows.append(row)
                    try:
                        for number in range(rounds):
                            with account.window():
                                if kind == "ours":
                                    empty = drain_ours(redis_server, 0, slots, log_dir)
                                    last = profile if profile is not None and number == rounds - 1 else None
                                    full = drain_ours(redis_server, tasks, slots, log_dir, last)
                                else:
                                    empty = drain_huey(redis_server, 0, slots, log_dir)
                                    full = drain_huey(redis_server, tasks, slots, log_dir)
                            row.add(full, empty)
                            print(f"  {row.label:<40} round {number + 1}: {row.cpu_us[-1]:,.0f} µs/task, "
                                  f"{row.commands[-1]:.2f} cmds/task, {row.rates[-1]:,.0f} tasks/s",
                                  file=sys.stderr, flush=True)
                    except Exception as error:  # noqa: BLE001 - the row reports it, the run goes on
                        row.error = f"{type(error).__name__}: {str(error)[:300]}"
                        print(f"  {row.label}: FAILED: {row.error}", file=sys.stderr, flush=True)
        finally:
            redis_server.stop()
    load_after = os.getloadavg()
    print(format_table(rows))
    for row in rows:
        if row.per_task:
            print(f"\n{row.label}, commands per task: "
                  + ", ".join(f"{name.upper()} {n:.2f}" for name, n in row.per_task.items() if n >= 0.005))
    print(f"\n{tasks:,} tasks queued first, {rounds} round(s) per row, medians; took "
          f"{time.perf_counter() - began:.0f} s")
    print(f"load average before {load_before[0]:.1f}, after {load_after[0]:.1f}; {account.total.describe()}")
    if profile is not None:
        print(f"py-spy's folded stacks of the last round of ours: {profile} (its figures include py-spy)")
    if quick:
        print("quick run: too short for the figures to be judged")
    report = {
        "environment": environment("huey", "hiredis"),
        "tasks": tasks, "rounds": rounds, "load": [load_before[0], load_after[0]],
        "cpu": account.total.to_json(),
        "rows": [asdict(row) | {"cpu_us_median": row.cpu, "cpu_us_least": row.cpu_least,
                              "commands_median": row.cmds, "rate_median": row.rate}
                 for row in rows],
    }
    output.write_text(json.dumps(report, indent=2) + "\n")
    print(f"figures written to {output}")
    return 0


def format_table(rows: list[Row]) -> str:
    lines = [("system", "worker CPU µs/task", "least", "vs huey", "in kernel", "cmds/task", "tasks/s",
              "empty start ms", "rounds (µs)")]
    for row in rows:
        huey = next((r for r in rows if r.slots == row.slots and r.kind == "huey" and not r.error), None)
        lines.append((row.label, f"{row.cpu:,.0f}", f"{row.cpu_least:,.0f}",
                      ratio(row.cpu, huey.cpu) if huey else "-", f"{100 * Row._median(row.system_share):.0f} %",
                      f"{row.cmds:.2f}",
                      f"{row.rate:,.0f}", f"{Row._median(row.empty_cpu_ms):,.0f}",
                      " ".join(f"{v:,.0f}" for v in row.cpu_us) + (f"  FAILED: {row.error}" if row.error else "")))
    return text_table(lines)


def main(argv: list[str] | None = None) -> int:
    parser = arguments(__doc__, "worker", "300 tasks, one round")
    parser.add_argument("--tasks", type=int, default=None, help="tasks queued before each drain (default 3000)")
    parser.add_argument("--slots", type=int, nargs="+", default=[2, 8], help="worker slots (default 2 8)")
    parser.add_argument("--rounds", type=int, default=None, help="drains per row, the median reported (default 3)")
    parser.add_argument("--only", nargs="+", default=None, help="ours, huey")
    parser.add_argument("--profile", type=Path, default=None, help="py-spy folded stacks of our last drain")
    args = parser.parse_args(argv)
    tasks = args.tasks or (300 if args.quick else 3000)
    rounds = args.rounds or (1 if args.quick else 3)
    if tasks < 1 or rounds < 1 or min(args.slots) < 1:
        parser.error("--tasks, --rounds and --slots must be at least 1")
    return run(tasks, args.slots, rounds, args.only, args.output, args.profile, args.quick)


if __name__ == "__main__":
    sys.exit(main())
