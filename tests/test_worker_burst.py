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
