"""A Redis Cluster for the tests and the benches: ``primaries`` real ``redis-server``
processes started with ``--cluster-enabled yes`` on free loopback ports
(:mod:`.redis_server` starts each), joined by ``redis-cli --cluster create`` with no
replicas - the slots split in equal ranges. ``redis-cli`` wants three primaries at
least; one or two are joined the way it does it, by hand (``CLUSTER ADDSLOTSRANGE``,
``CLUSTER MEET``). :func:`start_cluster` returns once every node says
``cluster_state:ok`` and knows every other, so clients see the whole cluster at once.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import redis
from redis.crc import REDIS_CLUSTER_HASH_SLOTS

from .needs import require
from .redis_server import RedisServer, start_redis
from .servers import wait_until

#: Seconds a new cluster gets to agree on its slots; a few hundred milliseconds usually.
FORM_TIMEOUT = 30.0


@dataclass
class RedisClusterProcesses:
    """The nodes of one cluster, each a :class:`RedisServer` (all primaries)."""

    nodes: list[RedisServer]

    @property
    def url(self) -> str:
        return "redis+cluster://" + ",".join(f"127.0.0.1:{node.port}" for node in self.nodes)

    def url_with(self, query: str) -> str:
        return f"{self.url}/?{query}"

    def client(self) -> redis.RedisCluster:
        """A plain cluster client for inspecting what the code under test stored."""
        return redis.RedisCluster(host="127.0.0.1", port=self.nodes[0].port, decode_responses=True)

    def keys_per_node(self, pattern: str = "*") -> dict[int, int]:
        """How many keys matching ``pattern`` each node holds, by port."""
        counts: dict[int, int] = {}
        for node in self.nodes:
            with node.client() as client:
                counts[node.port] = sum(1 for _ in client.scan_iter(pattern, count=1000))
        return counts

    def flushall(self) -> None:
        for node in self.nodes:
            with node.client() as client:
                client.flushall()

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()

    def start(self) -> "RedisClusterProcesses":
        """Start the nodes again (each keeps its ``nodes.conf``, so the cluster re-forms
        as it was) and wait until it serves every slot."""
        for node in self.nodes:
            node.start()
        _wait_formed(self.nodes)
        return self

    def restart(self) -> "RedisClusterProcesses":
        self.stop()
        return self.start()


def start_cluster(directory: Path, primaries: int = 3, appendonly: bool = False) -> RedisClusterProcesses:
    """Start ``primaries`` nodes under ``directory`` and join them into one cluster."""
    nodes: list[RedisServer] = []
    try:
        for index in range(primaries):
            nodes.append(start_redis(directory / f"node{index}", cluster=True, appendonly=appendonly))
        if primaries >= 3:
            _create_with_redis_cli(nodes)
        else:
            _create_by_hand(nodes)
        _wait_formed(nodes)
    except BaseException:
        for node in nodes:
            node.stop()
        raise
    return RedisClusterProcesses(nodes)


def _create_with_redis_cli(nodes: list[RedisServer]) -> None:
    binary = shutil.which("redis-cli")
    require(binary is not None, "redis-cli is not installed (apt-get install redis-tools)")
    assert binary is not None
    command = [binary, "--cluster", "create", *(f"127.0.0.1:{node.port}" for node in nodes),
               "--cluster-replicas", "0", "--cluster-yes"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=FORM_TIMEOUT)
    if done.returncode != 0:
        raise AssertionError(f"redis-cli --cluster create failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")


def _create_by_hand(nodes: list[RedisServer]) -> None:
    width = REDIS_CLUSTER_HASH_SLOTS // len(nodes)
    for index, node in enumerate(nodes):
        first = index * width
        last = REDIS_CLUSTER_HASH_SLOTS - 1 if index == len(nodes) - 1 else first + width - 1
        with node.client() as client:
            client.execute_command("CLUSTER", "ADDSLOTSRANGE", first, last)
            for other in nodes:
                if other is not node:
                    client.execute_command("CLUSTER", "MEET", "127.0.0.1", other.port, other.cluster_port)


def _wait_formed(nodes: list[RedisServer]) -> None:
    wait_until(lambda: all(_formed(node, len(nodes)) for node in nodes), timeout=FORM_TIMEOUT,
               what=f"a cluster of {len(nodes)} primaries to agree (cluster_state:ok on every node)")


def _formed(node: RedisServer, primaries: int) -> bool:
    with node.client() as client:
        info = client.execute_command("CLUSTER", "INFO")
        text = info if isinstance(info, str) else str(info)
        fields = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
        return (fields.get("cluster_state") == "ok" and fields.get("cluster_known_nodes") == str(primaries)
                and fields.get("cluster_slots_assigned") == str(REDIS_CLUSTER_HASH_SLOTS))
