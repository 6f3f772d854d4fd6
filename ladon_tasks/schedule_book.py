"""Where the state of each schedule lives, beside the tasks: its last tick, whether an
operator paused it, and a run an operator asked for.

Nothing here decides who runs a tick: that is the task's idempotency key
(:mod:`ladon_tasks.scheduler`), written with the record in one step. The book only says
how far the schedule got, so a process that starts late neither runs old ticks again
nor misses the ones it is due; its ``mark`` keeps the newest tick whoever writes it, so
processes that write in any order agree.
"""

from __future__ import annotations

import abc
import secrets
import threading
from dataclasses import dataclass


@dataclass
class ScheduleState:
    """One schedule as the book has it. ``name`` is ``Service.method``."""

    name: str
    last_tick: float = 0.0  # the newest tick run or skipped; 0.0: none yet
    last_task: str = ""  # the task of the newest tick run, kept through the ticks skipped since ("": none)
    paused: bool = False
    run_request: str = ""  # an operator's "run now" not yet run (its id)
    describe: str = ""  # "every 60s", "cron */5 * * * * (UTC)": written by the processes that run it
    next_tick: float = 0.0  # when it is due next, as the last process that looked saw it


class ScheduleBook(abc.ABC):
    """The schedules' state in one store."""

    @abc.abstractmethod
    def state(self, name: str) -> ScheduleState:
        """The schedule's state (a fresh one when the book has none)."""

    @abc.abstractmethod
    def mark(self, name: str, tick: float, task_id: str) -> None:
        """Tick ``tick`` was run as ``task_id``, or skipped (``task_id`` then names the
        newest run still, or is ``""``); kept only if newer than the tick the book has."""

    @abc.abstractmethod
    def announce(self, name: str, describe: str, next_tick: float) -> None:
        """A process runs this schedule: its description and next tick, for listings."""

    @abc.abstractmethod
    def set_paused(self, name: str, paused: bool) -> None:
        """Pause or resume: while paused its ticks are skipped."""

    @abc.abstractmethod
    def request_run(self, name: str) -> str:
        """Ask for one run now, by whichever process runs the schedule next; its id."""

    @abc.abstractmethod
    def clear_run(self, name: str, request: str) -> None:
        """The run ``request`` asked for was started (a newer request stays)."""

    @abc.abstractmethod
    def names(self) -> list[str]:
        """Every schedule announced in this store."""


class MemoryScheduleBook(ScheduleBook):
    """The book of the in-process store: this process is the only one that runs ticks."""

    def __init__(self) -> None:
        self._states: dict[str, ScheduleState] = {}
        self._lock = threading.Lock()

    def _get(self, name: str) -> ScheduleState:
        return self._states.setdefault(name, ScheduleState(name))

    def state(self, name: str) -> ScheduleState:
        with self._lock:
            return ScheduleState(**self._get(name).__dict__)

    def mark(self, name: str, tick: float, task_id: str) -> None:
        with self._lock:
            state = self._get(name)
            if tick > state.last_tick:
                state.last_tick, state.last_task = tick, task_id

    def announce(self, name: str, describe: str, next_tick: float) -> None:
        with self._lock:
            state = self._get(name)
            state.describe, state.next_tick = describe, next_tick

    def set_paused(self, name: str, paused: bool) -> None:
        with self._lock:
            self._get(name).paused = paused

    def request_run(self, name: str) -> str:
        with self._lock:
            request = self._get(name).run_request = secrets.token_hex(8)
            return request

    def clear_run(self, name: str, request: str) -> None:
        with self._lock:
            state = self._get(name)
            if state.run_request == request:
                state.run_request = ""

    def names(self) -> list[str]:
        with self._lock:
            return sorted(self._states)
