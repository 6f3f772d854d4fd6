"""Periodic tasks, for real: ``tests/service_fixtures/schedule_service.py`` (a 1 s
schedule of a queued method) loaded by ``ladon-tasks serve`` and ``ladon-tasks worker``
processes, none of them a beat process, on one redis-server (through a kill and a
restart, and back at older data), through a Sentinel failover, and on Redis Cluster
(with and without a failover); ``ladon-tasks schedules`` and the dashboard over them;
and the schedule options checked at decoration."""

from __future__ import annotations

import contextlib
import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Iterator

import pytest
import requests

from support.processes import stop_process_group
from support.redis_server import start_redis
from support.servers import FIXTURE_SERVICES, ROOT, RunningServer, free_port, launch, start_server, wait_until
from support.workers import Workers

SCHEDULE = str(FIXTURE_SERVICES / "schedule_service.py")
NAME = "ScheduleService.tick"

#: Ticks the fleet test counts: the issue's 30 s of a 1 s schedule.
WINDOW = 30

def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ladon_tasks", *args], capture_output=True, text=True,
                          timeout=60, cwd=ROOT)


def tick_tasks(redis_url: str) -> dict[float, list[str]]:
    """The schedule's tasks in the store, by the tick their idempotency key names."""
    from ladon_tasks.redis import open_store

    store = open_store(redis_url)
    try:
        records = store.list_tasks(method="tick", limit=500)
    finally:
        store.close()
    ticks: dict[float, list[str]] = {}
    for record in records:
        if record.idempotency_key.startswith("schedule:"):
            ticks.setdefault(float(record.idempotency_key.split(":", 1)[1]), []).append(record.task_id)
    return ticks


def newest_tick(redis_url: str) -> float:
    return max(tick_tasks(redis_url), default=0.0)


def assert_each_tick_ran_once(redis_url: str, markers: Path, start: float, end: float) -> list[float]:
    """Every tick from ``start`` to ``end`` has exactly one task, and each of those ran
    its body once (the body appends a line, the time it ran, to a file named after its
    task id); how late each body began after its tick, in seconds."""
    ticks = tick_tasks(redis_url)
    window = {tick: ids for tick, ids in ticks.items() if start <= tick <= end}
    assert sorted(window) == [float(t) for t in range(int(start), int(end) + 1)], "a tick was lost"
    assert all(len(ids) == 1 for ids in window.values()), {t: ids for t, ids in window.items() if len(ids) > 1}

    def ran() -> dict[str, list[str]]:
        return {task_id: (markers / task_id).read_text().splitlines()
                for ids in window.values() for task_id in ids if (markers / task_id).exists()}

    wait_until(lambda: len(ran()) == len(window), timeout=60, interval=0.2, what="every tick's task to run")
    runs = ran()
    assert {len(lines) for lines in runs.values()} == {1}, "a tick's task ran twice"
    return [float(runs[ids[0]][0]) - tick for tick, ids in sorted(window.items())]


def count_ticks(redis_url: str, markers: Path, ticks: int, disturb: dict[int, Callable[[], None]]) -> float:
    """Count ``ticks`` ticks of the 1 s schedule, from the one after the newest tick
    started when called (every process is up by then), by the times their idempotency
    keys name - never by the wall clock, so a slow start-up cannot shift the window.
    ``disturb[n]`` runs once the window's ``n``-th tick has its task. Then every tick of
    the window has one task, run once; the window's first tick."""
    start = wait_until(lambda: newest_tick(redis_url), timeout=30, what="the schedule's first tick") + 1
    end = start + ticks - 1
    for offset, action in sorted(disturb.items()):
        wait_until(lambda tick=start + offset: newest_tick(redis_url) >= tick, timeout=60, interval=0.1,
                   what=f"tick {offset} of the window")
        action()
    wait_until(lambda: newest_tick(redis_url) >= end + 1, timeout=90, interval=0.2, what="the window's ticks")
    late = assert_each_tick_ran_once(redis_url, markers, start, end)
    print(f"{ticks} ticks, each run once; bodies began {min(late):.3f}-{max(late):.3f} s after their tick")
    return start



@contextlib.contextmanager
def schedule_fleet(redis_url: str, output_dir: Path, markers: Path, servers: int = 2, workers: int = 1,
                   server_args: tuple[str, ...] = ()) -> Iterator[list[RunningServer]]:
    """``servers`` ``ladon-tasks serve`` and ``workers`` ``ladon-tasks worker`` processes of
    the schedule service on ``redis_url``, none of them a beat process; all SIGKILLed
    at the end, whatever the test did to them."""
    env = {"LADON_TASKS_TEST_MARKERS": str(markers)}
    running: list[RunningServer] = []
    pool = Workers(redis_url, output_dir, services=[SCHEDULE])
    try:
        for _ in range(servers):
            running.append(start_server([SCHEDULE], output_dir, "--redis", redis_url, *server_args, env=env))
        for _ in range(workers):
            pool.start(env=env)
        yield running
    finally:
        pool.stop_all()
        for server in running:
            stop_process_group(server.process, signal.SIGKILL)


def test_three_servers_and_two_workers_run_each_tick_once_through_a_kill_and_a_redis_restart(
        tmp_path_factory, output_dir):
    markers = tmp_path_factory.mktemp("ticks")
    redis_server = start_redis(tmp_path_factory.mktemp("schedule-redis"), appendonly=True)
    try:
        with schedule_fleet(redis_server.url, output_dir, markers, 3, 2, ("--lease", "2")) as servers:
            start = count_ticks(redis_server.url, markers, WINDOW, {
                WINDOW // 3: lambda: stop_process_group(servers[0].process, signal.SIGKILL),  # a web process dies
                WINDOW // 2: redis_server.restart,  # every process loses Redis for a moment; append-only keeps it
            })

            listed = run_cli("schedules", "--redis", redis_server.url, "--json")
            (row,) = [json.loads(line) for line in listed.stdout.splitlines()]
            assert row["name"] == NAME and row["describe"] == "every 1s" and not row["paused"]
            assert row["last_tick"] >= start + WINDOW - 1 and row["next_tick"] > row["last_tick"], row
    finally:
        redis_server.stop()


def run_now_tasks(redis_url: str) -> list[str]:
    """The schedule's tasks started by an operator's "run now"."""
    from ladon_tasks.redis import open_store

    store = open_store(redis_url)
    try:
        return [r.task_id for r in store.list_tasks(method="tick", limit=500)
                if r.idempotency_key.startswith("schedule-run:")]
    finally:
        store.close()


def operate_over_redis(redis_url: str, markers: Path) -> None:
    """``ladon-tasks schedules`` list, pause, resume and run against the store at
    ``redis_url``, where processes run the schedule: each does what it says."""
    listed = run_cli("schedules", "--redis", redis_url, "--json")
    (row,) = [json.loads(line) for line in listed.stdout.splitlines()]
    assert row["name"] == NAME and row["describe"] == "every 1s" and not row["paused"], listed.stderr
    out = run_cli("schedules", "pause", NAME, "--redis", redis_url)
    assert out.returncode == 0 and "paused" in out.stdout, out.stderr
    paused_at = time.time()
    wait_until(lambda: time.time() > paused_at + 3, timeout=10, interval=0.1, what="three ticks")
    assert not [t for t in tick_tasks(redis_url) if t > paused_at + 0.5], "a paused schedule ran"
    listed = run_cli("schedules", "--redis", redis_url, "--json")
    assert json.loads(listed.stdout)["paused"] is True, listed.stdout
    out = run_cli("schedules", "run", NAME, "--redis", redis_url)
    assert out.returncode == 0, out.stderr
    (asked,) = wait_until(lambda: run_now_tasks(redis_url), timeout=10, what="the run asked for")
    wait_until(lambda: (markers / asked).exists(), timeout=30, what="the run now to run")
    assert run_cli("schedules", "resume", NAME, "--redis", redis_url).returncode == 0
    resumed_at = time.time()
    wait_until(lambda: [t for t in tick_tasks(redis_url) if t > resumed_at], timeout=10,
               what="a tick after the resume")
    assert run_now_tasks(redis_url) == [asked]
    unknown = run_cli("schedules", "pause", "No.such", "--redis", redis_url)
    assert unknown.returncode != 0 and "UnknownSchedule" in unknown.stderr and "Traceback" not in unknown.stderr


def test_a_redis_back_at_older_data_does_not_make_a_tick_run_again(tmp_path_factory, output_dir):
    """Redis restarted from a snapshot taken some ticks before (as a restore, or a
    replica promoted behind, would bring back): its book names an older tick, and the
    keys of the ticks since are gone. Each process remembers the newest tick it knew
    was started (by itself, or by another as the book said), so none of those runs
    again; the ticks after them run."""
    markers = tmp_path_factory.mktemp("ticks")
    redis_server = start_redis(tmp_path_factory.mktemp("schedule-snapshot-redis"))  # loads only its snapshot
    env = {"LADON_TASKS_TEST_MARKERS": str(markers)}
    server = start_server([SCHEDULE], output_dir, "--redis", redis_server.url, env=env)
    workers = Workers(redis_server.url, output_dir, services=[SCHEDULE])
    try:
        for _ in range(2):  # three processes race for each tick: the losers learn of it from the book
            workers.start(env=env)
        wait_until(lambda: newest_tick(redis_server.url), timeout=30, what="the first tick")
        # twice: a tick runs again only if a process that lost the race for it looks
        # first after the restart, which the order of their looks decides
        for _ in range(2):
            saved = newest_tick(redis_server.url)
            with redis_server.client() as client:
                client.save()  # the snapshot: ticks up to `saved` (a few more, perhaps)
            wait_until(lambda tick=saved + 4: newest_tick(redis_server.url) >= tick, timeout=30, what="four ticks more")
            ran = tick_tasks(redis_server.url)
            redis_server.kill()
            redis_server.start()  # back at the snapshot
            # every process has looked at the book since this tick was started (they look
            # four times a second): a tick started in the last moment before the kill may
            # be unknown to a process that had not looked yet
            handled = max(ran) - 2
            wait_until(lambda tick=handled + 5: newest_tick(redis_server.url) >= tick, timeout=30,
                       what="ticks after the restart")
            again = {tick: ids for tick, ids in tick_tasks(redis_server.url).items()
                     if tick <= handled and ran.get(tick) != ids}
            assert not again, f"ticks run again after the store went back: {again}"
    finally:
        workers.stop_all()
        server.stop()
        redis_server.stop()


def test_operators_pause_resume_and_run_a_schedule_now(tmp_path_factory, output_dir):
    markers = tmp_path_factory.mktemp("ticks")
    redis_server = start_redis(tmp_path_factory.mktemp("schedule-ops-redis"))
    env = {"LADON_TASKS_TEST_MARKERS": str(markers)}
    server = start_server([SCHEDULE], output_dir, "--redis", redis_server.url, env=env)
    workers = Workers(redis_server.url, output_dir, services=[SCHEDULE])
    try:
        workers.start(env=env)
        wait_until(lambda: tick_tasks(redis_server.url), timeout=30, what="the first tick")
        operate_over_redis(redis_server.url, markers)

        # a standalone dashboard without the services: it shows the book, and a run now
        # through it is the same request, started by a process that runs the schedule
        port = free_port()

        def answers(dashboard: RunningServer) -> bool:
            try:
                return requests.get(f"{dashboard.url}/api/schedules", timeout=1).status_code == 200
            except requests.RequestException:
                return False

        dashboard = launch([sys.executable, "-m", "ladon_tasks", "dashboard", "--redis", redis_server.url,
                            "--port", str(port)], port, output_dir / f"schedule-dashboard-{port}.log", answers,
                           "standalone dashboard")
        try:
            listed = run_cli("schedules", "--url", dashboard.url, "--json")
            (row,) = [json.loads(line) for line in listed.stdout.splitlines()]
            assert row["name"] == NAME and row["describe"] == "every 1s", listed.stderr
            asked = run_cli("schedules", "run", NAME, "--url", dashboard.url)
            assert asked.returncode == 0 and asked.stdout.strip() == f"{NAME} run asked for", asked.stderr
            wait_until(lambda: len(run_now_tasks(redis_server.url)) == 2, timeout=10,
                       what="the run asked for through the dashboard")
        finally:
            dashboard.stop()
    finally:
        workers.stop_all()
        server.stop()
        redis_server.stop()


@pytest.mark.parametrize("options, arg_types, words", [
    (dict(cron="*/5 * * *"), (), "has 4 field(s)"),
    (dict(cron="61 * * * *"), (), "outside 0-59"),
    (dict(cron="* * * * frinday"), (), "not a number"),
    (dict(cron="0 9 * * *", tz="Mars/Olympus"), (), "time zone"),
    (dict(every="soon"), (), "not a duration"),
    (dict(every="0.5s"), (), "at least 1 second"),
    (dict(every="1m", cron="* * * * *"), (), "both given"),
    (dict(every="1m", missed="all"), (), "'missed'"),
    (dict(every="1m", overlap="wait"), (), "'overlap'"),
    (dict(every="1m", tz="UTC"), (), "goes with cron"),
    (dict(args=[1]), (int,), "needs a schedule"),
    (dict(every="1m"), (int,), "takes 1 argument(s) (count): its schedule's args= gives 0"),
    (dict(every="1m", args=[1, 2]), (int,), "args= gives 2"),
    (dict(every="1m", args=["many"]), (int,), "do not fit"),
])
def test_a_schedule_that_cannot_run_is_a_named_error_at_decoration(options, arg_types, words):
    from ladon_tasks import ladonize
    from ladon_tasks.schedules import BadSchedule

    with pytest.raises(BadSchedule, match=None) as error:
        decorate = ladonize(*arg_types, rtype=int, tasktype=dict(executor="queue", **options))

        def body(self, count):  # pragma: no cover - never called
            return count

        decorate(body)
    assert words in str(error.value), str(error.value)


def test_cron_ticks_follow_the_wall_clock_of_their_time_zone():
    import datetime

    from ladon_tasks.schedules import Schedule

    def utc(*parts: int) -> float:
        return datetime.datetime(*parts, tzinfo=datetime.timezone.utc).timestamp()

    daily = Schedule.parse(None, "30 2 * * *", "Europe/Brussels", None, "last", "skip")
    assert daily is not None
    # 02:30 does not exist in Brussels on 2027-03-28 (clocks go from 02:00 to 03:00): skipped
    assert list(daily.ticks(utc(2027, 3, 27, 12), utc(2027, 3, 30, 12))) == [utc(2027, 3, 29, 0, 30),
                                                                            utc(2027, 3, 30, 0, 30)]
    weekdays = Schedule.parse(None, "0 9 * * mon-fri", None, None, "last", "skip")
    assert weekdays is not None and weekdays.next_tick(utc(2027, 1, 1, 10)) == utc(2027, 1, 4, 9)  # Fri -> Mon
    assert weekdays.latest(utc(2027, 1, 3, 10)) == utc(2027, 1, 1, 9)


# -- the dashboard's schedules, its API and ladon-tasks schedules --url, over serve ----------

BOARD = str(FIXTURE_SERVICES / "schedule_board_service.py")
TOKEN = "schedule-token-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
CSRF = {"X-Requested-By": "ladon-tasks"}


@pytest.fixture(scope="module")
def board(tmp_path_factory, output_dir):
    """``ladon-tasks serve`` of the schedule board (in-process store), its dashboard
    behind a token; and the directory its ``held`` schedule waits on."""
    markers = tmp_path_factory.mktemp("board")
    server = start_server([BOARD], output_dir, "--dashboard-token", TOKEN,
                          env={"LADON_TASKS_TEST_MARKERS": str(markers)})
    server.markers = markers
    yield server
    (markers / "release").touch()
    server.stop()


def board_api(server, path: str) -> str:
    return f"{server.url}/_tasks/api/{path}"


def schedule_rows(server) -> dict[str, dict]:
    response = requests.get(board_api(server, "schedules"), headers=AUTH, timeout=5)
    assert response.status_code == 200, response.text
    return {row["name"]: row for row in response.json()["schedules"]}


def board_tasks(server, method: str) -> list[dict]:
    response = requests.get(board_api(server, "tasks"), params={"method": method, "limit": 500}, headers=AUTH,
                            timeout=5)
    assert response.status_code == 200, response.text
    return response.json()["tasks"]


def act(server, name: str, action: str, **headers: str) -> requests.Response:
    return requests.post(board_api(server, f"schedules/{name}/{action}"), headers=headers, timeout=5)


def test_the_dashboard_api_shows_each_schedule_and_pauses_resumes_and_runs_it(board):
    assert requests.get(board_api(board, "schedules"), timeout=5).status_code == 401
    beat = wait_until(
        lambda: (lambda row: row if row["last_task"] else None)(schedule_rows(board)["ScheduleBoard.beat"]),
        timeout=15,
        what="a tick of the beat schedule run",
    )
    assert beat["describe"] == "every 1s" and not beat["paused"]
    assert beat["last_tick"] > time.time() - 10 and beat["next_tick"] > beat["last_tick"]
    yearly = schedule_rows(board)["ScheduleBoard.yearly"]
    assert yearly["describe"] == "cron 0 3 1 1 * (Europe/Brussels)" and yearly["next_tick"] > time.time()

    # the access rules of every other change: the token, and the header a cross-site form cannot send
    assert act(board, "ScheduleBoard.beat", "pause", **CSRF).status_code == 401
    assert act(board, "ScheduleBoard.beat", "pause", **AUTH).status_code == 403
    paused = act(board, "ScheduleBoard.beat", "pause", **AUTH, **CSRF)
    assert paused.status_code == 200 and paused.json()["schedule"]["paused"] is True, paused.text
    paused_at = time.time()
    wait_until(lambda: time.time() > paused_at + 3, timeout=10, interval=0.1, what="three ticks")
    newest = max(task["submitted_at"] for task in board_tasks(board, "beat"))
    assert newest < paused_at + 0.5, "a paused schedule ran"
    assert schedule_rows(board)["ScheduleBoard.beat"]["paused"]
    resumed = act(board, "ScheduleBoard.beat", "resume", **AUTH, **CSRF)
    assert resumed.status_code == 200 and resumed.json()["schedule"]["paused"] is False
    wait_until(lambda: max(t["submitted_at"] for t in board_tasks(board, "beat")) > paused_at + 3, timeout=10,
               what="a tick after the resume")

    before = len(board_tasks(board, "yearly"))
    run = act(board, "ScheduleBoard.yearly", "run", **AUTH, **CSRF)
    assert run.status_code == 200, run.text
    task_id = run.json()["task"]["task_id"]
    wait_until(
        lambda: [t for t in board_tasks(board, "yearly") if t["task_id"] == task_id and t["state"] == "succeeded"],
        timeout=15,
        what="the run now to succeed",
    )
    assert len(board_tasks(board, "yearly")) == before + 1

    unknown = act(board, "No.such", "pause", **AUTH, **CSRF)
    assert unknown.status_code == 404 and unknown.json()["error"] == "UnknownSchedule"
    assert act(board, "ScheduleBoard.beat", "stop", **AUTH, **CSRF).status_code == 404


def test_ladon_tasks_schedules_over_the_url_of_serve(board):
    def cli(*args: str) -> subprocess.CompletedProcess:
        return run_cli("schedules", *args, "--url", board.url, "--token", TOKEN)

    listed = cli("--json")
    assert listed.returncode == 0, listed.stderr
    rows = {row["name"]: row for row in map(json.loads, listed.stdout.splitlines())}
    assert set(rows) == {"ScheduleBoard.beat", "ScheduleBoard.yearly", "ScheduleBoard.held"}
    assert rows["ScheduleBoard.yearly"]["describe"] == "cron 0 3 1 1 * (Europe/Brussels)"
    out = cli("pause", "ScheduleBoard.yearly")
    assert out.returncode == 0 and out.stdout.strip() == "ScheduleBoard.yearly paused", out.stderr
    assert "ScheduleBoard.yearly  cron 0 3 1 1 * (Europe/Brussels)  paused" in cli().stdout
    assert cli("resume", "ScheduleBoard.yearly").returncode == 0
    assert schedule_rows(board)["ScheduleBoard.yearly"]["paused"] is False
    ran = cli("run", "ScheduleBoard.yearly")
    assert ran.returncode == 0 and "run as task" in ran.stdout, ran.stderr
    task_id = ran.stdout.split()[-1]
    assert any(task["task_id"] == task_id for task in board_tasks(board, "yearly"))
    unknown = cli("pause", "No.such")
    assert unknown.returncode != 0 and "UnknownSchedule" in unknown.stderr and "Traceback" not in unknown.stderr
    no_token = run_cli("schedules", "--url", board.url)
    assert no_token.returncode != 0 and "token" in no_token.stderr and "Traceback" not in no_token.stderr
    no_name = cli("pause")
    assert no_name.returncode != 0 and "Service.method" in no_name.stderr and "Traceback" not in no_name.stderr


def test_overlap_skip_over_serve_runs_no_tick_while_the_previous_run_holds(board):
    first = wait_until(lambda: board_tasks(board, "held"), timeout=15, what="the held schedule's first run")
    (run,) = first
    started = wait_until(lambda: schedule_rows(board)["ScheduleBoard.held"]["last_tick"], timeout=5,
                         what="the book's tick")
    # three more ticks come and go while the run holds: each is skipped
    wait_until(lambda: schedule_rows(board)["ScheduleBoard.held"]["last_tick"] >= started + 3, timeout=15,
               what="three ticks skipped")
    assert [task["task_id"] for task in board_tasks(board, "held")] == [run["task_id"]]
    assert schedule_rows(board)["ScheduleBoard.held"]["last_task"] == run["task_id"]  # the run the skips wait on
    (board.markers / "release").touch()
    wait_until(lambda: len(board_tasks(board, "held")) >= 2, timeout=15, what="a tick run once the run ended")


def test_the_page_shows_schedules_and_pauses_resumes_and_runs_them(board, output_dir):
    from playwright.sync_api import expect, sync_playwright

    from support.browser import launch_chromium

    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        try:
            page = browser.new_page(viewport={"width": 1440, "height": 700})
            errors: list[str] = []
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.goto(f"{board.url}/_tasks/?token={TOKEN}")
            page.locator("#tab-schedules").click()
            beat = page.locator('#schedules tr[data-schedule="ScheduleBoard.beat"]')
            expect(beat.locator(".state")).to_have_text("active", timeout=10_000)
            expect(beat.locator(".last")).to_have_text(re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$"))
            expect(beat.locator(".next")).to_have_text(re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$"))
            shown = beat.locator(".last").text_content()
            expect(beat.locator(".last")).not_to_have_text(shown or "", timeout=10_000)  # it moves on by itself

            yearly = page.locator('#schedules tr[data-schedule="ScheduleBoard.yearly"]')
            yearly.locator('button[data-action="pause"]').click()
            expect(yearly.locator(".state")).to_have_text("paused", timeout=10_000)
            assert schedule_rows(board)["ScheduleBoard.yearly"]["paused"] is True
            yearly.locator('button[data-action="resume"]').click()
            expect(yearly.locator(".state")).to_have_text("active", timeout=10_000)
            assert schedule_rows(board)["ScheduleBoard.yearly"]["paused"] is False
            before = len(board_tasks(board, "yearly"))
            yearly.locator('button[data-action="run"]').click()
            wait_until(lambda: len(board_tasks(board, "yearly")) == before + 1, timeout=10,
                       what="the run asked for on the page")
            page.screenshot(path=str(output_dir / "dashboard-schedules.png"), full_page=True)
            assert not errors, errors
        finally:
            browser.close()


def test_two_servers_and_a_worker_run_each_tick_once_through_a_sentinel_failover(tmp_path_factory, output_dir):
    """The same schedule through a ``redis+sentinel://`` URL (a primary, a replica, three
    sentinels): the primary is SIGKILLed in the middle of the window; every tick of it
    has one task, run once."""
    from support.sentinel import start_sentinel_group

    window = 12
    markers = tmp_path_factory.mktemp("sentinel-ticks")
    group = start_sentinel_group(tmp_path_factory.mktemp("schedule-sentinel"))

    def fail_over() -> None:
            # each tick's task was created as any start is: answered once the replica
            # had it (WAIT), so the promoted replica holds every tick answered so far
            created = len(tick_tasks(group.url))
            wait_until(lambda: group.primary.commands().get("wait", 0) >= created, timeout=5,
                       what="a replica wait for each tick's task")
            old_primary = group.primary.port
            group.primary.kill()
            wait_until(lambda: group.primary_port() not in (None, old_primary), timeout=45, interval=0.2,
                       what="the sentinels to promote the replica")

    try:
        with schedule_fleet(group.url, output_dir, markers, server_args=("--lease", "2")):
            count_ticks(group.url, markers, window, {window // 3: fail_over})
    finally:
        group.stop()


def test_two_servers_and_a_worker_run_each_tick_once_on_a_cluster_and_operators_steer_it(
        redis_cluster, tmp_path_factory, output_dir):
    """The same schedule through a ``redis+cluster://`` URL (three primaries): its tasks
    spread over the shards, its book on one; every tick of 8 has one task, run once, and
    ``ladon-tasks schedules --redis`` lists, pauses, resumes and runs it there."""
    redis_cluster.flushall()
    markers = tmp_path_factory.mktemp("cluster-ticks")
    with schedule_fleet(redis_cluster.url, output_dir, markers):
        count_ticks(redis_cluster.url, markers, 8, {})
        operate_over_redis(redis_cluster.url, markers)


def test_two_servers_and_a_worker_run_each_tick_once_through_a_cluster_failover(tmp_path_factory, output_dir):
    """The same on a cluster of three primaries, each with a replica: at tick 4 of 12
    the primary serving the schedule book's shard is SIGKILLed and the cluster promotes
    its replica; every tick of the window has one task, run once."""
    from ladon_tasks import defaults
    from ladon_tasks.redis.cluster import shard_prefixes
    from ladon_tasks.redis.keys import DEFAULT_PREFIX
    from support.redis_cluster import start_cluster

    window = 12
    markers = tmp_path_factory.mktemp("cluster-failover-ticks")
    cluster = start_cluster(tmp_path_factory.mktemp("schedule-cluster-failover"), primaries=3, replicas=1,
                            node_timeout_ms=1000)

    def fail_over() -> None:
        book = cluster.node_of_key(shard_prefixes(DEFAULT_PREFIX, defaults.CLUSTER_SHARDS)[0])
        replica = cluster.replica_of(book)
        cluster.kill(book)
        cluster.wait_promoted(replica, timeout=45)

    try:
        with schedule_fleet(cluster.url, output_dir, markers, server_args=("--lease", "3")):
            count_ticks(cluster.url, markers, window, {window // 3: fail_over})
    finally:
        cluster.stop()
