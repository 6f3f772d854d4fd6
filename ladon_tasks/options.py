"""The options of a task method (``tasktype=dict(...)``), checked at decoration time.

A wrong option is a programming error in the service, so it fails the import with a
``ValueError`` or ``TypeError`` naming the option - never a surprise at request time.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

from ladon_tasks import defaults

EXECUTORS = ("thread", "process", "queue")


@dataclass(frozen=True)
class TaskOptions:
    """How a task method runs. Every field has a default from :mod:`ladon_tasks.defaults`."""

    enable: bool = True  # Ladon's own key: ``tasktype=dict(enable=False)`` is a plain method
    executor: str = defaults.EXECUTOR
    timeout: float | None = defaults.TIMEOUT
    retries: int = defaults.RETRIES
    retry_delay: float = defaults.RETRY_DELAY
    result_ttl: float = defaults.RESULT_TTL
    priority: int = defaults.PRIORITY
    tags: tuple[str, ...] = field(default_factory=tuple)
    queue: str = defaults.QUEUE  # with executor='queue': which workers take the jobs
    idempotent: bool = False  # same arguments while a task is retained -> that same task
    listing: bool = False  # expose m_list: any client may then see every task of m
    redis: str | None = None  # this method's tasks live in this Redis (URL), not the app's store

    def __post_init__(self) -> None:
        for flag in ("enable", "idempotent", "listing"):
            if not isinstance(getattr(self, flag), bool):
                raise TypeError(f"tasktype option {flag!r} must be True or False, got {getattr(self, flag)!r}")
        if self.executor not in EXECUTORS:
            raise ValueError(
                f"tasktype option 'executor' must be one of {', '.join(EXECUTORS)}, got {self.executor!r}"
            )
        if self.timeout is not None:
            _positive_number("timeout", self.timeout)
        if not isinstance(self.retries, int) or isinstance(self.retries, bool) or self.retries < 0:
            raise ValueError(f"tasktype option 'retries' must be a whole number >= 0, got {self.retries!r}")
        _number("retry_delay", self.retry_delay, minimum=0.0)
        _positive_number("result_ttl", self.result_ttl)
        if not isinstance(self.priority, int) or isinstance(self.priority, bool) or not 0 <= self.priority <= 255:
            raise ValueError(f"tasktype option 'priority' must be a whole number 0..255, got {self.priority!r}")
        if not isinstance(self.queue, str) or not self.queue or not self.queue.replace("-", "").replace("_", "").isalnum():
            raise ValueError(f"tasktype option 'queue' must be a name of letters, digits, - and _, got {self.queue!r}")
        if self.redis is not None and not (
            isinstance(self.redis, str)
            and self.redis.startswith(("redis://", "rediss://", "unix://", "redis+sentinel://", "redis+cluster://"))
        ):
            raise ValueError("tasktype option 'redis' must be a redis://, rediss://, unix://, redis+sentinel:// or "
                             "redis+cluster:// URL, "
                             f"got {self.redis!r}")
        if isinstance(self.tags, str) or not all(isinstance(tag, str) for tag in self.tags):
            raise TypeError(f"tasktype option 'tags' must be a list of strings, got {self.tags!r}")

    @property
    def max_attempts(self) -> int:
        return self.retries + 1

    @classmethod
    def parse(cls, tasktype: Any) -> "TaskOptions":
        """``True`` or a dict of options, as given to ``@ladonize(..., tasktype=...)``."""
        if tasktype is True:
            return cls()
        if not isinstance(tasktype, dict):
            raise TypeError(f"tasktype must be True or a dict of options, got {tasktype!r}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(tasktype) - known - {"redis_server", "memcache_server"})
        if unknown:
            raise ValueError(
                f"unknown tasktype option(s) {', '.join(map(repr, unknown))}; "
                f"known options: {', '.join(sorted(known))}"
            )
        values = dict(tasktype)
        # Ladon 1.0.7's own keys, so its Redis services move over unchanged.
        if "redis_server" in values:
            values.setdefault("redis", f"redis://{values.pop('redis_server')}:6379/0")
        if "memcache_server" in values:
            raise ValueError("tasktype option 'memcache_server' (Ladon's memcache mode) is not supported; "
                             "use redis='redis://host:6379/0'")
        if "tags" in values and not isinstance(values["tags"], str):
            values["tags"] = tuple(values["tags"])
        return cls(**values)


def _number(name: str, value: Any, minimum: float) -> None:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"tasktype option {name!r} must be a number >= {minimum:g}, got {value!r}")


def _positive_number(name: str, value: Any) -> None:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or value <= 0:
        raise ValueError(f"tasktype option {name!r} must be a number > 0, got {value!r}")
