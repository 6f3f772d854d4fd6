"""Pieces the bench scripts share: JSON-WSP clients, client threads, child processes.

Kept apart so every bench measures its servers with the same client: a difference in
client cost between two benches would read as a difference between the servers.
"""

from __future__ import annotations

import http.client
import json
import os
import platform
import selectors
import signal
import socket
import subprocess
import threading
import time
from typing import Any, Callable

#: Longest any single request may take before the bench gives up on a server.
REQUEST_TIMEOUT = 60.0
#: Longest a client waits for one task to finish before calling the run broken.
TASK_DEADLINE = 30.0
#: Longest a server may take to start answering.
STARTUP_DEADLINE = 30.0

#: The service of the core bench; other benches name theirs.
DEFAULT_SERVICE = "BenchService"


class Fault(Exception):
    """A JSON-WSP fault answer."""


class Client:
    """One keep-alive connection making JSON-WSP calls to one service."""

    def __init__(self, port: int, service: str = DEFAULT_SERVICE) -> None:
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=REQUEST_TIMEOUT)
        self.path = f"/{service}/jsonwsp"
        self.headers = {"Content-Type": "application/json; charset=utf-8"}

    def call(self, method: str, **args: Any) -> Any:
        body = json.dumps({"methodname": method, "args": args}).encode()
        self.connection.request("POST", self.path, body, self.headers)
        response = self.connection.getresponse()
        answer = json.loads(response.read())
        if answer.get("type") == "jsonwsp/fault":
            raise Fault(answer["fault"].get("string", "fault"))
        return answer["result"]

    def close(self) -> None:
        self.connection.close()


def run_together(handles: list[Any], work: Callable[[Any], None], timeout: float) -> float:
    """Run ``work(handle)`` in one thread per handle, released together by a barrier;
    wall seconds from the release. A failure in any thread fails the run, and so does a
    thread still busy after ``timeout`` seconds."""
    barrier = threading.Barrier(len(handles) + 1)
    errors: list[BaseException] = []

    def body(handle: Any) -> None:
        barrier.wait()
        try:
            work(handle)
        except BaseException as exc:  # reported below, from the main thread
            errors.append(exc)

    threads = [threading.Thread(target=body, args=(handle,), daemon=True) for handle in handles]
    for thread in threads:
        thread.start()
    barrier.wait()
    started = time.perf_counter()
    for thread in threads:
        thread.join(max(0.0, started + timeout - time.perf_counter()))
    elapsed = time.perf_counter() - started
    if errors:
        raise errors[0]
    if any(thread.is_alive() for thread in threads):
        raise RuntimeError(f"threads did not finish within {timeout:.0f}s")
    return elapsed


def in_threads(port: int, count: int, work: Callable[[Client], None], service: str = DEFAULT_SERVICE) -> float:
    """Run ``work`` in ``count`` threads, each with its own connection; wall seconds.

    Connections are opened before the clock starts, so the time covers requests only.
    """
    clients = [Client(port, service) for _ in range(count)]
    for client in clients:
        client.connection.connect()
    try:
        return run_together(clients, work, REQUEST_TIMEOUT + TASK_DEADLINE)
    finally:
        for client in clients:
            client.close()


def read_port(process: subprocess.Popen) -> int:
    """A bench child prints ``PORT n`` once it is bound; wait for it with a deadline."""
    assert process.stdout is not None
    deadline = time.monotonic() + STARTUP_DEADLINE
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        while time.monotonic() < deadline:
            if selector.select(timeout=0.1):
                line = process.stdout.readline().decode().strip()
                if line.startswith("PORT "):
                    return int(line.split()[1])
                if not line and process.poll() is not None:
                    break
            elif process.poll() is not None:
                break
    raise RuntimeError(f"bench server did not report its port (exit code {process.poll()})")


def stop_process(process: subprocess.Popen, signum: int = signal.SIGTERM) -> None:
    """Stop one child by its pid - never by name - and SIGKILL it if it lingers."""
    if process.poll() is None:
        process.send_signal(signum)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    if process.stdout is not None:
        process.stdout.close()


def stop_process_group(process: subprocess.Popen, signum: int = signal.SIGTERM) -> None:
    """Stop a child started with ``start_new_session`` and everything it started (workers
    fork or spawn children of their own), by its process-group id."""
    if process.poll() is None:
        try:
            os.killpg(process.pid, signum)
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        except ProcessLookupError:
            pass
    try:  # children left behind after the leader exited
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    if process.stdout is not None:
        process.stdout.close()


def free_port() -> int:
    """A loopback port nobody listens on right now (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def environment() -> dict[str, Any]:
    """What the figures depend on besides the code: interpreter, libraries, cores."""
    from importlib.metadata import version

    return {
        "python": platform.python_version(),
        "ladon": version("ladon"),
        "werkzeug": version("werkzeug"),
        "cpus": os.cpu_count(),
        "machine": platform.machine(),
    }
