"""Connecting to Redis: from a URL, or from the environment variables deployments use.

One connection pool per store; every part of the backend (store, queues, notifier)
shares it. Replies are decoded to text and use RESP2, which the scripts' answers and
:func:`~ladon_tasks.redis.replies.as_text` expect.

A URL is ``redis://``, ``rediss://`` or ``unix://`` for one server, or
``redis+sentinel://`` for a primary that Redis Sentinel watches
(:mod:`ladon_tasks.redis.sentinel`): the client then asks the sentinels where the
primary is on every new connection, and follows it after a failover. A
``redis+cluster://`` URL (:mod:`ladon_tasks.redis.cluster`) gets a ``RedisCluster``
from :func:`connect_cluster`, with the same options.
"""

from __future__ import annotations

import contextlib
import os
import urllib.parse
from typing import Any, Callable, Iterator, Mapping

import redis
from redis.cluster import RedisCluster
from redis.exceptions import RedisClusterException
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

from ladon_tasks import defaults
from ladon_tasks.redis.cluster import ClusterURL, describe_cluster_client
from ladon_tasks.redis.sentinel import SentinelURL, describe_sentinel_client, is_sentinel_url
from ladon_tasks.redis.urls import masked_url, split_credentials
from ladon_tasks.stores.base import StoreError

#: What redis-py raises when Redis cannot do what it was asked: a cluster client also
#: raises ``RedisClusterException`` (no node reachable, keys of several slots), which is
#: no ``RedisError``.
REDIS_ERRORS: tuple[type[Exception], ...] = (redis.RedisError, RedisClusterException)

#: What :func:`as_store_errors` turns into a ``StoreError``: those, and a socket's own
#: error should one pass redis-py.
REDIS_OR_SOCKET_ERRORS: tuple[type[Exception], ...] = REDIS_ERRORS + (OSError,)



@contextlib.contextmanager
def as_store_errors(location: str, action: str, unreachable: Callable[[], None] = lambda: None) -> Iterator[None]:
    """redis-py's errors as the :class:`StoreError` of the store contract (Redis to store;
    :func:`ladon_tasks.refusals.as_faults` turns those into faults in turn), naming where
    Redis is and what failed; ``unreachable`` runs first when Redis (or every node of a
    cluster) could not be reached, which may have lost what it had."""
    try:
        yield
    except REDIS_OR_SOCKET_ERRORS as exc:
        if isinstance(exc, (redis.ConnectionError, RedisClusterException)):
            unreachable()
        raise StoreError(f"Redis at {location}: {action} failed: {type(exc).__name__}: {exc}") from exc


#: Where a store connects when given nothing else: a local server, database 0.
DEFAULT_URL = "redis://localhost:6379/0"


def connect(url: str, socket_timeout: float | None = None) -> redis.Redis:
    """A client with its own pool for ``url`` (``redis://``, ``rediss://``, ``unix://``,
    with user, password and database as redis-py reads them; or ``redis+sentinel://``)."""
    timeout = defaults.SOCKET_TIMEOUT if socket_timeout is None else socket_timeout
    options: dict[str, Any] = dict(
        decode_responses=True,
        protocol=2,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        # one quick retry: a pooled connection is dead after a Redis restart (or, with
        # Sentinel, after a failover: the retry asks the sentinels again)
        retry=Retry(ExponentialBackoff(cap=0.2, base=0.02), 1, (redis.ConnectionError,)),
    )
    if is_sentinel_url(url):
        return SentinelURL.parse(url).connect(**options)
    # redis-py gets the credentials apart: its parser would end the host at a "/" of
    # the password and name the rest in its error
    without, username, password = split_credentials(url)
    credentials = {key: value for key, value in (("username", username), ("password", password)) if value}
    try:
        pool = redis.ConnectionPool.from_url(without, **credentials, **options)
    except ValueError as exc:
        raise ValueError(f"not a Redis URL: {masked_url(url)} ({exc}); expected {URL_FORMS}") from None
    return redis.Redis(connection_pool=pool)


def connect_cluster(url: str, socket_timeout: float | None = None) -> RedisCluster:
    """A cluster client for a ``redis+cluster://`` URL, with the options of :func:`connect`
    (redis-py's cluster client retries a moved or broken connection itself)."""
    timeout = defaults.SOCKET_TIMEOUT if socket_timeout is None else socket_timeout
    return ClusterURL.parse(url).connect(
        decode_responses=True, protocol=2, socket_timeout=timeout, socket_connect_timeout=timeout,
    )


#: The URL forms :func:`connect` takes, for messages.
URL_FORMS = "redis://, rediss://, unix://, redis+sentinel:// or redis+cluster://"


def url_from_environment(environ: Mapping[str, str] | None = None) -> str:
    """``LADON_TASKS_REDIS_URL`` if set, else ``REDIS_HOST`` (localhost), ``REDIS_PORT``
    (6379), ``REDIS_USERNAME`` and ``REDIS_PASSWORD``, the names other Redis integrations
    use too."""
    env = os.environ if environ is None else environ
    url = env.get("LADON_TASKS_REDIS_URL", "").strip()
    if url:
        return url
    port_text = env.get("REDIS_PORT", "").strip() or "6379"
    try:
        port = int(port_text)
    except ValueError:
        raise ValueError(f"REDIS_PORT must be a port number, not {port_text!r}") from None
    return redis_url_from_parts(
        host=env.get("REDIS_HOST", "").strip() or "localhost",
        port=port,
        username=env.get("REDIS_USERNAME") or None,
        password=env.get("REDIS_PASSWORD") or None,
    )


def redis_url_from_parts(
    host: str = "localhost", port: int = 6379, username: str | None = None, password: str | None = None, db: int = 0
) -> str:
    """A ``redis://`` URL with credentials quoted, for settings that come in pieces."""
    auth = ""
    if username or password:
        auth = urllib.parse.quote(username or "", safe="")
        if password:
            auth += ":" + urllib.parse.quote(password, safe="")
        auth += "@"
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"  # IPv6 literal
    return f"redis://{auth}{host}:{int(port)}/{int(db)}"


def describe_location(client: redis.Redis | RedisCluster) -> str:
    """Where Redis is, for error messages - never the password."""
    if isinstance(client, RedisCluster):
        return describe_cluster_client(client) or "cluster"
    sentinel = describe_sentinel_client(client)
    if sentinel is not None:
        return sentinel
    kwargs = client.connection_pool.connection_kwargs
    if kwargs.get("path"):
        return f"unix:{kwargs['path']} db {kwargs.get('db', 0)}"
    return f"{kwargs.get('host', 'localhost')}:{kwargs.get('port', 6379)} db {kwargs.get('db', 0)}"
