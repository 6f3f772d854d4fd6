"""Start real servers for the tests: ``ladon-tasks serve`` in a child process on a free
loopback port, stopped (by pid) when the test is done."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SERVICES = ROOT / "services"
FIXTURE_SERVICES = ROOT / "tests" / "service_fixtures"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(predicate, timeout: float = 10.0, interval: float = 0.02, what: str = "condition"):
    """Poll ``predicate`` until it returns a truthy value or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def process_alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie, killed but not yet reaped, counts as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    status = Path(f"/proc/{pid}/status")
    return not (status.exists() and "State:\tZ" in status.read_text())


def terminate(process: subprocess.Popen | None) -> None:
    """SIGTERM by pid, then SIGKILL if it has not exited within 10 s."""
    if process is None or process.poll() is not None:
        return
    os.kill(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.kill(process.pid, signal.SIGKILL)
        process.wait()


def kill_sessions(servers: list["RunningServer"]) -> None:
    """SIGKILL every server still running, with everything in its session."""
    for server in servers:
        if server.process.poll() is None:
            os.killpg(server.process.pid, signal.SIGKILL)
            server.process.wait()


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
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def launch(command: list[str], port: int, log_path: Path, answers, what: str,
           env: dict | None = None, timeout: float = 30) -> RunningServer:
    """Start a server process in its own session and return once ``answers(server)``
    is true; a process that exits first fails with its log."""
    process = subprocess.Popen(
        command,
        stdout=open(log_path, "wb"),
        stderr=subprocess.STDOUT,
        cwd=str(ROOT),
        env={**os.environ, **(env or {})},
        start_new_session=True,
    )
    server = RunningServer(process, port, log_path)

    def ready() -> bool:
        if process.poll() is not None:
            raise AssertionError(f"{what} exited with {process.returncode}:\n{server.log()}")
        return answers(server)

    wait_until(ready, timeout=timeout, what=f"the {what} to answer")
    return server


def start_server(services: list[str], log_dir: Path, *extra: str, env: dict | None = None) -> RunningServer:
    port = free_port()
    command = [sys.executable, "-m", "ladon_tasks", "serve", *services, "--port", str(port), *extra]

    def answers(server: RunningServer) -> bool:
        try:
            with urllib.request.urlopen(server.url + "/", timeout=1) as response:
                return response.status == 200
        except OSError:
            return False

    return launch(command, port, log_dir / f"server-{port}.log", answers, "server", env)
