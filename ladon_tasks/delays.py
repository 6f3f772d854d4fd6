"""Delayed starts: when a new task may begin.

A client asks for a later start with a time (``not_before``, seconds since the epoch)
or a delay (``start_in``, seconds from now) - through the ``m_at``/``m_later``
companions, or the ``Task-Not-Before``/``Task-Start-In`` request headers - and a task
method may declare a default (``tasktype=dict(delay=...)``) that applies when the client
asks for neither. A time that has passed starts at once; one further ahead than
``DELAY_HORIZON`` is refused with ``StartTooFar``.

Where the task waits until then is the executor's business: a timer of the owning
process for ``thread``/``process`` (its owner lease hands it over like any queued task
if the process dies), the queue's delayed set in Redis for ``queue``.
"""

from __future__ import annotations

import math
from typing import Any

from ladon_tasks import defaults, faults

#: The request headers of a delayed start, as WSGI names them (Ladon hands methods the
#: environ in ``kw``).
NOT_BEFORE_HEADER = "HTTP_TASK_NOT_BEFORE"
START_IN_HEADER = "HTTP_TASK_START_IN"


def _number(name: str, value: Any) -> float:
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            raise faults.InvalidArgument(f"{name} must be a number of seconds, got {value[:40]!r}") from None
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
        raise faults.InvalidArgument(f"{name} must be a finite number of seconds, got {value!r}")
    return float(value)


def requested(kw: dict[str, Any]) -> tuple[float | None, float | None]:
    """The ``not_before`` and ``start_in`` a request's headers ask for (``None``: not asked)."""
    not_before = kw.get(NOT_BEFORE_HEADER)
    start_in = kw.get(START_IN_HEADER)
    return (
        None if not not_before else _number("the Task-Not-Before header", not_before),
        None if not start_in else _number("the Task-Start-In header", start_in),
    )


def start_time(default_delay: float, now: float, not_before: Any = None, start_in: Any = None,
               horizon: float = defaults.DELAY_HORIZON) -> float:
    """When the task may start (seconds since the epoch), or 0.0 for at once: the time a
    client asked for, else ``now`` plus the method's default delay. Faults:
    ``InvalidArgument`` (not a number, both asked for), ``StartTooFar``."""
    if not_before is not None and start_in is not None:
        raise faults.InvalidArgument("ask for a start time (not_before) or a delay (start_in), not both")
    if not_before is not None:
        when = _number("not_before", not_before)
    elif start_in is not None:
        when = now + _number("start_in", start_in)
    else:
        when = now + default_delay
    if when - now > horizon:
        raise faults.StartTooFar(
            f"a start {when - now:.0f} s ahead is past the horizon of {horizon:.0f} s "
            "(not_before is seconds since the epoch, start_in seconds from now)"
        )
    return when if when > now else 0.0


_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def duration(text: Any) -> float:
    """Seconds from a number or a text like ``90``, ``90s``, ``15m``, ``2h``, ``1d``,
    ``1h30m``; ``ValueError`` naming the text otherwise."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        if not math.isfinite(text):
            raise ValueError(f"{text!r} is not a duration")
        return float(text)
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"{text!r} is not a duration: give seconds, or a text like 90s, 15m, 2h, 1d, 1h30m")
    rest, total = text.strip().lower(), 0.0
    try:
        return float(rest)
    except ValueError:
        pass
    number = ""
    for char in rest:
        if char.isdigit() or char == ".":
            number += char
        elif char in _UNITS and number:
            try:
                total += float(number) * _UNITS[char]
            except ValueError:
                break
            number = ""
        else:
            break
    else:
        if not number:
            return total
    raise ValueError(f"{text!r} is not a duration: give seconds, or a text like 90s, 15m, 2h, 1d, 1h30m")
