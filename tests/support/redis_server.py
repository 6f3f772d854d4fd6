"""A real ``redis-server`` for the tests and the benches: started on a free loopback port
in a directory of its own, stopped by pid, restartable on the same port and directory
(so a test can take Redis away and bring it back, with its append-only file if it asked
for one). For the benches it also counts: commands run since a reset, and the bytes
the keys take.

Without ``redis-server`` on the PATH the Redis tests are skipped - unless ``CI`` is set,
where a missing server is a broken build, not a reason to pass quietly (:mod:`.needs`).
"""

from __future__ import annotations

import shutil
import signal
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import redis

from .needs import require
from .processes import stop_process
from .servers import free_port, wait_until

#: Seconds a fresh redis-server gets to answer PING; it usually needs a few milliseconds.
START_TIMEOUT = 10.0


def redis_server_binary() -> str:
    """The ``redis-server`` to run; skips the test (fails it under CI) when there is none."""
    binary = shutil.which("redis-server")
    require(binary is not None, "redis-server is not installed (apt-get install redis-server)")
    assert binary is not None
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
    #: The cluster bus port of a Redis Cluster node (:mod:`.redis_cluster` joins the
    #: nodes into one), or ``None``: a plain server. A free port of its own, as the
    #: default (port + 10000) may be above 65535.
    cluster_port: int | None = None
    #: A cluster node's ``cluster-node-timeout`` in milliseconds: how long a node may not
    #: answer before the others take it for down and promote its replica.
    cluster_node_timeout: int = 5000
    process: subprocess.Popen | None = field(default=None, repr=False)
    #: The connection the counters are read on, kept open so that opening it (``HELLO``,
    #: ``CLIENT SETINFO``) never falls between a reset and a reading.
    _counter: redis.Redis | None = field(default=None, repr=False)

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
        if self.cluster_port is not None:
            command += ["--cluster-enabled", "yes", "--cluster-config-file", str(self.directory / "nodes.conf"),
                        "--cluster-port", str(self.cluster_port),
                        "--cluster-node-timeout", str(self.cluster_node_timeout)]
        # a replica's first sync starts at once, not after the default 5 s of waiting for
        # more replicas to join it
        command += ["--repl-diskless-sync-delay", "0"]
        self.process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, start_new_session=True
        )
        probe = self.client()
        try:
            wait_until(lambda: self._answers(probe), timeout=START_TIMEOUT, what=f"redis-server on port {self.port}")
        except BaseException:
            self.stop()
            raise
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
        counter, self._counter = self._counter, None
        if counter is not None:
            counter.close()
        if process is not None:
            stop_process(process, signal.SIGTERM)

    def reset_stats(self) -> int:
        """Zero the command counters (``CONFIG RESETSTAT``); returns :meth:`dataset_bytes`
        at this moment, the start of what a bench then counts."""
        self.counter().config_resetstat()
        return self.dataset_bytes()

    def commands(self, leave_out: frozenset[str] = frozenset()) -> dict[str, int]:
        """Calls per command since the last reset (``INFO commandstats``, commands run
        inside Lua scripts included), less the names in ``leave_out``: a bench leaves
        out the commands it sends itself."""
        stats = self.counter().info("commandstats")
        calls = {name.removeprefix("cmdstat_"): int(value["calls"]) for name, value in stats.items()}
        return {name: count for name, count in calls.items() if name not in leave_out}

    def dataset_bytes(self) -> int:
        """``MEMORY STATS`` ``dataset.bytes``: ``used_memory`` less Redis' overhead (client
        buffers, script cache, replication), so connections and their buffers do not count
        as data."""
        return int(self.counter().memory_stats()["dataset.bytes"])

    def counter(self) -> redis.Redis:
        """The one connection a bench reads counters on (and sends its own commands on)."""
        if self._counter is None:
            self._counter = self.client()
        return self._counter

    def kill(self) -> None:
        """SIGKILL by pid, as a host dying would: nothing is written on the way out."""
        process, self.process = self.process, None
        counter, self._counter = self._counter, None
        if counter is not None:
            counter.close()
        if process is not None:
            stop_process(process, signal.SIGKILL)

    def restart(self) -> "RedisServer":
        self.stop()
        return self.start()


def start_redis(
    directory: Path, *, appendonly: bool = False, password: str | None = None, unix_socket: bool = False,
    replica_of: int | None = None, cluster: bool = False, cluster_node_timeout: int = 5000,
) -> RedisServer:
    """Start a redis-server in ``directory`` (created if needed) on a free loopback port;
    with ``replica_of``, a replica of the primary on that port; with ``cluster``, a node
    of a cluster yet to be made (taken for down after ``cluster_node_timeout`` ms without
    an answer)."""
    directory.mkdir(parents=True, exist_ok=True)
    server = RedisServer(
        redis_server_binary(), directory, free_port(),
        appendonly=appendonly, password=password, unix_socket=unix_socket, replica_of=replica_of,
        cluster_port=free_port() if cluster else None, cluster_node_timeout=cluster_node_timeout,
    )
    return server.start()
