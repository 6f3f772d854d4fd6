"""Who runs a schedule's ticks: every process that has the service loaded, none alone.

There is no beat process to run (or to run twice). Each web process - and each worker,
for schedules of ``executor='queue'`` methods - looks at its declared schedules every
``SCHEDULE_POLL`` seconds and starts each due tick as a task whose idempotency key names
the tick (``schedule:<tick>``). The store creates a task and binds its key in one step
(``create.lua`` on Redis, one lock in memory), so however many processes try the same
tick at the same moment, one task is created and the others get that task back: the
tick runs exactly once. Each process then records the tick in the schedule book
(:mod:`ladon_tasks.schedule_book`), newest wins, and remembers it itself.

Which ticks are due:

* those after the newest tick the book (or this process) knows, and no older than
  ``SCHEDULE_GRACE``: each runs, late if processes or Redis were away for a while;
* older ones were *missed*: ``missed='last'`` runs the newest of them once,
  ``missed='skip'`` none;
* a schedule the book has never seen begins at its next tick.

A tick whose previous run has not finished follows ``overlap``: ``'skip'`` records it
as skipped (the book keeps naming that run, so the ticks after it are skipped as long as
it runs), ``'queue'`` waits until that run ends (then runs late, within the grace),
``'run'`` starts it anyway. A paused schedule records its ticks as skipped. An
operator's "run now" is a request in the book that the next process to look starts,
keyed by the request, so it too runs once.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Callable

from ladon_tasks import defaults
from ladon_tasks import spec as specs
from ladon_tasks.model import TaskRecord
from ladon_tasks.schedule_book import ScheduleBook, ScheduleState
from ladon_tasks.spec import TaskSpec
from ladon_tasks.stores.base import TaskStore

log = logging.getLogger(__name__)

#: Starts ``spec``'s task with its schedule's arguments under an idempotency key; the
#: stored record (another process's, when it started that key first).
Start = Callable[[TaskSpec, str], TaskRecord]


def schedule_name(spec: TaskSpec) -> str:
    """How operators name a schedule: ``Service.method``."""
    return f"{spec.ref.service}.{spec.name}"


class Scheduler:
    """The schedules of one process: ``accept`` says which declared methods it runs."""

    def __init__(self, start: Start, store_for: Callable[[TaskSpec], TaskStore],
                 accept: Callable[[TaskSpec], bool] = lambda spec: True,
                 poll: float = defaults.SCHEDULE_POLL, grace: float = defaults.SCHEDULE_GRACE) -> None:
        self._start = start
        self._store_for = store_for
        self._accept = accept
        self.poll = poll
        self.grace = grace
        #: The newest tick this process knows was started or skipped - by itself, or by
        #: another as the book said - per schedule: a store that comes back with older
        #: data (a restore, a replica promoted behind) does not make it run one again.
        self._last: dict[str, float] = {}
        self._announced: dict[str, float] = {}
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None

    def specs(self) -> list[TaskSpec]:
        return [spec for spec in specs.declared() if spec.options.schedule is not None and self._accept(spec)]

    def start(self) -> bool:
        """Run the loop in a thread if any declared method has a schedule; whether it does."""
        if self._thread is not None or not self.specs():
            return self._thread is not None
        self._thread = threading.Thread(target=self._loop, name="ladon-tasks-scheduler", daemon=True)
        self._thread.start()
        return True

    def stop(self) -> None:
        self._stopped.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5)

    def _loop(self) -> None:
        while not self._stopped.is_set():
            for spec in self.specs():
                try:
                    self.run_due(spec, time.time())
                except Exception as exc:  # the store is away, say: the ticks wait for the next pass
                    log.warning("schedule %s: %s", schedule_name(spec), exc)
            self._stopped.wait(self.poll)

    def run_due(self, spec: TaskSpec, now: float) -> int:
        """One look at ``spec``'s schedule: start what is due; how many tasks it started
        or found started."""
        schedule = spec.options.schedule
        assert schedule is not None
        name = schedule_name(spec)
        book = self._store_for(spec).schedule_book()
        state = book.state(name)
        started = 0
        if state.run_request:
            record = self._start(spec, f"schedule-run:{state.run_request}")
            book.clear_run(name, state.run_request)
            log.info("schedule %s: run now asked for, task %s", name, record.task_id)
            started += 1
        last = max(state.last_tick, self._last.get(name, 0.0))
        self._last[name] = last  # the book's newest tick counts as seen here too
        if not last:  # a new schedule: it begins at its next tick
            latest = schedule.latest(now)
            if latest is not None:
                self._mark(book, name, latest, "")
            self._announce(book, spec, now)
            return started
        cutoff = now - self.grace
        due: list[float] = []
        missed = schedule.latest(cutoff)
        if missed is not None and missed > last:
            if schedule.missed == "last":
                due.append(missed)
            else:
                self._mark(book, name, missed, state.last_task)
                log.info("schedule %s: ticks missed until %s skipped", name, time.ctime(missed))
        due += list(schedule.ticks(max(last, cutoff), now))
        for tick in due:
            # a skipped tick keeps the task of the newest run in the book: the next
            # tick's overlap check must still see that run while it runs
            if state.paused:
                self._mark(book, name, tick, state.last_task)
                continue
            if schedule.overlap != "run" and self._still_running(spec, state.last_task):
                if schedule.overlap == "queue":
                    break  # the tick waits for the run before it
                self._mark(book, name, tick, state.last_task)
                log.info("schedule %s: tick %s skipped, task %s still runs", name, time.ctime(tick), state.last_task)
                continue
            record = self._start(spec, f"schedule:{tick!r}")
            self._mark(book, name, tick, record.task_id)
            state.last_task = record.task_id
            started += 1
        self._announce(book, spec, now)
        return started

    def _mark(self, book: ScheduleBook, name: str, tick: float, task_id: str) -> None:
        book.mark(name, tick, task_id)
        self._last[name] = max(tick, self._last.get(name, 0.0))

    def _still_running(self, spec: TaskSpec, task_id: str) -> bool:
        if not task_id:
            return False
        record = self._store_for(spec).get(task_id)
        return record is not None and not record.finished

    def _announce(self, book: ScheduleBook, spec: TaskSpec, now: float) -> None:
        schedule = spec.options.schedule
        assert schedule is not None
        following = schedule.next_tick(now) or 0.0
        if self._announced.get(schedule_name(spec)) != following:
            book.announce(schedule_name(spec), schedule.describe(), following)
            self._announced[schedule_name(spec)] = following


def declared_schedule(name: str) -> TaskSpec | None:
    """The task method of the schedule ``Service.method`` declared in this process."""
    return next((spec for spec in specs.declared()
                 if spec.options.schedule is not None and schedule_name(spec) == name), None)


def state_of(name: str, store_for: Callable[[TaskSpec], TaskStore], store: TaskStore) -> ScheduleState:
    """One schedule as the book has it; its description and next tick from its
    declaration when this process declares it (the book's, as the last process that ran
    it wrote them, otherwise)."""
    spec = declared_schedule(name)
    book = store_for(spec).schedule_book() if spec is not None else store.schedule_book()
    state = book.state(name)
    if spec is not None and spec.options.schedule is not None:
        state.describe = spec.options.schedule.describe()
        state.next_tick = spec.options.schedule.next_tick(time.time()) or 0.0
    return state


def states(store_for: Callable[[TaskSpec], TaskStore], store: TaskStore) -> list[ScheduleState]:
    """Every schedule this process declares, or that the store's book names, as the
    book has it (for the dashboard and ``ladon-tasks schedules``)."""
    names = set(store.schedule_book().names())
    names |= {schedule_name(spec) for spec in specs.declared() if spec.options.schedule is not None}
    return [state_of(name, store_for, store) for name in sorted(names)]
