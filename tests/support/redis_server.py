"""A real ``redis-server`` for the tests: started on a free loopback port in a temporary
directory, stopped by pid, restartable on the same port and directory (so a test can
take Redis away and bring it back, with its append-only file if it asked for one).

Without ``redis-server`` on the PATH the Redis tests are skipped - unless ``CI`` is set,
where a missing server is a broken build, not a reason to pass quietly.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import redis

from .servers import free_port, terminate, wait_until

#: Seconds a fresh redis-server gets to answer PING; it usually needs a few milliseconds.
START_TIMEOUT = 10.0


def redis_server_binary() -> str:
    """The ``redis-server`` to run; skips the test (fails it under CI) when there is none."""
    binary = shutil.which("redis-server")
    if binary is None:
        message = "redis-server is not installed (apt-get install redis-server)"
        if os.environ.get("CI"):
            pytest.fail(f"{message}; CI must run the Redis tests", pytrace=False)
        pytest.skip(message)
    return binary


@dataclass
class RedisServer:
    """One redis-server child process. ``start``/``stop``/``restart`` keep port and
    directory, so data persisted with ``appendonly`` survives a restart."""

    binary: str
    directory: Path
    port: int
    appendonly: bool = False
    password: str | None = None
    unix_socket: bool = False
    #: The port of the primary this server replicates (a replica), or ``None``.
    replica_of: int | None = None
    process: subprocess.Popen | None = field(default=None, repr=False)

    @property
    def socket_path(self) -> Path:
        return self.directory / "redis.sock"

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    @property
    def unix_url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"unix://{auth}{self.socket_path}?db=0"

    @property
    def log_path(self) -> Path:
        return self.directory / "redis.log"

    def client(self) -> redis.Redis:
        """A plain client for inspecting what the code under test stored."""
        return redis.Redis(host="127.0.0.1", port=self.port, password=self.password, decode_responses=True)

    def start(self) -> "RedisServer":
        command = [
            self.binary,
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--dir", str(self.directory),
            "--logfile", str(self.log_path),
            "--daemonize", "no",
            "--save", "",
            "--appendonly", "yes" if self.appendonly else "no",
        ]
        if self.password:
            command += ["--requirepass", self.password]
        if self.unix_socket:
            command += ["--unixsocket", str(self.socket_path), "--unixsocketperm", "700"]
        if self.replica_of is not None:
            command += ["--replicaof", "127.0.0.1", str(self.replica_of)]
            if self.password:
                command += ["--masterauth", self.password]
        # a replica's first sync starts at once, not after the default 5 s of waiting for
        # more replicas to join it
        command += ["--repl-diskless-sync-delay", "0"]
        self.process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, start_new_session=True
        )
        probe = self.client()
        try:
            wait_until(lambda: self._answers(probe), timeout=START_TIMEOUT, what=f"redis-server on port {self.port}")
        finally:
            probe.close()
        return self

    def _answers(self, probe: redis.Redis) -> bool:
        if self.process is not None and self.process.poll() is not None:
            log = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
            raise AssertionError(f"redis-server exited with {self.process.returncode}:\n{log}")
        try:
            return bool(probe.ping())
        except redis.RedisError:
            return False

    def stop(self) -> None:
        """SIGTERM by pid (Redis writes its append-only file and exits), SIGKILL if stuck."""
        process, self.process = self.process, None
        terminate(process)

    def kill(self) -> None:
        """SIGKILL by pid, as a host dying would: nothing is written on the way out."""
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            os.kill(process.pid, signal.SIGKILL)
            process.wait()

    def restart(self) -> "RedisServer":
        self.stop()
        return self.start()


def start_redis(
    directory: Path, *, appendonly: bool = False, password: str | None = None, unix_socket: bool = False,
    replica_of: int | None = None,
) -> RedisServer:
    """Start a redis-server in ``directory`` (created if needed) on a free loopback port;
    with ``replica_of``, a replica of the primary on that port."""
    directory.mkdir(parents=True, exist_ok=True)
    server = RedisServer(
        redis_server_binary(), directory, free_port(),
        appendonly=appendonly, password=password, unix_socket=unix_socket, replica_of=replica_of,
    )
    return server.start()
