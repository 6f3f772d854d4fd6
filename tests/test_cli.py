"""The ``ladon-tasks`` command as an operator runs it: help with examples, the task
commands over HTTP (``--url``) against a running server with either store, ``wait``,
and errors as one line with a non-zero exit code - never a traceback or the usage."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import ladon_tasks.client as client_module
from ladon_tasks.cli import build_parser
from ladon_tasks.client import NotATaskMethodError, RemoteFault, ServiceUnreachable, TaskClient, TaskError
from support.redis_server import start_redis
from support.servers import FIXTURE_SERVICES, ROOT, SERVICES, free_port, start_server, wait_until

LADON_TASKS = str(Path(sys.executable).parent / "ladon-tasks")
TOKEN = "cli-test-token"
COMMANDS = ("serve", "worker", "dashboard", "tasks", "events", "inspect", "cancel", "call", "wait", "apache-config",
            "status", "workers", "retry", "purge", "ping")


def run(*args: str, timeout: float = 60, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([LADON_TASKS, *args], capture_output=True, text=True, timeout=timeout, cwd=ROOT,
                          env={**os.environ, **(env or {})})


def assert_one_line_error(out: subprocess.CompletedProcess, command: str, *words: str) -> None:
    assert out.returncode not in (0, None), out
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert lines[0].startswith(f"ladon-tasks {command}: "), lines[0]
    for word in words:
        assert word in lines[0], lines[0]
    assert "Traceback" not in out.stderr and "usage:" not in out.stderr


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory):
    server = start_redis(tmp_path_factory.mktemp("redis-cli"))
    yield server
    server.stop()


@pytest.fixture(scope="module", params=["memory", "redis"])
def served(request, output_dir):
    """``ladon-tasks serve`` with its dashboard behind a token, with either store."""
    extra = ["--dashboard-token", TOKEN]
    if request.param == "redis":
        extra += ["--redis", request.getfixturevalue("redis_server").url]
    running = start_server([str(FIXTURE_SERVICES / "probe_service.py"), str(SERVICES / "instance_service.py")],
                           output_dir, *extra)
    yield running
    running.stop()


# -- help -------------------------------------------------------------------------------------


def test_version_and_top_level_help():
    from importlib.metadata import version

    out = run("--version")
    assert out.returncode == 0 and out.stdout.strip() == f"ladon-tasks {version('ladon-tasks')}"
    top = run("--help").stdout
    assert "`" not in top and all(command in top for command in COMMANDS)


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_an_example_and_every_option_a_help_text(command):
    out = run(command, "--help")
    assert out.returncode == 0
    example = out.stdout.split("example:\n", 1)[1]
    assert f"ladon-tasks {command}" in example
    parser = next(action for action in build_parser()._actions if action.dest == "command").choices[command]
    for action in parser._actions:
        assert action.help, f"{command} {action.option_strings or action.dest} has no help text"


def test_defaults_are_shown_and_repeatable_options_say_so():
    tasks = run("tasks", "--help").stdout
    assert "(default: 50)" in tasks and "repeat" in tasks
    serve = " ".join(run("serve", "--help").stdout.split())
    assert "--thread-workers THREAD_WORKERS task bodies run at once" in serve and "(default: 8)" in serve
    assert "(default: 2)" in serve
    worker = " ".join(run("worker", "--help").stdout.split())
    assert "--queues NAME [NAME ...] the queues to serve" in worker and "(default: ['default'])" in worker
    dashboard = " ".join(run("dashboard", "--help").stdout.split())
    assert "(default: 127.0.0.1)" in dashboard and "(default: 8090)" in dashboard


# -- the task commands over HTTP, either store ----------------------------------------------


def test_tasks_inspect_cancel_over_url(served, tmp_path):
    probe = TaskClient(f"{served.url}/ProbeService")
    running = probe.start("gated", gate=str(tmp_path / "gate"))
    wait_until(lambda: running.progress().state == "running", what="the gated task to run")
    done = probe.start("echo", text="listed")
    assert done.wait(20).finished

    listed = run("tasks", "--url", served.url, "--token", TOKEN, "--json", "--log-level", "WARNING")
    assert listed.returncode == 0, listed.stderr
    rows = {row["task_id"]: row for row in map(json.loads, listed.stdout.splitlines())}
    assert rows[running.task_id]["state"] == "running" and rows[done.task_id]["state"] == "succeeded"
    only_running = run("tasks", "--url", served.url, "--token", TOKEN, "--state", "running", "--state", "queued")
    assert running.task_id in only_running.stdout and done.task_id not in only_running.stdout

    inspected = run("inspect", done.task_id, "--url", served.url, "--token", TOKEN)
    assert inspected.returncode == 0 and json.loads(inspected.stdout)["args"]

    cancelled = run("cancel", running.task_id, "--url", served.url, "--token", TOKEN)
    assert cancelled.returncode == 0 and cancelled.stdout.split() == [running.task_id, "cancelled"]
    assert running.progress().state == "cancelled"
    too_late = run("cancel", done.task_id, "--url", served.url, "--token", TOKEN)
    assert too_late.returncode == 1 and too_late.stdout.split() == [done.task_id, "succeeded"]

    unknown = run("inspect", "c" * 32, "--url", served.url, "--token", TOKEN)
    assert_one_line_error(unknown, "inspect", "UnknownTask")
    no_token = run("tasks", "--url", served.url)
    assert_one_line_error(no_token, "tasks", "--token")


def test_events_over_url_follow_what_happens(served):
    probe = TaskClient(f"{served.url}/ProbeService")
    follower = subprocess.Popen([LADON_TASKS, "events", "--url", served.url, "--token", TOKEN, "--count", "1"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        # A task started after the follower began is reported; poll until it is.
        def reported() -> bool:
            handle = probe.start("echo", text="event")
            handle.wait(20)
            return follower.poll() is not None

        wait_until(reported, timeout=60, interval=0.2, what="events to report a new task")
        out, err = follower.communicate(timeout=10)
    finally:
        if follower.poll() is None:
            follower.kill()
            follower.communicate()
    assert follower.returncode == 0, err
    assert re.match(r"\d\d:\d\d:\d\d\.\d{3}  \w+ +ProbeService\.echo  [0-9a-f]{32}  attempt \d", out), out


def test_wait_command_follows_a_started_task(served, tmp_path):
    gate = tmp_path / "gate"
    started = run("call", served.url, "ProbeService.gated", f"gate={gate}")
    task_id = started.stdout.strip()
    assert started.returncode == 0 and re.fullmatch(r"[0-9a-f]{32}", task_id)
    short = run("wait", served.url, "ProbeService.gated", task_id, "--timeout", "0.5", "--quiet")
    assert short.returncode == 3 and "ladon-tasks wait" in short.stderr
    gate.touch()
    waited = run("wait", served.url, "ProbeService.gated", task_id)
    assert waited.returncode == 0, waited.stderr
    assert json.loads(waited.stdout) == 7 and "100%" in waited.stderr


# -- errors: one line, non-zero ----------------------------------------------------------------


def test_call_errors_are_one_line(server):
    plain = run("call", server.url, "ProbeService.plain", "text=x", "--wait")
    assert_one_line_error(plain, "call", "not a task method")
    unknown_service = run("call", server.url, "NoSuchService.method")
    assert_one_line_error(unknown_service, "call", "not a Ladon service")
    unknown_method = run("call", server.url, "ProbeService.noSuchMethod")
    assert_one_line_error(unknown_method, "call", "no method")
    refused = run("call", f"http://127.0.0.1:{free_port()}", "ProbeService.echo", "text=x")
    assert_one_line_error(refused, "call", "cannot reach")
    bad_argument = run("call", server.url, "ProbeService.echo", "text")
    assert_one_line_error(bad_argument, "call", "key=value")
    assert bad_argument.returncode == 2


def test_store_commands_without_a_reachable_store_are_one_line():
    down = f"redis://127.0.0.1:{free_port()}/0"
    for command in (["tasks"], ["inspect", "a" * 32], ["cancel", "a" * 32]):
        out = run(*command, "--redis", down)
        assert_one_line_error(out, command[0], "Redis")
        assert out.returncode == 1
    no_store = run("tasks")
    assert_one_line_error(no_store, "tasks", "--url")
    nothing_there = run("tasks", "--url", f"http://127.0.0.1:{free_port()}")
    assert_one_line_error(nothing_there, "tasks", "cannot reach")


#: A password as base64 makes them, with a "/" and "+", and a "?" and "#" besides: a strict
#: URL parser ends the host at the first of them and reads the rest as a port.
URL_PASSWORD = "Abc123/xyz+q?r#s=="


def test_a_password_with_slashes_is_accepted_and_never_shown(tmp_path, output_dir):
    server = start_redis(tmp_path / "redis", password=URL_PASSWORD)
    try:
        good = f"redis://:{URL_PASSWORD}@127.0.0.1:{server.port}/0"
        assert run("status", "--redis", good).returncode == 0
        assert run("status", env={"LADON_TASKS_REDIS_URL": good}).returncode == 0
        served = start_server([str(FIXTURE_SERVICES / "probe_service.py")], output_dir, "--redis", good)
        try:
            task = TaskClient(f"{served.url}/QueueProbeService").start("queuedEcho", text="through the queue")
            worker = run("worker", str(FIXTURE_SERVICES / "probe_service.py"), "--burst",
                         env={"LADON_TASKS_REDIS_URL": good})
            assert worker.returncode == 0, worker.stderr
            assert task.wait_result(timeout=30) == "through the queue"
        finally:
            served.stop()
        assert URL_PASSWORD not in served.log() + worker.stderr + worker.stdout
    finally:
        server.stop()
    secrets = ("Abc123", "xyz", "q?r", "s==")
    for bad in (f"redis://:{URL_PASSWORD}@127.0.0.1:port/0", f"redis://user:{URL_PASSWORD}@127.0.0.1:1?db=x",
                f"redis+sentinel://:{URL_PASSWORD}@h:port/svc", f"redis+cluster://:{URL_PASSWORD}@h:1?shards=x"):
        for command in (["status"], ["serve", str(FIXTURE_SERVICES / "probe_service.py"), "--port", str(free_port())],
                        ["worker", str(FIXTURE_SERVICES / "probe_service.py"), "--burst"]):
            for out in (run(*command, "--redis", bad), run(*command, env={"LADON_TASKS_REDIS_URL": bad})):
                assert_one_line_error(out, command[0], "***@")
                assert not any(secret in out.stderr + out.stdout for secret in secrets), out.stderr


def test_call_wait_outside_a_terminal_prints_its_last_line_once(server):
    out = run("call", server.url, "InstanceService.cloneInstance", "instance_id=a", "new_instance_name=b", "--wait")
    assert out.returncode == 0, out.stderr
    progress = [line for line in out.stderr.splitlines() if line.startswith("cloneInstance:")]
    assert progress[-1] == "cloneInstance: 100%, succeeded"
    assert len(progress) == len(set(progress)), progress  # no line twice
    assert "\r" not in out.stderr


# -- the Python client's errors -----------------------------------------------------------------


def test_client_raises_its_documented_errors(server):
    probe = TaskClient(f"{server.url}/ProbeService")
    with pytest.raises(NotATaskMethodError):
        probe.start("plain", text="x")
    with pytest.raises(RemoteFault, match="no method"):
        probe.start("noSuchMethod")
    with pytest.raises(RemoteFault, match="not a Ladon service"):
        TaskClient(f"{server.url}/NoSuchService")
    with pytest.raises(ServiceUnreachable):
        TaskClient(f"http://127.0.0.1:{free_port()}/ProbeService")


def test_readme_lists_every_client_error():
    errors = {name for name, value in vars(client_module).items()
              if isinstance(value, type) and issubclass(value, TaskError)}
    section = (ROOT / "README.md").read_text().split("## Python client", 1)[1].split("\n## ", 1)[0]
    listed = set(re.findall(r"^\| `(\w+)` \|", section, re.MULTILINE))
    assert listed == errors
