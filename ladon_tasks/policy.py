"""What a body may raise to steer its task, and how a failure is judged for a retry.

* :class:`Retry` - ``raise Retry(after=30)``: run the task again in 30 seconds. It counts
  against ``retries`` like any failed attempt.
* :class:`TaskTimeout` and :class:`SoftTimeout` - the exception a body gets once it has
  run past its ``soft_timeout``; it may catch it to clean up before the hard ``timeout``
  (a task that ends with it uncaught fails with ``SoftTimeout``, while the hard limit's
  failure says ``TaskTimeout``).
* ``retry_on`` / ``no_retry_on`` name exception classes by their qualified name
  (``module.Class``), so a worker on another host matches them without sharing Python
  objects with the web process: an exception matches a name when its class or one of
  its bases has that name (builtins also by their bare name, ``ValueError``).

All of this is pure: the executors call it where the body ran (:func:`judge`), and the
settling code computes the delay (:func:`retry_delay`).
"""

from __future__ import annotations

import random
from typing import Any, Iterable


class Retry(Exception):
    """Raised by a body to be run again ``after`` seconds (at most the method's
    ``retry_max_delay``), counted against ``retries``: once they are spent the task
    fails with ``Retry`` and the message given."""

    def __init__(self, after: float = 0.0, message: str = "") -> None:
        if not isinstance(after, (int, float)) or isinstance(after, bool) or not after >= 0:
            raise ValueError(f"Retry(after=...) takes a number of seconds >= 0, got {after!r}")
        super().__init__(message or f"retry asked for in {after:g}s")
        self.after = float(after)


class TaskTimeout(Exception):
    """A task ran past a time limit. Catch this to handle every timeout a body can see."""


class SoftTimeout(TaskTimeout):
    """Raised inside a body once it has run ``soft_timeout`` seconds: in a thread at its
    next ``update_progress``, ``set_message`` or ``step`` call, in a child process at
    once. Raised once per attempt; the hard ``timeout``, if any, still stops the body."""


for _public in (Retry, TaskTimeout, SoftTimeout):
    _public.__module__ = "ladon_tasks"  # the names users import and write in retry_on


def exception_name(kind: Any) -> str:
    """The qualified name ``retry_on`` and ``no_retry_on`` keep for an exception class."""
    return f"{kind.__module__}.{kind.__qualname__}"


def names_of(error: BaseException) -> frozenset[str]:
    """Every name ``error`` answers to: its class's and its bases' qualified names, and
    the bare names of builtin ones."""
    names = set()
    for kind in type(error).__mro__:
        names.add(exception_name(kind))
        if kind.__module__ == "builtins":
            names.add(kind.__qualname__)
    return frozenset(names)


def should_retry(error: BaseException, retry_on: Iterable[str], no_retry_on: Iterable[str]) -> bool:
    """Whether a failure with ``error`` may be retried: never when it matches
    ``no_retry_on``; else, when ``retry_on`` names anything, only when it matches it."""
    names = names_of(error)
    if names.intersection(no_retry_on):
        return False
    allowed = tuple(retry_on)
    return not allowed or bool(names.intersection(allowed))


def retry_delay(attempt: int, base: float, maximum: float, jitter: float = 0.0,
                asked: float | None = None) -> float:
    """Seconds before the attempt after ``attempt``: ``asked`` (a body's ``Retry(after)``)
    as given, else exponential backoff - ``base``, ``2*base``, ``4*base``... - less a
    random part of at most ``jitter`` of it (so many tasks failing together do not come
    back together); capped at ``maximum`` either way."""
    if asked is not None:
        return min(maximum, asked)
    delay = min(maximum, base * (2 ** max(0, attempt - 1)))
    return delay * (1.0 - jitter * random.random()) if jitter else delay
