"""Redis-backed scale-out, for real: ``ladon-tasks serve --redis`` web servers and
``ladon-tasks worker`` processes around one ``redis-server``. Workers are killed with
SIGKILL and SIGTERM, Redis is restarted and taken away, and no task is lost or run twice.
Every test runs twice: on one ``redis-server``, and on a Redis Cluster of three primaries
(``--redis redis+cluster://...``), where the tasks spread over the cluster's shards.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from support.jsonwsp import JsonWsp, WireFault
from support.processes import process_alive
from support.redis_cluster import RedisClusterProcesses
from support.redis_server import start_redis
from support.servers import ROOT, start_server, wait_until
from support.workers import PROBE, Workers

# Run on every supported interpreter: the Redis path is where versions differ most.
pytestmark = pytest.mark.smoke



@pytest.fixture(scope="module", params=["redis", "cluster"])
def redis_server(request, tmp_path_factory):
    if request.param == "cluster":
        cluster = request.getfixturevalue("redis_cluster")
        cluster.flushall()
        yield cluster
        return
    server = start_redis(tmp_path_factory.mktemp("redis"), appendonly=True)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def web(redis_server, output_dir):
    """Two web-server processes sharing one Redis: any may answer for any task."""
    servers = [start_server([PROBE], output_dir, "--redis", redis_server.url) for _ in range(2)]
    yield servers
    for server in servers:
        server.stop()


@pytest.fixture
def workers(redis_server, output_dir):
    pool = Workers(redis_server.url, output_dir)
    yield pool
    pool.stop_all()


def queue_probe(server) -> JsonWsp:
    return JsonWsp(server, "QueueProbeService")


def test_queued_task_runs_on_a_worker_end_to_end(web, workers):
    workers.start()
    first, second = (queue_probe(server) for server in web)
    task_id = first("queuedEcho", text="via a worker")["task_id"]
    final = second("queuedEcho_wait", task_id=task_id, seconds=20)  # another web process
    assert final["state"] == "succeeded" and final["attempts"] == 1
    assert final["message"] == "echoing"
    assert second("queuedEcho_result", task_id=task_id) == "via a worker"
    assert first("queuedEcho_result", task_id=task_id) == "via a worker"


def test_progress_wait_cancel_and_result_from_another_web_process(web, tmp_path):
    first, second = (queue_probe(server) for server in web)
    gate = str(tmp_path / "gate")
    task_id = first("threadGated", gate=gate)["task_id"]  # runs in the first web process
    wait_until(lambda: second("threadGated_progress", task_id=task_id)["progress"] > 0, what="progress via 2nd")
    (tmp_path / "gate").touch()
    assert second("threadGated_wait", task_id=task_id, seconds=20)["state"] == "succeeded"
    assert second("threadGated_result", task_id=task_id) == web[0].process.pid

    other = first("threadGated", gate=str(tmp_path / "never"))["task_id"]
    wait_until(lambda: second("threadGated_progress", task_id=other)["state"] == "running", what="running")
    assert second("threadGated_cancel", task_id=other)["state"] == "cancelled"
    assert first("threadGated_progress", task_id=other)["state"] == "cancelled"
    with pytest.raises(WireFault) as caught:
        first("threadGated_result", task_id=other)
    assert caught.value.name == "TaskCancelled"


def test_sigkilled_worker_task_is_reissued_and_finishes_elsewhere(web, workers, tmp_path):
    probe = queue_probe(web[0])
    gate = tmp_path / "gate"
    doomed = workers.start()
    task_id = probe("queuedGated", gate=str(gate))["task_id"]
    wait_until(lambda: list(tmp_path.glob("gate.pid-*")), what="the first attempt to start")
    workers.kill(doomed, signal.SIGKILL)
    workers.start()
    wait_until(lambda: len(list(tmp_path.glob("gate.pid-*"))) == 2, timeout=30, what="the reissued attempt")
    gate.touch()
    final = probe("queuedGated_wait", task_id=task_id, seconds=20)
    assert final["state"] == "succeeded" and final["attempts"] == 2
    survivor_pid = probe("queuedGated_result", task_id=task_id)
    assert f"gate.pid-{survivor_pid}" in {p.name for p in tmp_path.glob("gate.pid-*")}


def test_two_workers_share_the_work_and_run_nothing_twice(web, workers, tmp_path):
    workers.start()
    workers.start()
    once = JsonWsp(web[0], "OnceService")
    ids = [once("queuedOnce", marker_dir=str(tmp_path))["task_id"] for _ in range(40)]
    finals = [once("queuedOnce_wait", task_id=task_id, seconds=30) for task_id in ids]
    assert [final["state"] for final in finals] == ["succeeded"] * 40
    assert all(final["attempts"] == 1 for final in finals)
    markers = sorted(p.name for p in tmp_path.iterdir())
    assert markers == sorted(ids)  # one body run per task: the markers are created exclusively
    ran_on = {once("queuedOnce_result", task_id=task_id) for task_id in ids}
    assert ran_on <= {p.pid for p in workers.processes} and len(ran_on) == 2


def _pending_jobs(redis_server) -> int:
    """Job entries handed to a worker and not acknowledged yet, over every queue stream."""
    client = redis_server.client()
    streams = [key for key in client.scan_iter(match="*queue:*", _type="stream")]
    return sum(client.xpending(stream, "workers")["pending"] for stream in streams)


def test_idle_slots_start_queued_jobs_together_and_lease_no_more(web, workers, redis_server, tmp_path):
    # Five jobs wait; a worker with three slots reads for its idle slots together, and
    # leases no job beyond them: the two it cannot start yet run on a second worker
    # while the first one's three bodies are still running.
    probe = queue_probe(web[0])
    gate = tmp_path / "gate"
    ids = [probe("queuedGated", gate=str(gate))["task_id"] for _ in range(5)]
    workers.start("--concurrency", "3")
    wait_until(lambda: len(list(tmp_path.glob("gate.pid-*"))) == 3, timeout=30, what="three bodies at once")
    assert _pending_jobs(redis_server) == 3  # the two others are still anyone's
    workers.start("--concurrency", "3")
    wait_until(lambda: len(list(tmp_path.glob("gate.pid-*"))) == 5, timeout=30, what="the two others elsewhere")
    gate.touch()
    finals = [probe("queuedGated_wait", task_id=task_id, seconds=30) for task_id in ids]
    assert [(final["state"], final["attempts"]) for final in finals] == [("succeeded", 1)] * 5
    assert len({probe("queuedGated_result", task_id=task_id) for task_id in ids}) == 5  # five bodies, one each


def test_finished_jobs_are_acknowledged_even_by_a_worker_killed_right_after(web, workers, redis_server, tmp_path):
    # Acknowledgements are batched, so a worker killed just after its bodies finished
    # may still hold some: the reaper of another worker must settle them, not rerun them.
    doomed = workers.start()
    once = JsonWsp(web[0], "OnceService")
    ids = [once("queuedOnce", marker_dir=str(tmp_path))["task_id"] for _ in range(20)]
    finals = [once("queuedOnce_wait", task_id=task_id, seconds=30) for task_id in ids]
    workers.kill(doomed, signal.SIGKILL)
    assert [final["state"] for final in finals] == ["succeeded"] * 20
    workers.start()
    wait_until(lambda: _pending_jobs(redis_server) == 0, timeout=30, what="every job acknowledged")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(ids)  # none ran again
    assert all(once("queuedOnce_progress", task_id=task_id)["attempts"] == 1 for task_id in ids)


def test_cancel_reaches_a_silent_body_on_a_worker(web, workers, tmp_path):
    workers.start()
    probe = queue_probe(web[1])
    pid_file = tmp_path / "pid"
    task_id = probe("queuedSilent", pid_file=str(pid_file))["task_id"]
    pid = int(wait_until(lambda: pid_file.exists() and pid_file.read_text(), what="the body to start"))
    started = time.monotonic()
    assert probe("queuedSilent_cancel", task_id=task_id)["state"] == "cancelled"
    wait_until(lambda: not process_alive(pid), timeout=10, what="the worker to kill the cancelled body")
    print(f"cancel reached the body after {time.monotonic() - started:.2f}s")


def test_timeout_and_retries_on_workers(web, workers, tmp_path):
    workers.start()
    probe = queue_probe(web[0])
    slow = probe("queuedTooSlow")["task_id"]
    flaky = probe("queuedFlaky", marker_dir=str(tmp_path))["task_id"]
    slow_final = probe("queuedTooSlow_wait", task_id=slow, seconds=20)
    assert slow_final["state"] == "failed" and slow_final["error"].startswith("TaskTimeout:")
    flaky_final = probe("queuedFlaky_wait", task_id=flaky, seconds=20)
    assert flaky_final["state"] == "succeeded" and flaky_final["attempts"] == 3
    assert sorted(os.listdir(tmp_path)) == ["attempt-1", "attempt-2", "attempt-3"]


def test_higher_priority_runs_first(web, workers, redis_server):
    probe = queue_probe(web[0])
    low = [probe("queuedLowly", n=n)["task_id"] for n in range(3)]
    high = [probe("queuedUrgent", n=n)["task_id"] for n in range(3)]
    workers.start("--concurrency", "1")
    finished = {}
    for method, ids in (("queuedLowly", low), ("queuedUrgent", high)):
        for task_id in ids:
            finished[task_id] = probe(f"{method}_wait", task_id=task_id, seconds=30)["starttime"]
    assert max(finished[t] for t in high) < min(finished[t] for t in low)
    if not isinstance(redis_server, RedisClusterProcesses):  # on a cluster: first come first within a shard
        assert [finished[t] for t in high] == sorted(finished[t] for t in high)  # equals: first come first


def test_sigterm_hands_running_work_back(web, workers, tmp_path):
    probe = queue_probe(web[0])
    gate = tmp_path / "gate"
    leaving = workers.start("--grace", "0.3")
    task_id = probe("queuedGated", gate=str(gate))["task_id"]
    wait_until(lambda: list(tmp_path.glob("gate.pid-*")), what="the body to start")
    leaving.send_signal(signal.SIGTERM)
    assert leaving.wait(timeout=20) == 0
    handed_back = probe("queuedGated_progress", task_id=task_id)
    assert handed_back["state"] == "queued" and "handed back" in handed_back["message"]
    workers.start()
    gate.touch()
    assert probe("queuedGated_wait", task_id=task_id, seconds=30)["state"] == "succeeded"


def test_queued_tasks_survive_a_redis_restart_with_aof(web, workers, redis_server):
    probe = queue_probe(web[0])
    ids = [probe("queuedEcho", text=f"kept {n}")["task_id"] for n in range(5)]
    redis_server.restart()
    workers.start()
    def finished(task_id: str) -> dict | None:
        """Its state once it has finished (a wait may end first: the worker is still
        starting, or the waits' budget answered at once); ``None`` while Redis is away."""
        answer = _answer(probe, "queuedEcho_wait", task_id=task_id, seconds=5)
        return answer if answer is not None and answer["state"] not in ("queued", "running") else None

    for n, task_id in enumerate(ids):
        assert wait_until(lambda task_id=task_id: finished(task_id), timeout=60,
                          what="the web server to reconnect and the task to finish")["state"] == "succeeded"
        assert probe("queuedEcho_result", task_id=task_id) == f"kept {n}"


def _queues_and_keys(client) -> dict:
    keys = set(client.keys())
    queued = {key: client.xlen(key) for key in keys if client.type(key) == "stream"}
    return {"keys": keys, "queued": queued}


def test_redis_down_during_start_is_a_clear_fault_and_nothing_half_made(web, redis_server):
    probe = queue_probe(web[0])
    client = redis_server.client()
    probe("queuedEcho", text="waits in the queue")  # so the queue exists: an entry added to it would show
    before = _queues_and_keys(client)
    assert before["queued"], before
    redis_server.stop()
    try:
        with pytest.raises(WireFault) as caught:
            probe("queuedEcho", text="lost?")
        assert caught.value.name == "StoreUnavailable" and caught.value.code == "server"
        with pytest.raises(WireFault) as progress_fault:
            probe("queuedEcho_progress", task_id="a" * 32)
        assert progress_fault.value.name == "StoreUnavailable"
    finally:
        redis_server.start()
    after = _queues_and_keys(client)
    # no record, no queue entry from the failed start (a key with a lifetime may have gone meanwhile)
    assert after["keys"] <= before["keys"] and after["queued"] == before["queued"], (before, after)
    task_id = wait_until(lambda: _answer(probe, "queuedEcho", text="back"), timeout=30, what="service back")["task_id"]
    assert probe("queuedEcho_progress", task_id=task_id)["state"] in ("queued", "running", "succeeded")


def test_tasks_command_lists_and_filters(web, redis_server):
    probe = queue_probe(web[0])
    task_id = probe("queuedEcho", text="listed")["task_id"]
    out = subprocess.run(
        [sys.executable, "-m", "ladon_tasks", "tasks", "--redis", redis_server.url, "--method", "queuedEcho", "--json"],
        capture_output=True, text=True, timeout=60, cwd=ROOT,
    )
    assert out.returncode == 0, out.stderr
    assert task_id in out.stdout
    inspected = subprocess.run(
        [sys.executable, "-m", "ladon_tasks", "inspect", task_id, "--redis", redis_server.url],
        capture_output=True, text=True, timeout=60, cwd=ROOT,
    )
    assert inspected.returncode == 0 and f'"task_id": "{task_id}"' in inspected.stdout
    cancelled = subprocess.run(
        [sys.executable, "-m", "ladon_tasks", "cancel", task_id, "--redis", redis_server.url],
        capture_output=True, text=True, timeout=60, cwd=ROOT,
    )
    assert cancelled.stdout.startswith(task_id)
    unknown = subprocess.run(
        [sys.executable, "-m", "ladon_tasks", "inspect", "b" * 32, "--redis", redis_server.url],
        capture_output=True, text=True, timeout=60, cwd=ROOT,
    )
    assert unknown.returncode == 1 and "UnknownTask" in unknown.stderr and "Traceback" not in unknown.stderr


def _answer(probe, method, **args):
    try:
        return probe(method, **args)
    except WireFault as fault:
        if fault.name == "StoreUnavailable":
            return None
        raise



def test_events_command_follows_the_lifecycle(web, workers, redis_server):
    workers.start()
    probe = queue_probe(web[0])
    task_id = probe("queuedEcho", text="watched")["task_id"]
    assert probe("queuedEcho_wait", task_id=task_id, seconds=20)["state"] == "succeeded"
    from ladon_tasks.redis import open_store

    store = open_store(redis_server.url)
    try:
        mine = [event["state"] for _, event in store.events("0", block=0.1, count=100000) if event["task"] == task_id]
    finally:
        store.close()
    assert mine == ["running", "succeeded"]  # its progress report recorded the start
    shown = subprocess.run(
        [sys.executable, "-m", "ladon_tasks", "events", "--redis", redis_server.url, "--from-start", "--count", "3"],
        capture_output=True, text=True, timeout=30, cwd=ROOT,
    )
    assert shown.returncode == 0 and len(shown.stdout.splitlines()) == 3
    assert "QueueProbeService." in shown.stdout or "OnceService." in shown.stdout


def test_standalone_dashboard_sees_and_cancels_tasks_of_other_processes(web, redis_server, output_dir, tmp_path):
    import json
    import urllib.request

    from support.servers import free_port

    port = free_port()
    log = open(output_dir / "dashboard-redis.log", "wb")
    dashboard = subprocess.Popen(
        [sys.executable, "-m", "ladon_tasks", "dashboard", "--redis", redis_server.url, "--port", str(port)],
        stdout=log, stderr=subprocess.STDOUT, cwd=ROOT, start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        probe = queue_probe(web[0])
        task_id = probe("threadGated", gate=str(tmp_path / "never"))["task_id"]  # runs in web[0]

        def listed():
            try:
                with urllib.request.urlopen(f"{base}/api/tasks?method=threadGated", timeout=5) as response:
                    return [t for t in json.loads(response.read())["tasks"] if t["task_id"] == task_id]
            except OSError:
                return None

        row = wait_until(listed, timeout=30, what="the dashboard to list the task")[0]
        assert row["service"] == "QueueProbeService" and row["state"] in ("queued", "running")
        request = urllib.request.Request(
            f"{base}/api/tasks/{task_id}/cancel", data=b"", method="POST",
            headers={"X-Requested-By": "ladon-tasks", "Origin": base},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 200
        assert queue_probe(web[1])("threadGated_progress", task_id=task_id)["state"] == "cancelled"
    finally:
        os.killpg(dashboard.pid, signal.SIGTERM)
        dashboard.wait(timeout=10)


def test_a_task_method_may_keep_its_state_in_its_own_redis(redis_server, output_dir):
    from support.servers import FIXTURE_SERVICES as fixtures

    server = start_server([str(fixtures / "redis_method_service.py")], output_dir,
                          env={"SPLIT_REDIS_URL": redis_server.url})
    try:
        split = JsonWsp(server, "SplitService")
        in_redis = split("inRedis", text="abc")["task_id"]
        in_memory = split("inMemory", text="abc")["task_id"]
        assert split("inRedis_wait_result", task_id=in_redis, seconds=20) == "cba"
        assert split("inMemory_wait_result", task_id=in_memory, seconds=20) == "abc"
        client = redis_server.client()
        stored = lambda task_id: any(client.scan_iter(f"ladon-tasks:*task:{task_id}"))  # noqa: E731 (any shard)
        assert stored(in_redis)
        assert not stored(in_memory)
    finally:
        server.stop()


def test_thread_worker_runs_queued_tasks_and_honours_cancel(web, workers, tmp_path):
    workers.start("--threads")
    probe = queue_probe(web[0])
    task_id = probe("queuedEcho", text="in a thread")["task_id"]
    assert probe("queuedEcho_wait_result", task_id=task_id, seconds=20) == "in a thread"
    gated = probe("queuedGated", gate=str(tmp_path / "gate"))["task_id"]
    wait_until(lambda: probe("queuedGated_progress", task_id=gated)["progress"] > 0, what="the body to report")
    assert probe("queuedGated_cancel", task_id=gated)["state"] == "cancelled"
    (tmp_path / "gate").touch()
    (tmp_path / "flaky").mkdir()
    flaky = probe("queuedFlaky", marker_dir=str(tmp_path / "flaky"))["task_id"]
    assert probe("queuedFlaky_wait", task_id=flaky, seconds=20)["attempts"] == 3  # retries via Redis


def _subscribed(client) -> set[str]:
    """The addresses of the clients subscribed to a channel (finish messages)."""
    return {entry["addr"] for entry in client.client_list() if int(entry.get("sub", 0)) > 0}


def test_a_worker_does_not_subscribe_to_every_finish(web, workers, redis_server):
    # A worker writes outcomes that other processes read: keeping them at hand would
    # subscribe it to the finish messages of every task of the deployment, one message
    # to receive and parse per task whoever ran it.
    if isinstance(redis_server, RedisClusterProcesses):
        pytest.skip("one Redis's CLIENT LIST tells who is subscribed")
    client = redis_server.client()
    probe = queue_probe(web[0])
    first = probe("queuedEcho", text="one")["task_id"]  # the web process follows it: subscribed
    wait_until(lambda: _subscribed(client), timeout=20, what="the web process's subscription")
    before = _subscribed(client)
    workers.start()
    assert probe("queuedEcho_wait", task_id=first, seconds=20)["state"] == "succeeded"
    second = probe("queuedEcho", text="two")["task_id"]
    assert probe("queuedEcho_wait", task_id=second, seconds=20)["state"] == "succeeded"
    assert _subscribed(client) <= before
