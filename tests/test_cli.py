"""The ``ladon-tasks`` command as an operator runs it: help with examples, the task
commands over HTTP (``--url``) against a running server with either store, ``wait``,
and errors as one line with a non-zero exit code - never a traceback or the usage."""

from __future__ import annotations

import http.server
import json
import os
import pty
import re
import signal
import subprocess
import sys
import threading
import urllib.request
from pathlib import Path

import pytest

import ladon_tasks.client as client_module
from ladon_tasks.cli import build_parser
from ladon_tasks.client import NotATaskMethodError, RemoteFault, ServiceUnreachable, TaskClient, TaskError
from support.redis_server import start_redis
from support.servers import FIXTURE_SERVICES, ROOT, SERVICES, free_port, start_server, wait_until
from support.workers import Workers

LADON_TASKS = str(Path(sys.executable).parent / "ladon-tasks")
TOKEN = "cli-test-token"
COMMANDS = ("serve", "worker", "dashboard", "tasks", "events", "inspect", "cancel", "call", "wait", "apache-config",
            "status", "workers", "retry", "purge", "ping")


def run(*args: str, timeout: float = 60, env: dict[str, str] | None = None,
        inherit: bool = True) -> subprocess.CompletedProcess:
    """The command; ``env`` over this process's environment, or alone (``inherit=False``)."""
    return subprocess.run([LADON_TASKS, *args], capture_output=True, text=True, timeout=timeout, cwd=ROOT,
                          env={**(os.environ if inherit else {}), **(env or {})})


def assert_one_line_error(out: subprocess.CompletedProcess, command: str, *words: str) -> None:
    assert out.returncode not in (0, None), out
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert lines[0].startswith(f"ladon-tasks {command}: "), lines[0]
    for word in words:
        assert word in lines[0], lines[0]
    assert "Traceback" not in out.stderr and "usage:" not in out.stderr


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
    serve = run("serve", "--help").stdout
    assert "Werkzeug" not in top + serve and "(waitress)" in serve  # the server it runs


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
    # the command that goes on following it, as it can be pasted
    assert short.returncode == 3 and f"ladon-tasks wait {served.url} ProbeService.gated {task_id})" in short.stderr
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


# -- what a new user met on a first try, each once a rough edge ---------------------------------


def test_an_unknown_path_is_one_log_line_and_a_cli_probe_none(server):
    before = server.log()
    for path in ("/nope", "/api/tasks", "/NoSuchService/jsonwsp"):
        with pytest.raises(OSError):  # 404
            urllib.request.urlopen(server.url + path, timeout=10)
    logged = server.log()[len(before):]
    assert "Traceback" not in logged and len(logged.strip().splitlines()) <= 3, logged
    listed = run("tasks", "--url", server.url)
    assert listed.returncode == 0, listed.stderr
    assert server.log()[len(before) + len(logged):] == ""  # --url finds the dashboard without a 404


def test_inspect_names_a_fault_once(server):
    out = run("inspect", "xyz", "--url", server.url)
    assert_one_line_error(out, "inspect", "MalformedTaskId")
    assert out.stderr.count("MalformedTaskId") == 1, out.stderr


def test_serve_on_a_taken_port_or_a_missing_file_says_so_and_does_not_claim_to_serve(server):
    taken = run("serve", str(SERVICES / "task_service.py"), "--port", str(server.port))
    assert_one_line_error(taken, "serve", f"port {server.port}", "taken")
    assert "serving" not in taken.stderr
    missing = run("serve", "services/nope.py", "--port", str(free_port()))
    assert_one_line_error(missing, "serve", "services/nope.py does not exist")
    worker = run("worker", "services/nope.py", "--redis", "redis://127.0.0.1:1/0")
    assert_one_line_error(worker, "worker", "does not exist")


def test_worker_without_a_store_names_only_what_it_takes():
    env = {name: value for name, value in os.environ.items()
           if name not in ("LADON_TASKS_REDIS_URL", "REDIS_HOST", "REDIS_PORT")}
    out = run("worker", str(SERVICES / "report_service.py"), env=env, inherit=False)
    assert_one_line_error(out, "worker", "--redis URL")
    assert "--url" not in out.stderr  # worker has no --url


def test_call_refuses_unknown_argument_names_and_lists_the_methods(server):
    def started() -> set[str]:
        listed = run("tasks", "--url", server.url, "--json", "--method", "cloneInstance").stdout
        return {json.loads(line)["task_id"] for line in listed.splitlines()}

    before = started()
    out = run("call", server.url, "InstanceService.cloneInstance", "instance_id=a", "new_instance_name=b", "bogus=1")
    assert_one_line_error(out, "call", "no argument(s) bogus", "its arguments: instance_id, new_instance_name")
    assert started() == before  # nothing started


def test_serve_says_which_store_it_keeps_tasks_in_without_the_password(served, tmp_path_factory, output_dir):
    first = served.log().splitlines()[0]
    assert "serving" in first
    if "--redis" in " ".join(served.process.args):
        assert re.search(r"tasks kept in Redis at 127\.0\.0\.1:\d+ db 0", first), first
    else:
        assert "tasks kept in this process's memory" in first, first
    secret = "s3cret-pass"
    guarded = start_redis(tmp_path_factory.mktemp("redis-password"), password=secret)
    try:
        running = start_server([str(SERVICES / "task_service.py")], output_dir, "--redis", guarded.url)
        try:
            first = running.log().splitlines()[0]
        finally:
            running.stop()
        assert f"tasks kept in Redis at 127.0.0.1:{guarded.port} db 0" in first and secret not in running.log()
    finally:
        guarded.stop()


def test_tasks_aligns_its_columns(served, tmp_path):
    probe = TaskClient(f"{served.url}/ProbeService")
    short = probe.start("zero")
    assert short.wait(20).finished
    longer = probe.start("numbers", count=2)
    assert longer.wait(20).finished
    lines = run("tasks", "--url", served.url, "--token", TOKEN, "--limit", "2").stdout.splitlines()
    header, rows = lines[0], lines[1:]
    start, end = header.index("SERVICE.METHOD"), header.index("CALLER")
    assert {row[start:end].strip() for row in rows} == {"ProbeService.zero", "ProbeService.numbers"}, lines
    assert all(row[end - 2:end] == "  " for row in rows), lines  # CALLER starts where its heading does


def test_task_text_is_printed_with_its_control_characters_escaped(served, tmp_path):
    hostile = "\x1b]0;owned\x07\x1b[2J\r\b\x9b\x7f"
    failed = TaskClient(f"{served.url}/ProbeService").start("explode", text=hostile)
    assert failed.wait(20).state == "failed"
    for command in (["tasks"], ["tasks", "--json"], ["inspect", failed.task_id]):
        out = run(*command, "--url", served.url, "--token", TOKEN)
        assert out.returncode == 0, out.stderr
        assert failed.task_id in out.stdout
        assert not re.search(r"[\x00-\x09\x0b-\x1f\x7f-\x9f]", out.stdout), (command, out.stdout)
        assert "\\u001b]0;owned\\u0007" in out.stdout, out.stdout
    listed = run("tasks", "--url", served.url, "--token", TOKEN, "--json", "--limit", "500").stdout.splitlines()
    events = run("events", "--url", served.url, "--token", TOKEN, "--from-start", "--count", str(len(listed)))
    assert events.returncode == 0, events.stderr
    line = next(line for line in events.stdout.splitlines() if failed.task_id in line)
    assert not re.search(r"[\x00-\x09\x0b-\x1f\x7f-\x9f]", line) and "\\u001b[2J\\u000d\\u0008" in line, line


def test_a_task_that_succeeded_after_a_retry_answers_no_error_and_keeps_the_earlier_ones(served, tmp_path):
    probe = TaskClient(f"{served.url}/ProbeService")
    handle = probe.start("flaky", marker_dir=str(tmp_path))
    status = handle.wait(30)
    assert (status.state, status.attempts) == ("succeeded", 3)
    assert status.error == ""  # the wire's error is for a failed task
    detail = json.loads(run("inspect", handle.task_id, "--url", served.url, "--token", TOKEN).stdout)
    assert (detail["error_type"], detail["error_message"]) == ("", "")
    assert detail["attempt_errors"] == ["attempt 1: RuntimeError: attempt 1 failed",
                                        "attempt 2: RuntimeError: attempt 2 failed"]


@pytest.mark.parametrize("served", ["redis"], indirect=True)
def test_a_task_handed_over_at_sigterm_shows_its_tries_within_their_limit(served, redis_server, output_dir, tmp_path):
    workers = Workers(redis_server.url, output_dir, options=("--lease", "1.5", "--concurrency", "1"))
    try:
        leaving = workers.start("--grace", "0.3")
        gate = tmp_path / "gate"
        handle = TaskClient(f"{served.url}/QueueProbeService").start("queuedGated", gate=str(gate))
        wait_until(lambda: list(tmp_path.glob("gate.pid-*")), what="the body to start")
        leaving.send_signal(signal.SIGTERM)
        assert leaving.wait(timeout=20) == 0
        workers.start()
        wait_until(lambda: (lambda s: s.state == "running" and s.attempts == 2)(handle.progress()), timeout=30,
                   what="the second attempt to run")
        listed = run("tasks", "--url", served.url, "--token", TOKEN)
        row = next(line for line in listed.stdout.splitlines() if line.startswith(handle.task_id))
        assert " 2/2 " in row, row  # not 2/1: the handover used an attempt of its own
        gate.touch()
        assert handle.wait(30).state == "succeeded"
    finally:
        workers.stop_all()


def test_call_wait_on_a_terminal_of_no_width_prints_its_progress(server):
    primary, secondary = pty.openpty()  # a new terminal reports 0 rows and 0 columns
    try:
        process = subprocess.Popen(
            [LADON_TASKS, "call", server.url, "InstanceService.cloneInstance", "instance_id=a",
             "new_instance_name=b", "--wait"],
            stdout=subprocess.PIPE, stderr=secondary, cwd=ROOT, env={**os.environ, "COLUMNS": "", "TERM": "dumb"})
        os.close(secondary)
        secondary = -1
        out, _ = process.communicate(timeout=60)
        seen = b""
        while True:
            try:
                chunk = os.read(primary, 65536)
            except OSError:  # the terminal's other end closed: all read
                break
            if not chunk:
                break
            seen += chunk
    finally:
        os.close(primary)
        if secondary != -1:
            os.close(secondary)
    assert process.returncode == 0 and json.loads(out)["name"] == "b"
    text = seen.decode(errors="replace")
    assert "cloneInstance: 100%, succeeded" in text, repr(text)


class _Redirect(http.server.BaseHTTPRequestHandler):
    """Answers every GET with a redirect to ``target`` (another origin)."""

    target = ""

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        self.send_response(302)
        self.send_header("Location", self.target + self.path)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


class _Foreign(http.server.BaseHTTPRequestHandler):
    """Another origin: records the Authorization headers it is sent, answers healthy."""

    seen: list[str] = []

    def do_GET(self) -> None:  # noqa: N802
        self.seen.append(self.headers.get("Authorization", ""))
        body = b'{"status": "ok", "tasks": [], "states": {}, "methods": {}}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def test_a_redirect_to_another_origin_is_not_followed_and_gets_no_token():
    foreign = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Foreign)
    redirect_handler = type("Redirect", (_Redirect,), {"target": f"http://localhost:{foreign.server_port}"})
    redirecting = http.server.ThreadingHTTPServer(("127.0.0.1", 0), redirect_handler)
    servers = [foreign, redirecting]
    threads = [threading.Thread(target=server.serve_forever, daemon=True) for server in servers]
    for thread in threads:
        thread.start()
    try:
        url = f"http://127.0.0.1:{redirecting.server_port}"
        ping = run("ping", url, "--token", TOKEN)
        assert_one_line_error(ping, "ping", "another origin")
        status = run("status", "--url", url, "--token", TOKEN)
        assert_one_line_error(status, "status", "another origin")
    finally:
        for server in servers:
            server.shutdown()
            server.server_close()
    assert TOKEN not in " ".join(_Foreign.seen)
    assert _Foreign.seen == []  # nothing was asked there at all


def test_serve_stops_however_many_stop_signals_reach_it(output_dir):
    """A stop signal often comes twice - a process-group kill reaches the server and its
    parent (make, a shell, a supervisor), which forwards its own copy a moment later. A
    signal arriving while the first one's handler held a lock once left `serve` waiting
    for itself forever; a burst of them must stop it like one."""
    server = start_server([str(SERVICES / "task_service.py")], output_dir)
    try:
        signals = (signal.SIGINT, signal.SIGTERM)
        for n in range(100_000):  # a stream, so that some land inside the first handler
            try:
                os.kill(server.process.pid, signals[n % 2])
            except ProcessLookupError:
                break
            if n % 1000 == 0 and server.process.poll() is not None:
                break
        server.process.wait(timeout=60)
        assert server.log().count(": stopping (grace") == 1, server.log()
    finally:
        server.stop()
