"""The queues ladon-tasks is compared with: RQ, Celery, huey and dramatiq, each as its own
command-line worker on the system's Redis, and a producer that hands it the no-op task.

The task modules and producers are in ``bench/services/peer_<name>.py``: the queue bench
calls a producer from its threads, the web bench from a plain Ladon service
(``peer_service.py``). Workers run in that directory, with the Redis URL in
``BENCH_REDIS_URL``, each in a session of its own so that its children stop with it.
"""

from __future__ import annotations

import importlib
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.benchlib import SERVICES_DIR
from tests.support.processes import spawn

#: Worker slots of every peer, as the ladon-tasks worker's 2 it is set against.
SLOTS = 2


@dataclass(frozen=True)
class Peer:
    """One queue with its worker's command line."""

    name: str  # the module peer_<name>.py
    label: str
    program: str  # installed beside this Python
    args: tuple[str, ...]
    #: RQ's default worker forks per job: tens of tasks a second, so benches ask it for fewer.
    slow: bool = False

    def start_worker(self, redis_url: str, log_path: Path) -> subprocess.Popen:
        """The worker, in the directory of the task modules, on ``redis_url``."""
        args = [arg.replace("{redis}", redis_url) for arg in self.args]
        return spawn([str(Path(sys.executable).with_name(self.program)), *args], log_path, SERVICES_DIR,
                     {"BENCH_REDIS_URL": redis_url, "PYTHONPATH": str(SERVICES_DIR)})

    def producer(self, redis_url: str) -> Any:
        """A producer of this queue (``start(value)``, ``result(id, timeout)``, ``close()``)."""
        if str(SERVICES_DIR) not in sys.path:
            sys.path.insert(0, str(SERVICES_DIR))
        return importlib.import_module(f"peer_{self.name}").Producer(redis_url)


def rq(worker_class: str) -> Peer:
    """One long-running ``rq worker`` of ``worker_class`` (``Worker`` or ``SimpleWorker``)."""
    return Peer("rq", f"RQ 3.0 {worker_class}", "rq", (
        "worker", "--url", "{redis}", "--worker-class", f"rq.worker.{worker_class}", "--path", str(SERVICES_DIR),
        "--logging_level", "WARNING", "--disable-job-desc-logging"), slow=worker_class == "Worker")


def celery(pool: str) -> Peer:
    """One ``celery worker`` with ``pool``; gossip, mingle and heartbeats off, as they
    usually are in production (that flatters Celery's command count, not ours)."""
    return Peer("celery", f"Celery 5.7 {pool}, {SLOTS} slots", "celery", (
        "-A", "peer_celery", "worker", "--pool", pool, "--concurrency", str(SLOTS), "--loglevel", "WARNING",
        "--without-gossip", "--without-mingle", "--without-heartbeat"))


def huey(slots: int = SLOTS) -> Peer:
    """One ``huey_consumer`` with ``slots`` worker threads."""
    return Peer("huey", f"huey 3.5 threads, {slots} slots", "huey_consumer", (
        "peer_huey.huey", "--workers", str(slots), "--worker-type", "thread", "--logfile", "/dev/null", "--quiet"))


def dramatiq() -> Peer:
    """One ``dramatiq`` worker process with threads."""
    return Peer("dramatiq", f"dramatiq 2.2, {SLOTS} threads", "dramatiq", (
        "peer_dramatiq", "--processes", "1", "--threads", str(SLOTS)))

