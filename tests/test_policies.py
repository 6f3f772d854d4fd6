"""Retry policy and soft timeouts, for real: ``tests/service_fixtures/policy_service.py``
served by ``ladon-tasks serve`` (in-process store, and Redis) and run by its thread and
process executors and by a ``ladon-tasks worker``; every wait polls with a deadline."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Iterator

import pytest
import requests

from support.jsonwsp import JsonWsp, WireFault
from support.redis_server import RedisServer
from support.browser import launch_chromium
from support.servers import FIXTURE_SERVICES, ROOT, RunningServer, start_server, wait_until
from support.workers import LEASE, Workers

POLICY = str(FIXTURE_SERVICES / "policy_service.py")
LADON_TASKS = str(Path(sys.executable).parent / "ladon-tasks")

#: (executor suffix of the method, store): every executor, both stores.
WIRINGS = [("Thread", "memory"), ("Process", "memory"), ("Thread", "redis"), ("Process", "redis"),
           ("Queue", "redis")]


@pytest.fixture(scope="module")
def webs(redis_server: RedisServer, output_dir: Path) -> Iterator[dict[str, RunningServer]]:
    """A server per store, and a worker for the queued methods."""
    servers = {"memory": start_server([POLICY], output_dir),
               "redis": start_server([POLICY], output_dir, "--redis", redis_server.url)}
    workers = Workers(redis_server.url, output_dir, services=[POLICY])
    workers.start()
    yield {**servers, "workers": workers}
    workers.stop_all()
    for server in servers.values():
        server.stop()


def policy(server: RunningServer) -> JsonWsp:
    return JsonWsp(server, "PolicyService")


def wait_final(server: RunningServer, method: str, task_id: str) -> dict:
    return policy(server).followed(method, task_id)


def run(server: RunningServer, method: str, marker_dir: Path, plan: str) -> dict:
    task_id = policy(server)(method, marker_dir=str(marker_dir), plan=plan)["task_id"]
    return wait_final(server, method, task_id)


def attempt_started(marker_dir: Path, attempt: int) -> float:
    return float((marker_dir / f"attempt-{attempt}").read_text())


@pytest.mark.parametrize("executor, store", WIRINGS)
def test_retry_on_and_no_retry_on_choose_which_failures_are_retried(webs, tmp_path, executor, store):
    server, method = webs[store], f"picky{executor}"
    cases = {
        # plan: (state, attempts, error: the last failure's, none once a later attempt succeeded)
        "transient,flaky,key": ("succeeded", 4, ""),  # named, through a base, bare builtin
        "permanent": ("failed", 1, "Permanent: attempt 1: permanent"),  # no_retry_on wins over its base
        "transient,value": ("failed", 2, "ValueError: attempt 2: value"),  # named nowhere
    }
    for plan, (state, attempts, error) in cases.items():
        marker_dir = tmp_path / plan
        marker_dir.mkdir()
        final = run(server, method, marker_dir, plan)
        assert (final["state"], final["attempts"], final["error"]) == (state, attempts, error), (plan, final)
        assert len(list(marker_dir.glob("attempt-*"))) == attempts, plan
        assert final["next_attempt"] == 0.0
        if state == "succeeded":  # the retried failures stay in the record's attempt_errors
            earlier = requests.get(f"{server.url}/_tasks/api/tasks/{final['task_id']}",
                                   timeout=10).json()["task"]["attempt_errors"]
            assert [error.split(": ")[1] for error in earlier] == ["Transient", "Flaky", "KeyError"], earlier


@pytest.mark.parametrize("executor, store", WIRINGS)
def test_a_body_asks_to_be_retried_later_and_progress_says_when(webs, tmp_path, executor, store):
    server, method = webs[store], f"picky{executor}"
    before = time.time()
    task_id = policy(server)(method, marker_dir=str(tmp_path), plan="retry-3")["task_id"]

    def waiting() -> dict | None:
        answer = policy(server)(f"{method}_progress", task_id=task_id)
        return answer if answer["state"] == "queued" and answer["attempts"] == 1 else None

    seen = wait_until(waiting, timeout=30, what="the task to wait for its retry")
    observed = time.time()
    assert before + 3 <= seen["next_attempt"] <= observed + 3, (before, seen, observed)
    assert seen["error"] == "Retry: asked at attempt 1"
    final = wait_final(server, method, task_id)
    assert (final["state"], final["attempts"], final["next_attempt"]) == ("succeeded", 2, 0.0)
    assert attempt_started(tmp_path, 2) >= seen["next_attempt"] - 0.1, "the retry never comes early"


@pytest.mark.parametrize("executor, store", WIRINGS)
def test_asked_retries_count_against_retries_and_wait_at_most_retry_max_delay(webs, tmp_path, executor, store):
    server, method = webs[store], f"picky{executor}"
    final = run(server, method, tmp_path, "retry-0.01,retry-0.01,retry-600,retry-0.01,ok")
    assert (final["state"], final["attempts"]) == ("failed", 4), "retries=3: a fifth attempt never runs"
    assert final["error"] == "Retry: asked at attempt 4"
    assert not (tmp_path / "attempt-5").exists()
    waited = attempt_started(tmp_path, 4) - attempt_started(tmp_path, 3)
    assert waited < 60, f"Retry(after=600) waits at most retry_max_delay (5 s), waited {waited:.1f}s"


def test_backoff_is_capped_by_retry_max_delay_less_its_jitter(webs, tmp_path):
    server = webs["memory"]
    before = time.time()
    task_id = policy(server)("jittery", marker_dir=str(tmp_path), plan="transient")["task_id"]

    def waiting() -> dict | None:
        answer = policy(server)("jittery_progress", task_id=task_id)
        return answer if answer["state"] == "queued" and answer["attempts"] == 1 else None

    seen = wait_until(waiting, timeout=30, what="the task to wait for its retry")
    observed = time.time()
    # retry_delay 100 capped at retry_max_delay 2, less up to half of it (retry_jitter 0.5)
    assert before + 1 <= seen["next_attempt"] <= observed + 2, (before, seen, observed)
    assert wait_final(server, "jittery", task_id)["state"] == "succeeded"


def test_a_task_that_failed_without_retry_has_no_result(webs, tmp_path):
    server = webs["memory"]
    task_id = policy(server)("pickyThread", marker_dir=str(tmp_path), plan="value")["task_id"]
    wait_final(server, "pickyThread", task_id)
    with pytest.raises(WireFault) as fault:
        policy(server)("pickyThread_result", task_id=task_id)
    assert "ValueError: attempt 1: value" in str(fault.value)


# -- soft timeout ---------------------------------------------------------------------------


@pytest.mark.parametrize("executor, store", WIRINGS)
def test_a_body_past_its_soft_timeout_gets_a_catchable_soft_timeout(webs, tmp_path, executor, store):
    """A thread's body gets it at its next report; a child process's at once, in the
    middle of a 30 s sleep."""
    server, method = webs[store], f"patient{executor}"
    task_id = policy(server)(method, marker_dir=str(tmp_path))["task_id"]
    final = wait_final(server, method, task_id)
    assert (final["state"], final["attempts"]) == ("succeeded", 1), final
    assert policy(server)(f"{method}_result", task_id=task_id) == 1, "it caught a SoftTimeout"
    ran = float((tmp_path / "soft").read_text())
    assert 1.0 <= ran < 15, f"soft_timeout is 1 s and the body sleeps 30 s: it got it after {ran:.2f}s"


@pytest.mark.parametrize("store", ["memory", "redis"])
def test_an_uncaught_soft_timeout_fails_the_task_with_its_own_name(webs, tmp_path, store):
    server = webs[store]
    final = run_plain(server, "stubbornThread", tmp_path)
    assert (final["state"], final["error"]) == ("failed", "SoftTimeout: the task passed its soft timeout of 1s")


def test_a_body_that_goes_on_after_its_soft_timeout_is_killed_by_its_timeout(webs, tmp_path):
    server = webs["memory"]
    final = run_plain(server, "ignoringProcess", tmp_path)
    assert (final["state"], final["error"]) == ("failed", "TaskTimeout: task exceeded its timeout of 3s")
    assert (tmp_path / "soft").exists(), "it had its soft timeout first"


def run_plain(server: RunningServer, method: str, marker_dir: Path) -> dict:
    task_id = policy(server)(method, marker_dir=str(marker_dir))["task_id"]
    return wait_final(server, method, task_id)


# -- completion hooks -----------------------------------------------------------------------


def hook_service(server: RunningServer) -> JsonWsp:
    return JsonWsp(server, "HookService")


def hook_runs(marker_dir: Path, end: str) -> list[int]:
    """The pids that ran the ``end`` hook to its end, one per run."""
    return sorted(int(path.name.split("-")[2]) for path in marker_dir.glob(f"hook-{end}-*"))


def worker_pids(webs: dict) -> set[int]:
    return {process.pid for process in webs["workers"].processes}


@pytest.mark.parametrize("executor, store", WIRINGS)
def test_each_end_runs_its_hook_in_the_process_that_settles_it(webs, tmp_path, executor, store):
    server, method = webs[store], f"hooked{executor}"
    settler = worker_pids(webs) if executor == "Queue" else {server.process.pid}
    for plan, end, state, seen in [("ok", "success", "succeeded", "succeeded '1'"),
                                   ("fail", "failure", "failed", "failed None")]:
        marker_dir = tmp_path / plan
        marker_dir.mkdir()
        task_id = hook_service(server)(method, marker_dir=str(marker_dir), plan=plan)["task_id"]
        assert wait_final_of(server, "HookService", method, task_id)["state"] == state
        runs = wait_until(
            lambda marker_dir=marker_dir, end=end: hook_runs(marker_dir, end), timeout=30, what=f"the {end} hook"
        )
        assert len(runs) == 1 and set(runs) <= settler, (runs, settler)
        assert len(list(marker_dir.glob("hook-*"))) == 2, "no other hook ran"
        # the hook gets the record the final write left, result and all
        assert next(marker_dir.glob(f"hook-{end}-*")).read_text() == seen

    marker_dir = tmp_path / "cancel"
    marker_dir.mkdir()
    task_id = hook_service(server)(method, marker_dir=str(marker_dir), plan="gate")["task_id"]
    wait_until(lambda: hook_service(server)(f"{method}_progress", task_id=task_id)["state"] == "running",
               timeout=30, what="the task to run")
    assert hook_service(server)(f"{method}_cancel", task_id=task_id)["state"] == "cancelled"
    assert hook_service(server)(f"{method}_cancel", task_id=task_id)["state"] == "cancelled"  # again: no new end
    runs = wait_until(lambda: hook_runs(marker_dir, "cancel"), timeout=30, what="the cancel hook")
    assert runs == [server.process.pid], "the process that cancelled it"
    (marker_dir / "gate").touch()
    assert wait_final_of(server, "HookService", method, task_id)["state"] == "cancelled"
    assert len(list(marker_dir.glob("hook-cancel-*"))) == 1


@pytest.mark.parametrize("executor, store", [("Thread", "memory"), ("Queue", "redis")])
def test_a_hook_that_raises_is_logged_with_the_task_id_and_changes_nothing(webs, tmp_path, executor, store):
    server, method = webs[store], f"hooked{executor}"
    task_id = hook_service(server)(method, marker_dir=str(tmp_path), plan="hook-raises")["task_id"]
    assert wait_final_of(server, "HookService", method, task_id)["state"] == "succeeded"
    logs = [server.log] if executor == "Thread" else [lambda p=p: webs["workers"].log(p)
                                                      for p in webs["workers"].processes]
    wait_until(lambda: any(f"the hook of task {task_id} breaks" in log() and "on_success hook" in log()
                           for log in logs), timeout=30, what="the hook's failure in the log")
    assert hook_service(server)(f"{method}_result", task_id=task_id) == 1
    assert hook_service(server)(f"{method}_progress", task_id=task_id)["state"] == "succeeded"


def wait_final_of(server: RunningServer, service: str, method: str, task_id: str) -> dict:
    return JsonWsp(server, service).followed(method, task_id)


def test_a_hook_cut_by_its_workers_death_runs_again_in_the_worker_that_takes_over(webs, tmp_path):
    """The worker acknowledges the job of a method with hooks after they ran: killed in
    the middle of one, its job's lease runs out and another worker's reaper runs it."""
    server, workers = webs["redis"], webs["workers"]
    workers.start()  # two alive, whichever reads the job
    task_id = hook_service(server)("hookedQueue", marker_dir=str(tmp_path), plan="hook-waits")["task_id"]
    started = wait_until(lambda: list(tmp_path.glob("hook-started-*")), timeout=30, what="the hook to start")
    first = int(started[0].name.split("-")[2])
    assert wait_final_of(server, "HookService", "hookedQueue", task_id)["state"] == "succeeded"
    workers.kill(next(process for process in workers.processes if process.pid == first))
    if not any(process.poll() is None for process in workers.processes):
        workers.start()
    again = wait_until(lambda: [p for p in tmp_path.glob("hook-started-*") if int(p.name.split("-")[2]) != first],
                       timeout=30, what="another worker to run the hook again")
    (tmp_path / "hook-gate").touch()
    runs = wait_until(lambda: hook_runs(tmp_path, "success"), timeout=30, what="the hook to end")
    assert runs == [int(again[0].name.split("-")[2])], "run to its end once, by the worker that took over"
    assert hook_service(server)("hookedQueue_progress", task_id=task_id)["state"] == "succeeded"


# -- child recycling ------------------------------------------------------------------------

#: Where a child runs the body: the server's process executor, or a worker of queue recycle.
RECYCLING = [("Process", "memory"), ("Process", "redis"), ("Recycled", "redis")]


@pytest.fixture
def recycler(redis_server: RedisServer, output_dir: Path) -> Iterator[Workers]:
    """A worker of one slot on queue ``recycle`` (the tests start it, with their options)."""
    workers = Workers(redis_server.url, output_dir, services=[POLICY],
                      options=("--lease", LEASE, "--concurrency", "1", "--queues", "recycle"))
    yield workers
    workers.stop_all()


def run_many(server: RunningServer, method: str, count: int) -> list[tuple[int, int]]:
    """``count`` tasks of ``RecycleService.method`` one after another: (pid, resident MiB) of each."""
    service = JsonWsp(server, "RecycleService")
    runs = []
    for _ in range(count):
        task_id = service(method)["task_id"]
        final = wait_final_of(server, "RecycleService", method, task_id)
        assert final["state"] == "succeeded", final
        pid, mib = service(f"{method}_result", task_id=task_id).split()
        runs.append((int(pid), int(mib)))
    return runs


@pytest.mark.parametrize("executor, store", RECYCLING)
def test_a_child_past_max_memory_per_child_is_replaced_after_its_task(webs, recycler, executor, store):
    if executor == "Recycled":
        recycler.start()
    runs = run_many(webs[store], f"leaky{executor}", 25)
    # bounded at 100 MiB: a child holds at most one leak past it; unbounded, 25 leaks of
    # 10 MiB over at most two children put one of them past 190 MiB
    assert max(mib for _, mib in runs) < 150, runs
    assert len({pid for pid, _ in runs}) >= 3, runs


@pytest.mark.parametrize("executor, store", RECYCLING)
def test_a_child_runs_at_most_max_tasks_per_child_tasks(webs, recycler, executor, store):
    if executor == "Recycled":
        recycler.start()
    runs = run_many(webs[store], f"counted{executor}", 13)
    per_child = Counter(pid for pid, _ in runs)
    assert max(per_child.values()) <= 3 and len(per_child) >= 5, per_child


def test_the_workers_bounds_hold_for_every_method_and_the_tighter_one_wins(webs, recycler):
    worker = recycler.start("--max-memory-per-child", "100")
    runs = run_many(webs["redis"], "leakyUnbounded", 20)
    assert max(mib for _, mib in runs) < 150 and len({pid for pid, _ in runs}) >= 3, runs
    assert "is replaced: it holds" in recycler.log(worker)
    recycler.stop_all()

    recycler.start("--max-tasks-per-child", "2")  # tighter than the method's 3
    per_child = Counter(pid for pid, _ in run_many(webs["redis"], "countedRecycled", 8))
    assert max(per_child.values()) <= 2 and len(per_child) >= 4, per_child


def test_recycling_bounds_are_refused_where_no_child_runs(redis_server, output_dir):
    workers = Workers(redis_server.url, output_dir, services=[POLICY])
    with pytest.raises(AssertionError, match="--max-tasks-per-child and --max-memory-per-child bound child"):
        workers.start("--threads", "--max-tasks-per-child", "5")


# -- limits and policies shown ---------------------------------------------------------------


def inspect(*args: str) -> dict:
    out = subprocess.run([LADON_TASKS, "inspect", *args], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_inspect_and_the_dashboard_show_the_limits_and_policies_in_force(webs, redis_server, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    server = webs["redis"]
    task_id = hook_service(server)("limited", marker_dir=str(tmp_path), plan="ok")["task_id"]
    assert wait_final_of(server, "HookService", "limited", task_id)["state"] == "succeeded"

    shown = requests.get(f"{server.url}/_tasks/api/tasks/{task_id}", timeout=10).json()["task"]["limits"]
    module = shown["retry_on"][0].rsplit(".", 1)[0]  # the service file's module, as its server named it
    assert shown == {
        "executor": "process", "queue": None, "timeout": 20, "soft_timeout": 5,
        "retries": 3, "retry_delay": 0.05, "retry_max_delay": 5, "retry_jitter": 0.5,
        "retry_on": [f"{module}.Transient", "KeyError"], "no_retry_on": [f"{module}.Permanent"],
        "on_success": f"{module}._hook.<locals>.hook", "on_failure": f"{module}._hook.<locals>.hook",
        "on_cancel": f"{module}._hook.<locals>.hook",
        "max_tasks_per_child": 50, "max_memory_per_child": 500, "result_ttl": 3600.0,
        "concurrency": None, "rate": None, "delay": None, "schedule": None,
    }
    assert inspect(task_id, "--url", server.url)["limits"] == shown
    assert inspect(task_id, "--redis", redis_server.url, "--services", POLICY)["limits"] == shown
    assert inspect(task_id, "--redis", redis_server.url)["limits"] is None, "the limits are the code's"
    plain = requests.get(f"{server.url}/_tasks/api/tasks/"
                         + hook_service(server)("hookedThread", marker_dir=str(tmp_path), plan="ok")["task_id"],
                         timeout=10).json()["task"]["limits"]
    assert (plain["executor"], plain["timeout"], plain["retries"], plain["retry_on"], plain["max_tasks_per_child"]) \
        == ("thread", None, 0, [], None)

    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        try:
            page = browser.new_page(viewport={"width": 1440, "height": 900})
            page.goto(f"{server.url}/_tasks/#id={task_id}")
            page.locator(f'tr[data-task-id="{task_id}"] button.link').click()
            expect(page.locator("#detail-limits dd[data-limit]")).to_have_text([
                "process", "20 s", "5 s", "3, backoff 0.05 s doubling, at most 5 s, less up to 50 % at random",
                f"{module}.Transient, KeyError", f"{module}.Permanent",
                f"{module}._hook.<locals>.hook", f"{module}._hook.<locals>.hook", f"{module}._hook.<locals>.hook",
                "after 50 tasks", "past 500 MiB resident", "3600 s after it ends",
            ], timeout=10_000)
        finally:
            browser.close()
