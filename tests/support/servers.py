"""Start real servers for the tests and the benches: ``ladon-tasks serve`` (or any server
command) in a child process on a free loopback port, stopped by pid when done."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from .processes import spawn, stop_process, stop_process_group

ROOT = Path(__file__).resolve().parents[2]
SERVICES = ROOT / "services"
FIXTURE_SERVICES = ROOT / "tests" / "service_fixtures"


def free_port() -> int:
    """A loopback port nobody listens on right now (the kernel picks it)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(predicate: Callable[[], Any], timeout: float = 10.0, interval: float = 0.02,
               what: str = "condition") -> Any:
    """Poll ``predicate`` until it returns a truthy value or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def kill_sessions(servers: list["RunningServer"]) -> None:
    """SIGKILL every server still running, with everything in its session."""
    for server in servers:
        stop_process_group(server.process, signal.SIGKILL)


@dataclass
class RunningServer:
    process: subprocess.Popen
    port: int
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        stop_process(self.process)


def launch(command: list[str], port: int, log_path: Path, answers: Callable[[RunningServer], bool], what: str,
           env: dict | None = None, timeout: float = 30) -> RunningServer:
    """Start a server process in its own session and return once ``answers(server)``
    is true; a process that exits first fails with its log, and one that does not answer
    in time is stopped before the failure is raised."""
    process = spawn(command, log_path, ROOT, env)
    server = RunningServer(process, port, log_path)

    def ready() -> bool:
        if process.poll() is not None:
            raise AssertionError(f"{what} exited with {process.returncode}:\n{server.log()}")
        return answers(server)

    try:
        wait_until(ready, timeout=timeout, what=f"the {what} to answer")
    except BaseException:
        stop_process_group(process)
        raise
    return server


def serves_catalogue(server: RunningServer) -> bool:
    """Whether ``server`` answers ``GET /`` (Ladon's service catalogue) with 200."""
    try:
        with urllib.request.urlopen(server.url + "/", timeout=1) as response:
            return response.status == 200
    except OSError:
        return False


def start_server(services: list[str], log_dir: Path, *extra: str, env: dict | None = None) -> RunningServer:
    """``ladon-tasks serve`` of ``services`` on a free port, once it answers; its log in ``log_dir``."""
    port = free_port()
    command = [sys.executable, "-m", "ladon_tasks", "serve", *services, "--port", str(port), *extra]
    return launch(command, port, log_dir / f"server-{port}.log", serves_catalogue, "server", env)
