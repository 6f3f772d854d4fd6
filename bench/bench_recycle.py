"""Recycling bench: a body that leaks 10 MiB per run, run 500 times by one ``ladon-tasks
worker`` (two slots, child processes), and the worker's total resident memory - the
worker and every process below it - as the runs go on, with and without a recycling
bound.

Variants, each on a fresh worker of a fresh ``redis-server``:

* ``--max-memory-per-child 200``: the worker's bound, over a method with none;
* ``max_memory_per_child=200``: the method's own bound (``tasktype=dict(...)``);
* ``--max-tasks-per-child 10``: the worker's bound by count;
* no bound, for ``--unbounded`` runs only (50 by default: unbounded, 500 runs would
  keep 5 GiB), to show the growth the bounds stop.

Tasks are started from this process (``TaskRuntime.start``) two at a time, so both slots
run, and waited for with the store's ``wait``. The worker tree's resident memory
(``VmRSS`` of each process, from ``/proc``) is read after every tenth of the runs and
sampled every 0.1 s for its peak. Per variant: resident memory at each checkpoint, the
peak, the children the bodies ran in, and the tasks per second.

    python -m bench.bench_recycle [--runs 500] [--unbounded 50] [--quick]
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from bench.benchlib import SERVICES_DIR, TASK_DEADLINE, arguments, environment, text_table
from bench.noise import CpuAccount, process_ticks, processes_below
from tests.support.redis_server import start_redis
from tests.support.workers import Workers

SERVICE_FILE = SERVICES_DIR / "recycle_bench_service.py"
MIB = 1024 * 1024
PAGE = os.sysconf("SC_PAGE_SIZE")

#: (label, method, the worker's options): the bounded variants.
VARIANTS = [
    ("worker --max-memory-per-child 200", "leak", ("--max-memory-per-child", "200")),
    ("method max_memory_per_child=200", "leakBounded", ()),
    ("worker --max-tasks-per-child 10", "leak", ("--max-tasks-per-child", "10")),
]


def tree_resident(root: int) -> int:
    """Resident bytes of ``root`` and every process below it, now."""
    ticks, children = process_ticks()
    total = 0
    for pid in processes_below([root], ticks, children):
        try:
            with open(f"/proc/{pid}/statm", "rb") as statm:
                total += int(statm.read().split()[1])
        except (OSError, IndexError, ValueError):  # gone since the listing
            continue
    return total * PAGE


class Peak:
    """The highest resident memory of a process tree, sampled in a thread."""

    def __init__(self, root: int, interval: float = 0.1) -> None:
        self.root, self.interval, self.bytes = root, interval, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.bytes = max(self.bytes, tree_resident(self.root))

    def __enter__(self) -> "Peak":
        self._thread.start()
        return self

    def __exit__(self, *_: Any) -> None:
        self._stop.set()
        self._thread.join()


def run_variant(label: str, method: str, options: tuple[str, ...], runs: int, scratch: Path,
                log_dir: Path, cpu: CpuAccount) -> dict:
    from ladon_tasks import spec as specs
    from ladon_tasks.redis import RedisStore
    from ladon_tasks.runtime import TaskRuntime

    spec = specs.find("RecycleBenchService", method)
    redis_server = start_redis(scratch / f"redis-{method}-{len(options)}-{time.time_ns()}")
    workers = Workers(redis_server.url, log_dir, services=[str(SERVICE_FILE)],
                      options=("--concurrency", "2", *options))
    runtime = TaskRuntime(RedisStore(redis_server.url))
    try:
        worker = workers.start()

        def one(_: int) -> int:
            record = runtime.start(spec, (), {})
            done = runtime.store.wait(record.task_id, TASK_DEADLINE)
            if done is None or done.state.value != "succeeded":
                raise RuntimeError(f"task {record.task_id} did not succeed: {done}")
            return int(done.result)

        baseline = tree_resident(worker.pid)
        checkpoints: list[dict] = []
        pids: set[int] = set()
        step = max(1, runs // 10)
        started = time.monotonic()
        with Peak(worker.pid) as peak, cpu.window() as share, ThreadPoolExecutor(2) as producers:
            for done in range(step, runs + 1, step):
                pids.update(producers.map(one, range(step)))
                resident = tree_resident(worker.pid)
                peak.bytes = max(peak.bytes, resident)
                checkpoints.append({"runs": done, "resident_mib": resident / MIB})
        seconds = time.monotonic() - started
        return {"variant": label, "method": method, "worker_options": list(options), "runs": checkpoints[-1]["runs"],
                "baseline_mib": baseline / MIB, "checkpoints": checkpoints, "peak_mib": peak.bytes / MIB,
                "children": len(pids), "tasks_per_second": checkpoints[-1]["runs"] / seconds,
                "noise": share.to_json()}
    finally:
        runtime.shutdown(wait=False)
        workers.stop_all()
        redis_server.stop()


def main(argv: list[str] | None = None) -> int:
    parser = arguments(__doc__, "recycle", "100 runs, 20 unbounded")
    parser.add_argument("--runs", type=int, default=500, help="runs per bounded variant (default 500)")
    parser.add_argument("--unbounded", type=int, default=50, help="runs without a bound (default 50; 0: none)")
    args = parser.parse_args(argv)
    runs, unbounded = (100, 20) if args.quick else (args.runs, args.unbounded)
    if runs < 10:
        parser.error("--runs must be at least 10")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    sys.path.insert(0, str(SERVICES_DIR))
    import recycle_bench_service  # noqa: F401  (declares the task methods the worker resolves)

    plan = list(VARIANTS) + ([("no bound", "leak", ())] if unbounded else [])
    cpu = CpuAccount()
    figures = []
    with tempfile.TemporaryDirectory(prefix="bench-recycle-") as scratch:
        for label, method, options in plan:
            count = unbounded if label == "no bound" else runs
            figures.append(run_variant(label, method, options, count, Path(scratch), args.output.parent, cpu))
    rows = [["variant", "runs", "start MiB", "at 1/10", "at 1/2", "at end", "peak MiB", "children", "tasks/s"]]
    for f in figures:
        marks = f["checkpoints"]
        rows.append([f["variant"], str(f["runs"]), f"{f['baseline_mib']:.0f}", f"{marks[0]['resident_mib']:.0f}",
                     f"{marks[len(marks) // 2 - 1]['resident_mib']:.0f}", f"{marks[-1]['resident_mib']:.0f}",
                     f"{f['peak_mib']:.0f}", str(f["children"]), f"{f['tasks_per_second']:.1f}"])
    print(text_table(rows))
    print(cpu.total.describe())
    report = {"environment": environment(), "runs": runs, "unbounded": unbounded, "figures": figures,
              "noise": cpu.total.to_json()}
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    print(f"figures written to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
