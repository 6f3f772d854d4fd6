"""Redis behind Sentinel: the ``redis+sentinel://`` URL, and a client that follows the
primary wherever Sentinel says it is.

The URL names the sentinels, the service (the name the sentinels monitor the primary
by) and the database::

    redis+sentinel://[user:password@]host1:26379,host2:26379,host3:26379/SERVICE[/DB]
        [?sentinel_username=U&sentinel_password=P&wait_replicas=1&wait_timeout=0.25]

* ``user:password@`` are the primary's (and its replicas') credentials, as in a
  ``redis://`` URL; sentinels that require their own give them as ``sentinel_username``
  and ``sentinel_password``;
* a host without a port means Sentinel's own, 26379; an IPv6 host is written ``[::1]``;
* ``wait_replicas`` and ``wait_timeout`` say how many replicas a start waits for, and
  how long at most (:mod:`ladon_tasks.redis.replication`); ``wait_replicas=0`` turns
  the wait off.

The client is redis-py's, with two changes. Every new connection asks the sentinels
where the primary is - all of them, the newest configuration winning
(:class:`NewestSentinel`) - and a connection that meets a demoted primary
(``READONLY``) is dropped, so the next command finds the new one. That alone follows a
primary that died (its connections break), but not one that lives on after Sentinel
promoted another - a manual ``SENTINEL FAILOVER``, a primary cut off from the
sentinels: its connections keep working, and everything written through them is lost
when Sentinel demotes it, seconds later. So the pool also listens to the sentinels'
``+switch-master`` announcements (:class:`PrimaryWatch`) and, on a switch, drops its
idle connections at once and the others as they come back to it. What may still be
written to the old primary in the moment before is what
:mod:`ladon_tasks.redis.replication` deals with (:func:`primary_in_doubt`).

Nothing else in ladon-tasks knows whether it talks to Sentinel or to one server.
"""

from __future__ import annotations

import logging
import threading
import urllib.parse
import weakref
from dataclasses import dataclass
from typing import Any

import redis
from redis.sentinel import MasterNotFoundError, Sentinel, SentinelConnectionPool

from ladon_tasks import defaults
from ladon_tasks.redis.urls import HostListURL, describe_hosts, naming

log = logging.getLogger(__name__)

#: The channel on which every sentinel announces a new primary:
#: ``<service> <old ip> <old port> <new ip> <new port>``.
SWITCH_CHANNEL = "+switch-master"

#: Socket timeouts with the sentinels, in seconds (at most; the primary's may be longer):
#: a sentinel answers from memory, and every sentinel is asked when a connection is made,
#: so one that hangs must not hold a connection up for long.
SENTINEL_TIMEOUT = 1.0

#: Longest pause, in seconds, between two tries to reach a sentinel to listen to.
WATCH_BACKOFF_MAX = 2.0

#: The scheme of a Sentinel URL.
SCHEME = "redis+sentinel"

#: Query parameters a Sentinel URL may carry.
QUERY_OPTIONS = ("sentinel_username", "sentinel_password", "wait_replicas", "wait_timeout")

#: Longest start wait a URL may ask for, in seconds: well below the socket timeout, so a
#: wait that runs out is an answer, not a dead connection.
WAIT_TIMEOUT_MAX = 2.0

FORM = f"{SCHEME}://[user:password@]host:port,host:port/SERVICE/DB"


def is_sentinel_url(url: str) -> bool:
    return url.lower().startswith(SCHEME + "://")


@dataclass(frozen=True)
class SentinelURL:
    """A parsed ``redis+sentinel://`` URL."""

    sentinels: tuple[tuple[str, int], ...]
    service: str
    db: int = 0
    username: str | None = None
    password: str | None = None
    sentinel_username: str | None = None
    sentinel_password: str | None = None
    wait_replicas: int = defaults.START_WAIT_REPLICAS
    wait_timeout: float = defaults.START_WAIT_TIMEOUT

    @classmethod
    def parse(cls, url: str) -> "SentinelURL":
        """The URL's parts; ``ValueError`` naming what is wrong, never the password."""
        with naming(url):
            return cls._parse(url)

    @classmethod
    def _parse(cls, url: str) -> "SentinelURL":
        if not is_sentinel_url(url):
            raise ValueError(f"not a Sentinel URL; expected {FORM}")
        parsed = HostListURL.parse(url, SCHEME, defaults.SENTINEL_PORT, "sentinel", FORM)
        path, query, sentinels = parsed.path, parsed.query, parsed.hosts
        username, password = parsed.username, parsed.password
        parts = [urllib.parse.unquote(part) for part in path.split("/")]
        if parts and parts[-1] == "":
            parts.pop()  # a trailing slash
        if not parts or not parts[0] or len(parts) > 2:
            raise ValueError(f"a Sentinel URL names the service the sentinels monitor, then the database: {FORM}")
        db_text = parts[1] if len(parts) == 2 else "0"
        if not (db_text.isascii() and db_text.isdigit()):
            raise ValueError(f"the database of a Sentinel URL is a number, not {db_text[:20]!r}")
        options = _query_options(query)
        return cls(
            sentinels=sentinels, service=parts[0], db=int(db_text), username=username, password=password,
            **options,
        )

    def describe(self) -> str:
        """Where Redis is, for messages: sentinels, service and database - never a password."""
        return f"sentinel service {self.service!r} via {describe_hosts(self.sentinels)} db {self.db}"

    def connect(self, **connection_kwargs: Any) -> redis.Redis:
        """A client of the primary: ``connection_kwargs`` apply to the primary's
        connections (timeouts, decoding, retry); the sentinels get the same timeouts and
        their own credentials."""
        sentinel_kwargs: dict[str, Any] = {
            key: value for key, value in connection_kwargs.items() if key.startswith("socket_")
        }
        for key in ("socket_timeout", "socket_connect_timeout"):
            sentinel_kwargs[key] = min(sentinel_kwargs.get(key) or SENTINEL_TIMEOUT, SENTINEL_TIMEOUT)
        if self.sentinel_username:
            sentinel_kwargs["username"] = self.sentinel_username
        if self.sentinel_password:
            sentinel_kwargs["password"] = self.sentinel_password
        sentinel = NewestSentinel(list(self.sentinels), sentinel_kwargs=sentinel_kwargs)
        credentials: dict[str, Any] = {
            key: value for key, value in (("username", self.username), ("password", self.password)) if value
        }
        return sentinel.master_for(self.service, connection_pool_class=FollowingPool, db=self.db,
                                   **credentials, **connection_kwargs)


class NewestSentinel(Sentinel):
    """redis-py's Sentinel client, but a primary is looked up from every sentinel that
    answers, and the newest configuration (highest ``config-epoch``) wins. Right after a
    failover only the sentinel that led it names the new primary; the others name the
    old one for a second or two, until its announcement reaches them. Taking the first
    answer, as redis-py does, could send a new connection back to a primary that lives
    on and is about to be demoted - and everything written there would be lost."""

    def discover_master(self, service_name: str) -> tuple[str, int]:
        newest: tuple[int, tuple[str, int]] | None = None
        problems = []
        for sentinel in self.sentinels:
            try:
                state: Any = sentinel.sentinel_master(service_name)
            except (redis.ConnectionError, redis.TimeoutError, redis.ResponseError) as exc:
                problems.append(f"{sentinel}: {exc!r}")
                continue
            if not isinstance(state, dict) or not self.check_master_state(state, service_name):
                continue
            epoch = int(state.get("config-epoch", 0))
            if newest is None or epoch > newest[0]:
                newest = (epoch, (state["ip"], int(state["port"])))
        if newest is None:
            raise MasterNotFoundError(f"No master found for {service_name!r}" +
                                      (f" : {', '.join(problems)}" if problems else ""))
        return newest[1]


class FollowingPool(SentinelConnectionPool):
    """redis-py's Sentinel pool, plus a :class:`PrimaryWatch` while the pool is in use
    (from its first connection until it is disconnected as a whole)."""

    def __init__(self, service_name: str, sentinel_manager: Sentinel, **kwargs: Any) -> None:
        super().__init__(service_name, sentinel_manager, **kwargs)
        self.watch = PrimaryWatch(self)

    def get_connection(self, *args: Any, **kwargs: Any) -> Any:
        self.watch.ensure_running()
        return super().get_connection(*args, **kwargs)

    def disconnect(self, inuse_connections: bool = True) -> None:
        if inuse_connections:  # the pool is closed (a switch only drops idle connections)
            self.watch.stop()
        super().disconnect(inuse_connections)


class PrimaryWatch:
    """One thread listening to a sentinel (the next one when it goes away) for
    ``+switch-master``; on a switch of this pool's service, the pool asks the sentinels
    where the primary is, which drops connections to the old one. Asked once more after
    each (re)subscription, for a switch no one heard."""

    def __init__(self, pool: SentinelConnectionPool) -> None:
        self._pool = weakref.ref(pool)  # the watch must not keep a dropped pool alive
        self.service = pool.service_name
        self._sentinels = pool.sentinel_manager
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def ensure_running(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            return
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._stopping.clear()
                self._thread = threading.Thread(target=self._run, name="ladon-tasks-sentinel-watch", daemon=True)
                self._thread.start()

    def stop(self) -> None:
        self._stopping.set()

    def follow(self) -> None:
        """Ask the sentinels where the primary is now (the pool drops connections to an
        old one)."""
        pool = self._pool()
        if pool is None:
            return
        before = pool.master_address
        try:
            now = pool.get_master_address()
        except redis.ConnectionError as exc:  # no sentinel names a primary (yet)
            log.debug("sentinel service %r: %s", self.service, exc)
            return
        if before is not None and now != before:
            log.warning("sentinel service %r: the primary moved from %s:%s to %s:%s", self.service, *before, *now)

    def _run(self) -> None:
        backoff = 0.1
        while not self._stopping.is_set() and self._pool() is not None:
            for sentinel in list(self._sentinels.sentinels):
                if self._stopping.is_set() or self._pool() is None:
                    return
                if self._listen(sentinel):
                    backoff = 0.1
            self._stopping.wait(backoff)
            backoff = min(backoff * 2, WATCH_BACKOFF_MAX)

    def _listen(self, sentinel: redis.Redis) -> bool:
        """Listen to one sentinel until it goes away, or the watch ends; ``True`` if it
        could be subscribed to."""
        pubsub = sentinel.pubsub(ignore_subscribe_messages=True)
        subscribed = False
        try:
            pubsub.subscribe(SWITCH_CHANNEL)
            subscribed = True
            self.follow()
            while not self._stopping.is_set() and self._pool() is not None:
                message = pubsub.get_message(timeout=1.0)
                if message is None:
                    continue
                data = message.get("data")
                text = data.decode(errors="replace") if isinstance(data, bytes) else str(data)
                if text.split(" ", 1)[0] == self.service:
                    self.follow()
        except (redis.RedisError, OSError, ValueError) as exc:
            log.debug("sentinel %s: listening for %s interrupted: %s", sentinel, SWITCH_CHANNEL, exc)
        finally:
            try:
                pubsub.close()
            except Exception:  # closing what already broke
                pass
        return subscribed


def known_primary(client: redis.Redis) -> tuple[str, int] | None:
    """The primary ``client``'s pool connects to now (Sentinel), or ``None`` (one server,
    or not connected yet). A connection taken from the pool after this is asked goes
    there - or, if the pool learns of a new primary meanwhile, to the new one."""
    pool = client.connection_pool
    return pool.master_address if isinstance(pool, SentinelConnectionPool) else None


def primary_in_doubt(client: redis.Redis, written_to: tuple[str, int] | None) -> bool:
    """Whether a write its replicas did not acknowledge may be lost with the primary it
    went to (``written_to``: :func:`known_primary` before the write): one of the
    sentinels names another primary, or takes that one for down, or is failing it over
    right now (a replica may be promoted already); or no sentinel answers. Every sentinel
    is asked: the one that led a failover knows of the new primary before the others.
    ``False`` for a client of one server."""
    pool = client.connection_pool
    if not isinstance(pool, SentinelConnectionPool):
        return False
    answered = False
    for sentinel in pool.sentinel_manager.sentinels:
        try:
            state = sentinel.sentinel_master(pool.service_name)
        except (redis.RedisError, OSError):
            continue
        answered = True
        named = (state.get("ip"), int(state.get("port", 0)))
        if named != written_to or "failover_in_progress" in str(state.get("flags", "")) \
                or not pool.sentinel_manager.check_master_state(state, pool.service_name):
            return True
    return not answered


def describe_sentinel_client(client: redis.Redis) -> str | None:
    """The description of a client made by :meth:`SentinelURL.connect`, or ``None`` for
    any other client."""
    pool = client.connection_pool
    if not isinstance(pool, SentinelConnectionPool):
        return None
    hosts = ",".join(
        "{host}:{port}".format(**node.connection_pool.connection_kwargs) for node in pool.sentinel_manager.sentinels
    )
    return f"sentinel service {pool.service_name!r} via {hosts} db {pool.connection_kwargs.get('db', 0)}"


def _query_options(query: str) -> dict[str, Any]:
    options: dict[str, Any] = {}
    for name, value in urllib.parse.parse_qsl(query, keep_blank_values=True, strict_parsing=False):
        if name not in QUERY_OPTIONS:
            raise ValueError(f"a Sentinel URL takes {', '.join(QUERY_OPTIONS)}; not {name[:40]!r}")
        if name == "wait_replicas":
            if not (value.isascii() and value.isdigit()) or int(value) > 100:
                raise ValueError(f"wait_replicas is a number of replicas from 0 to 100, not {value[:20]!r}")
            options[name] = int(value)
        elif name == "wait_timeout":
            try:
                seconds = float(value)
            except ValueError:
                seconds = -1.0
            if not 0 < seconds <= WAIT_TIMEOUT_MAX:
                raise ValueError(f"wait_timeout is in seconds, above 0 and at most {WAIT_TIMEOUT_MAX:g}, "
                                 f"not {value[:20]!r}")
            options[name] = seconds
        else:
            options[name] = value or None
    return options
