"""What waiting for a replica costs a start, behind Redis Sentinel.

With a ``redis+sentinel://`` URL, a start (and a cancel) is answered only once a replica
has it (``WAIT 1``, see ``ladon_tasks/redis/replication.py``); ``?wait_replicas=0`` turns
that off. This bench measures the difference, in one run, on one primary with one replica
and three sentinels (real ``redis-server`` processes on free loopback ports,
``tests.support.sentinel``):

* **store**: ``RedisStore.create`` called from this process - the median latency of
  sequential creates, and creates/s from 8 threads with the primary's CPU per create
  (``INFO cpu``) - for the Sentinel URL with the wait, without it, and the primary's own
  ``redis://`` URL (no Sentinel client at all) as the yardstick;
* **HTTP**: the median latency of a JSON-WSP start (``noop`` of
  ``bench/services/queue_service.py``, ``executor='queue'``) against two
  ``ladon-tasks serve`` processes, one per URL.

Measurements alternate between the variants round by round, so all see the machine in
the same state, and the run says how much CPU others took (:mod:`bench.noise`).

    python -m bench.bench_sentinel [--quick] [--output bench/output/sentinel.json]
"""

from __future__ import annotations

import json
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from bench.benchlib import SERVICES_DIR, arguments, environment
from bench.noise import CpuAccount
from ladon_tasks.model import TaskRecord, new_task_id
from ladon_tasks.redis import RedisStore
from tests.support.jsonwsp import JsonWsp
from tests.support.sentinel import start_sentinel_group
from tests.support.servers import RunningServer, start_server

QUEUE_SERVICE = SERVICES_DIR / "queue_service.py"
THREADS = 8


def new_record() -> TaskRecord:
    return TaskRecord(task_id=new_task_id(), service="BenchService", method="noop", args=[1])


def create_latency(store: RedisStore, count: int) -> list[float]:
    """Seconds per create, ``count`` sequential creates."""
    times = []
    for _ in range(count):
        record = new_record()
        started = time.perf_counter()
        store.create(record)
        times.append(time.perf_counter() - started)
    return times


def primary_cpu(store: RedisStore) -> float:
    info = store.client.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def create_rate(store: RedisStore, per_thread: int) -> tuple[float, float]:
    """Creates/s from ``THREADS`` threads, and the primary's CPU seconds per create."""
    barrier = threading.Barrier(THREADS + 1)

    def work() -> None:
        barrier.wait()
        for _ in range(per_thread):
            store.create(new_record())

    threads = [threading.Thread(target=work) for _ in range(THREADS)]
    for thread in threads:
        thread.start()
    cpu_before = primary_cpu(store)
    barrier.wait()
    started = time.perf_counter()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    total = THREADS * per_thread
    return total / elapsed, (primary_cpu(store) - cpu_before) / total


def http_latency(server: RunningServer, count: int) -> list[float]:
    client = JsonWsp(server, "QueueBenchService")
    try:
        client("echo", value=1)
        times = []
        for n in range(count):
            started = time.perf_counter()
            client("noop", value=n)
            times.append(time.perf_counter() - started)
        return times
    finally:
        client.close()


def median_us(samples: list[float]) -> float:
    return round(statistics.median(samples) * 1e6, 1)


def main(argv: list[str] | None = None) -> int:
    args = arguments(__doc__, "sentinel", "small counts").parse_args(argv)
    rounds, per_round, per_thread = (3, 200, 100) if args.quick else (10, 1000, 1000)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    account = CpuAccount()
    directory = Path(tempfile.mkdtemp(prefix="bench-sentinel-"))
    group = start_sentinel_group(directory)
    urls = {
        "sentinel, WAIT 1": group.url,
        "sentinel, no wait": group.url + "?wait_replicas=0",
        "one server (redis://)": group.primary.url,
    }
    stores = {label: RedisStore(url, prefix="bench-sentinel:") for label, url in urls.items()}
    servers: dict[str, RunningServer] = {}
    latency: dict[str, list[float]] = {label: [] for label in urls}
    rates: dict[str, list[tuple[float, float]]] = {label: [] for label in urls}
    http: dict[str, list[float]] = {label: [] for label in urls if label.startswith("sentinel")}
    try:
        for label in http:
            servers[label] = start_server([str(QUEUE_SERVICE)], args.output.parent, "--redis", urls[label],
                                          "--no-dashboard")
        for store in stores.values():  # warm up: connections, scripts loaded
            create_latency(store, 20)
        for _ in range(rounds):
            with account.window():
                for label, store in stores.items():
                    latency[label] += create_latency(store, per_round)
                    rates[label].append(create_rate(store, per_thread // rounds or 1))
                for label, server in servers.items():
                    http[label] += http_latency(server, per_round // 4)
    finally:
        for store in stores.values():
            store.close()
        for server in servers.values():
            server.stop()
        group.stop()
        shutil.rmtree(directory, ignore_errors=True)

    rows: dict[str, dict[str, Any]] = {}
    for label in urls:
        rows[label] = {
            "create_median_us": median_us(latency[label]),
            "creates_per_second": round(statistics.median(rate for rate, _ in rates[label])),
            "primary_cpu_us_per_create": round(statistics.median(cpu for _, cpu in rates[label]) * 1e6, 1),
        }
        if label in http:
            rows[label]["http_start_median_us"] = median_us(http[label])
    waited, plain = rows["sentinel, WAIT 1"], rows["sentinel, no wait"]
    cost = {
        "create_us_added_by_wait": round(waited["create_median_us"] - plain["create_median_us"], 1),
        "http_start_us_added_by_wait": round(waited["http_start_median_us"] - plain["http_start_median_us"], 1),
        "creates_per_second_ratio": round(waited["creates_per_second"] / plain["creates_per_second"], 2),
        "primary_cpu_us_added_per_create": round(
            waited["primary_cpu_us_per_create"] - plain["primary_cpu_us_per_create"], 1),
    }
    report = {"quick": args.quick, "rounds": rounds, "environment": environment(), "cpu": account.total.to_json(),
              "rows": rows, "wait_cost": cost}
    args.output.write_text(json.dumps(report, indent=2))
    print(f"{'variant':<24}{'create median':>15}{'creates/s (8 thr)':>19}{'primary CPU/create':>20}{'HTTP start':>12}")
    for label, row in rows.items():
        http_text = f"{row['http_start_median_us']:.0f} us" if "http_start_median_us" in row else "-"
        print(f"{label:<24}{row['create_median_us']:>12.0f} us{row['creates_per_second']:>19}"
              f"{row['primary_cpu_us_per_create']:>17.1f} us{http_text:>12}")
    print("WAIT adds:", json.dumps(cost))
    print(account.total.describe())
    print(f"figures: {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
