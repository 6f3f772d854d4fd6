"""The task operations behind the wire methods: start, progress, result, cancel, wait.

One :class:`TaskRuntime` per process holds the store, the executors and the timers.
The wire layer (:mod:`ladon_tasks.expand`) turns each call into one of these operations
and each failure into a named fault from :mod:`ladon_tasks.faults`; nothing here knows
about SOAP or JSON.

The default runtime is embedded - in-process store, thread executor - and is created on
first use; :func:`configure` replaces it before the first request.

With a store other processes share, the runtime's :class:`~ladon_tasks.caretaker.Caretaker`
keeps this process's owner lease and takes over the tasks of processes that died
(:meth:`TaskRuntime.start_caretaking`, called when an application is made). A clean
:meth:`TaskRuntime.shutdown` stops taking tasks, gives running bodies a grace period,
then hands what is left over to live processes - or, with the in-process store, ends it
with ``WorkerDied``.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from typing import TYPE_CHECKING, Any, Callable, Sequence, TypeVar

from ladon_tasks import codec, defaults, delays, faults, hooks, principals, refusals
from ladon_tasks import spec as specs
from ladon_tasks.caretaker import Caretaker
from ladon_tasks.executors.base import Executor, Unfinished
from ladon_tasks.executors.slots import Runner
from ladon_tasks.executors.timers import Timers
from ladon_tasks.jobs import Job
from ladon_tasks.logs import about
from ladon_tasks.model import (
    TaskRecord,
    TaskState,
    new_owner_id,
)
from ladon_tasks.scheduler import Scheduler, declared_schedule
from ladon_tasks.spec import TaskSpec
from ladon_tasks.steps import StepRecord, carried_over
from ladon_tasks.stores.base import StoreError, TaskStore
from ladon_tasks.stores.memory import MemoryStore
from ladon_tasks.waits import WaitBudget

if TYPE_CHECKING:
    from ladon_tasks.executors.local import LocalExecutor
    from ladon_tasks.executors.queue import QueueExecutor

log = logging.getLogger(__name__)

_Made = TypeVar("_Made", bound=Executor)


class TaskRuntime:
    """The task operations of one process: its store(s), executors, timers and caretaker.
    Every wire method of every service calls into the process's one runtime."""
    def __init__(
        self,
        store: TaskStore | None = None,
        *,
        thread_workers: int = defaults.THREAD_WORKERS,
        process_workers: int = defaults.PROCESS_WORKERS,
        wait_max: float = defaults.WAIT_MAX,
        max_args_bytes: int = defaults.MAX_ARGS_BYTES,
        owner_lease: float = defaults.OWNER_LEASE,
        wait_threads: int = defaults.WAIT_THREADS,
        poll_after: float = defaults.POLL_AFTER,
    ) -> None:
        if thread_workers < 1 or process_workers < 1:
            raise ValueError("thread_workers and process_workers must be at least 1")
        if wait_max <= 0:
            raise ValueError("wait_max must be > 0")
        self.store = store if store is not None else MemoryStore()
        self.timers = Timers()
        self.thread_workers = thread_workers
        self.process_workers = process_workers
        self.wait_max = wait_max
        #: Request threads waits may hold at once; the rest are answered with poll_after.
        self.waits = WaitBudget(wait_threads, poll_after)
        self.max_args_bytes = max_args_bytes
        #: Every executor made, by name and store; and the same by kind.
        self._executors: dict[tuple[str, int], Executor] = {}
        self._local: dict[tuple[str, int], LocalExecutor] = {}
        self._queued: dict[tuple[str, int], QueueExecutor] = {}
        self._method_stores: dict[str, TaskStore] = {}
        self._lock = threading.Lock()
        self._closing = False
        self._closed = False
        #: This process, as the owner of the tasks it runs in process (shared stores).
        self.owner = new_owner_id()
        self.caretaker = Caretaker(self.owner, self._can_run, self._resubmit, self._holds, lease=owner_lease)
        #: Runs the ticks of declared schedules (periodic tasks) once started.
        self.scheduler = Scheduler(self._start_scheduled, self.store_for)

    # -- executors -----------------------------------------------------------------

    def store_for(self, spec: TaskSpec | None = None) -> TaskStore:
        """The app's store, or the Redis store a task method names (``redis=URL``)."""
        url = spec.options.redis if spec is not None else None
        if not url:
            return self.store
        with self._lock:
            store = self._method_stores.get(url)
            if store is None:
                from ladon_tasks.redis import open_store

                store = self._method_stores[url] = open_store(url)
            return store

    def executor(self, name: str, store: TaskStore | None = None) -> Executor:
        """The executor ``name`` (thread, process, queue) for ``store``, made on first use."""
        if name in ("thread", "process"):
            return self._made(name, store, self._local, self._make_local_executor)
        if name == "queue":
            return self._made(name, store, self._queued, self._make_queue_executor)
        raise ValueError(f"unknown executor {name!r}")

    def local_executor(self, name: str, store: TaskStore | None = None) -> LocalExecutor:
        """The in-process executor ``name`` (thread, process) for ``store``, made on
        first use: the one a task taken over from a process that died is handed to."""
        return self._made(name, store, self._local, self._make_local_executor)

    def _made(self, name: str, store: TaskStore | None, made: dict[tuple[str, int], _Made],
              make: Callable[[str, TaskStore], _Made]) -> _Made:
        store = store if store is not None else self.store
        key = (name, id(store))
        executor = made.get(key)
        if executor is not None and not self._closing:
            return executor  # every start asks: no lock once it exists
        with self._lock:
            if self._closing:
                raise RuntimeError("the server is shutting down")
            executor = made.get(key)
            if executor is None:
                executor = made[key] = make(name, store)
                self._executors[key] = executor
            return executor

    def _make_local_executor(self, name: str, store: TaskStore) -> LocalExecutor:
        from ladon_tasks.executors.local import LocalExecutor

        runner: Runner
        if name == "thread":
            from ladon_tasks.executors.thread import ThreadRunner

            runner, workers = ThreadRunner(), self.thread_workers
        else:
            from ladon_tasks.executors.process import ProcessRunner

            runner, workers = ProcessRunner(), self.process_workers
        shared = store.shared
        if shared:
            self.caretaker.watch(store)  # the lease exists before the first task names it
        return LocalExecutor(store, runner, workers, self.timers, owner=self.owner if shared else "",
                             where=self.owner)

    @staticmethod
    def _make_queue_executor(name: str, store: TaskStore) -> QueueExecutor:
        from ladon_tasks.executors.queue import QueueExecutor

        return QueueExecutor(store)

    def start_caretaking(self) -> None:
        """Keep this process's owner lease in every shared store the declared task
        methods use, and take over tasks of dead processes from now on - not only once a
        first task is started here (a restarted server must pick up what its previous
        life left)."""
        stores = {id(self.store): self.store}
        for spec in specs.declared():
            store = self.store_for(spec)
            stores[id(store)] = store
        for store in stores.values():
            self.caretaker.watch(store)

    def start_scheduling(self, accept: Callable[[TaskSpec], bool] | None = None) -> bool:
        """Take part in running the declared schedules from now on (``accept``: only
        the methods it says); whether any declared method has one."""
        if accept is not None:
            self.scheduler = Scheduler(self._start_scheduled, self.store_for, accept)
        return self.scheduler.start()

    def _start_scheduled(self, spec: TaskSpec, key: str) -> TaskRecord:
        """A tick's task (or an operator's run now): the schedule's arguments, at once,
        under ``key`` - so however many processes start it, one task is made."""
        schedule = spec.options.schedule
        assert schedule is not None
        return self.start(spec, schedule.args, {"LADON_METHOD_NAME": spec.name}, idempotency_key=key, start_in=0)

    def run_schedule_now(self, name: str) -> TaskRecord:
        """An operator's "run now" of the schedule ``Service.method``, declared here:
        one task at once, whatever the schedule's state. Fault: ``UnknownSchedule``."""
        spec = declared_schedule(name)
        if spec is None:
            raise faults.UnknownSchedule(f"this process declares no schedule {name!r}")
        import secrets

        return self._start_scheduled(spec, f"schedule-run:{secrets.token_hex(8)}")

    def _can_run(self, record: TaskRecord) -> bool:
        spec = _find_spec(record)
        return spec is not None and spec.options.executor in ("thread", "process")

    def _holds(self, task_id: str) -> bool:
        """Whether an executor of this process has the task in hand."""
        with self._lock:
            executors = list(self._executors.values())
        return any(executor.holds(task_id) for executor in executors)

    def _resubmit(self, store: TaskStore, record: TaskRecord) -> None:
        """Run here a task taken over from a process that died."""
        spec = _find_spec(record)
        if spec is None:
            return
        job = _job_for(spec, record, record.args, {"LADON_METHOD_NAME": record.method},
                       not_before=record.not_before if record.attempts == 0 else 0.0)
        try:
            self.local_executor(spec.options.executor, store).submit(job)
        except RuntimeError as exc:  # shutting down: the hand-over at exit passes it on
            about(log, record).info("not run here: %s", exc)

    @property
    def closing(self) -> bool:
        """Shutting down: start calls are refused."""
        return self._closing

    def stores(self) -> list[TaskStore]:
        """The app's store and those task methods name (``redis=URL``)."""
        with self._lock:
            return [self.store, *self._method_stores.values()]

    def local_executors(self) -> list[LocalExecutor]:
        """The in-process executors made so far (their slots are this process's)."""
        with self._lock:
            return list(self._local.values())

    def begin_shutdown(self) -> None:
        """From now on start calls are refused; everything else is still answered."""
        with self._lock:
            self._closing = True

    def shutdown(self, wait: bool = True, grace: float = 0.0) -> None:
        """Stop taking tasks; let running bodies finish for ``grace`` seconds; then hand
        what is left over to live processes (shared store) or end it (in-process store)."""
        with self._lock:
            if self._closed:
                return
            self._closing = self._closed = True
            # kept in place: the caretaker asks them what they hold until it stops
            executors = list(self._executors.items())
        self.caretaker.stop_taking_over()
        self.scheduler.stop()
        unfinished: dict[int, list[Unfinished]] = {}
        for (_, store_id), executor in executors:
            unfinished.setdefault(store_id, []).extend(executor.close(grace if wait else 0.0))
        self.caretaker.release("its server process stopped")
        stores = [self.store, *self._method_stores.values()]
        for store in stores:
            if not store.shared:
                _end_unfinished(store, unfinished.get(id(store), []))
        self.timers.stop()
        for store in stores:
            store.close()

    # -- operations ----------------------------------------------------------------

    def start(
        self,
        spec: TaskSpec,
        args: tuple[Any, ...],
        ladon_kw: dict[str, Any],
        idempotency_key: str = "",
        not_before: Any = None,
        start_in: Any = None,
        principal: str = "",
        trace: str = "",
    ) -> TaskRecord:
        """Record the task, started by ``principal``, then hand it to its executor. With
        an idempotency key (or ``idempotent=True``: the arguments are the key) that names
        a task of the same principal still retained, that task is returned and nothing
        new runs. ``not_before`` (a time) or ``start_in`` (seconds from now) delay its
        start (:mod:`ladon_tasks.delays`); without either, the method's ``delay`` does.
        ``trace``: the start call's trace context (:mod:`ladon_tasks.tracing`), stored
        with the task and carried by its job."""
        try:
            encoded_args = codec.encode_args(spec.arg_types, args)
        except codec.CodecError as exc:
            raise faults.InvalidArgument(f"{spec.name}: {exc}") from None
        args_text = codec.dumps(encoded_args)
        try:
            args_bytes = args_text.encode()
        except UnicodeEncodeError:
            raise refusals.not_unicode(spec, encoded_args) from None
        size = len(args_bytes)
        if size > self.max_args_bytes:
            raise faults.InvalidArgument(
                f"{spec.name}: arguments take {size} bytes, more than the limit of {self.max_args_bytes}"
            )
        options = spec.options
        if idempotency_key and (len(idempotency_key) > 200 or not idempotency_key.isprintable()):
            raise faults.InvalidArgument("the idempotency key must be at most 200 printable characters")
        if not idempotency_key and options.idempotent:
            idempotency_key = "args:" + hashlib.sha256(args_bytes).hexdigest()
        if self._closing:
            raise faults.ExecutorUnavailable("task not started: the server is shutting down")
        now = time.time()
        when = delays.start_time(float(options.delay), now, not_before, start_in)
        store = self.store_for(spec)
        record = _new_record(spec, store, encoded_args, idempotency_key, now=now, principal=principal)
        record.not_before = when
        record.trace = trace
        stored = self._launch(spec, store, record, _job_for(spec, record, encoded_args, ladon_kw, not_before=when))
        if stored.task_id != record.task_id and codec.dumps(stored.args) != args_text:
            # The key is bound to the arguments it was first used with: whoever else
            # knows or guesses a key must not receive that task (nor learn its id).
            raise faults.IdempotencyConflict(
                f"{spec.name}: this Idempotency-Key was used with other arguments; "
                "use a new key for a new task"
            )
        return stored

    def rerun(self, task_id: Any, restart: bool = False) -> TaskRecord:
        """Run a failed or cancelled task again: a **new task** with the same arguments,
        whose ``retry_of`` names the old one (a finished record never changes, so the old
        one stays as it was, with its attempts and error). The new task takes the
        method's options as this process declares them now.

        By default it *recovers*: it starts with the old task's succeeded steps
        (:mod:`ladon_tasks.steps`) recorded, so its body skips them; ``restart`` runs
        every step again. The idempotency key is ``retry:<old id>`` (``restart:<old
        id>``): asking again while the new task is retained returns it (a double click
        makes one re-run). Faults: ``UnknownTask``, ``NotRetryable`` (the task did not fail and was not
        cancelled, or this process does not serve its method), and those of a start.

        The one place every re-run passes (dashboard, ``ladon-tasks retry``). The old
        task is read, with its steps, where operators find tasks (the app's store); the
        new one goes where its method's tasks live, as a start's does."""
        found_in = self.store
        old = self._read(found_in, task_id)
        if old.state not in (TaskState.FAILED, TaskState.CANCELLED):
            raise faults.NotRetryable(
                f"task {old.task_id} is {old.shown_state}: only failed and cancelled tasks are run again"
            )
        spec = _find_spec(old)
        if spec is None:
            raise faults.NotRetryable(
                f"this process does not serve {old.service}.{old.method}: retry where its service is loaded"
            )
        if self._closing:
            raise faults.ExecutorUnavailable("task not started: the server is shutting down")
        store = self.store_for(spec)
        record = _rerun_record(spec, store, old, restart)
        carried: list[StepRecord] = []
        if not restart and old.step:  # a record without `step` never had steps: nothing to read
            with refusals.as_faults():
                carried = carried_over(found_in.load_steps(old.task_id).values(), old.task_id)
        job = _job_for(spec, record, record.args, {"LADON_METHOD_NAME": old.method})
        stored = self._launch(spec, store, record, job, carried)
        about(log, stored).info("re-run of task %s (%s, %d step(s) carried over)", old.task_id,
                                "restart" if restart else "recover", len(carried))
        return stored

    def _launch(self, spec: TaskSpec, store: TaskStore, record: TaskRecord, job: Job,
                steps: Sequence[StepRecord] = ()) -> TaskRecord:
        """Record a new task in ``store`` (with ``steps``, for a recover) and hand its job
        to the store's executor; the stored record (another task's, when its idempotency
        key names one still retained)."""
        try:
            executor = self.executor(spec.options.executor, store)
        except Exception as exc:
            raise faults.ExecutorUnavailable(f"task not started: {exc}") from None
        if job.slot_limit and not store.keeps_slots:
            raise faults.ExecutorUnavailable(f"task not started: {spec.name} has a concurrency_key, which "
                                             f"{type(store).__name__} cannot keep (Redis Cluster)")
        if job.slot_limit and spec.options.on_limit == "refuse":
            with refusals.as_faults():  # the place is taken before the record exists, for its first attempt
                taken = store.take_slot(job.slot_key, job.slot_limit, record.task_id, attempt=1)
            if not taken:
                raise faults.ConcurrencyLimit(
                    f"{spec.name}: {job.slot_limit} task(s) with this {spec.options.concurrency_key} are queued "
                    "or running already; start it again once one has finished"
                )
        try:
            with refusals.as_faults():  # nothing recorded
                return executor.start(record, job, steps)  # a known idempotency key: that task
        except refusals.STORE_FAULTS:
            raise
        except Exception as exc:  # recorded, but not handed over
            with refusals.as_faults():
                store.transition(
                    record.task_id, TaskState.FAILED, error_type="ExecutorUnavailable",
                    error_message=str(exc), finished_at=time.time(),
                )
            raise faults.ExecutorUnavailable(f"task not started: {exc}") from None

    def record(self, task_id: Any, spec: TaskSpec | None = None, caller: str | None = None) -> TaskRecord:
        """The task's record, or the fault a client should see instead. ``caller``: the
        principal asking (``None``: an operator); another caller's task is unknown to it."""
        return self._read(self.store_for(spec), task_id, caller)

    @staticmethod
    def _read(store: TaskStore, task_id: Any, caller: str | None = None) -> TaskRecord:
        """:meth:`record`, from the store the call picked."""
        refusals.check_task_id(task_id)
        with refusals.as_faults():
            record = store.get(task_id)
        if record is None or not principals.may_see(record, caller):
            raise refusals.unknown_task(task_id)
        return record

    def result(self, spec: TaskSpec, task_id: Any, record: TaskRecord | None = None, poll_after: float = 0.0,
               caller: str | None = None) -> Any:
        """The decoded result, or the fault saying why there is none. ``record``: one the
        caller has just read, so it is not read twice; ``poll_after``: that read was a
        wait answered at once for want of a place, and ``TaskNotFinished`` says when to
        ask again (``ask again in N s``, words clients read)."""
        if record is None:
            record = self.record(task_id, spec, caller)
        if record.state is TaskState.SUCCEEDED:
            try:
                return codec.decode(spec.rtype, record.result)
            except Exception as exc:
                raise faults.TaskFailed(f"task {task_id} has a result that cannot be read: {exc}") from None
        if record.state is TaskState.FAILED:
            raise faults.TaskFailed(
                f"task {task_id} failed after {record.attempts} attempt(s): "
                f"{record.error_type}: {record.error_message}",
                record.error_traceback,
            )
        if record.state is TaskState.CANCELLED:
            raise faults.TaskCancelled(f"task {task_id} was cancelled; it has no result")
        if poll_after > 0:
            raise faults.TaskNotFinished(
                f"task {task_id} is {record.state.value} (progress {record.progress:.2f}); "
                f"this server holds as many waits as it can now: ask again in {poll_after:g} s"
            )
        raise faults.TaskNotFinished(
            f"task {task_id} is {record.state.value} (progress {record.progress:.2f}); "
            "ask again once it has finished, or call the _wait method"
        )

    def cancel(self, task_id: Any, spec: TaskSpec | None = None, caller: str | None = None) -> TaskRecord:
        """Cancel a task: a queued one never starts, a running one is stopped (cooperatively
        in a thread, by killing its process otherwise). Returns the record as it is now.
        ``caller``: as for :meth:`record` - another caller's task is not touched."""
        store = self.store_for(spec)
        before = self._read(store, task_id, caller)
        with refusals.as_faults():
            record = store.request_cancel(task_id)
            if record is not None and record.state is TaskState.RUNNING:
                cancelled = store.transition(
                    task_id, TaskState.CANCELLED, attempt=record.attempts,
                    message=record.message, finished_at=time.time(),
                )
                record = cancelled or store.get(task_id)
        if record is None:
            raise refusals.unknown_task(task_id)
        for executor in list(self._executors.values()):
            executor.cancel(task_id)
        if not before.finished and record.state is TaskState.CANCELLED:
            hooks.ended(record)  # this call cancelled it (or one at the same moment did too)
        return record

    def list_tasks(
        self, method: str, state: str, limit: int, offset: int, spec: TaskSpec | None = None,
        caller: str | None = None,
    ) -> list[TaskRecord]:
        """A page of one method's tasks, newest first; cost follows the page size.
        ``caller``: only the tasks this principal started (``""``: those started without
        one); ``None``: every task."""
        states = None
        if state:
            try:
                states = [TaskState(state)]
            except ValueError:
                raise faults.InvalidArgument(
                    f"state must be empty or one of {', '.join(s.value for s in TaskState)}, got {state!r}"
                ) from None
        if not 1 <= limit <= 500 or offset < 0:
            raise faults.InvalidArgument("limit must be 1..500 and offset >= 0")
        with refusals.as_faults():
            return self.store_for(spec).list_tasks(states=states, method=method, limit=limit, offset=offset,
                                                   principal=caller)

    def wait(self, task_id: Any, seconds: float, spec: TaskSpec | None = None,
             caller: str | None = None) -> tuple[TaskRecord, float]:
        """The record once the task has finished, or after ``seconds`` (capped at
        ``wait_max``), whichever comes first; and ``poll_after``, the seconds the client
        should let pass before it asks again (0: at once, or finished).

        A wait holds this request's thread only if the wait budget has a place for it;
        otherwise it is answered at once with the record as it is and ``poll_after``.

        ``caller``: as for :meth:`record`. Where callers are named (``caller`` given, or
        principals configured) another caller's task is unknown at once, before anything
        waits, so how long the answer takes tells nothing either; an anonymous caller of
        a server without principals configured pays no read for that (it would have to
        know another caller's id, and is still answered ``UnknownTask`` after the wait)."""
        refusals.check_task_id(task_id)
        if not isinstance(seconds, (int, float)) or seconds != seconds:
            raise faults.InvalidArgument(f"seconds must be a number, got {seconds!r}")
        timeout = min(max(0.0, float(seconds)), self.wait_max)
        store = self.store_for(spec)
        if caller or (caller is not None and principals.current().configured):
            first = self._read(store, task_id, caller)
            if first.finished or timeout <= 0:
                return first, 0.0 if first.finished else self.poll_after(first)
        held = timeout > 0 and self.waits.enter()
        try:
            with refusals.as_faults():
                record = store.wait(task_id, timeout) if held else store.get(task_id)  # wait reads it first
        finally:
            if held:
                self.waits.leave()
        if record is None or not principals.may_see(record, caller):
            raise refusals.unknown_task(task_id)
        return record, (0.0 if held else self.poll_after(record))

    def poll_after(self, record: TaskRecord) -> float:
        """Seconds a client following ``record`` should let pass before it asks again: 0
        once the task has finished; more early in a run (:meth:`WaitBudget.advice`)."""
        return 0.0 if record.finished else self.waits.advice(record, time.time())


def _new_record(spec: TaskSpec, store: TaskStore, encoded_args: Any, idempotency_key: str = "",
                retry_of: str = "", now: float | None = None, principal: str = "") -> TaskRecord:
    options = spec.options
    return TaskRecord(
        task_id=store.new_task_id(spec.ref.service, spec.name, idempotency_key, principal),
        service=spec.ref.service,
        method=spec.name,
        args=encoded_args,
        max_attempts=options.max_attempts,
        priority=options.priority,
        tags=list(options.tags),
        result_ttl=float(options.result_ttl),
        submitted_at=now if now is not None else time.time(),
        idempotency_key=idempotency_key,
        retry_of=retry_of,
        principal=principal,
    )


def _rerun_record(spec: TaskSpec, store: TaskStore, old: TaskRecord, restart: bool) -> TaskRecord:
    """The new task of a re-run of ``old``: its arguments and its principal (the task
    stays its caller's), linked to it."""
    return _new_record(spec, store, old.args, f"{'restart' if restart else 'retry'}:{old.task_id}",
                       retry_of=old.task_id, principal=old.principal)


def _job_for(spec: TaskSpec, record: TaskRecord, encoded_args: Any, ladon_kw: dict[str, Any],
             not_before: float = 0.0) -> Job:
    options = spec.options
    return Job(
        task_id=record.task_id,
        ref=spec.ref,
        args=encoded_args,
        priority=options.priority,
        timeout=options.timeout,
        retry_delay=float(options.retry_delay),
        queue=options.queue,
        ladon_kw=ladon_kw,
        retry_on=options.retry_on,
        no_retry_on=options.no_retry_on,
        retry_jitter=float(options.retry_jitter),
        retry_max_delay=float(options.retry_max_delay),
        soft_timeout=options.soft_timeout,
        max_tasks_per_child=options.max_tasks_per_child,
        max_memory_per_child=options.max_memory_per_child,
        not_before=not_before,
        trace=record.trace,  # a task taken over keeps its trace
        submitted_at=record.submitted_at if record.trace else 0.0,
        slot_key=slot_key(spec, encoded_args),
        slot_limit=options.concurrency if options.concurrency_key else 0,
        rate_key=f"{spec.ref.service}.{spec.name}" if options.rate else "",
        rate_interval=options.rate_interval,
    )


def slot_key(spec: TaskSpec, encoded_args: Any) -> str:
    """The slot set of a task of a method with ``concurrency_key``: its method and the
    key argument's value as JSON (``""`` without one)."""
    key = spec.options.concurrency_key
    if not key:
        return ""
    value = encoded_args[spec.arg_names.index(key)]
    return f"{spec.ref.service}.{spec.name}:{codec.dumps(value)}"


def _find_spec(record: TaskRecord) -> TaskSpec | None:
    return specs.find(record.service, record.method)


def _end_unfinished(store: TaskStore, unfinished: list[Unfinished]) -> None:
    """What a stopping server could not finish, when no other process can take it: a
    clear end now, not a record that says ``running`` for as long as anyone asks."""
    now = time.time()
    for item in unfinished:
        try:
            hooks.ended(store.transition(
                item.job.task_id, TaskState.FAILED, attempt=item.attempt,
                error_type="WorkerDied", error_message="its server process stopped before the task finished",
                finished_at=now,
            ))
        except StoreError:
            pass


_runtime: TaskRuntime | None = None
_runtime_lock = threading.Lock()


def get_runtime() -> TaskRuntime:
    """This process's runtime; the embedded default (in-process store, thread
    executor) is made on first use."""
    global _runtime
    if _runtime is None:
        with _runtime_lock:
            if _runtime is None:
                _runtime = TaskRuntime()
    return _runtime


def configure(store: TaskStore | None = None, *, principal: principals.HookSetting = None,
              require_principal: bool | None = None, **settings: Any) -> TaskRuntime:
    """Replace this process's runtime (before serving). Any running one is shut down.

    ``principal`` (a hook: :mod:`ladon_tasks.principals`) and ``require_principal`` set
    how callers are named; given before the services are imported, task methods get
    ``m_list`` too (each caller's own tasks)."""
    global _runtime
    if principal is not None or require_principal is not None:
        principals.configure(principal, require_principal)
    with _runtime_lock:
        previous, _runtime = _runtime, TaskRuntime(store, **settings)
    if previous is not None:
        previous.shutdown(wait=False)
    return _runtime
