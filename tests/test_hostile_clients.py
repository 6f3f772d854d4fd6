"""Hostile clients against the shipped ``ladon-tasks serve``, over real HTTP: unknown
``Host`` names (DNS rebinding), half-sent requests, a flood of starts and of bytes,
an ``Idempotency-Key`` reused with other arguments, and records damaged in Redis.
Each server is started with the command line a user runs; bounds that would take
minutes to reach at their defaults are lowered through the settings a deployment
uses (``LADON_TASKS_MAX_QUEUED_TASKS``, ``LADON_TASKS_MAX_STORE_BYTES``,
``LADON_TASKS_MAX_QUEUED_BYTES``)."""

from __future__ import annotations

import json
import re
import socket
import urllib.request
from pathlib import Path
from typing import Any, Iterator

import pytest
import redis
import requests

from ladon_tasks.redis import open_store
from support.browser import launch_chromium
from support.jsonwsp import JsonWsp, WireFault
from support.redis_server import RedisServer, start_redis
from support.servers import FIXTURE_SERVICES, SERVICES, RunningServer, start_server, wait_until

PROBE = str(FIXTURE_SERVICES / "probe_service.py")


def fault_of(call: Any, *args: Any, **kwargs: Any) -> WireFault:
    with pytest.raises(WireFault) as caught:
        call(*args, **kwargs)
    return caught.value


def get(server: RunningServer, path: str, host: str, **headers: str) -> requests.Response:
    return requests.get(server.url + path, headers={"Host": host, **headers}, timeout=10)


# -- Host names: the DNS-rebinding defence of serve -------------------------------------


@pytest.fixture(scope="module")
def plain_server(output_dir: Path) -> Iterator[RunningServer]:
    """``ladon-tasks serve`` as the README starts it: loopback, dashboard, no token."""
    server = start_server([str(SERVICES / "task_service.py"), PROBE], output_dir)
    yield server
    server.stop()


@pytest.mark.parametrize("path", ["/", "/_tasks/", "/_tasks/api/tasks", "/TaskService/jsonwsp/description",
                                  "/TaskService/soap11/description"])
def test_serve_refuses_host_names_it_does_not_know(plain_server: RunningServer, path: str) -> None:
    # Was: curl -H 'Host: rebind.example:PORT' .../_tasks/api/tasks listed every task.
    refused = get(plain_server, path, f"rebind.example:{plain_server.port}")
    assert refused.status_code == 400
    assert refused.text.startswith("Bad Request: this server does not answer for the host name 'rebind.example'")
    for host in ("127.0.0.1", "localhost", "[::1]"):
        assert get(plain_server, path, f"{host}:{plain_server.port}").status_code == 200, host


def test_a_refused_host_name_starts_no_task(plain_server: RunningServer) -> None:
    body = json.dumps({"methodname": "echo", "args": {"text": "via rebinding"}})
    refused = requests.post(f"{plain_server.url}/ProbeService/jsonwsp", data=body,
                            headers={"Host": "rebind.example", "Content-Type": "application/json"}, timeout=10)
    assert refused.status_code == 400
    tasks = get(plain_server, "/_tasks/api/tasks?method=echo", "127.0.0.1").json()["tasks"]
    assert tasks == []


def test_allowed_host_option_and_setting_add_names(output_dir: Path) -> None:
    server = start_server([str(SERVICES / "task_service.py")], output_dir, "--allowed-host", "tasks.example",
                          env={"LADON_TASKS_ALLOWED_HOSTS": "ops.example, Intranet.Example"})
    try:
        for host in ("tasks.example", "ops.example", "intranet.example:8080", "TASKS.EXAMPLE."):
            assert get(server, "/_tasks/api/tasks", host).status_code == 200, host
        assert get(server, "/_tasks/api/tasks", "rebind.example").status_code == 400
        assert "answering intranet.example, localhost, ops.example, tasks.example and IP addresses" in server.log()
    finally:
        server.stop()


def test_allowed_host_star_answers_every_name(output_dir: Path) -> None:
    server = start_server([str(SERVICES / "task_service.py")], output_dir, "--allowed-host", "*")
    try:
        assert get(server, "/_tasks/api/tasks", "anything.example").status_code == 200
    finally:
        server.stop()


def test_beyond_loopback_the_machines_own_name_is_answered(output_dir: Path) -> None:
    server = start_server([str(SERVICES / "task_service.py")], output_dir, "--host", "0.0.0.0", "--no-dashboard")
    try:
        assert get(server, "/TaskService/jsonwsp/description", socket.gethostname()).status_code == 200
        assert get(server, "/TaskService/jsonwsp/description", "rebind.example").status_code == 400
    finally:
        server.stop()


def test_the_defaults_the_readme_states() -> None:
    from ladon_tasks import defaults
    from ladon_tasks.cli import build_parser
    from ladon_tasks.deployment import make_store
    from ladon_tasks.redis import RedisStore
    from ladon_tasks.stores.memory import MemoryStore

    assert build_parser().parse_args(["serve", "x.py"]).read_timeout == defaults.READ_TIMEOUT == 20
    store = MemoryStore()
    assert store.max_queued == defaults.MAX_QUEUED_TASKS == 10_000
    assert store.max_bytes == defaults.MEMORY_STORE_MAX_BYTES == 256 * 1024 * 1024
    assert defaults.REDIS_MAX_QUEUED_TASKS == 100_000 and defaults.REDIS_MAX_QUEUED_BYTES == 256 * 1024 * 1024
    redis_store = make_store({"LADON_TASKS_REDIS_URL": "redis://127.0.0.1:1/0"})
    assert isinstance(redis_store, RedisStore)
    assert (redis_store.max_queued, redis_store.max_queued_bytes) == (100_000, 256 * 1024 * 1024)
    redis_store.close()
    for name, most in (
        ("LADON_TASKS_MAX_QUEUED_TASKS", "1,000,000"),
        ("LADON_TASKS_MAX_QUEUED_BYTES", "2,147,483,648"),
    ):
        with pytest.raises(ValueError, match=f"^{name} is at most {most} on Redis, not 3000000000$"):
            make_store({"LADON_TASKS_REDIS_URL": "redis://127.0.0.1:1/0", name: "3000000000"})


# -- half-sent requests ----------------------------------------------------------------


def _threads(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Threads:"):
            return int(line.split()[1])
    raise AssertionError(f"no thread count for {pid}")


def _closed_by_server(sock: socket.socket) -> bool:
    """Read until the server closes the connection; ``False`` if it is still open after
    30 seconds (the socket's own deadline, not a sleep)."""
    sock.settimeout(30)
    try:
        while sock.recv(4096):
            pass
    except socket.timeout:
        return False
    except ConnectionResetError:
        pass
    return True


def test_half_sent_requests_are_closed_after_the_read_timeout(output_dir: Path) -> None:
    # Was: no read timeout - 50 half-sent requests held 50 server threads for ever.
    server = start_server([str(SERVICES / "task_service.py")], output_dir, "--read-timeout", "1")
    try:
        baseline = _threads(server.process.pid)
        head = f"POST /TaskService/jsonwsp HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n".encode()
        halves = [
            head,  # headers never finished
            head + b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"methodname\": ",
        ]  # body cut short
        sockets = []
        for n in range(50):
            sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
            sock.sendall(halves[n % 2])
            sockets.append(sock)
        try:
            assert all(_closed_by_server(sock) for sock in sockets), "every half-sent request is closed by the server"
        finally:
            for sock in sockets:
                sock.close()
        wait_until(lambda: _threads(server.process.pid) <= baseline, timeout=30, what="the server threads to be freed")
        with urllib.request.urlopen(f"{server.url}/TaskService/jsonwsp/description", timeout=10) as answer:
            assert answer.status == 200, "the server still serves"
    finally:
        server.stop()


# -- memory bounds: ServerBusy instead of unbounded growth ---------------------------------


def test_the_memory_store_refuses_starts_past_its_queue_bound(output_dir: Path, tmp_path: Path) -> None:
    # Was: queued records never expired, so starts faster than the workers grew memory for ever.
    server = start_server([PROBE], output_dir, "--thread-workers", "1", env={"LADON_TASKS_MAX_QUEUED_TASKS": "3"})
    gate = tmp_path / "gate"
    probe = JsonWsp(server, "ProbeService")
    try:
        held = [probe("gated", gate=str(gate))["task_id"] for _ in range(3)]  # one running, two queued
        busy = fault_of(probe, "gated", gate=str(gate))
        assert busy.code == "server" and busy.fault["detail"] == ["ServerBusy"]
        assert busy.string == "ServerBusy: task not started: 3 tasks are queued or running, the most this server holds"
        gate.touch()
        for task_id in held:
            assert probe("gated_wait", task_id=task_id, seconds=20)["state"] == "succeeded"
        assert probe("gated_wait_result", task_id=probe("gated", gate=str(gate))["task_id"], seconds=20) == 7
    finally:
        gate.touch()
        server.stop()


def test_the_memory_store_stays_within_its_byte_bound(output_dir: Path, tmp_path: Path) -> None:
    # Was: finished records were capped by count only: 40 starts of 900 kB grew RSS by 37 MiB.
    server = start_server([PROBE], output_dir, env={"LADON_TASKS_MAX_STORE_BYTES": "300000"})
    probe = JsonWsp(server, "ProbeService")
    first_gate, second_gate = tmp_path / "first", tmp_path / "second"
    try:
        first = probe("gatedPayload", gate=str(first_gate), payload="x" * 200_000)["task_id"]
        busy = fault_of(probe, "gatedPayload", gate=str(second_gate), payload="y" * 150_000)
        assert busy.name == "ServerBusy" and busy.code == "server"
        assert "unfinished tasks would take more than the 300000 bytes this server holds" in busy.string
        first_gate.touch()
        assert probe("gatedPayload_wait_result", task_id=first, seconds=20) == 200_000
        # finished records make room: the oldest finished goes first
        second = probe("gatedPayload", gate=str(second_gate), payload="y" * 150_000)["task_id"]
        assert fault_of(probe, "gatedPayload_progress", task_id=first).name == "UnknownTask"
        second_gate.touch()
        assert probe("gatedPayload_wait_result", task_id=second, seconds=20) == 150_000
    finally:
        first_gate.touch()
        second_gate.touch()
        server.stop()


# -- Redis bounds: ServerBusy while Redis still has room for everything else ------------------


@pytest.mark.parametrize("deployment", ["redis", "cluster"])
def test_the_redis_store_refuses_starts_past_its_queue_bounds(request: pytest.FixtureRequest, output_dir: Path,
                                                              tmp_path: Path, deployment: str) -> None:
    # Was: the Redis store had no bound of its own: a flood of starts filled Redis until
    # maxmemory refused every write of every method, finishes and progress included.
    if deployment == "redis":
        redis_alone = start_redis(tmp_path / "redis")
        url, stop_redis = redis_alone.url, redis_alone.stop
    else:
        cluster = request.getfixturevalue("redis_cluster")
        cluster.flushall()
        url, stop_redis = cluster.url_with("shards=1"), lambda: None  # one shard holds the whole bound
        sharded = open_store(cluster.url)
        assert {(shard.max_queued, shard.max_queued_bytes) for shard in sharded.shards} == {(6_250, 16 * 1024 * 1024)}
        sharded.close()
    server = start_server([PROBE], output_dir, "--redis", url, "--thread-workers", "1",
                          env={"LADON_TASKS_MAX_QUEUED_TASKS": "3", "LADON_TASKS_MAX_QUEUED_BYTES": "300000"})
    probe = JsonWsp(server, "ProbeService")
    gates = [tmp_path / "gate-big", tmp_path / "gate"]
    try:
        big = probe("gatedPayload", gate=str(gates[0]), payload="x" * 200_000)["task_id"]
        too_big = fault_of(probe, "gatedPayload", gate=str(gates[0]), payload="y" * 150_000)
        assert too_big.name == "ServerBusy" and too_big.code == "server"
        assert "unfinished tasks would take more than the 300000 bytes this store holds" in too_big.string
        held = [big] + [probe("gated", gate=str(gates[1]))["task_id"] for _ in range(2)]
        busy = fault_of(probe, "gated", gate=str(gates[1]))
        assert busy.name == "ServerBusy" and busy.code == "server"
        assert busy.string == "ServerBusy: task not started: 3 tasks are queued or running, the most this store holds"
        # what the held tasks write still goes in: progress, then their finishes
        wait_until(lambda: probe("gatedPayload_progress", task_id=big)["message"].startswith("waiting at step"),
                   timeout=20, what="progress of a held task")
        for gate in gates:
            gate.touch()
        assert probe("gatedPayload_wait", task_id=big, seconds=20)["state"] == "succeeded"
        for task_id in held[1:]:
            assert probe("gated_wait", task_id=task_id, seconds=20)["state"] == "succeeded"
        # and once they finished, starts go in again
        again = probe("gatedPayload", gate=str(gates[0]), payload="y" * 150_000)["task_id"]
        assert probe("gatedPayload_wait_result", task_id=again, seconds=20) == 150_000
        assert probe("gated_wait_result", task_id=probe("gated", gate=str(gates[1]))["task_id"], seconds=20) == 7
    finally:
        for gate in gates:
            gate.touch()
        server.stop()
        stop_redis()


# -- Idempotency-Key bound to the arguments, on both stores ------------------------------------


@pytest.fixture(scope="module")
def redis_web(redis_server: RedisServer, output_dir: Path) -> Iterator[RunningServer]:
    """``ladon-tasks serve --redis``: the scale-out store behind the same wire."""
    server = start_server([PROBE], output_dir, "--redis", redis_server.url, "--thread-workers", "4")
    yield server
    server.stop()


@pytest.fixture(params=["memory", "redis"])
def any_store_server(request: pytest.FixtureRequest) -> RunningServer:
    return request.getfixturevalue("server" if request.param == "memory" else "redis_web")


def start_with_key(server: RunningServer, key: str, text: str, interface: str = "jsonwsp") -> dict:
    document = ({"methodname": "echo", "args": {"text": text}} if interface == "jsonwsp"
                else {"method": "echo", "params": [text], "id": 1})
    response = requests.post(f"{server.url}/ProbeService/{interface}", data=json.dumps(document),
                             headers={"Content-Type": "application/json", "Idempotency-Key": key}, timeout=10)
    assert response.status_code == 200, response.text
    return {"body": response.text, **response.json()}


@pytest.mark.parametrize("interface", ["jsonwsp", "jsonrpc10"])
def test_an_idempotency_key_with_other_arguments_is_a_conflict(any_store_server: RunningServer, interface: str) -> None:
    # Was: the same key with other arguments handed over the first caller's task and result.
    key = f"order-{interface}-{id(any_store_server)}-{any_store_server.port}"
    first = start_with_key(any_store_server, key, "charge 10 EUR", interface)["result"]["task_id"]
    other = start_with_key(any_store_server, key, "charge 99 EUR", interface)
    fault = other["fault"] if interface == "jsonwsp" else other["error"]
    assert fault["code"] == "client" and fault["detail"] == ["IdempotencyConflict"]
    assert fault["string"] == ("IdempotencyConflict: echo: this Idempotency-Key was used with other arguments; "
                               "use a new key for a new task")
    assert first not in other["body"], "the other caller's task id is never shown"
    again = start_with_key(any_store_server, key, "charge 10 EUR", interface)["result"]["task_id"]
    assert again == first, "a retry with the same arguments still gets the first task"


# -- a damaged record in Redis ----------------------------------------------------------------


def test_a_damaged_record_in_redis_is_a_named_fault_and_the_dashboard_lists_the_rest(
    redis_web: RunningServer, redis_server: RedisServer, tmp_path: Path
) -> None:
    # Was: a raw codec error on the wire, a raw TypeError, and HTTP 500 for the whole list.
    gate = tmp_path / "gate"
    probe = JsonWsp(redis_web, "ProbeService")
    not_utf8, wrong_type, healthy = (probe("gated", gate=str(gate))["task_id"] for _ in range(3))
    raw = redis_server.client()
    raw_bytes = redis.Redis(host="127.0.0.1", port=redis_server.port, password=redis_server.password)
    keys = {task_id: f"ladon-tasks:task:{task_id}" for task_id in (not_utf8, wrong_type)}
    try:
        for task_id in (not_utf8, wrong_type, healthy):
            wait_until(lambda task_id=task_id: probe("gated_progress", task_id=task_id)["state"] == "running",
                       what="the tasks to run")
        raw_bytes.hset(keys[not_utf8], "error_message", b'"\xff\xfe"')
        raw.hset(keys[wrong_type], "tags", "5")

        for method in ("gated_progress", "gated_result", "gated_cancel"):
            fault = fault_of(probe, method, task_id=not_utf8)
            assert fault.code == "server" and fault.fault["detail"] == ["CorruptTask"], fault.string
            assert (
                fault.string
                == f"CorruptTask: the record of task {not_utf8} cannot be read: it holds bytes that are not UTF-8"
            )
        fault = fault_of(probe, "gated_progress", task_id=wrong_type)
        assert fault.string.endswith("field 'tags' holds 5, should be a list of text")
        assert probe("gated_progress", task_id=healthy)["state"] == "running"

        listing = requests.get(f"{redis_web.url}/_tasks/api/tasks", timeout=10)
        assert listing.status_code == 200, listing.text
        rows = {row["task_id"]: row for row in listing.json()["tasks"]}
        assert rows[healthy]["state"] == "running"
        assert (
            rows[not_utf8]["state"] == "unreadable"
            and rows[not_utf8]["unreadable"] == "it holds bytes that are not UTF-8"
        )
        assert rows[wrong_type]["state"] == "unreadable" and "field 'tags'" in rows[wrong_type]["unreadable"]
        assert rows[wrong_type]["method"] == "gated", "what could be read is shown"
        detail = requests.get(f"{redis_web.url}/_tasks/api/tasks/{not_utf8}", timeout=10)
        assert detail.status_code == 200 and detail.json()["task"]["state"] == "unreadable"
        cancel = requests.post(f"{redis_web.url}/_tasks/api/tasks/{not_utf8}/cancel",
                               headers={"X-Requested-By": "ladon-tasks"}, timeout=10)
        assert cancel.status_code == 409 and cancel.json()["error"] == "CorruptTask"

        _the_page_marks_the_damaged_rows(redis_web, [not_utf8, wrong_type], healthy)
    finally:
        raw.hset(keys[not_utf8], "error_message", '""')  # mended, so the bodies can finish
        raw.hset(keys[wrong_type], "tags", "[]")
        gate.touch()
        for task_id in (not_utf8, wrong_type, healthy):
            probe("gated_wait", task_id=task_id, seconds=20)
        raw.close()
        raw_bytes.close()


def _the_page_marks_the_damaged_rows(server: RunningServer, damaged: list[str], healthy: str) -> None:
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        try:
            page = browser.new_page(viewport={"width": 1440, "height": 900})
            errors: list[str] = []
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.goto(f"{server.url}/_tasks/")
            expect(page.locator(f'tr[data-task-id="{healthy}"] .badge')).to_have_text("running", timeout=10_000)
            for task_id in damaged:
                row = page.locator(f'tr[data-task-id="{task_id}"]')
                expect(row.locator(".badge")).to_have_text("unreadable")
                expect(row.locator(".message-text")).to_contain_text("record cannot be read")
                expect(row.locator("button.cancel")).to_be_hidden()
            assert not errors, errors
        finally:
            browser.close()


def test_a_damaged_record_is_listed_as_unreadable_on_the_wire_and_by_the_cli(
    redis_web: RunningServer, redis_server: RedisServer
) -> None:
    import subprocess
    import sys

    from support.servers import ROOT

    probe = JsonWsp(redis_web, "ProbeService")
    damaged = probe("once", text=f"damaged-{redis_web.port}")["task_id"]
    intact = probe("once", text=f"intact-{redis_web.port}")["task_id"]
    for task_id in (damaged, intact):
        assert probe("once_wait", task_id=task_id, seconds=20)["state"] == "succeeded"
    with redis_server.client() as raw:
        raw.hset(f"ladon-tasks:task:{damaged}", "tags", '"not a list"')
    listed = {task["task_id"]: task for task in probe("once_list", state="", limit=50, offset=0)}
    assert listed[intact]["state"] == "succeeded"
    assert listed[damaged]["state"] == "unreadable"
    assert (
        listed[damaged]["error"]
        == "CorruptTask: not a task record: field 'tags' holds 'not a list', should be a list of text"
    )
    command = [sys.executable, "-m", "ladon_tasks", "tasks", "--redis", redis_server.url, "--method", "once"]
    table = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, timeout=60, check=True).stdout
    rows = {line.split()[0]: line.split()[1] for line in table.splitlines()[1:]}
    assert rows[damaged] == "unreadable" and rows[intact] == "succeeded", table


def test_a_damaged_worker_entry_leaves_the_workers_listed_and_metrics_scraped(
    redis_web: RunningServer, redis_server: RedisServer, output_dir: Path
) -> None:
    # Was: one entry with "pid": 1e400 made /_tasks/api/workers and the whole metrics
    # scrape answer 500, and `ladon-tasks workers` fail with OverflowError.
    import subprocess
    import sys

    from support.servers import ROOT
    from support.workers import Workers

    workers = Workers(redis_server.url, output_dir)
    live = workers.start()
    raw = redis_server.client()
    try:
        live_id = wait_until(lambda: raw.smembers("ladon-tasks:workers"), timeout=20, what="the worker's entry").pop()
        described = raw.get(f"ladon-tasks:worker:{live_id}")
        damaged = re.sub(r'"pid": \d+', '"pid": 1e400', described).replace(live_id, "damaged-worker")
        assert "1e400" in damaged
        raw.set("ladon-tasks:worker:damaged-worker", damaged, ex=120)
        raw.sadd("ladon-tasks:workers", "damaged-worker")
        listed = requests.get(f"{redis_web.url}/_tasks/api/workers", timeout=10)
        assert listed.status_code == 200, listed.text
        assert [worker["worker_id"] for worker in listed.json()["workers"]] == [live_id]
        scraped = requests.get(f"{redis_web.url}/_tasks/metrics", timeout=10)
        assert scraped.status_code == 200, scraped.text
        assert "\nladon_tasks_workers 1.0\n" in scraped.text
        command = [sys.executable, "-m", "ladon_tasks", "workers", "--redis", redis_server.url, "--json"]
        out = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, timeout=60)
        assert out.returncode == 0, out.stderr
        assert [json.loads(line)["worker_id"] for line in out.stdout.splitlines()
                if json.loads(line)["kind"] == "worker"] == [live_id]
        assert "a worker entry in Redis (ladon-tasks:worker:...) is damaged" in out.stderr
        assert redis_web.log().count("is damaged and left out of the workers") == 1, "logged once, not per listing"
    finally:
        raw.delete("ladon-tasks:worker:damaged-worker")
        raw.srem("ladon-tasks:workers", "damaged-worker")
        raw.close()
        workers.kill(live)
        workers.stop_all()
