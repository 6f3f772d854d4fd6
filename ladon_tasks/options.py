"""The options of a task method (``tasktype=dict(...)``), checked at decoration time.

A wrong option is a programming error in the service, so it fails the import with a
``ValueError`` or ``TypeError`` naming the option - never a surprise at request time.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, Callable

from ladon_tasks import defaults
from ladon_tasks.policy import exception_name
from ladon_tasks.schedules import Schedule

EXECUTORS = ("thread", "process", "queue")
#: The periods a ``rate`` may be given per, in seconds.
RATE_PERIODS = {"s": 1.0, "m": 60.0, "h": 3600.0}
ON_LIMIT = ("wait", "refuse")


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
    # expose m_list: each caller's own tasks (to callers without a principal, the tasks
    # started without one); None: when this process's principals are configured, and
    # then for callers with a principal only (principals.py)
    listing: bool | None = None
    redis: str | None = None  # this method's tasks live in this Redis (URL), not the app's store
    # the retry policy (ladon_tasks.policy): exception classes or their qualified names
    retry_on: tuple[str, ...] = ()  # only these failures are retried (empty: every one)
    no_retry_on: tuple[str, ...] = ()  # these failures are never retried
    retry_jitter: float = defaults.RETRY_JITTER  # each backoff less up to this fraction of it, at random
    retry_max_delay: float = defaults.RETRY_DELAY_MAX  # the longest wait before a retry
    soft_timeout: float | None = None  # seconds after which the body gets SoftTimeout
    # child recycling (executor='process' or 'queue'): the child that ran a task is replaced
    # once it has run this many tasks, or holds more than this many MiB resident
    max_tasks_per_child: int | None = defaults.MAX_TASKS_PER_CHILD
    max_memory_per_child: float | None = defaults.MAX_MEMORY_PER_CHILD
    delay: float = 0.0  # seconds every start waits unless its client asks for another time
    # a periodic task (ladon_tasks.schedules): every= or cron= (with tz=), run with args=
    every: Any = None
    cron: str | None = None
    tz: str | None = None
    args: Any = None
    missed: str = "last"  # ticks missed while nothing ran: the last one runs once, or none
    overlap: str = "skip"  # a tick while the previous run runs: skip it, queue it, or run anyway
    schedule: Schedule | None = field(init=False, default=None, compare=False)
    # completion hooks (ladon_tasks.hooks): called with a copy of the record of the task that ended
    on_success: Callable[[Any], Any] | None = None
    on_failure: Callable[[Any], Any] | None = None
    on_cancel: Callable[[Any], Any] | None = None
    # one task per key (ladon_tasks.executors.slots): at most `concurrency` tasks run at once
    # per value of the argument named `concurrency_key`, across every process sharing the store;
    # a start beyond it waits queued ('wait') or is refused with ConcurrencyLimit ('refuse')
    concurrency_key: str | None = None
    concurrency: int = 1
    on_limit: str = "wait"
    # a rate limit ('10/s', '30/m', '100/h'): tasks of the method begin at most that often,
    # across every process sharing the store; a begin over it waits queued
    rate: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "schedule", Schedule.parse(self.every, self.cron, self.tz, self.args,
                                                            self.missed, self.overlap))
        for policy in ("retry_on", "no_retry_on"):
            object.__setattr__(self, policy, _exception_names(policy, getattr(self, policy)))
        both = sorted(set(self.retry_on) & set(self.no_retry_on))
        if both:
            raise ValueError(f"tasktype options 'retry_on' and 'no_retry_on' both name {', '.join(both)}")
        _number("retry_jitter", self.retry_jitter, minimum=0.0)
        if self.retry_jitter > 1:
            raise ValueError(f"tasktype option 'retry_jitter' must be a fraction 0..1, got {self.retry_jitter!r}")
        _positive_number("retry_max_delay", self.retry_max_delay)
        for hook in ("on_success", "on_failure", "on_cancel"):
            if getattr(self, hook) is not None and not callable(getattr(self, hook)):
                raise TypeError(f"tasktype option {hook!r} must be a function taking the task's record, "
                                f"got {getattr(self, hook)!r}")
        _number("delay", self.delay, minimum=0.0)
        if self.concurrency_key is not None and not (
            isinstance(self.concurrency_key, str) and self.concurrency_key.isidentifier()
        ):
            raise ValueError("tasktype option 'concurrency_key' must name one of the method's arguments, "
                             f"got {self.concurrency_key!r}")
        if not isinstance(self.concurrency, int) or isinstance(self.concurrency, bool) or self.concurrency < 1:
            raise ValueError(f"tasktype option 'concurrency' must be a whole number >= 1, got {self.concurrency!r}")
        if self.on_limit not in ON_LIMIT:
            raise ValueError(f"tasktype option 'on_limit' must be one of {', '.join(ON_LIMIT)}, got {self.on_limit!r}")
        if self.rate is not None:
            rate_interval(self.rate)
        if self.delay > defaults.DELAY_HORIZON:
            raise ValueError(f"tasktype option 'delay' ({self.delay:g} s) is past the horizon of "
                             f"{defaults.DELAY_HORIZON:g} s a start may be delayed")
        if self.soft_timeout is not None:
            _positive_number("soft_timeout", self.soft_timeout)
            if self.timeout is not None and self.soft_timeout >= self.timeout:
                raise ValueError(f"tasktype option 'soft_timeout' ({self.soft_timeout:g}) must be less than "
                                 f"'timeout' ({self.timeout:g}): the body needs time to act on it")
        if self.max_tasks_per_child is not None and (
            not isinstance(self.max_tasks_per_child, int) or isinstance(self.max_tasks_per_child, bool)
            or self.max_tasks_per_child < 1
        ):
            raise ValueError("tasktype option 'max_tasks_per_child' must be a whole number >= 1, "
                             f"got {self.max_tasks_per_child!r}")
        if self.max_memory_per_child is not None:
            _positive_number("max_memory_per_child", self.max_memory_per_child)
        for bound in ("max_tasks_per_child", "max_memory_per_child"):
            if getattr(self, bound) is not None and self.executor == "thread":
                raise ValueError(f"tasktype option {bound!r} bounds a child process: it needs executor='process' "
                                 "or 'queue' (a thread's body runs in the server's own process)")
        if self.listing is not None and not isinstance(self.listing, bool):
            raise TypeError(f"tasktype option 'listing' must be True or False, got {self.listing!r}")
        for flag in ("enable", "idempotent"):
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
        if (
            not isinstance(self.queue, str)
            or not self.queue
            or not self.queue.replace("-", "").replace("_", "").isalnum()
        ):
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
    def rate_interval(self) -> float:
        """Seconds between two begins at the method's rate (0.0: no rate)."""
        return 0.0 if self.rate is None else rate_interval(self.rate)

    @property
    def max_attempts(self) -> int:
        return self.retries + 1

    def in_force(self) -> dict[str, Any]:
        """The limits and policies a task of this method runs under, as JSON for the
        people who look after it (``inspect``, the dashboard): ``None`` or ``[]`` where
        nothing is set, hooks by their qualified names (a function cannot travel)."""
        return {
            "executor": self.executor,
            "queue": self.queue if self.executor == "queue" else None,
            "timeout": self.timeout,
            "soft_timeout": self.soft_timeout,
            "retries": self.retries,
            "retry_delay": self.retry_delay,
            "retry_max_delay": self.retry_max_delay,
            "retry_jitter": self.retry_jitter,
            "retry_on": list(self.retry_on),
            "no_retry_on": list(self.no_retry_on),
            "on_success": _function_name(self.on_success),
            "on_failure": _function_name(self.on_failure),
            "on_cancel": _function_name(self.on_cancel),
            "max_tasks_per_child": self.max_tasks_per_child,
            "max_memory_per_child": self.max_memory_per_child,
            "result_ttl": self.result_ttl,
            "concurrency": None if self.concurrency_key is None else {
                "key": self.concurrency_key, "limit": self.concurrency, "on_limit": self.on_limit,
            },
            "rate": self.rate,
            "delay": self.delay or None,
            "schedule": None if self.schedule is None else {
                "every": self.schedule.every, "cron": self.cron, "tz": self.schedule.tz,
                "missed": self.schedule.missed, "overlap": self.schedule.overlap,
            },
        }

    @classmethod
    def parse(cls, tasktype: Any) -> "TaskOptions":
        """``True`` or a dict of options, as given to ``@ladonize(..., tasktype=...)``."""
        if tasktype is True:
            return cls()
        if not isinstance(tasktype, dict):
            raise TypeError(f"tasktype must be True or a dict of options, got {tasktype!r}")
        known = {f.name for f in fields(cls) if f.init}
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


def rate_interval(rate: Any) -> float:
    """The seconds between two begins of a ``rate`` like ``'10/s'``, ``'30/m'`` or
    ``'2.5/h'`` (a number > 0 per second, minute or hour); ``ValueError`` otherwise."""
    count, _, period = rate.partition("/") if isinstance(rate, str) else ("", "", "")
    try:
        number = float(count) if count.strip() == count and count else 0.0
    except ValueError:
        number = 0.0
    if not number > 0 or number == float("inf") or period not in RATE_PERIODS:
        raise ValueError("tasktype option 'rate' must be a number > 0 per second, minute or hour, like "
                         f"'10/s', '30/m' or '100/h', got {rate!r}")
    return RATE_PERIODS[period] / number


def _function_name(function: Callable[..., Any] | None) -> str | None:
    if function is None:
        return None
    name = getattr(function, "__qualname__", None) or getattr(function, "__name__", None) or type(function).__name__
    module = getattr(function, "__module__", None)
    return f"{module}.{name}" if module else name


def _exception_names(option: str, value: Any) -> tuple[str, ...]:
    """An exception class, a qualified name (``'module.Class'``, or a builtin's bare
    ``'ValueError'``), or a list of them, as the names a worker anywhere can match."""
    items = [value] if isinstance(value, (str, type)) else value
    try:
        items = list(items)
    except TypeError:
        raise TypeError(f"tasktype option {option!r} must be exception classes or their qualified names, "
                        f"got {value!r}") from None
    names = []
    for item in items:
        if isinstance(item, type):
            if not issubclass(item, Exception):
                raise TypeError(f"tasktype option {option!r}: {item!r} is not an Exception class")
            names.append(exception_name(item))
        elif isinstance(item, str) and item and all(part.isidentifier() for part in item.split(".")):
            names.append(item)
        else:
            raise ValueError(f"tasktype option {option!r}: {item!r} is neither an exception class nor a "
                             "qualified name like 'package.module.Error'")
    return tuple(names)


def _number(name: str, value: Any, minimum: float) -> None:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"tasktype option {name!r} must be a number >= {minimum:g}, got {value!r}")


def _positive_number(name: str, value: Any) -> None:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or value <= 0:
        raise ValueError(f"tasktype option {name!r} must be a number > 0, got {value!r}")
