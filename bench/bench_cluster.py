"""Redis Cluster bench: what a queued task costs, and how fast tasks go, on one
``redis-server`` and on Redis Clusters of 1, 2 and 3 primaries, in one run.

Each deployment is started fresh (real ``redis-server`` processes on free loopback
ports: ``tests.support.redis_server`` and ``tests.support.redis_cluster``), with the same
``ladon-tasks worker`` processes (``--threads``, several slots each) on its URL, and fed
from this process the way ``bench_queue``'s API row is: producer threads each start a
no-op task with ``TaskRuntime.start`` (queue executor) and wait for it with the store's
``wait``, then start the next. Per deployment:

* **tasks/s** end to end over a fixed number of tasks;
* **commands per task**: ``INFO commandstats`` deltas summed over every node (commands
  run inside Lua scripts included; the bench's own ``INFO`` and ``CONFIG`` left out),
  so the cluster's extra reads - a worker looking at every shard, owner leases renewed
  on every shard - show;
* **Redis CPU per task**: ``INFO cpu`` (``used_cpu_sys`` + ``used_cpu_user``) deltas
  summed over every node, in microseconds per task, and the busiest node's share.

The machine has few cores, shared by the producers, the workers and every node, so
tasks/s says what this machine reaches, not what a cluster can take: the Redis CPU per
task is the figure that travels. From it the run estimates, on paper, the ceiling of a
10-primary cluster (assumptions printed with it). Deployments run in turn, round by
round, and the run says how much CPU others took (:mod:`bench.noise`).

    python -m bench.bench_cluster [--quick] [--output bench/output/cluster.json]
"""

from __future__ import annotations

import json
import shutil
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.benchlib import BENCH_COMMANDS, SERVICES_DIR, TASK_DEADLINE, arguments, environment, text_table
from bench.noise import CpuAccount
from tests.support.redis_cluster import start_cluster
from tests.support.redis_server import RedisServer, start_redis
from tests.support.workers import Workers

SERVICE_FILE = SERVICES_DIR / "queue_service.py"

#: Deployments measured: a label and the number of primaries (0: one plain redis-server).
DEPLOYMENTS = (("one redis-server", 0), ("cluster, 1 primary", 1), ("cluster, 2 primaries", 2),
               ("cluster, 3 primaries", 3))

#: Share of one core a primary is run at, at most, in the paper estimate: the README's
#: rule for when one Redis is enough.
CORE_BUDGET = 0.7

#: Primaries of the cluster the run estimates for.
ESTIMATE_PRIMARIES = 10


@dataclass
class Plan:
    rounds: int = 3
    tasks: int = 3000
    warmup: int = 300
    producers: int = 8
    workers: int = 2
    slots: int = 4


@dataclass
class Deployment:
    """One Redis deployment under test, its URL and its nodes (each a redis-server)."""

    label: str
    primaries: int
    url: str
    nodes: list[RedisServer]

    def cpu_seconds(self) -> list[float]:
        found = []
        for node in self.nodes:
            info = node.counter().info("cpu")
            found.append(float(info["used_cpu_sys"]) + float(info["used_cpu_user"]))
        return found

    def reset(self) -> None:
        for node in self.nodes:
            node.reset_stats()

    def commands(self) -> dict[str, int]:
        """Calls per command since the reset, summed over the nodes."""
        total: dict[str, int] = {}
        for node in self.nodes:
            for name, count in node.commands(leave_out=BENCH_COMMANDS).items():
                total[name] = total.get(name, 0) + count
        return total

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()


def start_deployment(label: str, primaries: int, directory: Path) -> Deployment:
    if primaries == 0:
        server = start_redis(directory)
        return Deployment(label, 0, server.url, [server])
    cluster = start_cluster(directory, primaries)
    return Deployment(label, primaries, cluster.url, cluster.nodes)


@dataclass
class Phase:
    """One measured window on one deployment."""

    tasks: int
    seconds: float
    by_command: dict[str, int]
    cpu_per_node: list[float] = field(default_factory=list)

    @property
    def commands(self) -> int:
        return sum(self.by_command.values())

    @property
    def rate(self) -> float:
        return self.tasks / self.seconds

    @property
    def cpu_us_per_task(self) -> float:
        return sum(self.cpu_per_node) / self.tasks * 1e6

    @property
    def busiest_share(self) -> float:
        total = sum(self.cpu_per_node)
        return max(self.cpu_per_node) / total if total else 0.0


class Feeder:
    """The producer side: a runtime on the deployment's URL, and the no-op task's spec."""

    def __init__(self, url: str) -> None:
        from ladon_tasks import codec
        from ladon_tasks.redis import open_store
        from ladon_tasks.runtime import TaskRuntime

        if str(SERVICES_DIR) not in sys.path:
            sys.path.insert(0, str(SERVICES_DIR))
        import queue_service  # the module name the worker resolves the job's reference to

        self.spec = queue_service.QueueBenchService.__dict__["noop"].spec
        self.runtime = TaskRuntime(open_store(url))
        self.decode = codec.decode

    def one(self, value: int) -> None:
        record = self.runtime.start(self.spec, (value,), {})
        done = self.runtime.store.wait(record.task_id, TASK_DEADLINE)
        if done is None or self.decode(self.spec.rtype, done.result) != value:
            raise RuntimeError(f"task {record.task_id} not done right: {done}")

    def run(self, tasks: int, producers: int) -> float:
        """``tasks`` tasks from ``producers`` threads; the wall seconds they took."""
        counter = iter(range(tasks))
        lock = threading.Lock()
        errors: list[BaseException] = []
        barrier = threading.Barrier(producers + 1)

        def work() -> None:
            barrier.wait()
            while True:
                with lock:
                    value = next(counter, None)
                if value is None:
                    return
                try:
                    self.one(value)
                except BaseException as exc:  # counted, and the run stops with it
                    errors.append(exc)
                    return

        threads = [threading.Thread(target=work) for _ in range(producers)]
        for thread in threads:
            thread.start()
        barrier.wait()
        started = time.perf_counter()
        for thread in threads:
            thread.join()
        if errors:
            raise errors[0]
        return time.perf_counter() - started

    def close(self) -> None:
        self.runtime.shutdown(wait=False)


def measure(deployment: Deployment, plan: Plan, log_dir: Path, account: CpuAccount) -> Phase:
    workers = Workers(deployment.url, log_dir, services=[str(SERVICE_FILE)],
                      options=("--threads", "--concurrency", str(plan.slots)))
    feeder = None
    try:
        for _ in range(plan.workers):
            workers.start()
        feeder = Feeder(deployment.url)
        feeder.run(plan.warmup, plan.producers)
        deployment.reset()
        cpu_before = deployment.cpu_seconds()
        with account.window():
            seconds = feeder.run(plan.tasks, plan.producers)
        cpu_after = deployment.cpu_seconds()
        commands = deployment.commands()
        return Phase(
            plan.tasks, seconds, commands, [after - before for before, after in zip(cpu_before, cpu_after, strict=True)]
        )
    finally:
        if feeder is not None:
            feeder.close()
        workers.stop_all()


def estimate(rows: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The paper ceiling of a cluster of ``ESTIMATE_PRIMARIES`` primaries, from the Redis
    CPU per task the 3-primary cluster measured."""
    three = rows["cluster, 3 primaries"]
    per_task_us = three["redis_cpu_us_per_task"]
    per_primary_us = per_task_us / 3  # what each primary spent per task, spread evenly
    ceiling = ESTIMATE_PRIMARIES * CORE_BUDGET * 1e6 / per_task_us
    return {
        "primaries": ESTIMATE_PRIMARIES,
        "redis_cpu_us_per_task": per_task_us,
        "tasks_per_second": round(ceiling, -2),
        "one_primary_ceiling": round(CORE_BUDGET * 1e6 / rows["one redis-server"]["redis_cpu_us_per_task"], -2),
        "assumptions": [
            f"Redis CPU is the bound: each primary is run at {CORE_BUDGET:.0%} of its one core",
            f"a task costs the cluster the {per_task_us:.0f} us of Redis CPU the 3-primary cluster measured here "
            f"({per_primary_us:.0f} us on each primary), whatever the number of primaries",
            "tasks spread evenly: shards= a multiple of the primaries (e.g. 40), so each holds as many shards",
            "producers, web processes and workers run on other hosts, enough of them, and the network is not "
            "the limit",
            "short no-op tasks as here; a body that reports progress adds at most one write per 50 ms while it runs",
        ],
    }


def main(argv: list[str] | None = None) -> int:
    args = arguments(__doc__, "cluster", "small counts").parse_args(argv)
    plan = Plan(rounds=1, tasks=400, warmup=100) if args.quick else Plan()
    args.output.parent.mkdir(parents=True, exist_ok=True)
    log_dir = args.output.parent / "cluster-logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    account = CpuAccount()
    phases: dict[str, list[Phase]] = {label: [] for label, _ in DEPLOYMENTS}
    for round_number in range(plan.rounds):
        for label, primaries in DEPLOYMENTS:
            directory = Path(tempfile.mkdtemp(prefix="bench-cluster-"))
            deployment = start_deployment(label, primaries, directory)
            try:
                phase = measure(deployment, plan, log_dir, account)
            finally:
                deployment.stop()
                shutil.rmtree(directory, ignore_errors=True)
            phases[label].append(phase)
            print(f"round {round_number + 1}: {label}: {phase.rate:,.0f} tasks/s, "
                  f"{phase.commands / phase.tasks:.1f} commands/task, {phase.cpu_us_per_task:.0f} us Redis CPU/task",
                  flush=True)

    rows: dict[str, dict[str, Any]] = {}
    for label, measured in phases.items():
        rows[label] = {
            "tasks_per_second": round(statistics.median(phase.rate for phase in measured)),
            "commands_per_task": round(statistics.median(phase.commands / phase.tasks for phase in measured), 1),
            "redis_cpu_us_per_task": round(statistics.median(phase.cpu_us_per_task for phase in measured), 1),
            "busiest_node_share": round(statistics.median(phase.busiest_share for phase in measured), 2),
            "rounds": [{"tasks_per_second": round(p.rate), "commands_per_task": round(p.commands / p.tasks, 2),
                        "redis_cpu_us_per_task": round(p.cpu_us_per_task, 1),
                        "per_task": {name: round(count / p.tasks, 2) for name, count in
                                     sorted(p.by_command.items(), key=lambda item: -item[1])},
                        "cpu_per_node_s": [round(c, 3) for c in p.cpu_per_node]} for p in measured],
        }
    paper = estimate(rows)
    report = {"quick": args.quick, "plan": plan.__dict__, "environment": environment(),
              "cpu": account.total.to_json(), "rows": rows, "estimate": paper}
    args.output.write_text(json.dumps(report, indent=2))
    table = [["deployment", "tasks/s", "commands/task", "Redis CPU/task", "busiest node"]]
    for label, row in rows.items():
        table.append([label, f"{row['tasks_per_second']:,}", f"{row['commands_per_task']:.1f}",
                      f"{row['redis_cpu_us_per_task']:.0f} us", f"{row['busiest_node_share']:.0%}"])
    print(text_table(table))
    print(f"\none primary at {CORE_BUDGET:.0%} of a core: about {paper['one_primary_ceiling']:,.0f} tasks/s")
    print(f"estimate, {ESTIMATE_PRIMARIES} primaries: about {paper['tasks_per_second']:,.0f} tasks/s, assuming:")
    for assumption in paper["assumptions"]:
        print(f"  - {assumption}")
    print(account.total.describe())
    print(f"figures: {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
