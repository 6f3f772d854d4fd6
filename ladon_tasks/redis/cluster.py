"""Redis Cluster: the ``redis+cluster://`` URL, the client, and how a deployment's keys
are cut into shards.

::

    redis+cluster://[user:password@]host1:6379,host2:6379,host3:6379[/][?shards=16]

The hosts are where the client starts: any few nodes of the cluster (it learns the
others, and which node serves which slot, from them). A host without a port means 6379;
an IPv6 host is written ``[::1]:6379``. A cluster has one database, so the URL names none.

**Shards.** A Lua script may touch keys of one hash slot only, and every step of
ladon-tasks is one script. So a deployment on a cluster is ``shards`` copies of the one
key layout (:mod:`ladon_tasks.redis.keys`), each under a prefix that carries a hash tag
- ``ladon-tasks:{<tag>}:`` - so every key of one shard is in one slot, and every script
runs unchanged inside its shard. The tags are chosen (:func:`shard_tags`) so that shard
``k``'s slot lies in the middle of the ``k``-th of ``shards`` equal ranges of the 16384
slots: a cluster whose primaries hold equal ranges of slots (what ``redis-cli --cluster
create`` and ``rebalance`` make) gets an equal share of shards on each primary. The tags
depend only on ``shards``, so every process finds the same keys.

**Where a task lives.** A task's shard comes from its id (:func:`shard_of`), so a read,
a write, a wait or a cancel goes to one node with no lookup. A task started with an
idempotency key must live where that key does: its id is drawn until it lands on the
key's shard (:func:`id_on_shard`), which costs microseconds, and the create stays one
script.
"""

from __future__ import annotations

import functools
import secrets
import urllib.parse
import zlib
from dataclasses import dataclass
from typing import Any

from redis.cluster import ClusterNode, RedisCluster
from redis.crc import REDIS_CLUSTER_HASH_SLOTS, key_slot

from ladon_tasks import defaults
from ladon_tasks.model import TASK_ID_BYTES
from ladon_tasks.redis.keys import idempotency_text
from ladon_tasks.redis.replies import as_text
from ladon_tasks.redis.urls import HostListURL, describe_hosts, naming

#: The scheme of a cluster URL.
SCHEME = "redis+cluster"

FORM = f"{SCHEME}://[user:password@]host:port,host:port[?shards=N]"

#: Most shards a URL may ask for: every listing, count and idle worker asks each one.
MAX_SHARDS = 256


def is_cluster_url(url: str) -> bool:
    return url.lower().startswith(SCHEME + "://")


@dataclass(frozen=True)
class ClusterURL:
    """A parsed ``redis+cluster://`` URL."""

    nodes: tuple[tuple[str, int], ...]
    username: str | None = None
    password: str | None = None
    shards: int = defaults.CLUSTER_SHARDS

    @classmethod
    def parse(cls, url: str) -> "ClusterURL":
        """The URL's parts; ``ValueError`` naming what is wrong, never the password."""
        with naming(url):
            return cls._parse(url)

    @classmethod
    def _parse(cls, url: str) -> "ClusterURL":
        if not is_cluster_url(url):
            raise ValueError(f"not a Redis Cluster URL; expected {FORM}")
        parsed = HostListURL.parse(url, SCHEME, defaults.CLUSTER_PORT, "cluster node", FORM)
        if parsed.path.strip("/"):
            raise ValueError(f"a Redis Cluster has one database: its URL names none; expected {FORM}")
        query = parsed.query
        shards = defaults.CLUSTER_SHARDS
        for name, value in urllib.parse.parse_qsl(query, keep_blank_values=True):
            if name != "shards":
                raise ValueError(f"a Redis Cluster URL takes shards=N; not {name[:40]!r}")
            if not (value.isascii() and value.isdigit()) or not 1 <= int(value) <= MAX_SHARDS:
                raise ValueError(f"shards is a number from 1 to {MAX_SHARDS}, not {value[:20]!r}")
            shards = int(value)
        return cls(nodes=parsed.hosts, username=parsed.username, password=parsed.password, shards=shards)

    def describe(self) -> str:
        """Where Redis is, for messages - never the password."""
        return f"cluster via {describe_hosts(self.nodes)} ({self.shards} shards)"

    def connect(self, **connection_kwargs: Any) -> RedisCluster:
        """A cluster client: ``connection_kwargs`` (timeouts, decoding, protocol) apply to
        every node's connections. It asks the nodes for the slot map at once, so a URL
        whose nodes do not answer, or are no cluster, fails here."""
        options = {key: value for key, value in connection_kwargs.items() if key != "retry"}
        return StreamAwareCluster(
            startup_nodes=[ClusterNode(host, port) for host, port in self.nodes],
            username=self.username, password=self.password, **options,
        )


class StreamAwareCluster(RedisCluster):
    """redis-py's cluster client, finding the keys of ``XREAD`` and ``XREADGROUP`` itself.
    redis-py asks the server for the keys of a command whose keys move (``COMMAND
    GETKEYS``) before every such call: a round trip more for every read of a job
    stream. Their keys are the first half of what follows ``STREAMS``."""

    def _get_command_keys(self, *args: Any) -> Any:
        name = as_text(args[0]).upper() if args else ""
        if name in ("XREAD", "XREADGROUP"):
            words = [as_text(arg).upper() if isinstance(arg, (str, bytes)) else "" for arg in args]
            if "STREAMS" in words:
                rest = args[words.index("STREAMS") + 1:]
                if rest and len(rest) % 2 == 0:
                    return list(rest[: len(rest) // 2])
        return super()._get_command_keys(*args)


def describe_cluster_client(client: Any) -> str | None:
    """Where a cluster client goes, for messages; ``None`` for any other client."""
    if not isinstance(client, RedisCluster):
        return None
    nodes = ",".join(f"{node.host}:{node.port}" for node in client.get_primaries())
    return f"cluster of primaries {nodes}"


@functools.lru_cache(maxsize=None)
def shard_tags(shards: int) -> tuple[str, ...]:
    """The hash tag of each shard: shard ``k``'s slot lies within 8 slots of the middle
    of the ``k``-th of ``shards`` equal ranges of the slot space (found by trying tags
    ``k.0``, ``k.1``... in turn: the same answer in every process)."""
    tags: list[str] = []
    width = REDIS_CLUSTER_HASH_SLOTS / shards
    for k in range(shards):
        middle = int((k + 0.5) * width)
        best, best_distance = f"{k}.0", REDIS_CLUSTER_HASH_SLOTS
        for j in range(100_000):
            tag = f"{k}.{j}"
            distance = abs(key_slot(tag.encode()) - middle)
            if distance < best_distance:
                best, best_distance = tag, distance
                if distance <= 8:
                    break
        tags.append(best)
    return tuple(tags)


def shard_prefixes(prefix: str, shards: int) -> list[str]:
    """The key prefix of every shard of deployment ``prefix``: ``<prefix>{<tag>}:``."""
    if "{" in prefix or "}" in prefix:
        raise ValueError("a prefix on Redis Cluster must not hold braces: the shards' hash tags go there")
    return [f"{prefix}{{{tag}}}:" for tag in shard_tags(shards)]


def shard_of(task_id: str, shards: int) -> int:
    """The shard a task lives on, from its id alone."""
    return zlib.crc32(task_id.encode("utf-8", "surrogatepass")) % shards


def id_on_shard(shard: int, shards: int) -> str:
    """A fresh task id (as :func:`ladon_tasks.model.new_task_id` makes them) that lives
    on ``shard``: about ``shards`` draws."""
    while True:
        task_id = secrets.token_hex(TASK_ID_BYTES)
        if shard_of(task_id, shards) == shard:
            return task_id


def idempotency_shard(service: str, method: str, key: str, shards: int, principal: str = "") -> int:
    """The shard of an idempotency key: where its task, and the key, live."""
    return zlib.crc32(idempotency_text(service, method, key, principal).encode("utf-8", "surrogatepass")) % shards
