"""What an operator runs, for real: ``ladon-tasks serve --redis`` web processes,
``ladon-tasks worker`` processes and a ``redis-server``, looked after with the command
line (``status``, ``workers``, ``retry``, ``purge``, ``ping``, ``inspect``), the
metrics and health endpoints, and the dashboard's Queues and Workers views in headless
Chromium. Every wait polls with a deadline."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from support.browser import chromium_path, launch_chromium
from support.jsonwsp import JsonWsp
from support.redis_server import start_redis
from support.servers import ROOT, RunningServer, start_server, wait_until
from support.workers import PROBE, Workers

LADON_TASKS = str(Path(sys.executable).parent / "ladon-tasks")
TOKEN = "operator-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def run(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([LADON_TASKS, *args], capture_output=True, text=True, timeout=timeout, cwd=ROOT)


def one_line_error(out: subprocess.CompletedProcess, command: str, *words: str, code: int = 1) -> None:
    lines = out.stderr.strip().splitlines()
    assert out.returncode == code and len(lines) == 1 and lines[0].startswith(f"ladon-tasks {command}: "), out
    assert all(word in lines[0] for word in words) and "Traceback" not in out.stderr, lines


def metrics(server: RunningServer) -> dict[str, float]:
    """The scraped series, ``name{label=value,...}`` -> value (labels sorted)."""
    response = requests.get(f"{server.url}/_tasks/metrics", headers=AUTH, timeout=10)
    assert response.status_code == 200 and response.headers["Content-Type"].startswith("text/plain")
    found = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
            found[f"{sample.name}{{{labels}}}"] = sample.value
    return found


def worker_entries(redis_url: str) -> list[dict]:
    """The workers ``ladon-tasks workers --json`` lists (web processes left out)."""
    out = run("workers", "--redis", redis_url, "--json")
    assert out.returncode == 0, out.stderr
    return [entry for entry in map(json.loads, out.stdout.splitlines()) if entry["kind"] == "worker"]


def worker_id_of(redis_url: str, pid: int) -> str:
    found = wait_until(lambda: [e for e in worker_entries(redis_url) if e.get("pid") == pid], timeout=30,
                       what=f"worker {pid} in the list")
    return found[0]["worker_id"]


def wait_finished(probe: JsonWsp, method: str, task_id: str) -> dict:
    return probe.followed(method, task_id)


@pytest.fixture(scope="module")
def deployment(tmp_path_factory, output_dir):
    """One Redis, two web processes (the first opens health to probes without the token),
    one worker."""
    redis_server = start_redis(tmp_path_factory.mktemp("operators-redis"))
    common = ["--redis", redis_server.url, "--dashboard-token", TOKEN]
    servers = [start_server([PROBE], output_dir, *common, "--health-open"), start_server([PROBE], output_dir, *common)]
    workers = Workers(redis_server.url, output_dir)
    workers.start()
    yield redis_server, servers, workers
    workers.stop_all()
    for server in servers:
        server.stop()
    redis_server.stop()


# -- metrics: exact after a known mix, the same from every web process ------------------------


def test_metrics_after_a_known_mix_are_exact_in_both_web_processes(tmp_path_factory, output_dir, tmp_path):
    redis_server = start_redis(tmp_path_factory.mktemp("metrics-redis"))
    servers = [start_server([PROBE], output_dir, "--redis", redis_server.url, "--dashboard-token", TOKEN)
               for _ in range(2)]
    workers = Workers(redis_server.url, output_dir)
    try:
        worker = workers.start("--metrics-port", str(_free_port()))
        first, second = (JsonWsp(server, "ProbeService") for server in servers)
        queue_first, queue_second = (JsonWsp(server, "QueueProbeService") for server in servers)
        echoes = [queue_first("queuedEcho", text=f"e{n}")["task_id"] for n in range(3)]   # a worker runs them
        explodes = [second("explode", text=f"x{n}")["task_id"] for n in range(2)]        # fail, no retries
        flaky = first("flaky", marker_dir=str(tmp_path))["task_id"]                      # 2 retries, then succeeds
        gated = second("gated", gate=str(tmp_path / "never"))["task_id"]                 # cancelled while it runs
        parked = [queue_second("unservedEcho", text=f"p{n}")["task_id"] for n in range(2)]  # no worker reads
        wait_until(lambda: first("gated_progress", task_id=gated)["state"] == "running", what="gated to run")
        assert second("gated_cancel", task_id=gated)["state"] == "cancelled"
        assert queue_first("unservedEcho_cancel", task_id=parked[0])["state"] == "cancelled"
        for task_id in echoes:
            assert wait_finished(queue_second, "queuedEcho", task_id)["state"] == "succeeded"
        for task_id in explodes:
            assert wait_finished(first, "explode", task_id)["state"] == "failed"
        assert wait_finished(second, "flaky", flaky)["state"] == "succeeded"

        expected = {
            "ladon_tasks_store_up{}": 1, "ladon_tasks_workers{}": 1, "ladon_tasks_web_processes{}": 2,
            "ladon_tasks_queue_jobs{kind=waiting,queue=unserved}": 1,
            "ladon_tasks_queue_jobs{kind=running,queue=unserved}": 0,
            "ladon_tasks_queue_jobs{kind=waiting,queue=default}": 0,
            "ladon_tasks_queue_jobs{kind=running,queue=default}": 0,  # acknowledged: workers ack in batches
            "ladon_tasks_queue_jobs{kind=delayed,queue=default}": 0,
        }
        for method, submitted, finished, retried, duration_count in (
            ("queuedEcho", 3, {"succeeded": 3}, 0, 3), ("explode", 2, {"failed": 2}, 0, 2),
            ("flaky", 1, {"succeeded": 1}, 2, 1), ("gated", 1, {"cancelled": 1}, 0, 1),
            ("unservedEcho", 2, {"cancelled": 1}, 0, 0),
        ):
            expected[f"ladon_tasks_tasks_submitted_total{{method={method}}}"] = submitted
            expected[f"ladon_tasks_tasks_retried_total{{method={method}}}"] = retried
            expected[f"ladon_tasks_tasks_reissued_total{{method={method}}}"] = 0
            for state in ("succeeded", "failed", "cancelled"):
                expected[f"ladon_tasks_tasks_finished_total{{method={method},state={state}}}"] = finished.get(state, 0)
            expected[f"ladon_tasks_tasks{{method={method},state=running}}"] = 0
            expected[f"ladon_tasks_tasks{{method={method},state=queued}}"] = 1 if method == "unservedEcho" else 0
            expected[f"ladon_tasks_task_duration_seconds_count{{method={method}}}"] = duration_count
            expected[f"ladon_tasks_task_duration_seconds_bucket{{le=+Inf,method={method}}}"] = duration_count

        def observed(server: RunningServer) -> dict[str, float]:
            scraped = metrics(server)
            return {name: scraped.get(name) for name in expected}

        wait_until(lambda: observed(servers[0]) == expected, timeout=30, what="the metrics to settle")
        assert observed(servers[1]) == expected, "every web process answers for the whole deployment"
        worker_side = requests.get(f"http://127.0.0.1:{_metrics_port(workers, worker)}/metrics", timeout=10).text
        assert 'ladon_tasks_tasks_finished_total{method="explode",state="failed"} 2.0' in worker_side
        assert "ladon_tasks_worker_slots" in worker_side

        status = run("status", "--url", servers[1].url, "--token", TOKEN, "--json")
        summary = json.loads(status.stdout)
        assert summary["states"] == {"queued": 1, "running": 0, "succeeded": 4, "failed": 2, "cancelled": 2}
        assert summary["methods"]["flaky"]["retried"] == 2 and summary["workers"] == 1
        assert {q["queue"]: q["waiting"] for q in summary["queues"]}["unserved"] == 1

        redis_server.stop()  # what probes see when the store is gone
        down = run("ping", servers[0].url, "--token", TOKEN)
        assert down.returncode == 1 and "store" in down.stderr and "unhealthy" in down.stderr, down
        worker_down = run("ping", f"http://127.0.0.1:{_metrics_port(workers, worker)}")
        assert worker_down.returncode == 1 and "store" in worker_down.stderr
        assert metrics(servers[0])["ladon_tasks_store_up{}"] == 0
    finally:
        workers.stop_all()
        for server in servers:
            server.stop()
        redis_server.stop()


def _free_port() -> int:
    from support.servers import free_port

    return free_port()


def _metrics_port(workers: Workers, process: subprocess.Popen) -> int:
    command = process.args
    return int(command[command.index("--metrics-port") + 1])


# -- health ------------------------------------------------------------------------------------


def test_health_follows_the_dashboard_rules_unless_opened(deployment):
    _, (opened, guarded), _ = deployment
    assert requests.get(f"{opened.url}/_tasks/health", timeout=5).status_code == 200, "opened to token-less probes"
    assert requests.get(f"{opened.url}/_tasks/metrics", timeout=5).status_code == 401, "metrics keep the token"
    assert requests.get(f"{guarded.url}/_tasks/health", timeout=5).status_code == 401
    answer = requests.get(f"{guarded.url}/_tasks/health", headers=AUTH, timeout=5)
    assert answer.status_code == 200 and answer.json()["status"] == "ok"
    assert set(answer.json()["checks"]) >= {"store", "caretaker", "accepting"}
    evil = requests.get(f"{opened.url}/_tasks/health", headers={"Host": "evil.example"}, timeout=5)
    assert evil.status_code == 400, "the Host allow-list holds for health too"
    ok = run("ping", opened.url)
    assert ok.returncode == 0 and ok.stdout.startswith("ok: server"), ok
    one_line_error(run("ping", guarded.url), "ping", "--token")
    assert run("ping", guarded.url, "--token", TOKEN).returncode == 0


# -- workers: listed while their heartbeat lives; where each attempt ran --------------------------


def test_a_killed_worker_leaves_the_list_and_its_task_runs_again_where_it_says(deployment, tmp_path):
    redis_server, (server, _), workers = deployment
    probe = JsonWsp(server, "QueueProbeService")
    before = {entry["worker_id"] for entry in worker_entries(redis_server.url)}
    for process in list(workers.processes):  # only the doomed worker may take the task
        workers.kill(process)
    doomed = workers.start()
    doomed_id = worker_id_of(redis_server.url, doomed.pid)
    entry = next(e for e in worker_entries(redis_server.url) if e["worker_id"] == doomed_id)
    assert entry["kind"] == "worker" and entry["queues"] == ["default"] and entry["concurrency"] == 2
    assert entry["host"] and entry["version"] and entry["started_at"] <= entry["heartbeat_at"]

    gate = tmp_path / "gate"
    task_id = probe("queuedGated", gate=str(gate))["task_id"]
    wait_until(lambda: probe("queuedGated_progress", task_id=task_id)["worker"] == doomed_id, timeout=30,
               what="the start to name its worker")
    wait_until(
        lambda: task_id in next(e for e in worker_entries(redis_server.url) if e["worker_id"] == doomed_id)["running"],
        timeout=30,
        interval=0.2,
        what="the heartbeat to list the running task",
    )
    workers.kill(doomed)
    wait_until(lambda: doomed_id not in {e["worker_id"] for e in worker_entries(redis_server.url)}, timeout=30,
               interval=0.2, what="the killed worker to leave the list")
    assert not before & {e["worker_id"] for e in worker_entries(redis_server.url)}

    survivor = workers.start("--log-format", "json")
    survivor_id = worker_id_of(redis_server.url, survivor.pid)
    wait_until(lambda: len(list(tmp_path.glob("gate.pid-*"))) == 2, timeout=30, what="the reissued attempt")
    gate.touch()
    final = wait_finished(probe, "queuedGated", task_id)
    assert (final["state"], final["attempts"], final["worker"]) == ("succeeded", 2, survivor_id), final
    inspected = json.loads(run("inspect", task_id, "--url", server.url, "--token", TOKEN).stdout)
    assert inspected["ran_on"] == [doomed_id, survivor_id], (inspected, doomed_id, survivor_id)
    lines = [json.loads(line) for line in workers.log(survivor).splitlines() if line.startswith("{")]
    about = [line for line in lines if line.get("task_id") == task_id]
    assert about and all(line["method"] == "QueueProbeService.queuedGated" for line in about), lines
    assert any("reissued" in line["message"] for line in about), about
    assert all({"time", "level", "logger", "message"} <= set(line) for line in lines)
    workers.kill(survivor, signal.SIGTERM)  # a clean stop: it leaves the list at once
    assert survivor_id not in {e["worker_id"] for e in worker_entries(redis_server.url)}
    workers.start()  # the deployment keeps a worker for the tests after this one


def test_a_worker_heartbeats_every_two_seconds_or_a_third_of_its_lease(deployment):
    """The README's figures: a killed worker is gone within 3 heartbeats, 6 s by default."""
    import redis

    from ladon_tasks import defaults
    from ladon_tasks.redis.queue import RedisQueue
    from ladon_tasks.stores.memory import MemoryStore
    from ladon_tasks.worker import Worker

    client = redis.Redis(port=deployment[0].port)
    for lease, beat in ((defaults.LEASE_SECONDS, 2.0), (1.5, 0.5)):
        worker = Worker(MemoryStore(), [RedisQueue(client, "unused:", lease_seconds=lease)])
        assert worker.heartbeat == beat
    assert defaults.WORKER_HEARTBEAT * 3 == 6.0
    client.close()


# -- retry and purge from the command line ---------------------------------------------------------


def test_retry_makes_a_new_linked_task_once_and_refuses_what_did_not_fail(deployment):
    _, (server, other), _ = deployment
    probe = JsonWsp(server, "ProbeService")
    failed = probe("explode", text="again")["task_id"]
    assert wait_finished(probe, "explode", failed)["state"] == "failed"
    out = run("retry", failed, "--url", other.url, "--token", TOKEN)
    assert out.returncode == 0, out.stderr
    rerun = out.stdout.strip()
    assert rerun != failed and len(rerun) == 32
    assert run("retry", failed, "--url", server.url, "--token", TOKEN).stdout.strip() == rerun, "one re-run per task"
    assert wait_finished(probe, "explode", rerun)["state"] == "failed"
    detail = json.loads(run("inspect", rerun, "--url", server.url, "--token", TOKEN).stdout)
    assert detail["retry_of"] == failed and detail["args"][0]["value"] == "again"
    assert json.loads(run("inspect", failed, "--url", server.url, "--token", TOKEN).stdout)["attempts"] == 1, \
        "the failed task itself never changes"
    done = probe("echo", text="fine")["task_id"]
    wait_finished(probe, "echo", done)
    one_line_error(run("retry", done, "--url", server.url, "--token", TOKEN), "retry", "NotRetryable", "succeeded")
    one_line_error(run("retry", "f" * 32, "--url", server.url, "--token", TOKEN), "retry", "UnknownTask")


def test_purge_asks_first_then_deletes_everywhere(deployment):
    redis_server, (server, other), _ = deployment
    probe, elsewhere = JsonWsp(server, "ProbeService"), JsonWsp(other, "ProbeService")
    failed = [probe("explode", text=f"purge {n}")["task_id"] for n in range(2)]
    for task_id in failed:
        wait_finished(elsewhere, "explode", task_id)  # the other process has them cached now
    kept = probe("echo", text="stays")["task_id"]
    wait_finished(probe, "echo", kept)
    unconfirmed = run("purge", "--state", "failed", "--method", "explode", "--url", server.url, "--token", TOKEN)
    one_line_error(unconfirmed, "purge", "--yes", "would be deleted", code=2)
    assert elsewhere("explode_progress", task_id=failed[0])["state"] == "failed", "nothing deleted without a yes"
    out = run("purge", "--state", "failed", "--method", "explode", "--yes", "--redis", redis_server.url)
    assert out.returncode == 0 and out.stdout.startswith("purged ") and "failed task(s) of explode" in out.stdout
    for task_id in failed:
        wait_until(
            lambda task_id=task_id: _unknown(elsewhere, task_id), timeout=10, what="the other process to forget it"
        )
    assert probe("echo_progress", task_id=kept)["state"] == "succeeded"
    nothing = run("purge", "--state", "failed", "--method", "explode", "--url", server.url, "--token", TOKEN)
    assert nothing.returncode == 0 and nothing.stdout.startswith("no failed task(s) of explode")


def _unknown(probe: JsonWsp, task_id: str) -> bool:
    from support.jsonwsp import WireFault

    try:
        probe("explode_progress", task_id=task_id)
    except WireFault as fault:
        return fault.name == "UnknownTask"
    return False


# -- the dashboard's views in Chromium --------------------------------------------------------------


def test_browser_queues_workers_search_bulk_cancel_and_retry(deployment, output_dir):
    from playwright.sync_api import expect, sync_playwright

    chromium_path()
    redis_server, (server, _), _ = deployment
    probe, queue = JsonWsp(server, "ProbeService"), JsonWsp(server, "QueueProbeService")
    parked = [queue("unservedEcho", text=f"parked {n}")["task_id"] for n in range(3)]
    failed = probe("explode", text="shown")["task_id"]
    wait_finished(probe, "explode", failed)
    worker_ids = {e["worker_id"] for e in worker_entries(redis_server.url)}
    tagged = run("tasks", "--url", server.url, "--token", TOKEN, "--tag", "parked", "--json")
    assert {json.loads(line)["task_id"] for line in tagged.stdout.splitlines()} == set(parked)
    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        try:
            page = browser.new_page(viewport={"width": 1440, "height": 860})
            errors: list[str] = []
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.goto(f"{server.url}/_tasks/?token={TOKEN}")
            expect(page.locator('#counts [data-state="workers"] b')).to_have_text(str(len(worker_ids)), timeout=10_000)
            expect(page.locator('#counts [data-state="queued"] b')).not_to_have_text("–")

            page.locator("#tab-workers").click()
            for worker_id in worker_ids:
                expect(page.locator("#workers tbody")).to_contain_text(worker_id, timeout=10_000)
            expect(page.locator("#webs tbody tr")).to_have_count(2)
            page.screenshot(path=str(output_dir / "dashboard-workers.png"), full_page=True)

            page.locator("#tab-queues").click()
            unserved = page.locator("#queues tbody tr", has_text="unserved")
            expect(unserved).to_be_visible(timeout=10_000)
            waiting = int(unserved.locator("td").nth(1).inner_text())
            assert waiting >= 3
            expect(page.locator("#methods-table tbody")).to_contain_text("unservedEcho")
            page.screenshot(path=str(output_dir / "dashboard-queues.png"), full_page=True)

            page.locator("#tab-tasks").click()
            page.locator("#tag").fill("parked")
            page.locator("#tag").press("Enter")
            for task_id in parked:
                expect(page.locator(f'tr[data-task-id="{task_id}"]')).to_be_visible(timeout=10_000)
            expect(page.locator(f'tr[data-task-id="{failed}"]')).to_have_count(0)
            page.locator("label.chip", has_text="queued").click()
            for task_id in parked:
                page.locator(f'tr[data-task-id="{task_id}"] input.pick').check()
            expect(page.locator("#bulk-count")).to_have_text("3 selected")
            page.locator("#bulk-cancel").click()
            expect(page.locator("#confirm")).to_contain_text("Cancel 3 tasks?")
            page.locator("#confirm-yes").click()
            for task_id in parked:
                expect(page.locator(f'tr[data-task-id="{task_id}"]')).to_have_count(0, timeout=10_000)
                assert queue("unservedEcho_progress", task_id=task_id)["state"] == "cancelled"

            page.locator("label.chip", has_text="queued").click()
            page.locator("#tag").fill("")
            page.locator("#idprefix").fill(failed[:10])
            page.locator("#idprefix").press("Enter")
            expect(page.locator("#tasks tbody tr")).to_have_count(1, timeout=10_000)
            page.locator(f'tr[data-task-id="{failed}"] button.retry').click()
            expect(page.locator("#confirm")).to_contain_text("again, as a new task")
            page.locator("#confirm-yes").click()
            expect(page.locator("#detail-fields")).to_contain_text(f"Re-run of{failed}", timeout=10_000)
            rerun = page.locator("#detail-fields dd.mono").first.inner_text()
            assert rerun != failed and probe("explode_progress", task_id=rerun)["task_id"] == rerun
            page.locator("#idprefix").fill("")
            page.locator("#idprefix").press("Enter")
            expect(page.locator(f'tr[data-task-id="{rerun}"]')).to_be_visible(timeout=10_000)
            page.screenshot(path=str(output_dir / "dashboard-retry.png"), full_page=True)
            assert not errors, errors
        finally:
            browser.close()
