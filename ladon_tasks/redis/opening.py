"""Which store a Redis URL opens: a :class:`~ladon_tasks.redis.sharded.ShardedRedisStore`
for a ``redis+cluster://`` URL (many shards), else a
:class:`~ladon_tasks.redis.store.RedisStore` (one server, with Sentinel or not). Every
place that takes a Redis URL - the deployment settings, a task method's ``redis=``, the
command line - opens it here, so a new kind of URL is taught to one function."""

from __future__ import annotations

from typing import Any, Mapping

from ladon_tasks.redis.cluster import is_cluster_url
from ladon_tasks.redis.connection import url_from_environment
from ladon_tasks.redis.sharded import ShardedRedisStore
from ladon_tasks.redis.store import RedisStore
from ladon_tasks.stores.base import TaskStore


def open_store(url: str, **options: Any) -> TaskStore:
    """The store for any Redis URL; ``options``: those of :class:`RedisStore` and
    :class:`ShardedRedisStore` (prefix, timeouts, bounds)."""
    if is_cluster_url(url):
        return ShardedRedisStore(url, **options)
    return RedisStore(url, **options)


def store_from_environment(environ: Mapping[str, str] | None = None, **options: Any) -> TaskStore:
    """:func:`open_store` of ``LADON_TASKS_REDIS_URL``, or of ``REDIS_HOST`` and the other
    variables :func:`~ladon_tasks.redis.connection.url_from_environment` reads."""
    return open_store(url_from_environment(environ), **options)
