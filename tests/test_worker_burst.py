"""A worker in burst mode runs what is queued and returns: inside a program (or this
test) as ``Worker.run(burst=True)``, and as ``ladon-tasks worker --burst``."""

from __future__ import annotations

import subprocess
import sys

import pytest

from support.servers import FIXTURE_SERVICES, ROOT
from support.workers import PROBE

from ladon_tasks.executors.queue import QueueExecutor
from ladon_tasks.model import TaskState
from ladon_tasks.redis import RedisStore
from ladon_tasks.runtime import TaskRuntime
from ladon_tasks.spec import find, queue_priorities
from ladon_tasks.worker import Worker


@pytest.fixture
def probe_services():
    sys.path.insert(0, str(FIXTURE_SERVICES))
    import probe_service  # noqa: F401  (declares its task methods in this process)

    yield
    sys.path.remove(str(FIXTURE_SERVICES))


def test_a_burst_worker_in_process_runs_what_is_queued_and_returns(redis_server, probe_services):
    store = RedisStore(redis_server.url, prefix="burst-inproc:")
    runtime = TaskRuntime(store)
    echo = find("QueueProbeService", "queuedEcho")
    assert echo is not None
    assert isinstance(runtime.executor("queue", store), QueueExecutor)
    texts = [f"burst {n}" for n in range(5)]
    started = [runtime.start(echo, (text,), {}) for text in texts]
    worker = Worker(store, [store.queue("default", levels=queue_priorities("default"))], concurrency=2,
                    runner="thread")
    worker.run(burst=True)  # returns once the queue is empty and nothing runs
    finals = [store.get(record.task_id) for record in started]
    assert [final.state for final in finals] == [TaskState.SUCCEEDED] * 5
    assert [runtime.result(echo, record.task_id) for record in started] == texts
    runtime.shutdown()


def test_worker_burst_command_exits_when_the_queue_is_empty(redis_server, probe_services):
    store = RedisStore(redis_server.url)
    runtime = TaskRuntime(store)
    echo = find("QueueProbeService", "queuedEcho")
    started = [runtime.start(echo, (f"cli {n}",), {}) for n in range(3)]
    done = subprocess.run(
        [sys.executable, "-m", "ladon_tasks", "worker", PROBE, "--redis", redis_server.url, "--burst"],
        capture_output=True, text=True, timeout=120, cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr
    assert [store.get(record.task_id).state for record in started] == [TaskState.SUCCEEDED] * 3
    runtime.shutdown()


def _direct_reads(redis_server, run) -> int:
    """``XREADGROUP`` commands clients send (not those of scripts) while ``run()`` runs,
    from ``MONITOR``."""
    import threading

    import redis

    marker = "monitor-end"
    reads = []
    ready = threading.Event()

    def watch() -> None:
        with redis.Redis.from_url(redis_server.url, decode_responses=True).monitor() as monitor:
            ready.set()
            for command in monitor.listen():
                text = command["command"]
                if marker in text:
                    return
                if text.upper().startswith("XREADGROUP") and command.get("client_type") != "lua":
                    reads.append(text)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    assert ready.wait(10)
    run()
    redis_server.client().echo(marker)
    watcher.join(30)
    assert not watcher.is_alive()
    return len(reads)


def test_a_finishing_slot_reads_its_next_job_with_its_finish(redis_server, probe_services):
    # One slot, 20 jobs queued: each finish reads the next job in the same script call,
    # so the slot sends a read of its own only to start and to find the queue empty.
    store = RedisStore(redis_server.url, prefix="burst-next:")
    runtime = TaskRuntime(store)
    echo = find("QueueProbeService", "queuedEcho")
    started = [runtime.start(echo, (f"next {n}",), {}) for n in range(20)]
    worker = Worker(store, [store.queue("default", levels=queue_priorities("default"))], concurrency=1,
                    runner="thread")
    reads = _direct_reads(redis_server, lambda: worker.run(burst=True))
    assert [store.get(record.task_id).state for record in started] == [TaskState.SUCCEEDED] * 20
    assert [runtime.result(echo, record.task_id) for record in started] == [f"next {n}" for n in range(20)]
    assert reads < 10, f"{reads} reads for 20 jobs"
    runtime.shutdown()
