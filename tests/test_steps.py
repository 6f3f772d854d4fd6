"""Steps with recovery (``kw['step']``), for real: a body of three steps
(``tests/service_fixtures/steps_service.py``) run by ``ladon-tasks worker`` processes,
and by the thread and process executors of ``ladon-tasks serve``, with the Redis store
and with the in-process one. Each run of a step leaves a marker file, so the tests
count how often each step ran: after a worker killed with SIGKILL, a web process killed
with SIGKILL, a retry after an exception, and an operator's ``retry`` (recover) and
``retry --restart``. Every wait polls with a deadline."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Iterator

import pytest
import requests

from support.browser import launch_chromium
from support.jsonwsp import JsonWsp
from support.redis_server import RedisServer, start_redis
from support.processes import process_alive
from support.servers import FIXTURE_SERVICES, ROOT, RunningServer, start_server, wait_until
from support.workers import Workers

STEPS = str(FIXTURE_SERVICES / "steps_service.py")
LADON_TASKS = str(Path(sys.executable).parent / "ladon-tasks")
TOKEN = "steps-token-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {TOKEN}"}

#: Owner lease of the web processes, in seconds: a killed one's tasks are taken over soon.
WEB_LEASE = "2"


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = start_redis(tmp_path_factory.mktemp("steps-redis"), appendonly=True)
    yield server
    server.stop()


@pytest.fixture
def started(output_dir: Path) -> Iterator[list[RunningServer]]:
    """Servers a test starts; every one is stopped (with its session) at the end."""
    servers: list[RunningServer] = []
    yield servers
    for server in servers:
        if server.process.poll() is None:
            os.killpg(server.process.pid, signal.SIGKILL)
            server.process.wait()


@pytest.fixture
def workers(redis_server: RedisServer, output_dir: Path) -> Iterator[Workers]:
    pool = Workers(redis_server.url, output_dir, services=[STEPS])
    yield pool
    pool.stop_all()


def serve(started: list[RunningServer], output_dir: Path, *extra: str) -> RunningServer:
    server = start_server([STEPS], output_dir, "--dashboard-token", TOKEN, *extra)
    started.append(server)
    return server


def steps_service(server: RunningServer) -> JsonWsp:
    return JsonWsp(server, "StepsService")


def runs(marker_dir: Path) -> Counter:
    """How often each step's function ran, from the markers ``run-<step>-<attempt>-<pid>-<nonce>``."""
    return Counter(path.name.split("-")[1] for path in marker_dir.glob("run-*"))


def wait_run(marker_dir: Path, name: str, attempt: int) -> int:
    """The pid that runs ``name`` in ``attempt``, once it has started."""
    found = wait_until(lambda: list(marker_dir.glob(f"run-{name}-{attempt}-*")), timeout=30,
                       what=f"step {name} of attempt {attempt} to start")
    return int(found[0].name.split("-")[3])


def wait_final(server: RunningServer, method: str, task_id: str) -> dict:
    return steps_service(server).followed(method, task_id)


def detail(server: RunningServer, task_id: str) -> dict:
    response = requests.get(f"{server.url}/_tasks/api/tasks/{task_id}", headers=AUTH, timeout=10)
    assert response.status_code == 200, response.text
    return response.json()["task"]


def step_states(server: RunningServer, task_id: str) -> list[tuple[str, str, int, str]]:
    """(name, state, attempt, origin) of each step, in the order they started."""
    return [(s["name"], s["state"], s["attempt"], s["origin"]) for s in detail(server, task_id)["steps"]]


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([LADON_TASKS, *args], capture_output=True, text=True, timeout=60, cwd=ROOT)


# -- reissues: the next attempt of the same task --------------------------------------------


def test_a_killed_workers_task_resumes_at_the_step_it_was_in(redis_server, workers, started, output_dir, tmp_path):
    web = serve(started, output_dir, "--redis", redis_server.url)
    doomed = workers.start()
    task_id = steps_service(web)("queuedSteps", marker_dir=str(tmp_path))["task_id"]
    wait_run(tmp_path, "two", 1)
    during = steps_service(web)("queuedSteps_progress", task_id=task_id)
    assert (during["state"], during["step"], during["steps_done"]) == ("running", "two", 1)
    workers.kill(doomed)  # SIGKILL to the worker and its child, during step two
    workers.start()
    wait_run(tmp_path, "two", 2)
    (tmp_path / "gate-two").touch()
    final = wait_final(web, "queuedSteps", task_id)
    assert (final["state"], final["attempts"], final["step"], final["steps_done"]) == ("succeeded", 2, "three", 3), (
        final
    )
    assert steps_service(web)("queuedSteps_result", task_id=task_id) == 61, "step one's recorded result was used"
    assert runs(tmp_path) == {"one": 1, "two": 2, "three": 1}, "step one did not run again"
    assert step_states(web, task_id) == [("one", "succeeded", 1, ""), ("two", "succeeded", 2, ""),
                                         ("three", "succeeded", 2, "")]


@pytest.mark.parametrize("method", ["threadSteps", "processSteps"])
def test_a_killed_web_processs_task_resumes_at_the_step_it_was_in(redis_server, started, output_dir, tmp_path,
                                                                  method):
    doomed = serve(started, output_dir, "--redis", redis_server.url, "--lease", WEB_LEASE)
    survivor = serve(started, output_dir, "--redis", redis_server.url, "--lease", WEB_LEASE)
    task_id = steps_service(doomed)(method, marker_dir=str(tmp_path))["task_id"]
    first = wait_run(tmp_path, "two", 1)
    os.kill(doomed.process.pid, signal.SIGKILL)  # the process alone: a child must die with it
    doomed.process.wait(timeout=10)
    wait_until(lambda: not process_alive(first), timeout=10, what="the killed server's body to end")
    wait_run(tmp_path, "two", 2)
    (tmp_path / "gate-two").touch()
    final = wait_final(survivor, method, task_id)
    assert (final["state"], final["attempts"], final["steps_done"]) == ("succeeded", 2, 3)
    assert steps_service(survivor)(f"{method}_result", task_id=task_id) == 61
    assert runs(tmp_path) == {"one": 1, "two": 2, "three": 1}


# -- retries after an exception, and an operator's re-runs ----------------------------------


@pytest.mark.parametrize("method, store", [
    ("queuedSteps", "redis"),     # a worker, the Redis store
    ("threadSteps", "memory"),    # in the web process, the in-process store
    ("processSteps", "memory"),   # in its child processes
])
def test_a_retry_after_an_exception_and_a_recover_run_only_the_failed_step_and_a_restart_runs_all(
        request, started, output_dir, tmp_path, method, store):
    extra: list[str] = []
    if store == "redis":
        redis_url = request.getfixturevalue("redis_server").url
        request.getfixturevalue("workers").start()
        extra = ["--redis", redis_url]
    web = serve(started, output_dir, *extra)
    (tmp_path / "gate-two").touch()
    (tmp_path / "fail-three").touch()
    failed = steps_service(web)(method, marker_dir=str(tmp_path))["task_id"]
    final = wait_final(web, method, failed)
    assert (final["state"], final["attempts"], final["steps_done"]) == ("failed", 2, 2)
    assert final["error"] == "RuntimeError: step three fails"
    assert runs(tmp_path) == {"one": 1, "two": 1, "three": 2}, "the retry after the exception ran step three only"
    shown = json.loads(cli("inspect", failed, "--url", web.url, "--token", TOKEN).stdout)
    assert [(s["name"], s["state"], s["attempt"]) for s in shown["steps"]] == [
        ("one", "succeeded", 1), ("two", "succeeded", 1), ("three", "failed", 2)]
    assert shown["steps"][2]["error"] == "RuntimeError: step three fails"
    assert all(s["duration"] >= 0 and s["started_at"] > 0 for s in shown["steps"])

    (tmp_path / "fail-three").unlink()
    recovered = cli("retry", failed, "--url", web.url, "--token", TOKEN)
    assert recovered.returncode == 0, recovered.stderr
    recovered_id = recovered.stdout.strip()
    done = wait_final(web, method, recovered_id)
    assert (done["state"], done["attempts"], done["steps_done"]) == ("succeeded", 1, 3)
    assert steps_service(web)(f"{method}_result", task_id=recovered_id) == 61
    assert runs(tmp_path) == {"one": 1, "two": 1, "three": 3}, "recover ran step three only"
    assert step_states(web, recovered_id) == [("one", "succeeded", 1, failed), ("two", "succeeded", 1, failed),
                                              ("three", "succeeded", 1, "")]

    restarted = cli("retry", failed, "--restart", "--url", web.url, "--token", TOKEN)
    assert restarted.returncode == 0, restarted.stderr
    restarted_id = restarted.stdout.strip()
    assert restarted_id != recovered_id
    assert wait_final(web, method, restarted_id)["state"] == "succeeded"
    assert steps_service(web)(f"{method}_result", task_id=restarted_id) == 61
    assert runs(tmp_path) == {"one": 2, "two": 2, "three": 4}, "restart ran every step"
    assert detail(web, restarted_id)["retry_of"] == failed


def test_retry_over_redis_recovers_too(redis_server, workers, started, output_dir, tmp_path):
    """``ladon-tasks retry --redis`` (no server in between) and ``inspect --redis``,
    which shows the steps with their results."""
    web = serve(started, output_dir, "--redis", redis_server.url)
    workers.start()
    (tmp_path / "gate-two").touch()
    (tmp_path / "fail-three").touch()
    failed = steps_service(web)("queuedSteps", marker_dir=str(tmp_path))["task_id"]
    wait_final(web, "queuedSteps", failed)
    shown = json.loads(cli("inspect", failed, "--redis", redis_server.url).stdout)
    assert [(s["name"], s["result"]) for s in shown["steps"]] == [
        ("one", [1, 2, 3]), ("two", {"label": "two", "total": "60"}), ("three", None)]
    (tmp_path / "fail-three").unlink()
    out = cli("retry", failed, "--redis", redis_server.url, "--services", STEPS)
    assert out.returncode == 0, out.stderr
    assert steps_service(web)("queuedSteps_wait_result", task_id=out.stdout.strip(), seconds=30) == 61
    assert runs(tmp_path) == {"one": 1, "two": 1, "three": 3}


def test_a_task_of_ten_thousand_steps_is_recovered_over_redis(redis_server, started, output_dir, tmp_path):
    """The most steps an attempt may run, all but the last succeeded: a recover starts
    the new task with every one of them, in the one script that creates it."""
    web = serve(started, output_dir, "--redis", redis_server.url)
    (tmp_path / "fail-last").touch()
    count = 9_999
    failed = steps_service(web)("manySteps", marker_dir=str(tmp_path), count=count)["task_id"]
    final = wait_final(web, "manySteps", failed)
    assert (final["state"], final["steps_done"], final["error"]) == (
        "failed",
        count,
        "RuntimeError: the last step fails",
    )
    (tmp_path / "fail-last").unlink()
    recovered = cli("retry", failed, "--url", web.url, "--token", TOKEN)
    assert recovered.returncode == 0, recovered.stderr
    recovered_id = recovered.stdout.strip()
    assert wait_final(web, "manySteps", recovered_id)["state"] == "succeeded"
    assert steps_service(web)("manySteps_result", task_id=recovered_id) == sum(range(count))
    assert runs(tmp_path) == {"last": 2}
    origins = Counter(step[3] for step in step_states(web, recovered_id))
    assert origins == {failed: count, "": 1}, "every succeeded step recovered, only the last one ran"


@pytest.mark.parametrize("method", ["nestedThread", "nestedQueued"])
def test_a_step_result_nested_too_deep_is_refused_and_what_is_recorded_reads_back(
        redis_server, workers, started, output_dir, tmp_path, method):
    # Was: 20,000 levels failed the task with RecursionError; 900 levels were recorded,
    # and then failed every rerun that read them back.
    from ladon_tasks import defaults

    web = serve(started, output_dir, "--redis", redis_server.url)
    workers.start()
    service = steps_service(web)
    refused = "StepError: step 'nest': its result nests deeper than 100 levels of lists and objects; " \
              "record a flatter form"
    for depth in (20_000, 900, defaults.MAX_STEP_DEPTH + 1):
        task_id = service(method, marker_dir=str(tmp_path), depth=depth)["task_id"]
        final = wait_final(web, method, task_id)
        assert (final["state"], final["error"]) == ("failed", refused), depth
        assert step_states(web, task_id) == [("nest", "failed", 1, "")]
    (tmp_path / "fail-after").touch()
    deepest = service(method, marker_dir=str(tmp_path), depth=defaults.MAX_STEP_DEPTH)["task_id"]
    assert wait_final(web, method, deepest)["error"] == "RuntimeError: the step after fails"
    (tmp_path / "fail-after").unlink()
    recovered = cli("retry", deepest, "--url", web.url, "--token", TOKEN)
    assert recovered.returncode == 0, recovered.stderr
    recovered_id = recovered.stdout.strip()
    assert service(f"{method}_wait_result", task_id=recovered_id, seconds=30) == defaults.MAX_STEP_DEPTH
    assert step_states(web, recovered_id) == [("nest", "succeeded", 1, deepest), ("after", "succeeded", 1, "")]


# -- fencing ---------------------------------------------------------------------------------


def test_a_step_result_from_a_fenced_off_attempt_is_not_recorded(redis_server, workers, started, output_dir,
                                                                tmp_path):
    """A worker frozen during step two loses its task to another worker (its lease runs
    out); when it wakes up and finishes the step, the step's record is refused and its
    body stops before step three."""
    web = serve(started, output_dir, "--redis", redis_server.url)
    frozen = workers.start("--threads")
    task_id = steps_service(web)("queuedSteps", marker_dir=str(tmp_path))["task_id"]
    wait_run(tmp_path, "two", 1)
    os.killpg(frozen.pid, signal.SIGSTOP)
    try:
        workers.start("--threads")
        wait_run(tmp_path, "two", 2)  # reissued: attempt 2 skipped step one
    finally:
        (tmp_path / "gate-two-1").touch()  # attempt 1's step two can now return
        os.killpg(frozen.pid, signal.SIGCONT)
    wait_until(lambda: "step 'two' (succeeded) of attempt 1 not recorded" in workers.log(frozen), timeout=30,
               what="the frozen worker's late step to be refused")
    assert step_states(web, task_id) == [("one", "succeeded", 1, ""), ("two", "running", 2, "")]
    assert not list(tmp_path.glob("run-three-1-*")), "the fenced-off attempt stopped before step three"
    (tmp_path / "gate-two-2").touch()
    final = wait_final(web, "queuedSteps", task_id)
    assert (final["state"], final["attempts"]) == ("succeeded", 2)
    assert step_states(web, task_id)[1] == ("two", "succeeded", 2, "")
    assert runs(tmp_path) == {"one": 1, "two": 2, "three": 1}


# -- the rules a body must keep --------------------------------------------------------------


@pytest.mark.parametrize("kind, error", [
    ("repeat", "StepError: step 'copy' is named twice in this attempt: a step's name must be unique "
               "(name loop iterations apart, e.g. f'copy {disk}')"),
    ("big", "StepError: step 'fetch everything': its result takes 300002 bytes of JSON, more than the limit "
            "of 262144; keep big data outside the task and record a reference"),
    ("opaque", "StepError: step 'open a file': its result cannot be recorded as JSON: Object of type object "
               "is not JSON serializable"),
    ("long", "StepError: a step needs a name of 1 to 200 characters, got '" + "n" * 56 + "..."),
    ("many", "StepError: step 'step 10000': an attempt runs at most 10000 steps"),
])
def test_a_step_that_breaks_a_rule_fails_its_task_with_an_error_naming_it(started, output_dir, kind, error):
    web = serve(started, output_dir)
    task_id = steps_service(web)("oddSteps", kind=kind)["task_id"]
    final = wait_final(web, "oddSteps", task_id)
    assert (final["state"], final["error"]) == ("failed", error)
    if kind in ("big", "opaque"):  # the step ran, and is recorded failed with the reason
        [shown] = detail(web, task_id)["steps"]
        assert (shown["state"], shown["error"]) == ("failed", error)


def test_a_step_returns_what_its_record_reads_back_the_first_time_too(started, output_dir):
    web = serve(started, output_dir)
    task_id = steps_service(web)("oddSteps", kind="tuple")["task_id"]
    assert steps_service(web)("oddSteps_wait_result", task_id=task_id, seconds=30) == 1


def test_a_body_without_steps_reads_and_writes_no_steps(redis_server, started, output_dir):
    web = serve(started, output_dir, "--redis", redis_server.url)
    task_id = steps_service(web)("oddSteps", kind="none")["task_id"]
    final = wait_final(web, "oddSteps", task_id)
    assert (final["state"], final["step"], final["steps_done"]) == ("succeeded", "", 0)
    assert detail(web, task_id)["steps"] == []
    with redis_server.client() as client:
        assert not client.exists(f"ladon-tasks:steps:{task_id}")
        assert not {"step", "steps_done"} & set(client.hkeys(f"ladon-tasks:task:{task_id}"))


def test_a_step_redis_could_not_record_runs_on(redis_server, workers, started, output_dir, tmp_path):
    """Redis goes away while step two runs: its record fails, the body goes on through
    step three, and its outcome is written once Redis is back - each step ran once."""
    web = serve(started, output_dir, "--redis", redis_server.url)
    worker = workers.start("--threads")
    task_id = steps_service(web)("queuedSteps", marker_dir=str(tmp_path))["task_id"]
    wait_run(tmp_path, "two", 1)
    redis_server.stop()
    try:
        (tmp_path / "gate-two").touch()
        wait_until(lambda: list(tmp_path.glob("run-three-1-*")), timeout=30, what="step three to run")
        wait_until(lambda: "kept until the store answers" in workers.log(worker), timeout=30,
                   what="the worker to keep the outcome")
    finally:
        redis_server.start()
    assert "step 'two' not recorded" in workers.log(worker)
    final = wait_final(web, "queuedSteps", task_id)
    assert (final["state"], final["attempts"]) == ("succeeded", 1)
    assert steps_service(web)("queuedSteps_result", task_id=task_id) == 61
    assert runs(tmp_path) == {"one": 1, "two": 1, "three": 1}


# -- the dashboard ---------------------------------------------------------------------------


def test_the_dashboard_shows_the_steps_and_offers_recover_or_restart(started, output_dir, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    web = serve(started, output_dir)
    (tmp_path / "gate-two").touch()
    (tmp_path / "fail-three").touch()
    failed = steps_service(web)("threadSteps", marker_dir=str(tmp_path))["task_id"]
    wait_final(web, "threadSteps", failed)
    (tmp_path / "fail-three").unlink()
    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.goto(f"{web.url}/_tasks/?token={TOKEN}")
            page.locator(f'tr[data-task-id="{failed}"] button.link').click()
            rows = page.locator("#detail-steps-body tr")
            expect(rows).to_have_count(3, timeout=10_000)
            expect(rows.locator("td:nth-child(1)")).to_have_text(["one", "two", "three"])
            expect(rows.locator(".badge")).to_have_text(["succeeded", "succeeded", "failed"])
            expect(rows.locator("td:nth-child(4)")).to_have_text(["1", "1", "2"])
            expect(rows.nth(2)).to_have_attribute("title", "RuntimeError: step three fails")
            expect(page.locator("#detail-fields")).to_contain_text("three (2 done)")
            page.screenshot(path=str(output_dir / "dashboard-steps.png"), full_page=True)

            page.locator("#detail-retry").click()
            expect(page.locator("#confirm")).to_contain_text("Recover skips its 2 succeeded steps")
            expect(page.locator("#confirm-alt")).to_have_text("Restart")
            page.locator("#confirm-yes").click()  # Recover
            expect(page.locator("#detail-fields")).to_contain_text(f"Re-run of{failed}", timeout=10_000)
            expect(rows.locator(".badge")).to_have_text(["succeeded", "succeeded", "succeeded"], timeout=20_000)
            expect(rows.locator("td:nth-child(4)")).to_have_text([f"from {failed[:8]}", f"from {failed[:8]}", "1"])
            assert runs(tmp_path) == {"one": 1, "two": 1, "three": 3}

            page.locator(f'tr[data-task-id="{failed}"] button.retry').click()
            page.locator("#confirm-alt").click()  # Restart
            expect(page.locator("#detail-fields")).to_contain_text(f"Re-run of{failed}", timeout=10_000)
            expect(rows.locator("td:nth-child(4)")).to_have_text(["1", "1", "1"], timeout=20_000)
            expect(rows.locator(".badge")).to_have_text(["succeeded", "succeeded", "succeeded"], timeout=20_000)
            assert runs(tmp_path) == {"one": 2, "two": 2, "three": 4}
        finally:
            browser.close()
