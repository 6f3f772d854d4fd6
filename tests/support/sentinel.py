"""Redis Sentinel for the tests: a primary, its replicas and three sentinels, each a real
``redis-server`` process (sentinels run as ``redis-server sentinel.conf --sentinel``, the
same program as Debian's ``redis-sentinel``) on free loopback ports.

:func:`start_sentinel_group` returns once every sentinel sees the primary, its replicas
and the other sentinels - the moment a failover can happen - so a test that kills the
primary afterwards sees a failover, not a group still forming.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import redis

from .redis_server import RedisServer, redis_server_binary, start_redis
from .processes import stop_process
from .servers import free_port, wait_until

#: The name the sentinels know the primary by.
SERVICE = "ladon"

#: Milliseconds without an answer after which a sentinel takes the primary for down.
#: Short, so a test's failover takes seconds; production runs use 5000-30000.
DOWN_AFTER_MS = 1000

#: Milliseconds a failover may take before the sentinels start another; also how long
#: a failed election waits (twice this) before the next.
FAILOVER_TIMEOUT_MS = 5000


@dataclass
class SentinelProcess:
    """One sentinel: its own directory (it rewrites its configuration file) and port."""

    binary: str
    directory: Path
    port: int
    primary_port: int
    quorum: int
    process: subprocess.Popen | None = field(default=None, repr=False)

    @property
    def config_path(self) -> Path:
        return self.directory / "sentinel.conf"

    @property
    def log_path(self) -> Path:
        return self.directory / "sentinel.log"

    def client(self) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, decode_responses=True, socket_timeout=2)

    def start(self) -> "SentinelProcess":
        self.directory.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(
            f"port {self.port}\n"
            "bind 127.0.0.1\n"
            "daemonize no\n"
            f"dir {self.directory}\n"
            f"logfile {self.log_path}\n"
            f"sentinel monitor {SERVICE} 127.0.0.1 {self.primary_port} {self.quorum}\n"
            f"sentinel down-after-milliseconds {SERVICE} {DOWN_AFTER_MS}\n"
            f"sentinel failover-timeout {SERVICE} {FAILOVER_TIMEOUT_MS}\n"
            f"sentinel parallel-syncs {SERVICE} 1\n"
        )
        self.process = subprocess.Popen(
            [self.binary, str(self.config_path), "--sentinel"],
            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, start_new_session=True,
        )
        return self

    def primary(self) -> dict | None:
        """What this sentinel says of the primary, or ``None`` while it does not answer."""
        probe = self.client()
        try:
            return probe.sentinel_master(SERVICE)
        except redis.RedisError:
            return None
        finally:
            probe.close()

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is not None:
            stop_process(process)


@dataclass
class SentinelGroup:
    """A primary, its replicas and the sentinels watching them."""

    primary: RedisServer
    replicas: list[RedisServer]
    sentinels: list[SentinelProcess]

    @property
    def url(self) -> str:
        """The ``redis+sentinel://`` URL users give ladon-tasks for this group."""
        hosts = ",".join(f"127.0.0.1:{sentinel.port}" for sentinel in self.sentinels)
        return f"redis+sentinel://{hosts}/{SERVICE}/0"

    @property
    def servers(self) -> list[RedisServer]:
        return [self.primary, *self.replicas]

    def primary_port(self) -> int | None:
        """The primary's port as the first sentinel that answers says it."""
        for sentinel in self.sentinels:
            state = sentinel.primary()
            if state is not None:
                return int(state["port"])
        return None

    def ready(self) -> bool:
        """Every sentinel sees the primary up, every replica, and the other sentinels."""
        for sentinel in self.sentinels:
            state = sentinel.primary()
            if state is None or state.get("is_sdown") or state.get("is_odown"):
                return False
            if int(state["port"]) != self.primary.port:
                return False
            if int(state.get("num-slaves", 0)) < len(self.replicas):
                return False
            if int(state.get("num-other-sentinels", 0)) < len(self.sentinels) - 1:
                return False
        return True

    def replicas_in_sync(self) -> bool:
        """Every replica has what the primary wrote so far."""
        probe = self.primary.client()
        try:
            info = probe.info("replication")
        finally:
            probe.close()
        offset = int(info.get("master_repl_offset", 0))
        replicas = [value for key, value in info.items() if key.startswith("slave") and isinstance(value, dict)]
        return len(replicas) == len(self.replicas) and all(
            value.get("state") == "online" and int(value.get("offset", -1)) >= offset for value in replicas
        )

    def server_on(self, port: int) -> RedisServer:
        return next(server for server in self.servers if server.port == port)

    def stop(self) -> None:
        for sentinel in self.sentinels:
            sentinel.stop()
        for server in self.servers:
            server.stop()


def start_sentinel_group(directory: Path, replicas: int = 1, sentinels: int = 3) -> SentinelGroup:
    """A primary, ``replicas`` replicas and ``sentinels`` sentinels (quorum: a majority),
    returned once a failover can happen."""
    primary = start_redis(directory / "primary")
    group = SentinelGroup(primary, [], [])
    try:
        for n in range(replicas):
            group.replicas.append(start_redis(directory / f"replica-{n}", replica_of=primary.port))
        wait_until(group.replicas_in_sync, timeout=30, what="the replicas to sync with the primary")
        quorum = sentinels // 2 + 1
        binary = redis_server_binary()
        for n in range(sentinels):
            group.sentinels.append(
                SentinelProcess(binary, directory / f"sentinel-{n}", free_port(), primary.port, quorum).start()
            )
        # sentinels learn of replicas from the primary's INFO and of each other from
        # hello messages every 2 s
        wait_until(
            group.ready, timeout=60, interval=0.1, what="the sentinels to see the primary, replicas and each other"
        )
    except BaseException:
        group.stop()
        raise
    return group
