"""``ladon-tasks worker`` processes for the tests and the benches, started as users start
them; the tests' options (a short lease, two slots) unless others are given."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from .processes import spawn, stop_process_group
from .servers import FIXTURE_SERVICES, ROOT, wait_until

PROBE = str(FIXTURE_SERVICES / "probe_service.py")

#: Lease of the tests' workers, in seconds: short, so a lost worker's job comes back soon.
LEASE = "1.5"


class Workers:
    """``ladon-tasks worker`` processes, each in its own session so a kill takes its
    children too (as a host dying would)."""

    def __init__(self, redis_url: str, log_dir: Path, services: list[str] | None = None,
                 options: tuple[str, ...] = ("--lease", LEASE, "--concurrency", "2")) -> None:
        self.redis_url = redis_url
        self.log_dir = log_dir
        self.services = services or [PROBE]
        self.options = options
        self.processes: list[subprocess.Popen] = []
        self.logs: dict[int, Path] = {}

    def start(self, *extra: str, env: dict[str, str] | None = None) -> subprocess.Popen:
        """Start a worker and return once it serves (its services imported, slots up)."""
        log_path = self.log_dir / f"worker-{len(self.processes)}-{time.time_ns()}.log"
        process = spawn(
            [sys.executable, "-m", "ladon_tasks", "worker", *self.services, "--redis", self.redis_url,
             *self.options, *extra],
            log_path, ROOT, env,
        )
        self.logs[process.pid] = log_path
        self.processes.append(process)
        wait_until(lambda: b"slot(s) on" in log_path.read_bytes() or process.poll() is not None,
                   timeout=30, what="the worker to start")
        assert process.poll() is None, log_path.read_text(errors="replace")
        return process

    def kill(self, process: subprocess.Popen, signum: int = signal.SIGKILL) -> None:
        """Kill the worker and everything in its session, as a host dying would."""
        os.killpg(process.pid, signum)
        process.wait(timeout=30)

    def log(self, process: subprocess.Popen) -> str:
        return self.logs[process.pid].read_text(errors="replace")

    def stop_all(self) -> None:
        for process in self.processes:
            stop_process_group(process, signal.SIGKILL)
