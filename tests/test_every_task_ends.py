"""Every task ends, whatever process dies: web servers and workers killed with SIGKILL
or stopped with SIGTERM, children left behind, Redis away while an outcome is written,
and each step that used to take two calls cut at the point in between (crash points,
``LADON_TASKS_CRASH_AT``). Everything runs for real: ``ladon-tasks serve`` and
``ladon-tasks worker`` processes around a real ``redis-server``."""

from __future__ import annotations

import contextlib
import http.client
import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

from support.jsonwsp import JsonWsp, WireFault
from support.processes import process_alive
from support.redis_server import start_redis
from support.servers import FIXTURE_SERVICES, RunningServer, start_server, wait_until
from support.workers import PROBE, Workers

from ladon_tasks.crashpoints import CRASH_EXIT_CODE

#: Owner lease of the tests' web servers, in seconds: a killed server's tasks are taken
#: over this long after its last renewal.
WEB_LEASE = "2"


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory):
    server = start_redis(tmp_path_factory.mktemp("redis"), appendonly=True)
    yield server
    server.stop()


class WebServers:
    """``ladon-tasks serve --redis`` processes, each in its own session."""

    def __init__(self, redis_url: str, log_dir: Path) -> None:
        self.redis_url = redis_url
        self.log_dir = log_dir
        self.servers: list[RunningServer] = []

    def start(self, *extra: str, env: dict[str, str] | None = None) -> RunningServer:
        server = start_server([PROBE], self.log_dir, "--redis", self.redis_url, "--lease", WEB_LEASE, *extra,
                              env=env)
        self.servers.append(server)
        return server

    def stop_all(self) -> None:
        for server in self.servers:
            if server.process.poll() is None:
                os.killpg(server.process.pid, signal.SIGKILL)
                server.process.wait()


@pytest.fixture
def webs(redis_server, output_dir):
    pool = WebServers(redis_server.url, output_dir)
    yield pool
    pool.stop_all()


@pytest.fixture
def workers(redis_server, output_dir):
    pool = Workers(redis_server.url, output_dir)
    yield pool
    pool.stop_all()


def children(pid: int) -> set[int]:
    """The live child processes of ``pid``."""
    found = set()
    for listing in Path(f"/proc/{pid}/task").glob("*/children"):
        found |= {int(child) for child in listing.read_text().split() if process_alive(int(child))}
    return found


def marked(server: RunningServer) -> JsonWsp:
    return JsonWsp(server, "MarkedService")


def starts(marker_dir: Path) -> list[str]:
    return sorted(p.name for p in marker_dir.glob("start-*"))


def dones(marker_dir: Path) -> list[str]:
    return sorted(p.name for p in marker_dir.glob("done-*"))


def running_pid(marker_dir: Path, attempt: int) -> int:
    """The pid of the process that runs ``attempt`` of the body (from its marker)."""
    found = wait_until(lambda: list(marker_dir.glob(f"start-{attempt}-*")), timeout=30,
                       what=f"attempt {attempt} to start")
    return int(found[0].name.rsplit("-", 1)[1])


def wait_final(probe: JsonWsp, method: str, task_id: str, timeout: float = 60.0) -> dict:
    """The task's record once it has finished, asked with ``_wait`` until ``timeout``."""
    def finished():
        try:
            answer = probe(f"{method}_wait", task_id=task_id, seconds=5)
        except WireFault as fault:
            if fault.name == "StoreUnavailable":
                return None
            raise
        return answer if answer["finished"] else None

    return wait_until(finished, timeout=timeout, interval=0.05, what=f"task {task_id} to finish")


# -- web processes ---------------------------------------------------------------------


@pytest.mark.parametrize("method", ["threadMarked", "processMarked"])
def test_a_killed_web_process_has_its_tasks_taken_over(webs, tmp_path, method):
    doomed, survivor = webs.start(), webs.start()
    task_id = marked(doomed)(method, marker_dir=str(tmp_path))["task_id"]
    first_pid = running_pid(tmp_path, 1)
    killed_at = time.monotonic()
    os.kill(doomed.process.pid, signal.SIGKILL)  # the process alone: its children must not outlive it
    doomed.process.wait(timeout=10)
    wait_until(lambda: not process_alive(first_pid), timeout=10, what="the killed server's body to end")
    second_pid = running_pid(tmp_path, 2)
    taken_over_after = time.monotonic() - killed_at
    (tmp_path / "gate").touch()
    final = wait_final(marked(survivor), method, task_id)
    assert final["state"] == "succeeded" and final["attempts"] == 2
    assert marked(survivor)(f"{method}_result", task_id=task_id) == 2
    assert starts(tmp_path) == [f"start-1-{first_pid}", f"start-2-{second_pid}"]
    assert dones(tmp_path) == ["done-2"]  # the first attempt never finished: it died with its server
    if method == "threadMarked":
        assert second_pid == survivor.process.pid
    print(f"{method}: taken over {taken_over_after:.1f}s after SIGKILL (owner lease {WEB_LEASE}s)")


def test_a_server_stopped_with_sigterm_hands_its_tasks_over_at_once(webs, tmp_path):
    # A lease far longer than the test waits: only the hand-over at shutdown can make
    # the other server take the task over in time.
    leaving = webs.start("--lease", "300", "--grace", "0.2")
    staying = webs.start("--lease", "300")
    task_id = marked(leaving)("threadMarked", marker_dir=str(tmp_path))["task_id"]
    running_pid(tmp_path, 1)
    leaving.process.send_signal(signal.SIGTERM)
    assert leaving.process.wait(timeout=30) == 0
    record = marked(staying)("threadMarked_progress", task_id=task_id)
    assert record["state"] in ("queued", "running")
    assert running_pid(tmp_path, 2) == staying.process.pid
    (tmp_path / "gate").touch()
    final = wait_final(marked(staying), "threadMarked", task_id, timeout=30)
    assert final["state"] == "succeeded" and final["attempts"] == 2


def test_a_restarted_server_runs_what_its_previous_life_left(webs, tmp_path):
    # One server, a task running, Ctrl-C (SIGINT), the server started again.
    first = webs.start("--grace", "0.2", "--lease", "300")
    task_id = marked(first)("threadMarked", marker_dir=str(tmp_path))["task_id"]
    running_pid(tmp_path, 1)
    first.process.send_signal(signal.SIGINT)
    assert first.process.wait(timeout=30) == 0
    second = webs.start("--lease", "300")
    assert running_pid(tmp_path, 2) == second.process.pid
    (tmp_path / "gate").touch()
    assert wait_final(marked(second), "threadMarked", task_id, timeout=30)["state"] == "succeeded"


def test_stopping_refuses_new_tasks_and_lets_running_bodies_finish(output_dir, tmp_path):
    server = start_server([PROBE], output_dir, "--grace", "60")  # the in-process store
    probe = marked(server)
    task_id = probe("threadMarked", marker_dir=str(tmp_path))["task_id"]
    running_pid(tmp_path, 1)
    server.process.send_signal(signal.SIGTERM)
    wait_until(lambda: b"stopping" in server.log_path.read_bytes(), what="the server to begin stopping")
    with pytest.raises(WireFault) as refused:
        probe("threadMarked", marker_dir=str(tmp_path))
    assert refused.value.name == "ExecutorUnavailable" and "shutting down" in refused.value.string
    assert probe("threadMarked_progress", task_id=task_id)["state"] == "running"  # still answered
    waited: dict = {}
    waiter = threading.Thread(target=lambda: waited.update(probe("threadMarked_wait", task_id=task_id, seconds=30)))
    waiter.start()
    (tmp_path / "gate").touch()
    waiter.join(timeout=60)
    assert waited["state"] == "succeeded"
    assert server.process.wait(timeout=30) == 0


def test_with_the_in_process_store_what_outlives_the_grace_ends_with_a_clear_error(output_dir, tmp_path):
    server = start_server([PROBE], output_dir, "--grace", "0.5")
    probe = marked(server)
    task_id = probe("threadMarked", marker_dir=str(tmp_path))["task_id"]
    running_pid(tmp_path, 1)
    waited: dict = {}
    waiter = threading.Thread(target=lambda: waited.update(probe("threadMarked_wait", task_id=task_id, seconds=30)))
    waiter.start()
    wait_until(lambda: probe("threadMarked_progress", task_id=task_id)["progress"] > 0, what="progress")
    server.process.send_signal(signal.SIGTERM)
    waiter.join(timeout=60)
    assert waited["state"] == "failed"
    assert waited["error"] == "WorkerDied: its server process stopped before the task finished"
    assert server.process.wait(timeout=30) == 0


# -- workers ---------------------------------------------------------------------------


def test_a_sigkilled_worker_takes_its_bodies_with_it(webs, workers, tmp_path):
    web = webs.start()
    doomed = workers.start()
    task_id = marked(web)("queuedMarked", marker_dir=str(tmp_path))["task_id"]
    child = running_pid(tmp_path, 1)
    os.kill(doomed.pid, signal.SIGKILL)  # the worker alone, not its session
    doomed.wait(timeout=10)
    wait_until(lambda: not process_alive(child), timeout=10, what="the dead worker's body to end")
    workers.start()
    running_pid(tmp_path, 2)
    (tmp_path / "gate").touch()
    final = wait_final(marked(web), "queuedMarked", task_id)
    assert final["state"] == "succeeded" and final["attempts"] == 2
    assert dones(tmp_path) == ["done-2"]


@contextlib.contextmanager
def outcome_written_while_redis_is_away(redis_server, workers: Workers, worker, marker_dir: Path):
    """Redis goes away; the gated body is let go, ends, and its worker keeps the outcome
    (it says so in its log); Redis comes back when the block is left."""
    redis_server.stop()
    try:
        (marker_dir / "gate").touch()
        wait_until(lambda: "kept until the store answers" in workers.log(worker), timeout=30,
                   what="the worker to keep the outcome")
        yield
    finally:
        redis_server.start()


@pytest.mark.parametrize("method, attempts", [
    ("queuedMarked", 1),      # a result: written when Redis is back; the body does not run again
    ("queuedFailsFirst", 2),  # a failure with a retry left: the retry still happens, once
])
def test_an_outcome_reached_while_redis_is_away_is_written_when_it_is_back(
        webs, workers, redis_server, tmp_path, method, attempts):
    web = webs.start()
    worker = workers.start()
    task_id = marked(web)(method, marker_dir=str(tmp_path))["task_id"]
    first_pid = running_pid(tmp_path, 1)
    with outcome_written_while_redis_is_away(redis_server, workers, worker, tmp_path):
        assert dones(tmp_path) == ["done-1"]
    final = wait_final(marked(web), method, task_id)
    assert final["state"] == "succeeded" and final["attempts"] == attempts
    assert dones(tmp_path) == [f"done-{n}" for n in range(1, attempts + 1)]
    assert starts(tmp_path)[0] == f"start-1-{first_pid}" and len(starts(tmp_path)) == attempts


# -- a crash between what used to be two steps -------------------------------------------


def _crashed(process: subprocess.Popen) -> bool:
    return process.poll() == CRASH_EXIT_CODE


@pytest.mark.parametrize("point, reruns", [
    ("worker.claimed", False),   # read, not started: the lease runs out, the job comes back
    ("slot.finished", True),     # the body ran, its outcome not written: it runs again
    ("slot.settled", False),     # outcome and acknowledgement in one step: nothing to redo
])
def test_a_worker_dying_at_a_step_loses_nothing(webs, workers, tmp_path, point, reruns):
    web = webs.start()
    (tmp_path / "gate").touch()
    doomed = workers.start(env={"LADON_TASKS_CRASH_AT": point})
    task_id = marked(web)("queuedMarked", marker_dir=str(tmp_path))["task_id"]
    wait_until(lambda: _crashed(doomed), timeout=30, what=f"the worker to die at {point}")
    workers.start()
    final = wait_final(marked(web), "queuedMarked", task_id)
    assert final["state"] == "succeeded"
    assert len(dones(tmp_path)) == (2 if reruns else 1)
    assert final["attempts"] == (1 if point == "slot.settled" else 2)


@pytest.mark.parametrize("point", ["slot.finished", "slot.settled"])
def test_a_retry_is_not_lost_to_a_crash_before_or_after_it_is_scheduled(webs, workers, tmp_path, point):
    web = webs.start()
    (tmp_path / "gate").touch()
    doomed = workers.start(env={"LADON_TASKS_CRASH_AT": point})
    task_id = marked(web)("queuedFailsFirst", marker_dir=str(tmp_path))["task_id"]
    wait_until(lambda: _crashed(doomed), timeout=30, what=f"the worker to die at {point}")
    workers.start()
    final = wait_final(marked(web), "queuedFailsFirst", task_id)
    assert final["state"] == "succeeded" and final["attempts"] == 2
    assert dones(tmp_path) == ["done-1", "done-2"]  # each attempt once: the retry was not doubled


@pytest.mark.parametrize("point", ["reaper.claimed", "reaper.reissued"])
def test_a_reaper_dying_mid_reissue_loses_nothing(webs, workers, tmp_path, point):
    web = webs.start()
    lost = workers.start()
    task_id = marked(web)("queuedMarked", marker_dir=str(tmp_path))["task_id"]
    running_pid(tmp_path, 1)
    workers.kill(lost)
    reaper = workers.start(env={"LADON_TASKS_CRASH_AT": point})
    wait_until(lambda: _crashed(reaper), timeout=30, what=f"the reaper to die at {point}")
    workers.start()
    (tmp_path / "gate").touch()
    final = wait_final(marked(web), "queuedMarked", task_id)
    # the crashed reaper may have read the job it reissued before dying: then it is
    # reissued once more, and only that last attempt finishes
    assert final["state"] == "succeeded" and final["attempts"] >= 2
    assert dones(tmp_path) == [f"done-{final['attempts']}"]


def test_a_worker_dying_right_after_a_hand_back_loses_nothing(webs, workers, tmp_path):
    web = webs.start()
    leaving = workers.start("--grace", "0.2", env={"LADON_TASKS_CRASH_AT": "worker.handed_back"})
    task_id = marked(web)("queuedMarked", marker_dir=str(tmp_path))["task_id"]
    running_pid(tmp_path, 1)
    leaving.send_signal(signal.SIGTERM)
    wait_until(lambda: _crashed(leaving), timeout=30, what="the worker to die after handing back")
    assert "handed back" in marked(web)("queuedMarked_progress", task_id=task_id)["message"]
    workers.start()
    running_pid(tmp_path, 2)
    (tmp_path / "gate").touch()
    final = wait_final(marked(web), "queuedMarked", task_id)
    assert final["state"] == "succeeded" and final["attempts"] == 2


def test_a_web_process_dying_between_recording_and_running_a_task_loses_nothing(webs, tmp_path):
    survivor = webs.start()
    doomed = webs.start(env={"LADON_TASKS_CRASH_AT": "web.created"})
    (tmp_path / "gate").touch()
    with pytest.raises((OSError, http.client.HTTPException)):
        marked(doomed)("threadMarked", marker_dir=str(tmp_path))  # the answer never comes
    wait_until(lambda: _crashed(doomed.process), timeout=10, what="the server to die at web.created")
    listed = wait_until(lambda: dones(tmp_path), timeout=30, what="the recorded task to run elsewhere")
    assert listed == ["done-1"]  # it had never started: taken over as attempt 1
    assert running_pid(tmp_path, 1) == survivor.process.pid


# -- timeouts ----------------------------------------------------------------------------


def test_a_process_timeout_counts_from_the_body_start_not_the_child_start(output_dir):
    server = start_server([str(FIXTURE_SERVICES / "slow_import_service.py")], output_dir,
                          "--process-workers", "1", env={"SLOW_IMPORT_SECONDS": "2.0"})
    try:
        slow = JsonWsp(server, "SlowImportService")
        # every child imports the service for 2 s; each body runs 0.6 s of its 1 s limit
        for _ in range(3):
            task_id = slow("quick", seconds=0.6)["task_id"]
            final = slow("quick_wait", task_id=task_id, seconds=30)
            assert final["state"] == "succeeded", final["error"]
        first_child = slow("quick_result", task_id=task_id)
        # a timeout kills the slot's child, and the slot starts the next one at once -
        # before any job asks for it - which imports the service while it waits
        too_slow = slow("quick", seconds=20.0)["task_id"]
        assert slow("quick_wait", task_id=too_slow, seconds=30)["error"].startswith("TaskTimeout")
        warm = wait_until(lambda: children(server.process.pid) - {first_child}, what="a warm child")
        after = slow("quick", seconds=0.6)["task_id"]
        final = slow("quick_wait", task_id=after, seconds=30)
        assert final["state"] == "succeeded", final["error"]
        assert slow("quick_result", task_id=after) in warm
    finally:
        server.stop()
