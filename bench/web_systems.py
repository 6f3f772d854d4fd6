"""The systems of the web bench: one Ladon HTTP stack, and behind it ladon-tasks, a queue
wired in by hand, or nothing (the ceiling of two plain calls).

Each system has its own fresh ``redis-server`` and, where it needs one, its own worker,
and is served in one of two stacks:

- ``serve``: ladon-tasks as its users run it (``ladon-tasks serve``, on waitress), and
  the hand-wired peers in Ladon's own ``LadonWSGIApplication`` on the same waitress
  set-up, so both sides have the same HTTP server; Ladon + huey and plain Ladon also as
  a Ladon user runs them today, on Werkzeug's threaded server (:mod:`bench.ladon_server`);
- ``apache``: ``mod_wsgi-express`` with the same settings for both - ladon-tasks through
  ``deploy/apache/handler.wsgi``, the peers through ``bench/services/plain_ladon.wsgi`` -
  so the HTTP layer is Apache's on both sides.

A task is two requests from the same client: ladon-tasks' ``noop`` then
``noop_wait_result``; a peer's ``start`` (enqueue) then ``result`` (block on the queue's
result); the ceiling's two ``echo`` calls.
"""

from __future__ import annotations

import functools
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from bench import ladon_server, peers
from bench.benchlib import SERVICES_DIR, stop_each, wait_result
from bench.noise import CpuAccount
from tests.support.apache import HANDLER, ModWsgi
from tests.support.jsonwsp import JsonWsp
from tests.support.processes import process_alive, stop_process_group
from tests.support.redis_server import RedisServer, start_redis
from tests.support.servers import RunningServer, start_server
from tests.support.workers import Workers

OUR_SERVICE = "QueueBenchService"
OUR_SERVICE_FILE = SERVICES_DIR / "queue_service.py"
PEER_SERVICE = "PeerService"
PLAIN_HANDLER = SERVICES_DIR / "plain_ladon.wsgi"
STACKS = ("serve", "apache")
#: Worker slots of ladon-tasks' workers, as the peers' (``bench.peers.SLOTS``).
SLOTS = peers.SLOTS


@dataclass(frozen=True)
class ApacheSettings:
    """mod_wsgi-express daemons, the same for every system of the ``apache`` stack."""

    processes: int = 2
    threads: int = 16


@dataclass
class WebSystem:
    """One row of the web bench: what serves it, what it runs on, how a task is made."""

    label: str
    #: ``ours``, ``peer`` or ``ceiling``; ``ours_stack`` says whose WSGI application serves it.
    group: str
    stack: str
    ours_stack: bool
    #: For ladon-tasks: the executor, and the worker's options (``None``: no worker).
    executor: str = "queue"
    worker_options: tuple[str, ...] | None = None
    peer: peers.Peer | None = None
    redis: RedisServer | None = None
    web: RunningServer | ModWsgi | None = None
    processes: list[subprocess.Popen] = field(default_factory=list)
    workers: Workers | None = None
    log_dir: Path | None = None
    #: The HTTP server of a plain Ladon application on the ``serve`` stack
    #: (:data:`bench.ladon_server.SERVERS`).
    ladon_server: str = "waitress"

    @property
    def http(self) -> str:
        """The HTTP server under it: rows are compared with rows on the same one."""
        if self.stack == "apache":
            return "apache"
        return "waitress" if self.ours_stack else self.ladon_server

    @property
    def slug(self) -> str:
        """The system's name in file names."""
        return "".join(c if c.isalnum() else "-" for c in f"{self.stack}-{self.label}".lower())

    @property
    def service(self) -> str:
        return OUR_SERVICE if self.ours_stack else PEER_SERVICE

    def client(self) -> JsonWsp:
        assert self.web is not None
        return JsonWsp(self.web, self.service)

    # -- one task -------------------------------------------------------------------

    def task(self, client: JsonWsp, value: int) -> None:
        """One task, two requests; raises on anything but the right result."""
        if self.group == "ceiling":
            got = client("echo", value=value), client("echo", value=value)
            expected: Any = (value, value)
        elif self.group == "ours":
            got = wait_result(client, "noop", client("noop", value=value)["task_id"])
            expected = value
        else:
            got = client("result", job_id=client("start", value=value))
            expected = value
        if got != expected:
            raise ValueError(f"{self.label}: got {got!r}, expected {expected!r}")

    # -- its processes ----------------------------------------------------------------

    def start(self, work_dir: Path, log_dir: Path, apache: ApacheSettings, account: CpuAccount) -> None:
        """Redis, the worker if any, then the web server; returns once it answers. Files
        go to ``work_dir`` (short: mod_wsgi's daemon sockets live in it, and a socket's
        path has at most 107 bytes), logs to ``log_dir``."""
        slug, self.log_dir = self.slug, log_dir
        work_dir.mkdir(parents=True)
        self.redis = start_redis(work_dir / "redis")
        url = self.redis.url
        settings = {"BENCH_EXECUTOR": self.executor}
        if self.worker_options is not None:
            self.workers = Workers(url, log_dir, [str(OUR_SERVICE_FILE)], options=self.worker_options)
            self.workers.start(env=settings)
        if self.peer is not None:
            self.processes.append(self.peer.start_worker(url, log_dir / f"{slug}-worker.log"))
            settings = {"BENCH_PEER": self.peer.name, "BENCH_REDIS_URL": url}
        elif not self.ours_stack:
            settings = {}
        if self.stack == "serve" and self.ours_stack:
            self.web = start_server([str(OUR_SERVICE_FILE)], log_dir, "--redis", url, "--no-dashboard",
                                    "--log-level", "WARNING", env=settings)
        elif self.stack == "serve":
            self.web = ladon_server.start(SERVICES_DIR, ["peer_service"], log_dir / f"{slug}-web.log", env=settings,
                                          server=self.ladon_server)
        else:
            if self.ours_stack:
                settings |= {"LADON_TASKS_SERVICES": str(OUR_SERVICE_FILE), "LADON_TASKS_REDIS_URL": url}
            else:
                settings["BENCH_LADON_SERVICES"] = "peer_service"
            server = ModWsgi(work_dir / "apache", apache.processes, settings,
                             HANDLER if self.ours_stack else PLAIN_HANDLER, threads=apache.threads)
            self.web = server.start()
            account.add_root(server.main_pid())

    def gone(self) -> list[str]:
        """What of this system has died: a crash to report in its row."""
        found = []
        processes = [*self.processes, *(self.workers.processes if self.workers else [])]
        if isinstance(self.web, RunningServer):
            processes.append(self.web.process)
        if self.redis is not None and self.redis.process is not None:
            processes.append(self.redis.process)
        found += [f"pid {p.pid} exited with {p.returncode}" for p in processes if p.poll() is not None]
        if isinstance(self.web, ModWsgi):
            pid = self.web.main_pid()
            if pid is None or not process_alive(pid):
                found.append("Apache is gone")
        return found

    def _keep_error_log(self, web: ModWsgi, log_dir: Path) -> None:
        """Apache's error log outlives its server root, which the bench deletes."""
        (log_dir / f"{self.slug}-apache-error.log").write_text(web.error_log())

    def stop(self) -> None:
        """Everything it started, by pid or process group; each step whatever the others did."""
        steps: list[Callable[[], None]] = []
        if isinstance(self.web, ModWsgi) and self.log_dir is not None:
            steps.append(functools.partial(self._keep_error_log, self.web, self.log_dir))
        if self.web is not None:
            steps.append(self.web.stop)
        if self.workers is not None:
            steps.append(self.workers.stop_all)
        steps += [functools.partial(stop_process_group, process) for process in self.processes]
        if self.redis is not None:
            steps.append(self.redis.stop)
        stop_each(steps)


def systems(stack: str) -> list[WebSystem]:
    """The rows of one stack, in the order of the table."""
    worker = ("--log-level", "WARNING", "--concurrency", str(SLOTS))
    where = "ladon-tasks serve" if stack == "serve" else "ladon-tasks handler"
    plain = "Ladon on waitress" if stack == "serve" else "Ladon's own handler"
    rows = [
        WebSystem("ladon-tasks queue, worker --threads", "ours", stack, True, "queue", (*worker, "--threads")),
        WebSystem("ladon-tasks queue, process worker", "ours", stack, True, "queue", worker),
        WebSystem("ladon-tasks thread executor (Redis store)", "ours", stack, True, "thread"),
        *(WebSystem(f"Ladon + {peer.label}", "peer", stack, False, peer=peer)
          for peer in (peers.huey(), peers.dramatiq(), peers.rq("SimpleWorker"), peers.celery("threads"))),
        WebSystem(f"ceiling: two echo calls, {where}", "ceiling", stack, True, "thread"),
        WebSystem(f"ceiling: two echo calls, {plain}", "ceiling", stack, False),
    ]
    if stack == "serve":
        rows += [
            WebSystem(f"Ladon + {peers.huey().label} on Werkzeug", "peer", stack, False, peer=peers.huey(),
                      ladon_server="werkzeug"),
            WebSystem("ceiling: two echo calls, Ladon on Werkzeug", "ceiling", stack, False,
                      ladon_server="werkzeug"),
        ]
    return rows
