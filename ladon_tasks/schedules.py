"""Periodic tasks, free of I/O: a schedule's ticks, and the checks made at decoration.

A task method declares one with ``tasktype=dict(every='15m')`` or
``tasktype=dict(cron='*/5 * * * *', tz='Europe/Brussels')``, and ``args=[...]`` for
its parameters. A *tick* is a moment the schedule is due, in seconds since the epoch:

* ``every``: the multiples of the period since the epoch - the same ticks in every
  process, whenever it started, with no state to agree on;
* ``cron``: the minutes whose wall-clock time in ``tz`` (UTC by default) matches the
  five fields ``minute hour day-of-month month day-of-week``. Each field is ``*``, a
  number, a range ``a-b``, a list ``a,b``, with an optional step ``/n``; months and days
  may be named (``jan``, ``mon``); day-of-week 0 and 7 are Sunday. When both day
  fields are restricted, a day matching either runs (as cron does). A wall-clock time
  that does not exist (spring forward) is skipped; one that happens twice (fall back)
  runs at its first occurrence.

Who runs a tick, and how often, is :mod:`ladon_tasks.scheduler`.
"""

from __future__ import annotations

import datetime
import math
from dataclasses import dataclass
from typing import Any, Iterator

from ladon_tasks.delays import duration

MISSED = ("last", "skip")
OVERLAP = ("skip", "queue", "run")

_MONTHS = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
_DAYS = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"]
#: (name, lowest, highest, names) of the five fields.
_FIELDS = (("minute", 0, 59, None), ("hour", 0, 23, None), ("day-of-month", 1, 31, None),
           ("month", 1, 12, _MONTHS), ("day-of-week", 0, 7, _DAYS))


class BadSchedule(ValueError):
    """A schedule that cannot run: an unparsable ``every`` or ``cron``, an unknown time
    zone, a policy that does not exist, or ``args`` that do not fill the method's
    parameters. Raised when the class is defined, naming what is wrong."""


@dataclass(frozen=True)
class Cron:
    """The five fields of a cron expression, each as the set of values it allows."""

    text: str
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # 0 = Sunday
    any_day: bool  # day-of-month is *
    any_weekday: bool  # day-of-week is *

    @classmethod
    def parse(cls, text: Any) -> "Cron":
        if not isinstance(text, str):
            raise BadSchedule(f"tasktype option 'cron' must be a text of five fields, got {text!r}")
        parts = text.split()
        if len(parts) != 5:
            raise BadSchedule(f"cron {text!r} has {len(parts)} field(s): give five, "
                              "minute hour day-of-month month day-of-week")
        values = [_field(part, *spec, text) for part, spec in zip(parts, _FIELDS, strict=True)]
        weekdays = frozenset(0 if day == 7 else day for day in values[4])
        return cls(text, values[0], values[1], values[2], values[3], weekdays,
                   parts[2] == "*", parts[4] == "*")

    def day_matches(self, day: datetime.date) -> bool:
        if day.month not in self.months:
            return False
        in_month, in_week = day.day in self.days, (day.isoweekday() % 7) in self.weekdays
        if self.any_day or self.any_weekday:
            return in_month and in_week
        return in_month or in_week


def _field(part: str, name: str, low: int, high: int, names: list[str] | None, text: str) -> frozenset[int]:
    def number(token: str) -> int:
        token = token.lower()
        if names is not None and token in names:
            return names.index(token) + (1 if names is _MONTHS else 0)
        if not token.isdigit():
            raise BadSchedule(f"cron {text!r}: {name} {token!r} is not a number")
        return int(token)

    allowed: set[int] = set()
    for item in part.split(","):
        span, _, step_text = item.partition("/")
        step = 1
        if step_text:
            if not step_text.isdigit() or int(step_text) == 0:
                raise BadSchedule(f"cron {text!r}: {name} step {step_text!r} is not a whole number > 0")
            step = int(step_text)
        if span == "*":
            first, last = low, high if name != "day-of-week" else 6
        elif "-" in span:
            a, _, b = span.partition("-")
            first, last = number(a), number(b)
        else:
            first = number(span)
            last = high if step_text else first
        if not (low <= first <= high and low <= last <= high) or first > last:
            raise BadSchedule(f"cron {text!r}: {name} {item!r} is outside {low}-{high}")
        allowed.update(range(first, last + 1, step))
    return frozenset(allowed)


def _zone(tz: Any) -> datetime.tzinfo:
    if tz is None:
        return datetime.timezone.utc
    try:
        from zoneinfo import ZoneInfo

        return ZoneInfo(tz)
    except Exception:
        raise BadSchedule(f"tasktype option 'tz' must be a time zone name like 'Europe/Brussels', got {tz!r}") from None


@dataclass(frozen=True)
class Schedule:
    """When a task method runs by itself, with which arguments, and what happens to
    ticks missed or overlapping."""

    every: float | None = None  # seconds
    cron: Cron | None = None
    tz: str | None = None
    args: tuple[Any, ...] = ()
    missed: str = "last"
    overlap: str = "skip"

    @classmethod
    def parse(cls, every: Any, cron: Any, tz: Any, args: Any, missed: Any, overlap: Any) -> "Schedule | None":
        """The schedule the options declare, or ``None`` when they declare none;
        :class:`BadSchedule` naming the wrong option."""
        if every is None and cron is None:
            for option, value, default in (("tz", tz, None), ("args", args, None), ("missed", missed, "last"),
                                           ("overlap", overlap, "skip")):
                if value != default:
                    raise BadSchedule(f"tasktype option {option!r} needs a schedule: every= or cron=")
            return None
        if every is not None and cron is not None:
            raise BadSchedule("tasktype options 'every' and 'cron' both given: a method has one schedule")
        period = None
        if every is not None:
            try:
                period = duration(every)
            except ValueError as exc:
                raise BadSchedule(f"tasktype option 'every': {exc}") from None
            if not period >= 1:
                raise BadSchedule(f"tasktype option 'every' must be at least 1 second, got {every!r}")
            if tz is not None:
                raise BadSchedule("tasktype option 'tz' goes with cron=: every= counts seconds, not wall-clock time")
        parsed = Cron.parse(cron) if cron is not None else None
        if parsed is not None:
            _zone(tz)
        if missed not in MISSED:
            raise BadSchedule(f"tasktype option 'missed' must be one of {', '.join(MISSED)}, got {missed!r}")
        if overlap not in OVERLAP:
            raise BadSchedule(f"tasktype option 'overlap' must be one of {', '.join(OVERLAP)}, got {overlap!r}")
        if args is None:
            args = ()
        if isinstance(args, (str, bytes, dict)) or not hasattr(args, "__iter__"):
            raise BadSchedule(f"tasktype option 'args' must be a list of the method's arguments, got {args!r}")
        return cls(period, parsed, tz, tuple(args), missed, overlap)

    def describe(self) -> str:
        if self.cron is not None:
            return f"cron {self.cron.text}" + (f" ({self.tz})" if self.tz else " (UTC)")
        return f"every {self.every:g}s"

    def ticks(self, after: float, until: float) -> Iterator[float]:
        """The ticks in ``(after, until]``, oldest first."""
        if self.every is not None:
            tick: float = (math.floor(after / self.every) + 1) * self.every
            while tick <= until:
                yield tick
                tick += self.every
            return
        following = self.next_tick(after)
        while following is not None and following <= until:
            yield following
            following = self.next_tick(following)

    def latest(self, now: float) -> float | None:
        """The newest tick at or before ``now`` (within a year), else ``None``."""
        if self.every is not None:
            return math.floor(now / self.every) * self.every
        assert self.cron is not None
        zone = _zone(self.tz)
        local = datetime.datetime.fromtimestamp(now, zone).replace(second=0, microsecond=0, tzinfo=None)
        day = local.date()
        for _ in range(370):
            if self.cron.day_matches(day):
                for hour in sorted(self.cron.hours, reverse=True):
                    for minute in sorted(self.cron.minutes, reverse=True):
                        when = datetime.datetime.combine(day, datetime.time(hour, minute))
                        if when > local:
                            continue
                        tick = _epoch(when, zone)
                        if tick is not None and tick <= now:
                            return tick
            day -= datetime.timedelta(days=1)
        return None

    def next_tick(self, after: float) -> float | None:
        """The first tick after ``after`` (within a year), else ``None``."""
        if self.every is not None:
            return (math.floor(after / self.every) + 1) * self.every
        assert self.cron is not None
        zone = _zone(self.tz)
        local = datetime.datetime.fromtimestamp(after, zone).replace(tzinfo=None)
        day = local.date()
        for _ in range(370):
            if self.cron.day_matches(day):
                for hour in sorted(self.cron.hours):
                    for minute in sorted(self.cron.minutes):
                        when = datetime.datetime.combine(day, datetime.time(hour, minute))
                        if when < local.replace(second=0, microsecond=0):
                            continue
                        tick = _epoch(when, zone)
                        if tick is not None and tick > after:
                            return tick
            day += datetime.timedelta(days=1)
        return None


def _epoch(local: datetime.datetime, zone: datetime.tzinfo) -> float | None:
    """The moment a wall-clock time in ``zone`` names: its first occurrence when it
    happens twice, ``None`` when it does not exist (a spring-forward gap)."""
    aware = local.replace(tzinfo=zone, fold=0)
    back = aware.astimezone(datetime.timezone.utc).astimezone(zone).replace(tzinfo=None)
    if back != local:
        return None
    return aware.timestamp()
