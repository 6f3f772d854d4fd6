"""A Redis Cluster for the tests and the benches: ``primaries`` real ``redis-server``
processes (and their replicas, if asked for) started with ``--cluster-enabled yes`` on free loopback ports
(:mod:`.redis_server` starts each), joined by ``redis-cli --cluster create`` - the slots
split in equal ranges. ``redis-cli`` wants three primaries at least; one or two are
joined the way it does it, by hand (``CLUSTER ADDSLOTSRANGE``, ``CLUSTER MEET``).

With ``replicas``, each primary gets that many replicas (``--cluster-replicas``), so the
cluster's own failover can be tested: kill a primary (:meth:`RedisClusterProcesses.kill`)
and the others promote its replica once ``node_timeout_ms`` has passed
(:meth:`RedisClusterProcesses.wait_promoted`).

:func:`start_cluster` returns once every node says ``cluster_state:ok``, knows every
other and sees every replica attached, so clients see the whole cluster at once and a
primary killed afterwards is failed over, not found missing from a cluster still forming.
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
    """The nodes of one cluster, each a :class:`RedisServer`: ``primary_count`` of them
    were made primaries, the others their replicas (roles change with a failover: ask
    :meth:`primaries`)."""

    nodes: list[RedisServer]
    #: How many primaries the cluster was made with (the others were their replicas).
    primary_count: int

    @property
    def url(self) -> str:
        return "redis+cluster://" + ",".join(f"127.0.0.1:{node.port}" for node in self.nodes)

    def url_with(self, query: str) -> str:
        return f"{self.url}/?{query}"

    def client(self) -> redis.RedisCluster:
        """A plain cluster client for inspecting what the code under test stored."""
        return redis.RedisCluster(host="127.0.0.1", port=self.nodes[0].port, decode_responses=True)

    def primaries(self) -> list[RedisServer]:
        """The running nodes that are primaries now."""
        return [node for node in self.nodes if node.process is not None and _role(node) == "master"]

    def node_of_key(self, key: str) -> RedisServer:
        """The node that serves ``key``'s slot now, as the first running primary sees it."""
        with self.primaries()[0].client() as client:
            slot = int(client.execute_command("CLUSTER", "KEYSLOT", key))
            table = _text(client.execute_command("CLUSTER", "NODES"))
        for line in table.splitlines():
            parts = line.split()
            for span in parts[8:]:
                first, _, last = span.partition("-")
                if first.isdigit() and int(first) <= slot <= int(last or first):
                    port = int(parts[1].split("@")[0].rpartition(":")[2])
                    return next(node for node in self.nodes if node.port == port)
        raise AssertionError(f"no node serves {key!r} (slot {slot})")

    def replica_of(self, primary: RedisServer) -> RedisServer:
        """A running replica of ``primary``."""
        with primary.client() as client:
            own_id = client.execute_command("CLUSTER", "MYID")
        for node in self.nodes:
            if node is not primary and node.process is not None and _primary_id(node) == own_id:
                return node
        raise AssertionError(f"the primary on port {primary.port} has no replica")

    def kill(self, node: RedisServer) -> None:
        """SIGKILL one node, as its host dying would."""
        node.kill()

    def wait_promoted(self, replica: RedisServer, timeout: float) -> None:
        """Wait until ``replica`` is a primary and every running node says
        ``cluster_state:ok`` again: the cluster has failed over."""
        wait_until(lambda: _role(replica) == "master" and all(
            _cluster_info(node).get("cluster_state") == "ok" for node in self.nodes if node.process is not None),
            timeout=timeout, interval=0.05, what=f"the cluster to promote the replica on port {replica.port}")

    def keys_per_node(self, pattern: str = "*") -> dict[int, int]:
        """How many keys matching ``pattern`` each primary holds, by port."""
        counts: dict[int, int] = {}
        for node in self.primaries():
            with node.client() as client:
                counts[node.port] = sum(1 for _ in client.scan_iter(pattern, count=1000))
        return counts

    def flushall(self) -> None:
        for node in self.primaries():
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
        _wait_formed(self.nodes, self.primary_count)
        return self

    def restart(self) -> "RedisClusterProcesses":
        self.stop()
        return self.start()


def start_cluster(directory: Path, primaries: int = 3, appendonly: bool = False, replicas: int = 0,
                  node_timeout_ms: int = 5000) -> RedisClusterProcesses:
    """Start ``primaries`` nodes and ``replicas`` replicas of each under ``directory`` and
    join them into one cluster; a node that does not answer for ``node_timeout_ms`` is
    taken for down (and its replica promoted)."""
    if replicas and primaries < 3:
        raise ValueError("replicas need a cluster of three primaries at least (redis-cli makes it)")
    nodes: list[RedisServer] = []
    try:
        for index in range(primaries * (1 + replicas)):
            nodes.append(start_redis(directory / f"node{index}", cluster=True, appendonly=appendonly,
                                     cluster_node_timeout=node_timeout_ms))
        if primaries >= 3:
            _create_with_redis_cli(nodes, replicas)
        else:
            _create_by_hand(nodes)
        _wait_formed(nodes, primaries)
    except BaseException:
        for node in nodes:
            node.stop()
        raise
    return RedisClusterProcesses(nodes, primaries)


def _create_with_redis_cli(nodes: list[RedisServer], replicas: int) -> None:
    binary = shutil.which("redis-cli")
    require(binary is not None, "redis-cli is not installed (apt-get install redis-tools)")
    assert binary is not None
    command = [binary, "--cluster", "create", *(f"127.0.0.1:{node.port}" for node in nodes),
               "--cluster-replicas", str(replicas), "--cluster-yes"]
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


def _wait_formed(nodes: list[RedisServer], primaries: int) -> None:
    wait_until(lambda: all(_formed(node, len(nodes), primaries) for node in nodes), timeout=FORM_TIMEOUT,
               what=f"a cluster of {primaries} primaries and {len(nodes) - primaries} replicas to agree "
                    "(cluster_state:ok on every node, every replica attached)")


def _formed(node: RedisServer, known: int, primaries: int) -> bool:
    """Whether ``node`` serves every slot, knows every node, sees every replica as one
    (the primaries vote in a failover only for a replica they know) and, a replica
    itself, has its link to its primary up."""
    fields = _cluster_info(node)
    if (fields.get("cluster_state") != "ok" or fields.get("cluster_known_nodes") != str(known)
            or fields.get("cluster_slots_assigned") != str(REDIS_CLUSTER_HASH_SLOTS)
            or fields.get("cluster_size") != str(primaries)):
        return False
    with node.client() as client:
        text = _text(client.execute_command("CLUSTER", "NODES"))
        flags = [line.split()[2].split(",") for line in text.splitlines() if line.strip()]
        if sum("slave" in flag for flag in flags) != known - primaries or any(
                "fail" in flag or "fail?" in flag or "handshake" in flag for flag in flags):
            return False
        role = client.execute_command("ROLE")
    return role[0] == "master" or role[3] == "connected"


def _cluster_info(node: RedisServer) -> dict[str, str]:
    try:
        with node.client() as client:
            info = client.execute_command("CLUSTER", "INFO")
    except redis.RedisError:
        return {}
    return dict(line.split(":", 1) for line in _text(info).splitlines() if ":" in line)


def _text(reply: object) -> str:
    return reply if isinstance(reply, str) else str(reply)


def _role(node: RedisServer) -> str | None:
    """``master`` or ``slave``, or ``None`` while the node does not answer."""
    try:
        with node.client() as client:
            return str(client.execute_command("ROLE")[0])
    except redis.RedisError:
        return None


def _primary_id(node: RedisServer) -> str | None:
    """The node id of the primary that ``node`` replicates, or ``None`` for a primary."""
    with node.client() as client:
        text = _text(client.execute_command("CLUSTER", "NODES"))
    for line in text.splitlines():
        parts = line.split()
        if len(parts) > 3 and "myself" in parts[2].split(","):
            return parts[3] if "slave" in parts[2].split(",") else None
    return None
