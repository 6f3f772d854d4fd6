"""The deployment story under real Apache/mod_wsgi: ``mod_wsgi-express`` with three
daemon processes, the handler of ``deploy/apache``, the Redis store, the thread executor
and the queue executor with a worker beside it. A task started through one process has
its progress, wait, cancel and result answered by the others, over SOAP and JSON-WSP.

Then what an operator with an installed package does: ``ladon-tasks apache-config``
writes a handler and a virtual host, and a real Apache started from that virtual host
serves the services; a bad configuration is refused when the daemons start, in one
line of the error log; and a handler that keeps Ladon's ``LadonWSGIApplication`` with
``import ladon_tasks`` serves ladon-tasks' task methods."""

from __future__ import annotations

import concurrent.futures
import contextlib
import grp
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
import zeep

from support.apache import USER, ApacheRoot, ModWsgi, prepared_root
from support.jsonwsp import JsonWsp
from support.servers import FIXTURE_SERVICES, ROOT, free_port, wait_until

DASHBOARD_TOKEN = "apache-dashboard-token-0123456789"
SERVICES = f"{ROOT / 'services' / 'instance_service.py'}:{FIXTURE_SERVICES / 'probe_service.py'}"


@pytest.fixture(scope="module")
def apache_ready(output_dir):
    return prepared_root(output_dir / "apache")


@pytest.fixture(scope="module")
def apache(apache_ready, redis_server, output_dir):
    server = ModWsgi(apache_ready / "three", 3, {
        "LADON_TASKS_SERVICES": SERVICES, "LADON_TASKS_REDIS_URL": redis_server.url,
        "LADON_TASKS_DASHBOARD_TOKEN": DASHBOARD_TOKEN, "LADON_TASKS_ALLOWED_HOSTS": "tasks.example",
    }).start()
    log = open(output_dir / "apache-worker.log", "wb")
    worker = subprocess.Popen(
        [sys.executable, "-m", "ladon_tasks", "worker", str(FIXTURE_SERVICES / "probe_service.py"),
         "--redis", redis_server.url], stdout=log, stderr=subprocess.STDOUT, cwd=ROOT, start_new_session=True,
    )
    yield server
    os.killpg(worker.pid, signal.SIGTERM)
    worker.wait(timeout=30)
    server.stop()


class Daemons:
    """Chooses which mod_wsgi daemon process answers the next requests.

    Apache hands a request to whichever daemon has a free request thread, so an idle
    daemon may take every call of a sequential client. Holding every request thread of
    every daemon (``holdRequestThread``) and then releasing one daemon's leaves that
    daemon the only one accepting: the calls made meanwhile are answered by it."""

    def __init__(self, server: "ModWsgi", probe: JsonWsp, hold_root: Path) -> None:
        self.slots = server.processes * server.threads
        self.probe = probe
        self.hold_root = hold_root
        self.rounds = 0

    def _hold_all(self) -> tuple[Path, concurrent.futures.ThreadPoolExecutor, list, set[int]]:
        self.rounds += 1
        hold_dir = self.hold_root / f"round-{self.rounds}"
        hold_dir.mkdir(parents=True)
        hold_dir.chmod(0o777)  # the daemons run as www-data
        pool = concurrent.futures.ThreadPoolExecutor(self.slots)
        holds = [pool.submit(self.probe, "holdRequestThread", hold_dir=str(hold_dir)) for _ in range(self.slots)]
        held = wait_until(lambda: len(markers := list(hold_dir.glob("held-*"))) == self.slots and markers,
                          timeout=30, what=f"{self.slots} request threads held")
        return hold_dir, pool, holds, {int(marker.name.split("-")[1]) for marker in held}

    @staticmethod
    def _release_all(hold_dir: Path, pool: concurrent.futures.ThreadPoolExecutor, holds: list) -> None:
        (hold_dir / "release-all").touch()
        for hold in holds:
            hold.result(timeout=30)
        pool.shutdown()

    def pids(self) -> set[int]:
        hold_dir, pool, holds, pids = self._hold_all()
        self._release_all(hold_dir, pool, holds)
        return pids

    @contextlib.contextmanager
    def pinned(self, pid: int):
        hold_dir, pool, holds, pids = self._hold_all()
        try:
            assert pid in pids, (pid, pids)
            (hold_dir / f"release-{pid}").touch()
            wait_until(lambda: sum(hold.done() for hold in holds) == self.slots // len(pids),
                       timeout=30, what=f"daemon {pid} released")
            yield
        finally:
            self._release_all(hold_dir, pool, holds)


def test_three_daemon_processes_answer_for_each_others_tasks(apache, output_dir):
    probe = JsonWsp(apache, "QueueProbeService")
    soap = zeep.Client(f"{apache.url}/QueueProbeService/soap11/description")
    daemons = Daemons(apache, probe, output_dir / "apache" / "holds-answer")
    pids = daemons.pids()
    assert len(pids) == 3, f"three daemon processes should take requests, saw {pids}"

    gate = output_dir / "apache" / "gate"
    gate.unlink(missing_ok=True)
    started_in: dict[str, int] = {}  # task id -> the daemon that took its start call
    for pid in sorted(pids):
        with daemons.pinned(pid):
            assert probe("servingProcess") == pid
            for task_id in started_in:  # the tasks the other daemons started, still running
                assert probe("threadGated_progress", task_id=task_id)["state"] in ("queued", "running")
                assert soap.service.threadGated_progress(**{"task-id": task_id})["state"] in ("queued", "running")
            for _ in range(3):
                started_in[probe("threadGated", gate=str(gate))["task_id"]] = pid
    gate.touch()
    answered = 0
    for pid in sorted(pids):  # each daemon waits for and reads the others' tasks
        with daemons.pinned(pid):
            for task_id, starter in started_in.items():
                if starter == pid:
                    continue
                assert soap.service.threadGated_wait(**{"task-id": task_id, "seconds": 20})["state"] == "succeeded"
                # the thread executor ran the body in the daemon that took the start call
                assert probe("threadGated_result", task_id=task_id) == starter
                assert soap.service.threadGated_result(**{"task-id": task_id}) == starter
                answered += 1
    assert answered == 9 * 2
    print(f"{len(started_in)} tasks started over {len(pids)} daemon processes, each answered by the other two")


def test_cancel_through_any_process_reaches_the_body(apache, output_dir):
    probe = JsonWsp(apache, "QueueProbeService")
    soap = zeep.Client(f"{apache.url}/QueueProbeService/soap11/description")
    daemons = Daemons(apache, probe, output_dir / "apache" / "holds-cancel")
    starter, canceller, reader = sorted(daemons.pids())
    gate = output_dir / "apache" / "never"
    with daemons.pinned(starter):
        task_id = probe("threadGated", gate=str(gate))["task_id"]
    with daemons.pinned(canceller):
        wait_until(lambda: probe("threadGated_progress", task_id=task_id)["progress"] > 0, what="running")
        assert soap.service.threadGated_cancel(**{"task-id": task_id})["state"] == "cancelled"
    with daemons.pinned(reader):
        assert probe("threadGated_progress", task_id=task_id)["state"] == "cancelled"
        with pytest.raises(zeep.exceptions.Fault, match="TaskCancelled"):
            soap.service.threadGated_result(**{"task-id": task_id})
    with daemons.pinned(starter):  # the daemon running the body sees the cancel too
        assert probe("threadGated_progress", task_id=task_id)["state"] == "cancelled"


def test_queue_executor_with_a_worker_beside_apache(apache):
    soap = zeep.Client(f"{apache.url}/QueueProbeService/soap11/description")
    probe = JsonWsp(apache, "QueueProbeService")
    ids = [soap.service.queuedEcho(text=f"apache {n}")["task-id"] for n in range(6)]
    for n, task_id in enumerate(ids):
        assert probe("queuedEcho_wait", task_id=task_id, seconds=20)["state"] == "succeeded"
        assert soap.service.queuedEcho_result(**{"task-id": task_id}) == f"apache {n}"


def test_clone_instance_over_soap_under_apache(apache):
    soap = zeep.Client(f"{apache.url}/InstanceService/soap11/description")
    task_id = soap.service.cloneInstance(**{"instance-id": "vm", "new-instance-name": "web"})["task-id"]
    assert soap.service.cloneInstance_wait(**{"task-id": task_id, "seconds": 20})["state"] == "succeeded"
    assert soap.service.cloneInstance_result(**{"task-id": task_id})["instance-id"] == "vm-web"


def test_the_handler_answers_only_known_host_names(apache):
    """DNS rebinding under Apache: the services and the dashboard refuse a Host name
    that is neither localhost, an address nor one of LADON_TASKS_ALLOWED_HOSTS."""
    import requests

    bearer = {"Authorization": f"Bearer {DASHBOARD_TOKEN}"}
    for path in ("/InstanceService/jsonwsp/description", "/_tasks/api/tasks", "/"):
        refused = requests.get(
            apache.url + path, headers={"Host": f"rebind.example:{apache.port}", **bearer}, timeout=10
        )
        assert refused.status_code == 400, (path, refused.text)
        assert "does not answer for the host name 'rebind.example'" in refused.text
        for host in (f"tasks.example:{apache.port}", "localhost", f"127.0.0.1:{apache.port}"):
            answered = requests.get(apache.url + path, headers={"Host": host, **bearer}, timeout=10)
            assert answered.status_code == 200, (path, host, answered.text)
    listing = requests.get(apache.url + "/_tasks/api/tasks", headers=bearer, timeout=10).json()
    assert "tasks" in listing, "the dashboard is mounted under Apache, over the Redis store"


def test_several_processes_without_redis_are_refused_at_start_in_one_line(apache_ready):
    server = ModWsgi(apache_ready / "no-redis", 2, {"LADON_TASKS_SERVICES": SERVICES}).start()
    try:
        # Refused by each daemon as it starts - before any request reaches it.
        wait_until(lambda: server.error_log().count("no Redis store is configured") == 2,
                   timeout=30, what="each daemon's refusal in the log")
        for _ in range(4):
            with pytest.raises(urllib.error.HTTPError) as caught:
                urllib.request.urlopen(server.url + "/InstanceService/jsonwsp/description", timeout=10)
            assert caught.value.code == 500
            assert b"error log" in caught.value.read()
        log = server.error_log()
        refusals = [line for line in log.splitlines() if "no Redis store is configured" in line]
        assert len(refusals) == 2, refusals  # once per daemon, not once per request
        assert "LADON_TASKS_REDIS_URL" in refusals[0] and "not serving" in refusals[0]
        assert "Traceback" not in log
    finally:
        server.stop()


def test_settings_given_with_setenv_are_refused_at_the_first_request_once(apache_ready):
    """``--setenv`` values reach the handler with a request: it is built, and refused, then."""
    server = ModWsgi(apache_ready / "setenv", 1, {}, setenv={"LADON_TASKS_SERVICES": "/nonexistent/service.py"}).start()
    try:
        for _ in range(3):
            with pytest.raises(urllib.error.HTTPError) as caught:
                urllib.request.urlopen(server.url + "/", timeout=10)
            assert caught.value.code == 500
        wait_until(lambda: "not serving" in server.error_log(), what="the refusal in the log")
        refusals = [line for line in server.error_log().splitlines() if "not serving" in line]
        assert len(refusals) == 1 and "service" in refusals[0], refusals
        assert "Traceback" not in server.error_log()
    finally:
        server.stop()


# -- from an installed package: apache-config, a real Apache from its virtual host ----------------


class Apache(ApacheRoot):
    """``apache2`` itself, from a minimal server configuration that loads the files
    ``ladon-tasks apache-config`` wrote, as a system Apache would include them."""

    MODULES = Path("/usr/lib/apache2/modules")

    def __init__(self, root: Path, config_dir: Path, port: int) -> None:
        self.server_root, self.port = root, port
        root.mkdir(parents=True, exist_ok=True)
        self.conf = root / "httpd.conf"
        self.conf.write_text("\n".join([
            f"ServerRoot {root}", f"Listen 127.0.0.1:{port}", f"PidFile {root}/httpd.pid",
            f"ErrorLog {root}/error_log", "LogLevel warn", f"DefaultRuntimeDir {root}", f"Mutex file:{root} default",
            f"LoadModule mpm_event_module {self.MODULES}/mod_mpm_event.so",
            f"LoadModule authz_core_module {self.MODULES}/mod_authz_core.so",
            f"User {USER}", f"Group {USER}", "ServerName 127.0.0.1",
            f"Include {config_dir}/wsgi.load",
            # Debian's apache2ctl makes /run/apache2, where mod_wsgi's sockets go by default.
            f"WSGISocketPrefix {root}/wsgi",
            f"Include {config_dir}/ladon-tasks.conf", "",
        ]))

    def apache2(self, action: str) -> None:
        subprocess.run(["/usr/sbin/apache2", "-f", str(self.conf), "-k", action], check=True,
                       capture_output=True, timeout=60)

    def start(self) -> "Apache":
        self.apache2("start")
        wait_until(lambda: (self.server_root / "httpd.pid").exists(), timeout=30, what="Apache to start")
        return self

    def stop(self) -> None:
        self.apache2("stop")
        wait_until(lambda: not (self.server_root / "httpd.pid").exists(), timeout=30, what="Apache to stop")


def apache_config(directory: Path, *args: str) -> subprocess.CompletedProcess:
    """``ladon-tasks apache-config``, the installed command."""
    command = [str(Path(sys.executable).parent / "ladon-tasks"), "apache-config", *args, "--directory", str(directory)]
    return subprocess.run(command, capture_output=True, text=True, timeout=120)


def test_apache_config_writes_a_handler_and_vhost_that_apache_serves(apache_ready, redis_server):
    services = [str(ROOT / "services" / "instance_service.py"), str(FIXTURE_SERVICES / "probe_service.py")]
    port = free_port()
    written = apache_config(apache_ready / "site", *services, "--redis", redis_server.url,
                            "--processes", "2", "--threads", "4", "--port", str(port))
    assert written.returncode == 0, written.stderr
    assert "WSGIImportScript" in written.stdout and f"<VirtualHost *:{port}>" in written.stdout
    assert "processes=2 threads=4" in written.stdout and "locale=C.UTF-8" in written.stdout
    handler = (apache_ready / "site" / "handler.wsgi").read_text()
    assert "sys.path" not in handler and redis_server.url in handler
    # it holds the Redis password and the dashboard token: owner and the daemons' group only
    # (Apache and mod_wsgi-express below run their daemons as www-data when started as root)
    mode = (apache_ready / "site" / "handler.wsgi").stat()
    assert stat.S_IMODE(mode.st_mode) == 0o640
    if os.geteuid() == 0:
        assert grp.getgrgid(mode.st_gid).gr_name == "www-data"
    server = Apache(apache_ready / "site-root", apache_ready / "site", port).start()
    try:
        soap = wait_until(lambda: _zeep_or_none(f"{server.url}/InstanceService/soap11/description"),
                          timeout=30, what="the services under Apache (see its error_log)")
        task_id = soap.service.cloneInstance(**{"instance-id": "vm", "new-instance-name": "site"})["task-id"]
        assert soap.service.cloneInstance_wait(**{"task-id": task_id, "seconds": 20})["state"] == "succeeded"
        assert soap.service.cloneInstance_result(**{"task-id": task_id})["instance-id"] == "vm-site"
        assert "Traceback" not in server.error_log()
    finally:
        server.stop()
    # The same handler under mod_wsgi-express, as the README's command runs it.
    express = ModWsgi(apache_ready / "site-express", 2, {}, handler=apache_ready / "site" / "handler.wsgi").start()
    try:
        probe = JsonWsp(express, "ProbeService")
        assert probe("echo_wait_result", task_id=probe("echo", text="express")["task_id"], seconds=20) == "express"
    finally:
        express.stop()


def _zeep_or_none(url: str):
    try:
        return zeep.Client(url)
    except Exception:
        return None


def test_apache_config_keeps_the_handler_from_other_users(tmp_path):
    # Was: handler.wsgi, with the Redis password and the dashboard token, was written 0644.
    services = str(ROOT / "services" / "instance_service.py")
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "handler.wsgi").write_text("an older handler")
    (tmp_path / "site" / "handler.wsgi").chmod(0o644)
    written = apache_config(tmp_path / "site", services, "--processes", "1", "--dashboard-token", "t0ken",
                            "--group", "no-such-group-here")
    assert written.returncode == 0, written.stderr
    handler = tmp_path / "site" / "handler.wsgi"
    assert stat.S_IMODE(handler.stat().st_mode) == 0o640 and "t0ken" in handler.read_text()
    assert f"`chgrp no-such-group-here {handler}`" in written.stderr
    assert stat.S_IMODE((tmp_path / "site" / "ladon-tasks.conf").stat().st_mode) & 0o004, "no secret in the vhost"


def test_apache_config_refuses_what_cannot_work(apache_ready, tmp_path):
    services = str(ROOT / "services" / "instance_service.py")
    no_redis = apache_config(tmp_path / "a", services, "--processes", "3")
    assert no_redis.returncode == 2 and "need Redis" in no_redis.stderr
    assert len(no_redis.stderr.strip().splitlines()) == 1 and not (tmp_path / "a").exists()
    missing = apache_config(tmp_path / "b", str(tmp_path / "nowhere.py"), "--processes", "1")
    assert missing.returncode == 2 and "does not exist" in missing.stderr


def test_a_broken_service_is_refused_when_apache_starts(apache_ready, tmp_path):
    """The handler is loaded when each daemon starts (WSGIImportScript): a service that
    cannot be imported is reported then, once per daemon, before any request."""
    service = apache_ready / "broken_service.py"
    service.write_text("import a_module_that_is_not_installed\n")
    port = free_port()
    written = apache_config(apache_ready / "broken", str(service), "--processes", "1", "--port", str(port))
    assert written.returncode == 0, written.stderr
    server = Apache(apache_ready / "broken-root", apache_ready / "broken", port).start()
    try:
        wait_until(lambda: "not serving" in server.error_log(), timeout=30, what="the refusal in the log")
        lines = [line for line in server.error_log().splitlines() if "not serving" in line]
        assert len(lines) == 1 and "a_module_that_is_not_installed" in lines[0]
        with pytest.raises(urllib.error.HTTPError) as caught:
            urllib.request.urlopen(server.url + "/", timeout=10)
        assert caught.value.code == 500
        assert "Traceback" not in server.error_log()
    finally:
        server.stop()


# -- a handler that keeps Ladon's LadonWSGIApplication ---------------------------------------------

LADON_HANDLER = """import ladon_tasks
from ladon.server.wsgi import LadonWSGIApplication

application = LadonWSGIApplication(['legacy_service'], [{fixtures!r}])
"""


def test_import_ladon_tasks_is_enough_in_a_ladon_handler(apache_ready):
    handler = apache_ready / "ladon-handler.wsgi"
    handler.write_text(LADON_HANDLER.format(fixtures=str(FIXTURE_SERVICES)))
    server = ModWsgi(apache_ready / "ladon-handler", 1, {}, handler=handler).start()
    try:
        legacy = JsonWsp(server, "LegacyService")
        started = legacy("countTo", session_id="s", counter=2)
        assert re.fullmatch(r"[0-9a-f]{32}", started["task_id"])  # ours, not Ladon's SHA-1
        assert legacy("countTo_wait", task_id=started["task_id"], seconds=20)["state"] == "succeeded"
        assert legacy("countTo_result", task_id=started["task_id"]) == 2
    finally:
        server.stop()


def test_tasks_running_through_a_graceful_restart_end(apache, output_dir):
    """``apachectl graceful`` replaces every daemon process: the tasks their threads ran
    are handed over at shutdown and run again by the new daemons."""
    probe = JsonWsp(apache, "MarkedService")
    root = output_dir / "apache" / "graceful"
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    root.chmod(0o777)
    dirs = []
    for n in range(12):
        marker_dir = root / f"task-{n}"
        marker_dir.mkdir()
        marker_dir.chmod(0o777)  # the daemons run as www-data
        dirs.append(marker_dir)
    ids = [probe("threadMarked", marker_dir=str(marker_dir))["task_id"] for marker_dir in dirs]
    wait_until(lambda: all(list(d.glob("start-1-*")) for d in dirs), timeout=30, what="every task running")
    old_pids = {int(next(d.glob("start-1-*")).name.rsplit("-", 1)[1]) for d in dirs}
    subprocess.run([str(apache.server_root / "apachectl"), "graceful"], check=True, capture_output=True, timeout=60)
    serving = JsonWsp(apache, "QueueProbeService")

    def taken_over() -> bool:
        serving("servingProcess")  # a request loads the application in a new daemon
        records = [probe("threadMarked_progress", task_id=task_id) for task_id in ids]
        return all(r["message"].startswith("reissued") or r["attempts"] == 2 for r in records)

    # handed over at the old daemons' shutdown, not a lease later: well within the wait
    wait_until(taken_over, timeout=60, interval=0.2, what="every task taken over by the new daemons")
    for marker_dir in dirs:
        (marker_dir / "gate").touch()
    for task_id in ids:
        final = probe("threadMarked_wait", task_id=task_id, seconds=20)
        assert final["state"] == "succeeded" and final["attempts"] == 2, final
    new_pids = {int(next(d.glob("start-2-*")).name.rsplit("-", 1)[1]) for d in dirs}
    assert not new_pids & old_pids
    assert all(sorted(p.name for p in d.glob("done-*")) == ["done-2"] for d in dirs)
    assert "handed back: its server process stopped" not in apache.error_log()  # no traceback, no noise
