"""Chaos: 200 tasks over the three executors while workers and a web server are killed
with SIGKILL at random moments and Redis is restarted once. Every task must end, with
the right result; how many bodies ran twice is counted and reported, with the longest
time a task cut by a kill took to end (``test-output/chaos.json``)."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from support.redis_server import start_redis
from support.servers import FIXTURE_SERVICES, RunningServer, start_server
from support.workers import Workers

CHAOS = str(FIXTURE_SERVICES / "chaos_service.py")
METHODS = ("chaosQueued", "chaosThread", "chaosProcess")
TASKS = 200


def call(server: RunningServer, method: str, headers: dict[str, str] | None = None, **args: object) -> dict:
    """One JSON-WSP call; raises ``OSError`` when the server is gone, ``RuntimeError``
    with the fault's name on a fault."""
    request = urllib.request.Request(
        f"{server.url}/ChaosService/jsonwsp", data=json.dumps({"methodname": method, "args": args}).encode(),
        headers={"Content-Type": "application/json", **(headers or {})},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        body = json.loads(response.read())
    if body.get("type") == "jsonwsp/fault":
        raise RuntimeError(body["fault"]["string"].split(":", 1)[0])
    return body["result"]


def descendants(pid: int) -> set[int]:
    """``pid`` and every process below it, read from /proc."""
    found, todo = set(), [pid]
    while todo:
        current = todo.pop()
        found.add(current)
        for children in Path(f"/proc/{current}/task").glob("*/children"):
            try:
                todo += [int(child) for child in children.read_text().split()]
            except OSError:
                pass
    return found


class Cast:
    """The processes the chaos plays with: two web servers, three workers, Redis."""

    def __init__(self, redis_server, output_dir: Path) -> None:
        self.redis = redis_server
        self.output_dir = output_dir
        self.workers = Workers(redis_server.url, output_dir, services=[CHAOS])
        self.webs: list[RunningServer] = [self.start_web(), self.start_web()]
        for _ in range(3):
            self.workers.start()
        self.kills: list[tuple[float, set[int], str]] = []  # (when, pids killed, what)
        self.lock = threading.Lock()

    def start_web(self) -> RunningServer:
        return start_server([CHAOS], self.output_dir, "--redis", self.redis.url, "--lease", "2",
                            "--thread-workers", "4", "--process-workers", "2")

    def live_webs(self) -> list[RunningServer]:
        with self.lock:
            return [web for web in self.webs if web.process.poll() is None]

    def kill_worker(self) -> None:
        alive = [p for p in self.workers.processes if p.poll() is None]
        victim = random.choice(alive)
        pids = descendants(victim.pid)
        os.kill(victim.pid, signal.SIGKILL)  # the worker alone: its children must die with it
        victim.wait(timeout=10)
        self.kills.append((time.time(), pids, "worker"))
        self.workers.start()

    def kill_web(self) -> None:
        with self.lock:
            victim = self.webs[1]
        pids = descendants(victim.process.pid)
        os.kill(victim.process.pid, signal.SIGKILL)
        victim.process.wait(timeout=10)
        self.kills.append((time.time(), pids, "web"))
        replacement = self.start_web()
        with self.lock:
            self.webs[1] = replacement

    def stop(self) -> None:
        self.workers.stop_all()
        for web in self.webs:
            if web.process.poll() is None:
                os.killpg(web.process.pid, signal.SIGKILL)
                web.process.wait()


def start_all(cast: Cast, marker_dir: Path, started: dict[int, str]) -> None:
    """Start every task, each on a live web server; a start that fails (server killed,
    Redis restarting) is tried again with the same ``Idempotency-Key``, so it is never
    started twice."""
    for n in range(TASKS):
        deadline = time.monotonic() + 60
        while True:
            webs = cast.live_webs()
            try:
                answer = call(random.choice(webs), METHODS[n % 3], headers={"Idempotency-Key": f"chaos-{n}"},
                              n=n, marker_dir=str(marker_dir))
                started[n] = answer["task_id"]
                break
            except (OSError, RuntimeError) as exc:
                if time.monotonic() > deadline:
                    raise AssertionError(f"task {n} could not be started: {exc}") from None
                time.sleep(0.05)
        time.sleep(0.03)


def final_record(cast: Cast, method: str, task_id: str) -> dict | None:
    for web in cast.live_webs():
        try:
            record = call(web, f"{method}_wait", task_id=task_id, seconds=2)
        except (OSError, RuntimeError):
            continue
        return record if record["finished"] else None
    return None


@pytest.fixture
def cast(tmp_path_factory, output_dir):
    server = start_redis(tmp_path_factory.mktemp("chaos-redis"), appendonly=True)
    players = Cast(server, output_dir)
    yield players
    players.stop()
    server.stop()


def test_every_task_ends_under_chaos(cast, tmp_path, output_dir):
    random.seed(os.environ.get("CHAOS_SEED", "ladon-tasks"))
    began = time.time()
    started: dict[int, str] = {}
    starter = threading.Thread(target=start_all, args=(cast, tmp_path, started), daemon=True)
    starter.start()
    plan = ["worker"] * 6 + ["web", "redis"] + ["worker"] * 6
    random.shuffle(plan)
    for action in plan:
        time.sleep(random.uniform(0.4, 1.0))
        if action == "worker":
            cast.kill_worker()
        elif action == "web":
            cast.kill_web()
        else:
            cast.redis.restart()
    starter.join(timeout=120)
    assert not starter.is_alive() and len(started) == TASKS

    finals: dict[int, dict] = {}
    deadline = time.monotonic() + 120
    while len(finals) < TASKS and time.monotonic() < deadline:
        for n, task_id in started.items():
            if n not in finals:
                record = final_record(cast, METHODS[n % 3], task_id)
                if record is not None:
                    finals[n] = record
    missing = sorted(set(started) - set(finals))
    assert not missing, f"{len(missing)} task(s) never ended, e.g. {[started[n] for n in missing[:5]]}"

    web = cast.live_webs()[0]
    results = {n: call(web, f"{METHODS[n % 3]}_result", task_id=started[n]) for n in started}
    wrong = {n: value for n, value in results.items() if value != 2 * n}
    assert not wrong, f"wrong results: {wrong}"
    assert all(final["state"] == "succeeded" for final in finals.values())

    # the counts kept by the scripts survived every kill and the restart, exactly
    status = subprocess.run([sys.executable, "-m", "ladon_tasks", "status", "--redis", cast.redis.url, "--json"],
                            capture_output=True, text=True, timeout=60)
    counted = json.loads(status.stdout)["methods"]
    for index, method in enumerate(METHODS):
        tasks = sum(1 for n in started if n % 3 == index)
        row = counted[method]
        assert (row["submitted"], row["queued"], row["running"], row["succeeded"], row["failed"], row["cancelled"]) \
            == (tasks, 0, 0, tasks, 0, 0), (method, row)

    # what ran twice, and how long a task cut by a kill took to end
    by_task: dict[str, dict[str, list[tuple[int, int]]]] = {}
    for marker in tmp_path.iterdir():
        kind, task_id, attempt, pid = marker.name.split("-")
        by_task.setdefault(task_id, {"start": [], "done": []})[kind].append((int(attempt), int(pid)))
    started_twice = sum(1 for m in by_task.values() if len(m["start"]) > 1)
    finished_twice = sum(1 for m in by_task.values() if len(m["done"]) > 1)
    finish_times = {started[n]: finals[n]["finishtime"] for n in finals}
    longest, cut = 0.0, 0
    for killed_at, pids, _ in cast.kills:
        for task_id, markers in by_task.items():
            done = {attempt for attempt, _ in markers["done"]}
            if any(pid in pids and attempt not in done for attempt, pid in markers["start"]):
                cut += 1
                longest = max(longest, finish_times[task_id] - killed_at)
    report = {
        "tasks": TASKS,
        "kills": {"worker": sum(1 for k in cast.kills if k[2] == "worker"),
                  "web": sum(1 for k in cast.kills if k[2] == "web")},
        "redis_restarts": 1,
        "attempts_cut_by_kills": cut,
        "bodies_started_twice": started_twice,
        "bodies_finished_twice": finished_twice,
        "tasks_with_more_than_one_attempt": sum(1 for f in finals.values() if f["attempts"] > 1),
        "reissues_counted": sum(counted[method]["reissued"] for method in METHODS),
        "longest_seconds_from_kill_to_end": round(longest, 2),
        "seconds_in_all": round(time.time() - began, 1),
    }
    (output_dir / "chaos.json").write_text(json.dumps(report, indent=2))
    print("chaos:", json.dumps(report))
