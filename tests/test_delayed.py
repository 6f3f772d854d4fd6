"""Delayed starts, for real: ``tests/service_fixtures/timing_service.py`` served by
``ladon-tasks serve`` (in-process store, and Redis) and run by its thread and process
executors and by a ``ladon-tasks worker``; clients are Ladon's JSON-WSP, zeep and the
command line. A body leaves a marker holding the time it started, so a test sees when
and how often each task ran."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import pytest
import requests
import zeep

from ladon_tasks.jobs import Job
from ladon_tasks.model import TaskRecord, new_task_id
from ladon_tasks.redis import RedisStore
from ladon_tasks.spec import MethodRef
from support.jsonwsp import JsonWsp, WireFault
from support.processes import stop_process_group
from support.queues import claimed_when_due
from support.redis_server import RedisServer, start_redis
from support.servers import FIXTURE_SERVICES, ROOT, SERVICES, RunningServer, start_server, wait_until
from support.workers import Workers

TIMING = str(FIXTURE_SERVICES / "timing_service.py")

#: (executor suffix of the method, store): every executor, both stores.
WIRINGS = [("Thread", "memory"), ("Process", "memory"), ("Thread", "redis"), ("Process", "redis"),
           ("Queue", "redis")]

#: The guarantee under test: a delayed task starts within this many seconds of its time.
ON_TIME = 1.0


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = start_redis(tmp_path_factory.mktemp("delayed-redis"), appendonly=True)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def webs(redis_server: RedisServer, output_dir: Path) -> Iterator[dict]:
    """A server per store, and a worker for the queued methods."""
    servers = {"memory": start_server([TIMING], output_dir),
               "redis": start_server([TIMING], output_dir, "--redis", redis_server.url)}
    workers = Workers(redis_server.url, output_dir, services=[TIMING])
    workers.start()
    yield {**servers, "workers": workers}
    workers.stop_all()
    for server in servers.values():
        server.stop()


def timing(server: RunningServer) -> JsonWsp:
    return JsonWsp(server, "TimingService")


def wait_final(server: RunningServer, method: str, task_id: str, timeout: float = 60) -> dict:
    return timing(server).followed(method, task_id, timeout)


def started_at(marker_dir: Path, task_id: str) -> list[float]:
    """When each attempt of the task started its body, as its markers say."""
    return [float(path.read_text()) for path in sorted(marker_dir.glob(f"{task_id}-*"))]


def assert_on_time(marker_dir: Path, final: dict, not_before: float) -> float:
    """The task ran once, its body not before its time, and its attempt began within
    ``ON_TIME`` of it (the body of a worker's first job on a slot may begin later: its
    child imports the service first); how late the attempt began."""
    runs = started_at(marker_dir, final["task_id"])
    assert len(runs) == 1 and runs[0] >= not_before - 0.05, (runs, not_before)
    late = final["starttime"] - not_before
    assert -0.05 <= late <= ON_TIME, f"started {late:+.3f} s from its time"
    return late


@pytest.mark.parametrize("executor, store", WIRINGS)
def test_a_delayed_start_waits_queued_then_starts_on_time(webs, tmp_path, executor, store):
    server, method = webs[store], f"stamp{executor}"
    asked = time.time()
    info = timing(server)(f"{method}_later", marker_dir=str(tmp_path), start_in=2)
    task_id, not_before = info["task_id"], info["not_before"]
    assert asked + 2 <= not_before <= time.time() + 2
    progress = timing(server)(f"{method}_progress", task_id=task_id)
    assert (progress["state"], progress["not_before"], progress["starttime"]) == ("queued", not_before, 0.0)
    assert time.time() < not_before and not started_at(tmp_path, task_id)
    final = wait_final(server, method, task_id)
    assert final["state"] == "succeeded" and final["not_before"] == not_before
    assert_on_time(tmp_path, final, not_before)

    # the same through the other companion, a time rather than a delay
    at = time.time() + 1.5
    task_id = timing(server)(f"{method}_at", marker_dir=str(tmp_path), not_before=at)["task_id"]
    final = wait_final(server, method, task_id)
    assert final["state"] == "succeeded"
    assert_on_time(tmp_path, final, at)


@pytest.mark.parametrize("executor, store", WIRINGS)
def test_a_delayed_task_cancelled_before_its_time_never_runs(webs, tmp_path, executor, store):
    server, method = webs[store], f"stamp{executor}"
    doomed = timing(server)(f"{method}_later", marker_dir=str(tmp_path), start_in=1.5)
    cancelled = timing(server)(f"{method}_cancel", task_id=doomed["task_id"])
    assert cancelled["state"] == "cancelled" and cancelled["finished"]
    # a sibling due just after it: once the sibling ran, the cancelled one's time has passed
    sibling = timing(server)(f"{method}_later", marker_dir=str(tmp_path), start_in=2)
    assert wait_final(server, method, sibling["task_id"])["state"] == "succeeded"
    assert started_at(tmp_path, doomed["task_id"]) == []
    assert timing(server)(f"{method}_progress", task_id=doomed["task_id"])["state"] == "cancelled"


@pytest.mark.parametrize("store", ["memory", "redis"])
def test_a_time_past_starts_at_once_and_one_past_the_horizon_is_refused(webs, tmp_path, store):
    server = webs[store]
    past = timing(server)("stampThread_at", marker_dir=str(tmp_path), not_before=time.time() - 3600)
    assert past["not_before"] == 0.0
    assert wait_final(server, "stampThread", past["task_id"])["state"] == "succeeded"
    now_too = timing(server)("stampThread_later", marker_dir=str(tmp_path), start_in=-5)
    assert now_too["not_before"] == 0.0
    for method, args in (("stampThread_at", {"not_before": time.time() + 31 * 86400}),
                         ("stampThread_later", {"start_in": 31 * 86400}),
                         ("stampQueue_later", {"start_in": 1e12})):
        with pytest.raises(WireFault) as fault:
            timing(server)(method, marker_dir=str(tmp_path), **args)
        assert fault.value.name == "StartTooFar", fault.value
    wait_final(server, "stampThread", now_too["task_id"])
    ran = sorted(path.name.split("-")[0] for path in tmp_path.iterdir())
    assert ran == sorted([past["task_id"], now_too["task_id"]])  # the refused ones never ran


def test_headers_delay_a_plain_start_and_bad_ones_are_named_faults(webs, tmp_path):
    client = timing(webs["redis"])
    info = client.call("stampThread", {"marker_dir": str(tmp_path)}, headers={"Task-Start-In": "1.5"})
    assert info["not_before"] >= info["submitted"] + 1.5 - 0.01
    at = time.time() + 1
    other = client.call("stampThread", {"marker_dir": str(tmp_path)}, headers={"Task-Not-Before": repr(at)})
    assert other["not_before"] == pytest.approx(at)
    for task_id, when in ((info["task_id"], info["not_before"]), (other["task_id"], at)):
        assert_on_time(tmp_path, wait_final(webs["redis"], "stampThread", task_id), when)
    for headers, name in (({"Task-Start-In": "soon"}, "InvalidArgument"),
                          ({"Task-Not-Before": "nan"}, "InvalidArgument"),
                          ({"Task-Start-In": "5", "Task-Not-Before": repr(at)}, "InvalidArgument"),
                          ({"Task-Start-In": "99999999"}, "StartTooFar")):
        with pytest.raises(WireFault) as fault:
            client.call("stampThread", {"marker_dir": str(tmp_path)}, headers=headers)
        assert fault.value.name == name, (headers, fault.value)


def test_a_declared_default_delay_applies_unless_the_client_asks_otherwise(webs, tmp_path):
    server = webs["memory"]
    info = timing(server)("stampLater", marker_dir=str(tmp_path))
    assert info["not_before"] == pytest.approx(info["submitted"] + 2, abs=0.01)
    at_once = timing(server)("stampLater_later", marker_dir=str(tmp_path), start_in=0)
    assert at_once["not_before"] == 0.0
    assert wait_final(server, "stampLater", at_once["task_id"])["state"] == "succeeded"
    assert timing(server)("stampLater_progress", task_id=info["task_id"])["state"] == "queued"
    assert_on_time(tmp_path, wait_final(server, "stampLater", info["task_id"]), info["not_before"])


def test_the_delay_option_and_clashing_parameter_names_are_checked_at_decoration():
    from ladon.compat import PORTABLE_STRING

    from ladon_tasks import ladonize

    with pytest.raises(ValueError, match="'delay'"):
        ladonize(int, rtype=int, tasktype=dict(delay=-1))
    with pytest.raises(ValueError, match="horizon"):
        ladonize(int, rtype=int, tasktype=dict(delay=60 * 86400))
    with pytest.raises(TypeError, match="not_before"):
        class Clash(object):
            @ladonize(PORTABLE_STRING, rtype=int, tasktype=True)
            def plan(self, not_before):
                return 1


def test_zeep_starts_a_delayed_task_through_the_wsdl(webs, tmp_path):
    server = webs["redis"]
    client = zeep.Client(f"{server.url}/TimingService/soap11/description")
    at = time.time() + 1.5
    info = client.service.stampThread_at(tmp_path.as_posix(), at)
    task_id = info["task_id"] if "task_id" in info else info["task-id"]
    assert float(info["not_before"] if "not_before" in info else info["not-before"]) == pytest.approx(at)
    later = client.service.stampQueue_later(tmp_path.as_posix(), 1.5)
    later_id = later["task_id"] if "task_id" in later else later["task-id"]
    assert wait_final(server, "stampQueue", later_id)["state"] == "succeeded"
    assert_on_time(tmp_path, wait_final(server, "stampThread", task_id), at)


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ladon_tasks", *args], capture_output=True, text=True,
                          timeout=60, cwd=ROOT)


def test_call_at_and_in_and_the_start_time_in_inspect_and_the_dashboard(webs, redis_server, tmp_path):
    server = webs["redis"]
    target = "TimingService.stampThread"
    out = run_cli("call", server.url, target, f"marker_dir={tmp_path}", "--in", "1m")
    assert out.returncode == 0, out.stderr
    task_id = out.stdout.strip()
    progress = timing(server)("stampThread_progress", task_id=task_id)
    assert progress["state"] == "queued" and progress["not_before"] == pytest.approx(time.time() + 60, abs=5)
    inspected = run_cli("inspect", task_id, "--redis", redis_server.url)
    assert json.loads(inspected.stdout)["not_before"] == progress["not_before"], inspected.stderr
    detail = requests.get(f"{server.url}/_tasks/api/tasks/{task_id}", timeout=5).json()["task"]
    assert detail["not_before"] == progress["not_before"] and detail["state"] == "queued"
    assert timing(server)("stampThread_cancel", task_id=task_id)["state"] == "cancelled"

    at = time.time() + 1.5
    out = run_cli("call", server.url, target, f"marker_dir={tmp_path}", "--at", repr(at), "--wait", "--quiet")
    assert out.returncode == 0, out.stderr
    iso = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(time.time() + 3600))
    queued = run_cli("call", server.url, target, f"marker_dir={tmp_path}", "--at", iso)
    assert timing(server)("stampThread_progress", task_id=queued.stdout.strip())["not_before"] == pytest.approx(
        time.time() + 3600, abs=5)
    timing(server)("stampThread_cancel", task_id=queued.stdout.strip())
    for bad, words in ((["--in", "soon"], "not a duration"), (["--at", "tomorrow"], "ISO 8601"),
                       (["--in", "40d"], "StartTooFar")):
        out = run_cli("call", server.url, target, f"marker_dir={tmp_path}", *bad)
        assert out.returncode != 0 and words in out.stderr and "Traceback" not in out.stderr, out.stderr


def test_a_delayed_start_lands_on_time_across_a_restart_of_every_process(redis_server, output_dir, tmp_path):
    """Every process of a Redis deployment - the web process that took the starts, the
    worker, Redis itself - is killed or restarted before the tasks' time; the ones that
    are up at that time start them, once and on time."""
    lease = ("--lease", "2")  # the web process's owner lease: taken over 2 s after its death
    first = start_server([TIMING], output_dir, "--redis", redis_server.url, *lease)
    workers = Workers(redis_server.url, output_dir, services=[TIMING])
    worker = workers.start()
    try:
        starts = {}
        for method in ("stampThread", "stampProcess", "stampQueue"):
            starts[method] = timing(first)(f"{method}_later", marker_dir=str(tmp_path), start_in=9)
        stop_process_group(first.process, __import__("signal").SIGKILL)
        workers.kill(worker)
        redis_server.restart()  # append-only: the delayed set and the records survive
        second = start_server([TIMING], output_dir, "--redis", redis_server.url, *lease)
        workers.start()
        try:
            assert time.time() < min(info["not_before"] for info in starts.values()), "the test ran too slowly"
            for method, info in starts.items():
                final = wait_final(second, method, info["task_id"])
                assert final["state"] == "succeeded", (method, final)
                assert_on_time(tmp_path, final, info["not_before"])
        finally:
            second.stop()
    finally:
        workers.stop_all()
        stop_process_group(first.process, __import__("signal").SIGKILL)


def test_the_readme_delayed_calls_queue_the_task_until_their_time(output_dir):
    from test_readme import README_URL, block, commands, shell

    server = start_server([str(SERVICES / "task_service.py")], output_dir)
    try:
        tomorrow = float(shell("date -d 'tomorrow 18:00' +%s").stdout)
        for line, when in zip(commands(block("delayed-call")), (time.time() + 900, tomorrow), strict=True):
            task_id = shell(line.replace(README_URL, server.url)).stdout.strip()
            client = JsonWsp(server, "TaskService")
            progress = client("taskExample_progress", task_id=task_id)
            assert progress["state"] == "queued" and progress["not_before"] == pytest.approx(when, abs=5), line
            assert client("taskExample_cancel", task_id=task_id)["state"] == "cancelled"
    finally:
        server.stop()


def test_a_delayed_start_survives_a_sentinel_failover(tmp_path_factory, output_dir, tmp_path):
    """A primary, a replica and three sentinels; the web process and a worker reach them
    through the ``redis+sentinel://`` URL. Delayed starts on every executor are taken,
    the replica has them, and the primary is SIGKILLed well before their time (a
    failover takes seconds): the replica promoted, each task still starts once, within
    ``ON_TIME`` of its time, and succeeds."""
    from support.sentinel import start_sentinel_group

    group = start_sentinel_group(tmp_path_factory.mktemp("delayed-sentinel"))
    workers = Workers(group.url, output_dir, services=[TIMING])
    server = None
    try:
        server = start_server([TIMING], output_dir, "--redis", group.url, "--lease", "2")
        workers.start()
        starts = {method: timing(server)(f"{method}_later", marker_dir=str(tmp_path), start_in=20)
                  for method in ("stampThread", "stampProcess", "stampQueue")}
        wait_until(group.replicas_in_sync, timeout=10, interval=0.05, what="the replica to have the starts")
        old_primary = group.primary.port
        group.primary.kill()
        wait_until(lambda: group.primary_port() not in (None, old_primary), timeout=45, interval=0.2,
                   what="the sentinels to promote the replica")
        assert time.time() < min(info["not_before"] for info in starts.values()), "the failover ran too slowly"
        for method, info in starts.items():
            final = wait_final(server, method, info["task_id"], timeout=90)
            assert final["state"] == "succeeded", (method, final)
            assert_on_time(tmp_path, final, info["not_before"])
    finally:
        workers.stop_all()
        if server is not None:
            server.stop()
        group.stop()


def test_a_delayed_job_waits_in_its_own_queues_delayed_set_whatever_the_names(redis_server):
    """The create script puts a delayed start in the delayed set of its queue, the one
    the due jobs are moved from (``common.lua``'s ``delayed_key``), for a queue name and
    a key prefix holding characters special to Lua patterns: it waits there, unread,
    and a worker's queue reads it once due."""
    store = RedisStore(redis_server.url, prefix="de-lay.5%:")
    queue = store.queue("a-b_7", levels=[3])
    try:
        record = TaskRecord(task_id=new_task_id(), service="TimingService", method="stampQueue",
                            not_before=time.time() + 1.0)
        job = Job(task_id=record.task_id, ref=MethodRef("timing_service", "TimingService", "stampQueue"),
                  args=[], queue="a-b_7", priority=3, not_before=record.not_before)
        store.create(record, job=queue.entry(job.priority, job.dumps()))
        with redis_server.client() as client:
            claimed_when_due(queue, client, store.keys.delayed("a-b_7"), job)
    finally:
        store.close()
