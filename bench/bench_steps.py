"""Steps bench: what ``kw['step']`` costs in Redis - commands and bytes per step, and
what a task with steps pays once - measured with a real ``ladon-tasks worker`` and
``redis-server``.

For 0 steps (a body without steps), 1 step and 10 steps, each step returning a text of
16 and of 1,000 characters, it runs ``--tasks`` queued tasks one after another (started
with ``TaskRuntime.start`` from this process, waited for with ``RedisStore.wait``) and
reads, per task, the Redis commands they caused (``INFO commandstats``, the commands
inside Lua scripts included, per command) and what their finished task keeps: the
record's hash and its steps' hash (``MEMORY USAGE`` of each, averaged over the tasks),
and the whole dataset's growth (``MEMORY STATS`` ``dataset.bytes``, which also holds the
event stream and indexes). One step's commands are the difference between 10 and 1
steps divided by 9; what a task with steps pays once is 1 step's figure less one step
and less the figure of a body without steps.

Limits: a worker's housekeeping (heartbeat, reaper) runs on a clock, not per task, so a
slower variant counts a little more of it per task (a few hundredths of a command); the
dataset's growth moves by a few hundred bytes per task between runs (allocations of the
event stream and the indexes), the two hashes' sizes do not.

    python -m bench.bench_steps [--tasks 200] [--output bench/output/steps.json]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.benchlib import OUTPUT_DIR, SERVICES_DIR, TASK_DEADLINE, environment
from ladon_tasks.redis.keys import Keys
from tests.support.processes import stop_process_group
from tests.support.redis_server import RedisServer, start_redis

SERVICE_FILE = SERVICES_DIR / "steps_bench_service.py"
ROOT = SERVICES_DIR.parent.parent
COUNTS = (0, 1, 10)
SIZES = (16, 1000)


def run_variant(runtime: Any, spec: Any, redis_server: RedisServer, count: int, size: int, tasks: int) -> dict:
    """``tasks`` tasks of ``count`` steps of ``size`` characters: commands (by name) and
    bytes per task."""
    def one() -> str:
        record = runtime.start(spec, (count, size), {})
        done = runtime.store.wait(record.task_id, TASK_DEADLINE)
        if done is None or done.state.value != "succeeded":
            raise RuntimeError(f"task {record.task_id} did not succeed: {done}")
        return record.task_id

    for _ in range(5):  # warm: the worker's child has imported the service
        one()
    time.sleep(0.1)  # let the last acknowledgement batch go out (the worker acks every 20 ms)
    before = redis_server.reset_stats()
    task_ids = [one() for _ in range(tasks)]
    time.sleep(0.1)
    calls = redis_server.commands()
    kept = redis_server.dataset_bytes() - before
    client, keys = redis_server.counter(), Keys()
    record = sum(client.memory_usage(keys.task(task_id), samples=0) or 0 for task_id in task_ids) / tasks
    steps = sum(client.memory_usage(keys.steps(task_id), samples=0) or 0 for task_id in task_ids) / tasks
    return {"count": count, "size": size, "commands": sum(calls.values()) / tasks,
            "by_command": {name: n / tasks for name, n in sorted(calls.items())}, "dataset_bytes": kept / tasks,
            "record_bytes": record, "steps_bytes": steps}


def derive(figures: list[dict]) -> list[dict]:
    """Per step and per task with steps, for each result size, from the three counts."""
    derived = []
    for size in SIZES:
        by_count = {f["count"]: f for f in figures if f["size"] == size}
        row: dict[str, Any] = {"size": size}
        per_step = (by_count[10]["commands"] - by_count[1]["commands"]) / 9
        row["commands_per_step"] = per_step
        row["commands_once"] = by_count[1]["commands"] - per_step - by_count[0]["commands"]
        row["steps_bytes_per_step"] = by_count[10]["steps_bytes"] / 10
        row["record_bytes_with_steps"] = by_count[10]["record_bytes"] - by_count[0]["record_bytes"]
        derived.append(row)
    return derived


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=200, help="tasks per variant (default 200)")
    parser.add_argument("--output", type=Path, default=OUTPUT_DIR / "steps.json", help="where the JSON goes")
    args = parser.parse_args(argv)
    if args.tasks < 10:
        parser.error("--tasks must be at least 10")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    sys.path.insert(0, str(SERVICES_DIR))
    import steps_bench_service  # noqa: F401  (declares the task method: the name the worker resolves)

    from ladon_tasks import spec as specs
    from ladon_tasks.redis import RedisStore
    from ladon_tasks.runtime import TaskRuntime

    spec = specs.find("StepsBenchService", "stepped")
    figures: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="bench-steps-redis-") as scratch:
        redis_server = start_redis(Path(scratch))
        log = open(args.output.parent / "steps-worker.log", "wb")
        worker = subprocess.Popen(
            [sys.executable, "-m", "ladon_tasks", "--log-level", "WARNING", "worker", str(SERVICE_FILE),
             "--redis", redis_server.url, "--concurrency", "1"],
            stdout=log, stderr=subprocess.STDOUT, cwd=str(ROOT), start_new_session=True,
        )
        runtime = TaskRuntime(RedisStore(redis_server.url))
        try:
            for size in SIZES:
                for count in COUNTS:
                    figures.append(run_variant(runtime, spec, redis_server, count, size, args.tasks))
        finally:
            runtime.shutdown(wait=False)
            stop_process_group(worker)
            log.close()
            redis_server.stop()
    print(f"{'steps':>5} {'result':>7} {'cmds/task':>9} {'record B':>8} {'steps B':>8} {'dataset B':>9}  "
          "commands per task")
    for f in figures:
        detail = ", ".join(f"{name.upper()} {n:.2f}" for name, n in f["by_command"].items() if n >= 0.05)
        print(f"{f['count']:>5} {f['size']:>7} {f['commands']:>9.1f} {f['record_bytes']:>8,.0f} "
              f"{f['steps_bytes']:>8,.0f} {f['dataset_bytes']:>9,.0f}  {detail}")
    derived = derive(figures)
    print()
    for row in derived:
        print(f"result of {row['size']} characters: per step {row['commands_per_step']:.1f} commands and "
              f"{row['steps_bytes_per_step']:,.0f} B of the steps hash; once per task with steps "
              f"{row['commands_once']:+.1f} commands, the record {row['record_bytes_with_steps']:+,.0f} B")
    report = {"environment": environment(), "tasks": args.tasks, "figures": figures, "derived": derived}
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    print(f"figures written to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
