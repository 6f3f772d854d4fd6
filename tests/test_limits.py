"""One task per key (``concurrency_key``), for real: ``tests/service_fixtures/limit_service.py``
served by three ``ladon-tasks serve`` processes on one Redis, one on the in-process store,
and two ``ladon-tasks worker`` processes for the queued method. Each body leaves a marker
with its start and end, so the tests count how many ran at once from what the bodies saw."""

from __future__ import annotations

import signal
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Iterator

import pytest

from support.jsonwsp import JsonWsp, WireFault
from support.redis_server import RedisServer
from support.servers import FIXTURE_SERVICES, RunningServer, start_server, wait_until
from support.workers import Workers

LIMIT = str(FIXTURE_SERVICES / "limit_service.py")
#: Owner lease of the web servers, in seconds: a killed one's tasks are taken over soon.
WEB_LEASE = "2"
STARTS = 50


@pytest.fixture(scope="module")
def webs(redis_server: RedisServer, output_dir: Path) -> Iterator[dict]:
    """Three servers on one Redis, one on the in-process store, two workers."""
    shared = [start_server([LIMIT], output_dir, "--redis", redis_server.url, "--lease", WEB_LEASE,
                           "--thread-workers", "8") for _ in range(3)]
    memory = start_server([LIMIT], output_dir, "--process-workers", "4")
    workers = Workers(redis_server.url, output_dir, services=[LIMIT],
                      options=("--lease", "1.5", "--concurrency", "4", "--threads"))
    workers.start()
    workers.start()
    yield {"shared": shared, "memory": memory, "workers": workers}
    workers.stop_all()
    for server in [*shared, memory]:
        server.stop()


def limits(server: RunningServer) -> JsonWsp:
    return JsonWsp(server, "LimitService")


def final(server: RunningServer, method: str, task_id: str, timeout: float = 120.0) -> dict:
    return limits(server).followed(method, task_id, timeout, interval=0.0)


def spans(marker_dir: Path, key: str, killed_at: float | None = None) -> list[tuple[float, float]]:
    """(start, end) of every body of ``key`` that ran; a body cut by a kill ends then."""
    found = []
    for path in marker_dir.glob(f"{key}-*"):
        lines = path.read_text().split("\n")
        start = float(lines[0].split()[0])
        end = float(lines[1]) if len(lines) > 1 and lines[1] else killed_at
        assert end is not None, f"{path.name} never ended"
        found.append((start, end))
    return found


def most_at_once(found: list[tuple[float, float]]) -> int:
    events = sorted([(start, 1) for start, _ in found] + [(end, -1) for _, end in found])
    running = peak = 0
    for _, change in events:  # an end sorts before a start at the same instant
        running += change
        peak = max(peak, running)
    return peak


def start_all(servers: list[RunningServer], method: str, key: str, marker_dir: Path, seconds: float) -> list[tuple]:
    """``STARTS`` starts of one key at once, spread over ``servers``: (server, task id) each."""
    def one(number: int) -> tuple:
        server = servers[number % len(servers)]
        return server, limits(server)(method, instance_id=key, marker_dir=str(marker_dir), seconds=seconds)["task_id"]
    with ThreadPoolExecutor(STARTS) as pool:
        return list(pool.map(one, range(STARTS)))


@pytest.mark.parametrize("method, wiring, limit", [
    ("holdThread", "shared", 1), ("holdQueue", "shared", 1), ("holdTwoProcess", "memory", 2),
])
def test_no_more_than_the_limit_of_one_key_run_at_once(webs, tmp_path, method, wiring, limit):
    servers = webs[wiring] if wiring == "shared" else [webs[wiring]]
    started = start_all(servers, method, "vm-1", tmp_path, 0.05)
    other = limits(servers[0])(method, instance_id="vm-2", marker_dir=str(tmp_path), seconds=0.05)["task_id"]
    for server, task_id in [*started, (servers[0], other)]:
        assert final(server, method, task_id)["state"] == "succeeded"
    found = spans(tmp_path, "vm-1")
    assert len(found) == STARTS  # every start ran once, none was refused
    assert most_at_once(found) == limit  # never more, and the limit is used
    assert len(spans(tmp_path, "vm-2")) == 1


def test_a_start_beyond_the_limit_is_refused_with_a_named_fault_that_names_no_task(webs, tmp_path):
    first, second = webs["shared"][:2]
    holder = limits(first)("holdOrRefuse", instance_id="db-1", marker_dir=str(tmp_path), seconds=2)["task_id"]
    with pytest.raises(WireFault) as refused:
        limits(second)("holdOrRefuse", instance_id="db-1", marker_dir=str(tmp_path), seconds=0)
    assert refused.value.name == "ConcurrencyLimit"
    assert holder not in refused.value.string and holder.split(".")[-1] not in refused.value.string
    other = limits(second)("holdOrRefuse", instance_id="db-2", marker_dir=str(tmp_path), seconds=0)["task_id"]
    assert final(second, "holdOrRefuse", other)["state"] == "succeeded"
    assert final(first, "holdOrRefuse", holder)["state"] == "succeeded"
    after = limits(second)("holdOrRefuse", instance_id="db-1", marker_dir=str(tmp_path), seconds=0)["task_id"]
    assert final(second, "holdOrRefuse", after)["state"] == "succeeded"


def test_racing_refused_starts_admit_exactly_the_limit(webs, tmp_path):
    servers = webs["shared"]

    def one(number: int) -> str:
        try:
            return limits(servers[number % 3])("holdOrRefuse", instance_id="db-9", marker_dir=str(tmp_path),
                                               seconds=1)["task_id"]
        except WireFault as fault:
            return fault.name
    with ThreadPoolExecutor(STARTS) as pool:
        answers = list(pool.map(one, range(STARTS)))
    assert sum(answer == "ConcurrencyLimit" for answer in answers) == STARTS - 1


def test_a_killed_holders_place_is_freed_when_its_task_is_taken_over(webs, tmp_path, output_dir, redis_server):
    doomed = start_server([LIMIT], output_dir, "--redis", redis_server.url, "--lease", WEB_LEASE)
    try:
        holder = limits(doomed)("holdThread", instance_id="vm-7", marker_dir=str(tmp_path), seconds=6)["task_id"]
        wait_until(lambda: spans(tmp_path, "vm-7", killed_at=0.0), timeout=30, what="the holder to start")
        waiter_server = webs["shared"][0]
        waiter = limits(waiter_server)("holdThread", instance_id="vm-7", marker_dir=str(tmp_path),
                                       seconds=0.05)["task_id"]
        doomed.process.send_signal(signal.SIGKILL)
        doomed.process.wait()
        killed_at = time.time()
        assert limits(waiter_server)("holdThread_progress", task_id=waiter)["state"] == "queued"
        assert final(waiter_server, "holdThread", waiter, timeout=60)["state"] == "succeeded"
        assert final(waiter_server, "holdThread", holder, timeout=60)["state"] in ("succeeded", "failed")
        assert most_at_once(spans(tmp_path, "vm-7", killed_at=killed_at)) == 1
    finally:
        doomed.stop()


def test_a_bad_concurrency_option_fails_at_decoration():
    from ladon_tasks import ladonize

    def body(self, instance_id, **kw):
        return 1

    with pytest.raises(ValueError, match="'concurrency_key' of 'body' names 'instance'.*instance_id"):
        ladonize(str, rtype=int, tasktype=dict(concurrency_key="instance"))(body)
    with pytest.raises(ValueError, match="'concurrency' must be a whole number >= 1"):
        ladonize(str, rtype=int, tasktype=dict(concurrency_key="instance_id", concurrency=0))
    with pytest.raises(ValueError, match="'on_limit' must be one of wait, refuse"):
        ladonize(str, rtype=int, tasktype=dict(concurrency_key="instance_id", on_limit="drop"))
    with pytest.raises(ValueError, match="'concurrency_key' must name"):
        ladonize(str, rtype=int, tasktype=dict(concurrency_key=3))
    from ladon_tasks.options import TaskOptions
    shown = TaskOptions.parse(dict(concurrency_key="instance_id", concurrency=2, on_limit="refuse")).in_force()
    assert shown["concurrency"] == {"key": "instance_id", "limit": 2, "on_limit": "refuse"}
