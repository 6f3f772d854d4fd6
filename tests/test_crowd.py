"""A crowd of clients following their tasks never takes the request threads other calls
need: more followers than the server has request threads, over real HTTP, against
``ladon-tasks serve`` and against Apache/mod_wsgi. A plain call beside them is answered
within seconds (without the wait budget it queued until the waits' 25 s ran out), and
every follower still sees its task's end.

A wait that finds no place in the budget is answered at once, with the task's state
and ``poll_after``; ``_progress`` of a running task carries the same advice."""

from __future__ import annotations

import concurrent.futures
import io
import json
import re
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from ladon_tasks.client import TaskClient
from support.apache import ModWsgi, prepared_root
from support.jsonwsp import JsonWsp, WireFault
from support.servers import FIXTURE_SERVICES, ROOT, RunningServer, start_server, wait_until

PROBE = str(FIXTURE_SERVICES / "probe_service.py")
#: Request threads of the servers under test, and followers: three times as many.
THREADS = 4
FOLLOWERS = 3 * THREADS
#: A plain call beside the crowd must be answered within this (a wait holds 20 s).
PLAIN_LIMIT = 8.0


def follow(client: JsonWsp, method: str, task_id: str, timeout: float = 90.0) -> dict[str, Any]:
    """What a generated client is told to do: ``_wait``; unless finished, let
    ``poll_after`` seconds pass and ask again."""
    deadline = time.monotonic() + timeout
    while True:
        status = client(f"{method}_wait", task_id=task_id, seconds=20)
        if status["finished"]:
            return status
        assert time.monotonic() < deadline, f"task {task_id} not finished after {timeout}s: {status}"
        time.sleep(status["poll_after"])


class Crowd:
    """``FOLLOWERS`` clients, each starting a gated task and following it to its end."""

    def __init__(self, served: Any, gate: Path) -> None:
        self.client = JsonWsp(served, "ProbeService", timeout=120)
        self.gate = gate
        self.asked = 0
        self._lock = threading.Lock()
        self.pool = concurrent.futures.ThreadPoolExecutor(FOLLOWERS)
        self.followers = [self.pool.submit(self._one) for _ in range(FOLLOWERS)]

    def _one(self) -> dict[str, Any]:
        task_id = self.client("gated", gate=str(self.gate))["task_id"]
        with self._lock:
            self.asked += 1
        return follow(self.client, "gated", task_id)

    def ends(self) -> list[dict[str, Any]]:
        self.gate.touch()
        try:
            return [follower.result(timeout=120) for follower in self.followers]
        finally:
            self.pool.shutdown(wait=False, cancel_futures=True)


def plain_calls_beside(crowd: Crowd, served: Any) -> list[float]:
    """Seconds each of a few plain calls took while the crowd waits (each on a connection
    of its own, as a new client's), after every follower has started and asked."""
    wait_until(lambda: crowd.asked == FOLLOWERS, timeout=60, what="every follower to start its task")
    took = []
    for _ in range(3):
        began = time.monotonic()
        JsonWsp(served, "ProbeService", timeout=60)("plain", text="beside the crowd")
        took.append(time.monotonic() - began)
    return took


def check_crowd(served: Any, gate: Path) -> None:
    crowd = Crowd(served, gate)
    try:
        took = plain_calls_beside(crowd, served)
    finally:
        ends = crowd.ends()
    assert max(took) < PLAIN_LIMIT, f"plain calls beside {FOLLOWERS} followers took {took}"
    assert [end["state"] for end in ends] == ["succeeded"] * FOLLOWERS
    assert all(end["poll_after"] == 0.0 for end in ends)


@pytest.fixture(scope="module")
def crowded(output_dir: Path):
    running = start_server([PROBE], output_dir, "--threads", str(THREADS), "--thread-workers", str(FOLLOWERS))
    yield running
    running.stop()


def test_a_crowd_of_followers_leaves_plain_calls_answered_on_serve(crowded: RunningServer, tmp_path: Path) -> None:
    check_crowd(crowded, tmp_path / "gate")


def test_a_crowd_of_followers_leaves_plain_calls_answered_under_mod_wsgi(output_dir: Path) -> None:
    root = prepared_root(output_dir / "apache-crowd")  # its daemons' user sees the gate there
    server = ModWsgi(root / "one", 1, {"LADON_TASKS_SERVICES": PROBE, "LADON_TASKS_THREAD_WORKERS": str(FOLLOWERS)},
                     threads=THREADS).start()
    try:
        check_crowd(server, root / "gate")
    finally:
        server.stop()


def wait_figures(served: Any) -> dict[str, float]:
    """The wait budget's figures in this server's metrics."""
    with urllib.request.urlopen(f"{served.url}/_tasks/metrics", timeout=30) as response:
        text = response.read().decode()
    return {name: float(value) for name, value in re.findall(r"^(ladon_tasks_wait\w+) (\S+)$", text, re.MULTILINE)}


def test_half_the_request_threads_hold_waits(crowded: RunningServer, tmp_path: Path) -> None:
    """``--threads 4``: two waits hold a thread; a third is answered at once (and counted)."""
    client = JsonWsp(crowded, "ProbeService", timeout=60)
    gate = tmp_path / "gate"
    task_ids = [client("gated", gate=str(gate))["task_id"] for _ in range(2)]
    assert wait_figures(crowded)["ladon_tasks_wait_places"] == 2
    refused = wait_figures(crowded)["ladon_tasks_waits_answered_at_once_total"]
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        held = [pool.submit(client, "gated_wait", task_id=task_id, seconds=20) for task_id in task_ids]
        try:
            wait_until(lambda: wait_figures(crowded)["ladon_tasks_waits_held"] == 2, timeout=15,
                       what="two waits holding a request thread")
            began = time.monotonic()
            third = client("gated_wait", task_id=task_ids[0], seconds=20)
            assert time.monotonic() - began < 10 and (third["state"], third["poll_after"]) == ("running", 0.75)
            assert wait_figures(crowded)["ladon_tasks_waits_answered_at_once_total"] == refused + 1
        finally:
            gate.touch()
        assert [wait.result(timeout=30)["state"] for wait in held] == ["succeeded"] * 2
    assert wait_figures(crowded)["ladon_tasks_waits_held"] == 0


@pytest.fixture(scope="module")
def no_wait_threads(output_dir: Path):
    running = start_server([PROBE], output_dir, "--threads", str(THREADS), "--wait-threads", "0")
    yield running
    running.stop()


def test_a_wait_over_budget_answers_at_once_with_when_to_ask_again(no_wait_threads: RunningServer,
                                                                    tmp_path: Path) -> None:
    client = JsonWsp(no_wait_threads, "ProbeService")
    gate = tmp_path / "gate"
    task_id = client("gated", gate=str(gate))["task_id"]
    wait_until(lambda: client("gated_progress", task_id=task_id)["state"] == "running", what="the task to run")
    began = time.monotonic()
    status = client("gated_wait", task_id=task_id, seconds=25)
    assert time.monotonic() - began < 10, "a wait over budget is answered at once, not after its seconds"
    assert (status["state"], status["finished"], status["poll_after"]) == ("running", False, 0.75)
    with pytest.raises(WireFault) as fault:
        client("gated_wait_result", task_id=task_id, seconds=25)
    assert fault.value.name == "TaskNotFinished" and "ask again in 0.75 s" in fault.value.string
    assert client("gated_progress", task_id=task_id)["poll_after"] == 0.75
    gate.touch()
    final = follow(client, "gated", task_id)
    assert (final["state"], final["poll_after"]) == ("succeeded", 0.0)
    assert client("gated_progress", task_id=task_id)["poll_after"] == 0.0
    assert client("gated_wait_result", task_id=task_id, seconds=25) == 7


def test_serve_refuses_a_wait_budget_of_every_thread(tmp_path: Path) -> None:
    with pytest.raises(AssertionError, match="--wait-threads must be 0 to 3"):
        start_server([PROBE], tmp_path, "--threads", "4", "--wait-threads", "4")


def test_the_wait_budget_is_a_setting_of_the_environment_too(output_dir: Path, tmp_path: Path) -> None:
    server = start_server([PROBE], output_dir, env={"LADON_TASKS_WAIT_THREADS": "0"})
    try:
        client = JsonWsp(server, "ProbeService")
        task_id = client("gated", gate=str(tmp_path / "gate"))["task_id"]
        began = time.monotonic()
        status = client("gated_wait", task_id=task_id, seconds=25)
        assert time.monotonic() - began < 10 and status["poll_after"] == 0.75, status
        (tmp_path / "gate").touch()
    finally:
        server.stop()


class CountedClient(TaskClient):
    """The Python client, counting the calls it makes."""

    def __init__(self, service_url: str) -> None:
        super().__init__(service_url)
        self.calls: list[tuple[float, str]] = []

    def call(self, method: str, **args: Any) -> Any:
        self.calls.append((time.monotonic(), method))
        return super().call(method, **args)


@pytest.mark.parametrize("way", ["wait", "wait_result", "wait with a bar"])
def test_the_python_client_follows_the_advice_to_ask_again(no_wait_threads: RunningServer, tmp_path: Path,
                                                          way: str) -> None:
    """Every wait is answered at once: the client asks again after ``poll_after``, not in
    a tight loop, and still returns the task's end."""
    client = CountedClient(f"{no_wait_threads.url}/ProbeService")
    handle = client.start("gated", gate=str(tmp_path / "gate"))
    follow_it = {
        "wait": lambda: handle.wait(timeout=60),
        "wait_result": lambda: handle.wait_result(timeout=60),
        "wait with a bar": lambda: handle.wait(timeout=60, progress=io.StringIO()),
    }[way]
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        follower = pool.submit(follow_it)
        wait_until(lambda: len(client.calls) >= 4, timeout=30, what="the client to ask four times")
        (tmp_path / "gate").touch()
        end = follower.result(timeout=60)
    assert end == 7 if way == "wait_result" else (end.state, end.poll_after) == ("succeeded", 0.0)
    asked = [when for when, method in client.calls if method != "gated"]
    gaps = [later - earlier for earlier, later in zip(asked, asked[1:], strict=False)]
    assert min(gaps[:3]) >= 0.5, f"asked again before poll_after (0.75 s) passed: {gaps}"


def test_the_wait_command_follows_the_advice(no_wait_threads: RunningServer, tmp_path: Path) -> None:
    started = TaskClient(f"{no_wait_threads.url}/ProbeService").start("gated", gate=str(tmp_path / "gate"))
    command = [sys.executable, "-m", "ladon_tasks", "wait", no_wait_threads.url, "ProbeService.gated",
               started.task_id, "--quiet"]
    with subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as follower:
        wait_until(lambda: started.progress().progress > 0, what="the task to report progress")
        (tmp_path / "gate").touch()
        out, err = follower.communicate(timeout=60)
    assert follower.returncode == 0, err
    assert json.loads(out) == 7


#: Clients that ignore ``poll_after`` and ask again at once, three per request thread.
SPINNERS = 3 * THREADS


def test_clients_that_ignore_the_advice_and_spin_get_no_more_than_their_share(crowded: RunningServer,
                                                                              tmp_path: Path) -> None:
    """Each spinner asks ``_wait`` (and every third time ``_progress``) about its task as
    fast as it is answered, ignoring ``poll_after``. A spinner has one request in flight
    at a time, so it takes at most one request thread at a time, and a refused wait
    returns it at once: the waits held never pass the budget, a plain call beside them is
    answered within seconds, and once the tasks end every spinner sees it."""
    gate = tmp_path / "gate"
    client = JsonWsp(crowded, "ProbeService", timeout=120)
    task_ids = [client("gated", gate=str(gate))["task_id"] for _ in range(SPINNERS)]
    places = wait_figures(crowded)["ladon_tasks_wait_places"]
    refused_before = wait_figures(crowded)["ladon_tasks_waits_answered_at_once_total"]
    asked = [0] * SPINNERS

    def spin(number: int) -> dict[str, Any]:
        task_id = task_ids[number]
        while True:
            method = "gated_progress" if asked[number] % 3 == 2 else "gated_wait"
            status = client(method, **({"task_id": task_id} if method == "gated_progress"
                                       else {"task_id": task_id, "seconds": 20}))
            asked[number] += 1
            if status["finished"]:
                return status

    with concurrent.futures.ThreadPoolExecutor(SPINNERS) as pool:
        spinners = [pool.submit(spin, number) for number in range(SPINNERS)]
        try:
            wait_until(lambda: min(asked) >= 3, timeout=60, what="every spinner to have asked three times")
            held_seen = []
            took = []
            for _ in range(3):
                held_seen.append(wait_figures(crowded)["ladon_tasks_waits_held"])
                began = time.monotonic()
                JsonWsp(crowded, "ProbeService", timeout=60)("plain", text="beside the spinners")
                took.append(time.monotonic() - began)
        finally:
            gate.touch()
        ends = [spinner.result(timeout=120) for spinner in spinners]
    assert max(took) < PLAIN_LIMIT, f"plain calls beside {SPINNERS} spinners took {took}"
    assert max(held_seen) <= places, f"waits held {held_seen}, budget {places}"
    refused = wait_figures(crowded)["ladon_tasks_waits_answered_at_once_total"] - refused_before
    assert refused >= SPINNERS, "spinners over the budget were answered at once, not held"
    assert [end["state"] for end in ends] == ["succeeded"] * SPINNERS


def test_poll_after_is_learned_from_the_method_s_run_times(tmp_path: Path) -> None:
    """Once a process has answered the ends of ``RUN_TIMES_MIN`` tasks of a method, a
    client of a running task of that method that could not be near its end is told to
    ask again about when the shortest of them ended - not every 0.75 s; once the task
    has run that long, 0.75 s again; 0 once it has ended."""
    from ladon_tasks import defaults

    runs = defaults.RUN_TIMES_MIN
    server = start_server([PROBE], tmp_path, "--threads", str(THREADS), "--wait-threads", "0",
                          "--thread-workers", str(runs + 1))
    try:
        client = JsonWsp(server, "ProbeService")
        first_gate, gate = tmp_path / "first", tmp_path / "gate"
        task_ids = [client("gated", gate=str(first_gate))["task_id"] for _ in range(runs)]
        wait_until(lambda: all(client("gated_progress", task_id=task_id)["state"] == "running"
                               for task_id in task_ids), what="the first tasks to run")
        wait_until(lambda: min(client("gated_progress", task_id=task_id)["duration"] for task_id in task_ids) >= 3.0,
                   timeout=60, what="the first tasks to run 3 s")
        first_gate.touch()
        for task_id in task_ids:  # each end answered here once: its run time is known
            assert follow(client, "gated", task_id)["state"] == "succeeded"
        shortest = min(client("gated_progress", task_id=task_id)["duration"] for task_id in task_ids)
        assert shortest >= 3.0

        task_id = client("gated", gate=str(gate))["task_id"]
        wait_until(lambda: client("gated_progress", task_id=task_id)["state"] == "running", what="the task to run")
        status = client("gated_progress", task_id=task_id)
        waited = client("gated_wait", task_id=task_id, seconds=25)  # over budget: at once
        with pytest.raises(WireFault) as fault:
            client("gated_wait_result", task_id=task_id, seconds=25)
        assert status["duration"] < shortest - 1.0, "the task was asked about at its start (within 2 s)"
        # Ask again when it has run as long as the shortest of the method's tasks, in each answer.
        assert abs(status["poll_after"] - (shortest - status["duration"])) < 0.1, status
        assert 0.75 < waited["poll_after"] <= shortest - status["duration"], waited
        asked = float(re.search(r"ask again in ([0-9.]+) s", fault.value.string).group(1))
        assert 0.75 < asked <= shortest - status["duration"], fault.value.string
        wait_until(lambda: client("gated_progress", task_id=task_id)["duration"] > shortest,
                   timeout=60, what="the task to run as long as the shortest before it")
        assert client("gated_progress", task_id=task_id)["poll_after"] == 0.75
        assert client("gated_wait", task_id=task_id, seconds=25)["poll_after"] == 0.75
        gate.touch()
        final = follow(client, "gated", task_id)
        assert (final["state"], final["poll_after"]) == ("succeeded", 0.0)
    finally:
        server.stop()
