"""Beyond one Redis: a primary, a replica and three sentinels on loopback, every part a
real process - ``redis-server``, ``redis-server --sentinel``, ``ladon-tasks serve`` and
``ladon-tasks worker`` - driven through the ``redis+sentinel://`` URL users give.

Tasks flow over the three executors while the primary is killed with SIGKILL (or,
alive, demoted by a manual ``SENTINEL FAILOVER``); every task must end with the right
result, and starts must succeed again. What the failover cost - how long starts failed,
how many bodies ran again, how many acknowledged starts were lost - is printed and left
in ``test-output/failover-<how>.json``, not asserted: those are measurements.

A failover to a replica that had not received the last writes undoes them; the last
test undoes a finish on purpose (the record and its job put back as they were while the
body ran) and checks that the task runs again and ends.
"""

from __future__ import annotations

import datetime
import json
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests

from ladon_tasks import defaults
from ladon_tasks.redis.keys import Keys
from ladon_tasks.redis.sentinel import SentinelURL
from support.jsonwsp import JsonWsp, WireFault
from support.redis_server import start_redis
from support.sentinel import SERVICE, SentinelGroup, start_sentinel_group
from support.servers import (
    FIXTURE_SERVICES, ROOT, RunningServer, free_port, kill_sessions, launch, start_server, wait_until,
)
from support.workers import LEASE, PROBE, Workers

CHAOS = str(FIXTURE_SERVICES / "chaos_service.py")
METHODS = ("chaosQueued", "chaosThread", "chaosProcess")
TASKS = 90
#: Starts made before the failover; the rest are made through it and after.
BEFORE = 30
#: Owner lease of the web servers, in seconds (the workers' is ``support.workers.LEASE``).
WEB_LEASE = "2"
#: Longest the test waits for starts to succeed again after the failover, in seconds:
#: sentinels take the primary for down after 1 s, and a failed election is tried again
#: 10 s later; past this, followers did not follow.
STARTS_BACK_WITHIN = 45.0
LADON_TASKS = str(Path(sys.executable).parent / "ladon-tasks")


@pytest.fixture
def group(tmp_path_factory) -> SentinelGroup:
    started = start_sentinel_group(tmp_path_factory.mktemp("sentinel"))
    yield started
    started.stop()


# -- the URL ---------------------------------------------------------------------------


@pytest.mark.parametrize("url, parts", [
    ("redis+sentinel://a:26380,b,[::1]:26381/mymaster/2",
     dict(sentinels=(("a", 26380), ("b", 26379), ("::1", 26381)), service="mymaster", db=2)),
    ("redis+sentinel://user:p%40ss@h1:1,h2:2/svc/",
     dict(sentinels=(("h1", 1), ("h2", 2)), service="svc", db=0, username="user", password="p@ss")),
    ("redis+sentinel://:secret@h/svc?sentinel_password=s2&wait_replicas=0&wait_timeout=0.5",
     dict(password="secret", sentinel_password="s2", wait_replicas=0, wait_timeout=0.5)),
])
def test_sentinel_urls_name_sentinels_service_and_database(url, parts):
    parsed = SentinelURL.parse(url)
    for name, value in parts.items():
        assert getattr(parsed, name) == value
    assert "secret" not in parsed.describe() and "p@ss" not in parsed.describe()


@pytest.mark.parametrize("url, complaint", [
    ("redis+sentinel://h1:26379", "service"),
    ("redis+sentinel://h1:26379/", "service"),
    ("redis+sentinel://h1:26379/svc/0/extra", "service"),
    ("redis+sentinel://h1:port/svc", "port"),
    ("redis+sentinel://h1:70000/svc", "port"),
    ("redis+sentinel://,h2/svc", "sentinels"),
    ("redis+sentinel://h/svc/db1", "database"),
    ("redis+sentinel://h/svc?socket_timeout=1", "socket_timeout"),
    ("redis+sentinel://h/svc?wait_timeout=5", "wait_timeout"),
    ("redis+sentinel://h/svc?wait_replicas=-1", "wait_replicas"),
])
def test_malformed_sentinel_urls_say_what_is_wrong(url, complaint):
    with pytest.raises(ValueError, match=complaint):
        SentinelURL.parse(url)


def test_every_command_takes_a_sentinel_url(group, output_dir, tmp_path):
    """``serve`` (from ``LADON_TASKS_REDIS_URL``, as the Apache handler's settings give
    it), ``worker``, ``tasks``, ``inspect`` and the standalone ``dashboard``."""
    web = start_server([PROBE], output_dir, env={"LADON_TASKS_REDIS_URL": group.url})
    workers = Workers(group.url, output_dir)
    dashboard = None
    try:
        workers.start()
        queued = JsonWsp(web, "QueueProbeService")("queuedEcho", text="over sentinel")["task_id"]
        threaded = JsonWsp(web, "ProbeService")("echo", text="in process")["task_id"]
        assert JsonWsp(web, "QueueProbeService")("queuedEcho_wait_result", task_id=queued, seconds=20)
        assert JsonWsp(web, "ProbeService")("echo_wait_result", task_id=threaded, seconds=20)
        listed = subprocess.run([LADON_TASKS, "tasks", "--redis", group.url, "--json"], capture_output=True,
                                text=True, timeout=60, cwd=ROOT)
        assert listed.returncode == 0, listed.stderr
        rows = {row["task_id"]: row["state"] for row in map(json.loads, listed.stdout.splitlines())}
        assert rows[queued] == rows[threaded] == "succeeded"
        inspected = subprocess.run([LADON_TASKS, "inspect", queued, "--redis", group.url], capture_output=True,
                                   text=True, timeout=60, cwd=ROOT)
        assert inspected.returncode == 0 and json.loads(inspected.stdout)["state"] == "succeeded"

        port = free_port()

        def answers(server: RunningServer) -> bool:
            try:
                return requests.get(f"{server.url}/api/tasks", timeout=1).status_code == 200
            except requests.RequestException:
                return False

        dashboard = launch([LADON_TASKS, "dashboard", "--redis", group.url, "--port", str(port)], port,
                           output_dir / f"dashboard-sentinel-{port}.log", answers, "dashboard")
        shown = requests.get(f"{dashboard.url}/api/tasks", timeout=10).json()
        assert {queued, threaded} <= {task["task_id"] for task in shown["tasks"]}
    finally:
        if dashboard is not None:
            dashboard.stop()
        workers.stop_all()
        web.stop()


# -- the failover ----------------------------------------------------------------------


class Traffic:
    """Two web servers and two workers on ``url`` (a Sentinel group's, or a Redis
    Cluster's: ``test_cluster_failover.py``), and a client that starts ``TASKS`` tasks,
    each tried again with its ``Idempotency-Key`` until it is started."""

    def __init__(self, url: str, output_dir: Path, marker_dir: Path, web_lease: str | None = WEB_LEASE,
                 worker_lease: str | None = LEASE, thread_worker: bool = False) -> None:
        """``web_lease``, ``worker_lease``: the ``--lease`` of ``serve`` and ``worker``
        (``None``: their defaults); ``thread_worker``: the second worker runs bodies in
        threads (``--threads``)."""
        self.marker_dir = marker_dir
        common = ["--thread-workers", "4", "--process-workers", "2", *(["--lease", web_lease] if web_lease else [])]
        self.webs = [
            start_server([CHAOS], output_dir, "--redis", url, *common),
            start_server([CHAOS], output_dir, *common, env={"LADON_TASKS_REDIS_URL": url}),
        ]
        options = ("--concurrency", "2", *(("--lease", worker_lease) if worker_lease else ()))
        self.workers = Workers(url, output_dir, services=[CHAOS], options=options)
        self.workers.start()
        self.workers.start(*(["--threads"] if thread_worker else []))
        self.started: dict[int, str] = {}
        self.answered_at: dict[int, float] = {}
        self.calls: list[tuple[float, bool]] = []  # (when, started) for every start call
        self.thread = threading.Thread(target=self._start_all, daemon=True)

    def call(self, n: int, method: str, args: dict, headers: dict[str, str] | None = None) -> dict:
        """A call about task ``n``, to the web server that started it."""
        return JsonWsp(self.webs[n % 2], "ChaosService").call(method, args, headers)

    def _start_all(self) -> None:
        for n in range(TASKS):
            deadline = time.monotonic() + STARTS_BACK_WITHIN + 30
            while n not in self.started and time.monotonic() < deadline:
                try:
                    answer = self.call(n, METHODS[n % 3], {"n": n, "marker_dir": str(self.marker_dir)},
                                       {"Idempotency-Key": f"failover-{n}"})
                    self.started[n] = answer["task_id"]
                    self.answered_at[n] = time.time()
                except (WireFault, OSError, AssertionError):
                    self.calls.append((time.time(), False))
                    time.sleep(0.05)
                else:
                    self.calls.append((time.time(), True))
            time.sleep(0.03)

    def final(self, n: int) -> dict | None:
        """The task's record once it has finished; ``None`` while it runs or Redis is
        away; raises ``WireFault`` ``UnknownTask`` for a task the store does not know."""
        try:
            record = self.call(n, f"{METHODS[n % 3]}_wait", {"task_id": self.started[n], "seconds": 2})
        except WireFault as fault:
            if fault.name == "UnknownTask":
                raise
            return None
        except (OSError, AssertionError):
            return None
        return record if record["finished"] else None

    def waits_skipped_before(self, moment: float) -> bool:
        """Whether a web server logged that starts went without the replica wait (a
        replica that lagged) in the ``START_WAIT_PAUSE`` before ``moment``."""
        for web in self.webs:
            for line in web.log().splitlines():
                if "no replica acknowledged a start" in line:
                    logged = datetime.datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f").timestamp()
                    if moment - defaults.START_WAIT_PAUSE <= logged <= moment:
                        return True
        return False

    def live_pids(self) -> set[int]:
        """The web processes and workers still running."""
        processes = [web.process for web in self.webs] + self.workers.processes
        return {process.pid for process in processes if process.poll() is None}

    def taken_from_live(self) -> list[str]:
        """The log lines of every web process and worker that say a task was taken over
        (an owner lease judged run out) or reissued (a worker lease judged run out) from a
        process that is still running: each names the process (``host:pid:nonce``)."""
        live = self.live_pids()
        logs = [web.log() for web in self.webs] + [self.workers.log(process) for process in self.workers.processes]
        return [line for log in logs for line in log.splitlines() if pid_taken_from(line) in live]

    def stop(self) -> None:
        self.workers.stop_all()
        kill_sessions(self.webs)


#: A takeover (``taken over from <owner>``) or a reissue (``the worker running attempt N
#: (<worker>) stopped answering``) in a log; the process's id is ``host:pid:nonce``.
TAKEN_FROM = re.compile(r"taken over from (\S+)|\((\S+)\) stopped answering")


def pid_taken_from(line: str) -> int | None:
    """The pid of the process a logged takeover or reissue took a task from."""
    match = TAKEN_FROM.search(line)
    if match is None:
        return None
    parts = (match.group(1) or match.group(2)).split(":")
    return int(parts[-2]) if len(parts) >= 3 and parts[-2].isdigit() else None


def fail_over(group: SentinelGroup, how: str) -> None:
    if how == "kill":
        group.primary.kill()
    else:
        with group.sentinels[0].client() as sentinel:
            assert sentinel.execute_command("SENTINEL", "FAILOVER", SERVICE)


@pytest.mark.parametrize("how", ["kill", "demote"])
def test_every_task_ends_through_a_failover(group, output_dir, tmp_path, how):
    traffic = Traffic(group.url, output_dir, tmp_path)
    try:
        traffic.thread.start()
        wait_until(lambda: len(traffic.started) >= BEFORE, timeout=60, what=f"{BEFORE} tasks to start")
        old_port = group.primary.port
        failed_over_at = time.time()
        fail_over(group, how)
        wait_until(lambda: group.primary_port() not in (None, old_port), timeout=STARTS_BACK_WITHIN,
                   interval=0.05, what="Sentinel to promote the replica")
        promoted_after = time.time() - failed_over_at
        wait_until(lambda: any(ok and when > failed_over_at for when, ok in traffic.calls),
                   timeout=STARTS_BACK_WITHIN, interval=0.05, what="a start to succeed after the failover")
        traffic.thread.join(timeout=180)
        assert not traffic.thread.is_alive() and len(traffic.started) == TASKS, "every task could be started"
        finals, lost = wait_for_ends(traffic)

        report = measure(traffic, finals, lost, failed_over_at, promoted_after, how)
        (output_dir / f"failover-{how}.json").write_text(json.dumps(report, indent=2))
        print(f"failover ({how}):", json.dumps(report))
        # A start is answered once the replica has it, or once the sentinels say they are
        # not replacing the primary it went to: none is lost - unless the replica had
        # lagged past the wait shortly before, and starts went without it (logged).
        if not traffic.waits_skipped_before(failed_over_at):
            assert not lost, f"acknowledged starts lost: {report['lost']}"
    finally:
        traffic.stop()


def wait_for_ends(traffic: Traffic) -> tuple[dict[int, dict], set[int]]:
    """Every started task's final record, and the tasks the store no longer knows (an
    acknowledged start the failover lost); fails unless every other task ended, with
    success and its right result."""
    finals: dict[int, dict] = {}
    lost: set[int] = set()
    deadline = time.monotonic() + 120
    while len(finals) + len(lost) < TASKS and time.monotonic() < deadline:
        for n in sorted(set(traffic.started) - set(finals) - lost):
            try:
                record = traffic.final(n)
            except WireFault:
                lost.add(n)
                continue
            if record is not None:
                finals[n] = record
    unended = sorted(set(traffic.started) - set(finals) - lost)
    assert not unended, f"{len(unended)} task(s) never ended, e.g. {[traffic.started[n] for n in unended[:5]]}"
    wrong = {n: f["state"] for n, f in finals.items() if f["state"] != "succeeded"}
    assert not wrong, f"tasks that did not succeed: {wrong}"
    results = {n: traffic.call(n, f"{METHODS[n % 3]}_result", {"task_id": traffic.started[n]}) for n in finals}
    assert all(value == 2 * n for n, value in results.items())
    return finals, lost


def measure(traffic: Traffic, finals: dict[int, dict], lost: set[int], failed_over_at: float,
            promoted_after: float, how: str) -> dict:
    failures = [when for when, ok in traffic.calls if not ok]
    first_back = min(when for when, ok in traffic.calls if ok and when > failed_over_at)
    starts: dict[str, list[str]] = {}
    dones: dict[str, list[str]] = {}
    for marker in traffic.marker_dir.iterdir():
        kind, task_id, attempt, _ = marker.name.split("-")
        (starts if kind == "start" else dones).setdefault(task_id, []).append(attempt)
    in_flight = [n for n, final in finals.items() if final["submitted"] <= failed_over_at <= final["finishtime"]]
    return {
        "how": how,
        "tasks": TASKS,
        "seconds_until_promoted": round(promoted_after, 2),
        "seconds_starts_failed": round(max(failures) - min(failures), 2) if failures else 0.0,
        "seconds_from_failover_to_first_start": round(first_back - failed_over_at, 2),
        "failed_start_calls": len(failures),
        "tasks_unfinished_at_failover": len(in_flight),
        "longest_seconds_from_failover_to_end": round(max(
            (finals[n]["finishtime"] - failed_over_at for n in in_flight), default=0.0), 2),
        "bodies_started_again": sum(1 for attempts in starts.values() if len(attempts) > 1),
        "bodies_finished_twice": sum(1 for attempts in dones.values() if len(attempts) > 1),
        "tasks_with_more_than_one_attempt": sum(1 for f in finals.values() if f["attempts"] > 1),
        "acknowledged_starts_lost": len(lost),
        "lost": [{"task": traffic.started[n], "method": METHODS[n % 3],
                  "answered_seconds_after_failover": round(traffic.answered_at[n] - failed_over_at, 3)}
                 for n in sorted(lost)],
    }


# -- a finish the store lost -----------------------------------------------------------


@pytest.mark.parametrize("method", ["threadMarked", "processMarked", "queuedMarked"])
def test_a_finish_the_store_lost_runs_again(tmp_path_factory, output_dir, tmp_path, method):
    """What a failover to a replica that had not received a finish does, on purpose: the
    task's record (and its owner's set, or its job stream with the worker's pending
    entry) put back as they were while the body ran. The owner - or, for a queued task,
    the reaper once the lease runs out - runs it again, and it ends."""
    server = start_redis(tmp_path_factory.mktemp("lost-finish"))
    web = start_server([PROBE], output_dir, "--redis", server.url, "--lease", WEB_LEASE)
    workers = Workers(server.url, output_dir)
    keys = Keys()
    try:
        if method == "queuedMarked":
            workers.start()
        task_id = JsonWsp(web, "MarkedService")(method, marker_dir=str(tmp_path))["task_id"]
        client = server.client()
        state = lambda: json.loads(client.hget(keys.task(task_id), "state") or "null")  # noqa: E731
        wait_until(lambda: state() == "running", timeout=30, what="the body to be recorded running")
        owner = json.loads(client.hget(keys.task(task_id), "owner") or '""')
        kept = [keys.task(task_id), keys.stream("default", 100) if method == "queuedMarked" else keys.owned(owner)]
        snapshot = {key: client.dump(key) for key in kept}
        (tmp_path / "gate").touch()
        wait_until(lambda: state() == "succeeded", timeout=30, what="the first attempt to finish")

        for key, value in snapshot.items():  # the store forgets the finish
            client.restore(key, 0, value, replace=True)
        assert state() == "running"

        wait_until(lambda: (tmp_path / "done-2").exists(), timeout=60, what="the task to run again")
        wait_until(lambda: state() == "succeeded", timeout=30, what="the second attempt to finish")
        assert json.loads(client.hget(keys.task(task_id), "attempts")) == 2
        assert sorted(p.name.split("-")[0] + p.name.split("-")[1] for p in tmp_path.glob("*-*")) == \
            ["done1", "done2", "start1", "start2"]
        client.close()
    finally:
        workers.stop_all()
        web.stop()
        server.stop()


def test_a_primary_short_of_replicas_refuses_starts(tmp_path_factory, output_dir):
    """Redis's own bound for a primary cut off from its replicas, which the README
    recommends for partitions (``min-replicas-to-write``): the primary refuses writes,
    and a start gets ``StoreUnavailable`` with nothing recorded."""
    server = start_redis(tmp_path_factory.mktemp("min-replicas"))
    web = start_server([PROBE], output_dir, "--redis", server.url)
    probe = JsonWsp(web, "ProbeService")
    try:
        with server.client() as client:
            client.config_set("min-replicas-to-write", 1)
            with pytest.raises(WireFault) as refused:
                probe("echo", text="refused")
            assert refused.value.name == "StoreUnavailable" and "NOREPLICAS" in refused.value.string
            assert client.keys(Keys().task("*")) == []
            client.config_set("min-replicas-to-write", 0)
        task_id = probe("echo", text="accepted")["task_id"]
        assert probe("echo_wait_result", task_id=task_id, seconds=20) == "accepted"
    finally:
        web.stop()
        server.stop()
