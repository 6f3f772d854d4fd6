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

import contextlib
import hashlib
import logging
import threading
import time
from typing import TYPE_CHECKING, Any, Iterator

from ladon_tasks import codec, defaults, faults
from ladon_tasks.caretaker import Caretaker
from ladon_tasks.executors.base import Executor, Job, Unfinished
from ladon_tasks.executors.timers import Timers
from ladon_tasks.model import TaskRecord, TaskState, looks_like_task_id, new_owner_id, new_task_id
from ladon_tasks.stores.base import CorruptRecord, StoreError, StoreFull, TaskStore
from ladon_tasks.stores.memory import MemoryStore

if TYPE_CHECKING:
    from ladon_tasks.expand import TaskMethod

log = logging.getLogger(__name__)


class TaskRuntime:
    def __init__(
        self,
        store: TaskStore | None = None,
        *,
        thread_workers: int = defaults.THREAD_WORKERS,
        process_workers: int = defaults.PROCESS_WORKERS,
        wait_max: float = defaults.WAIT_MAX,
        max_args_bytes: int = defaults.MAX_ARGS_BYTES,
        owner_lease: float = defaults.OWNER_LEASE,
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
        self.max_args_bytes = max_args_bytes
        self._executors: dict[tuple[str, int], Executor] = {}
        self._method_stores: dict[str, TaskStore] = {}
        self._lock = threading.Lock()
        self._closing = False
        self._closed = False
        #: This process, as the owner of the tasks it runs in process (shared stores).
        self.owner = new_owner_id()
        self.caretaker = Caretaker(self.owner, self._can_run, self._resubmit, self._holds, lease=owner_lease)

    # -- executors -----------------------------------------------------------------

    def store_for(self, task_method: "TaskMethod | None" = None) -> TaskStore:
        """The app's store, or the Redis store a task method names (``redis=URL``)."""
        url = task_method.options.redis if task_method is not None else None
        if not url:
            return self.store
        with self._lock:
            store = self._method_stores.get(url)
            if store is None:
                from ladon_tasks.redis.store import RedisStore

                store = self._method_stores[url] = RedisStore(url)
            return store

    def executor(self, name: str, store: TaskStore | None = None) -> Executor:
        store = store if store is not None else self.store
        with self._lock:
            if self._closing:
                raise RuntimeError("the server is shutting down")
            executor = self._executors.get((name, id(store)))
            if executor is None:
                executor = self._executors[(name, id(store))] = self._make_executor(name, store)
            return executor

    def _make_executor(self, name: str, store: TaskStore) -> Executor:
        if name in ("thread", "process"):
            from ladon_tasks.executors.local import LocalExecutor

            if name == "thread":
                from ladon_tasks.executors.thread import ThreadRunner

                runner, workers = ThreadRunner(), self.thread_workers
            else:
                from ladon_tasks.executors.process import ProcessRunner

                runner, workers = ProcessRunner(), self.process_workers
            shared = store.ownership() is not None
            if shared:
                self.caretaker.watch(store)  # the lease exists before the first task names it
            return LocalExecutor(store, runner, workers, self.timers, owner=self.owner if shared else "")
        if name == "queue":
            from ladon_tasks.executors.queue import QueueExecutor
            from ladon_tasks.redis.queue import RedisQueue

            client, prefix = getattr(store, "client", None), getattr(store, "prefix", None)
            if client is None or prefix is None:
                raise ValueError("executor='queue' needs the Redis store (ladon-tasks serve --redis URL)")
            return QueueExecutor(make_queue=lambda queue_name: RedisQueue(client, prefix, queue_name))
        raise ValueError(f"unknown executor {name!r}")

    def start_caretaking(self) -> None:
        """Keep this process's owner lease in every shared store the declared task
        methods use, and take over tasks of dead processes from now on - not only once a
        first task is started here (a restarted server must pick up what its previous
        life left)."""
        from ladon_tasks.expand import declared_task_methods

        stores = {id(self.store): self.store}
        for task_method in declared_task_methods():
            store = self.store_for(task_method)
            stores[id(store)] = store
        for store in stores.values():
            self.caretaker.watch(store)

    def _can_run(self, record: TaskRecord) -> bool:
        task_method = _find_task_method(record)
        return task_method is not None and task_method.options.executor in ("thread", "process")

    def _holds(self, task_id: str) -> bool:
        """Whether an executor of this process has the task in hand."""
        with self._lock:
            executors = list(self._executors.values())
        return any(executor.holds(task_id) for executor in executors)

    def _resubmit(self, store: TaskStore, record: TaskRecord) -> None:
        """Run here a task taken over from a process that died."""
        task_method = _find_task_method(record)
        if task_method is None:
            return
        job = _job_for(task_method, record.task_id, record.args, {"LADON_METHOD_NAME": record.method})
        try:
            self.executor(task_method.options.executor, store).submit(job)
        except RuntimeError as exc:  # shutting down: the hand-over at exit passes it on
            log.info("task %s not run here: %s", record.task_id, exc)

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
        unfinished: dict[int, list[Unfinished]] = {}
        for (_, store_id), executor in executors:
            unfinished.setdefault(store_id, []).extend(executor.close(grace if wait else 0.0))
        self.caretaker.release("its server process stopped")
        stores = [self.store, *self._method_stores.values()]
        for store in stores:
            if store.ownership() is None:
                _end_unfinished(store, unfinished.get(id(store), []))
        self.timers.stop()
        for store in stores:
            store.close()

    # -- operations ----------------------------------------------------------------

    def start(
        self,
        task_method: "TaskMethod",
        args: tuple[Any, ...],
        ladon_kw: dict[str, Any],
        idempotency_key: str = "",
    ) -> TaskRecord:
        """Record the task, then hand it to its executor. With an idempotency key (or
        ``idempotent=True``: the arguments are the key) that names a task still retained,
        that task is returned and nothing new runs."""
        try:
            encoded_args = codec.encode_args(task_method.arg_types, args)
        except codec.CodecError as exc:
            raise faults.InvalidArgument(f"{task_method.name}: {exc}") from None
        args_text = codec.dumps(encoded_args)
        try:
            args_bytes = args_text.encode()
        except UnicodeEncodeError:
            raise _not_unicode(task_method, encoded_args) from None
        size = len(args_bytes)
        if size > self.max_args_bytes:
            raise faults.InvalidArgument(
                f"{task_method.name}: arguments take {size} bytes, more than the limit of {self.max_args_bytes}"
            )
        options = task_method.options
        if idempotency_key and (len(idempotency_key) > 200 or not idempotency_key.isprintable()):
            raise faults.InvalidArgument("the idempotency key must be at most 200 printable characters")
        if not idempotency_key and options.idempotent:
            idempotency_key = "args:" + hashlib.sha256(args_bytes).hexdigest()
        if self._closing:
            raise faults.ExecutorUnavailable("task not started: the server is shutting down")
        new_id = new_task_id()
        record = TaskRecord(
            task_id=new_id,
            service=task_method.ref.service,
            method=task_method.name,
            args=encoded_args,
            max_attempts=options.max_attempts,
            priority=options.priority,
            tags=list(options.tags),
            result_ttl=float(options.result_ttl),
            submitted_at=time.time(),
            idempotency_key=idempotency_key,
        )
        store = self.store_for(task_method)
        job = _job_for(task_method, new_id, encoded_args, ladon_kw)
        try:
            executor = self.executor(options.executor, store)
        except Exception as exc:
            raise faults.ExecutorUnavailable(f"task not started: {exc}") from None
        try:
            with _store_errors():  # nothing recorded
                stored = executor.start(store, record, job)  # a known idempotency key: that task
        except _STORE_FAULTS:
            raise
        except Exception as exc:  # recorded, but not handed over
            with _store_errors():
                store.transition(
                    record.task_id, TaskState.FAILED, error_type="ExecutorUnavailable",
                    error_message=str(exc), finished_at=time.time(),
                )
            raise faults.ExecutorUnavailable(f"task not started: {exc}") from None
        if stored.task_id != new_id and codec.dumps(stored.args) != args_text:
            # The key is bound to the arguments it was first used with: whoever else
            # knows or guesses a key must not receive that task (nor learn its id).
            raise faults.IdempotencyConflict(
                f"{task_method.name}: this Idempotency-Key was used with other arguments; "
                "use a new key for a new task"
            )
        return stored

    def record(self, task_id: Any, task_method: "TaskMethod | None" = None) -> TaskRecord:
        """The task's record, or the fault a client should see instead."""
        _check_task_id(task_id)
        with _store_errors():
            record = self.store_for(task_method).get(task_id)
        if record is None:
            raise _unknown(task_id)
        return record

    def result(self, task_method: "TaskMethod", task_id: Any, record: TaskRecord | None = None) -> Any:
        """The decoded result, or the fault saying why there is none. ``record``: one the
        caller has just read, so it is not read twice."""
        if record is None:
            record = self.record(task_id, task_method)
        if record.state is TaskState.SUCCEEDED:
            try:
                return codec.decode(task_method.rtype, record.result)
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
        raise faults.TaskNotFinished(
            f"task {task_id} is {record.state.value} (progress {record.progress:.2f}); "
            "ask again once it has finished, or call the _wait method"
        )

    def cancel(self, task_id: Any, task_method: "TaskMethod | None" = None) -> TaskRecord:
        self.record(task_id, task_method)
        store = self.store_for(task_method)
        with _store_errors():
            record = store.request_cancel(task_id)
            if record is not None and record.state is TaskState.RUNNING:
                cancelled = store.transition(
                    task_id, TaskState.CANCELLED, attempt=record.attempts,
                    message=record.message, finished_at=time.time(),
                )
                record = cancelled or store.get(task_id)
        if record is None:
            raise _unknown(task_id)
        for executor in list(self._executors.values()):
            executor.cancel(task_id)
        return record

    def list_tasks(
        self, method: str, state: str, limit: int, offset: int, task_method: "TaskMethod | None" = None
    ) -> list[TaskRecord]:
        """A page of one method's tasks, newest first; cost follows the page size."""
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
        with _store_errors():
            return self.store_for(task_method).list_tasks(states=states, method=method, limit=limit, offset=offset)

    def wait(self, task_id: Any, seconds: float, task_method: "TaskMethod | None" = None) -> TaskRecord:
        _check_task_id(task_id)
        if not isinstance(seconds, (int, float)) or seconds != seconds:
            raise faults.InvalidArgument(f"seconds must be a number, got {seconds!r}")
        timeout = min(max(0.0, float(seconds)), self.wait_max)
        with _store_errors():
            record = self.store_for(task_method).wait(task_id, timeout)  # reads it first itself
        if record is None:
            raise _unknown(task_id)
        return record


def _job_for(task_method: "TaskMethod", task_id: str, encoded_args: Any, ladon_kw: dict[str, Any]) -> Job:
    options = task_method.options
    return Job(
        task_id=task_id,
        ref=task_method.ref,
        args=encoded_args,
        priority=options.priority,
        timeout=options.timeout,
        retry_delay=float(options.retry_delay),
        queue=options.queue,
        ladon_kw=ladon_kw,
    )


def _find_task_method(record: TaskRecord) -> "TaskMethod | None":
    from ladon_tasks.expand import find_task_method

    return find_task_method(record.service, record.method)


def _end_unfinished(store: TaskStore, unfinished: list[Unfinished]) -> None:
    """What a stopping server could not finish, when no other process can take it: a
    clear end now, not a record that says ``running`` for as long as anyone asks."""
    now = time.time()
    for item in unfinished:
        try:
            store.transition(
                item.job.task_id, TaskState.FAILED, attempt=item.attempt,
                error_type="WorkerDied", error_message="its server process stopped before the task finished",
                finished_at=now,
            )
        except StoreError:
            pass


def _check_task_id(task_id: Any) -> None:
    """Malformed ids are told apart from unknown ones without asking the store."""
    if not looks_like_task_id(task_id):
        shown = repr(task_id) if len(repr(task_id)) <= 80 else repr(task_id)[:77] + "..."
        raise faults.MalformedTaskId(f"{shown} is not a task id (32 lowercase hex digits)")


def _unknown(task_id: str) -> faults.UnknownTask:
    return faults.UnknownTask(f"no task {task_id}: unknown, or expired after its result_ttl")


def _not_unicode(task_method: "TaskMethod", encoded_args: list[Any]) -> faults.InvalidArgument:
    """The fault for arguments that hold text no UTF-8 can carry (lone surrogates, which
    JSON's ``\\ud800`` escapes let through), naming the first such argument."""
    names = task_method.arg_names
    for position, value in enumerate(encoded_args):
        try:
            codec.dumps(value).encode()
        except UnicodeEncodeError:
            name = names[position] if position < len(names) else f"#{position + 1}"
            return faults.InvalidArgument(
                f"{task_method.name}: argument {name} holds text that is not valid Unicode (a lone surrogate)"
            )
    return faults.InvalidArgument(f"{task_method.name}: the arguments hold text that is not valid Unicode")


#: The faults :func:`_store_errors` raises: the store refused or failed, nothing was
#: handed to an executor.
_STORE_FAULTS = (faults.StoreUnavailable, faults.ServerBusy, faults.CorruptTask)


@contextlib.contextmanager
def _store_errors() -> Iterator[None]:
    """Store exceptions as the faults a client sees: a full store is ``ServerBusy`` (back
    off), one damaged record ``CorruptTask``, anything else ``StoreUnavailable``."""
    try:
        yield
    except StoreFull as exc:
        raise faults.ServerBusy(f"task not started: {exc}") from None
    except CorruptRecord as exc:
        raise faults.CorruptTask(str(exc)) from None
    except StoreError as exc:
        raise faults.StoreUnavailable(f"task state is not reachable: {exc}") from None


_runtime: TaskRuntime | None = None
_runtime_lock = threading.Lock()


def get_runtime() -> TaskRuntime:
    global _runtime
    if _runtime is None:
        with _runtime_lock:
            if _runtime is None:
                _runtime = TaskRuntime()
    return _runtime


def configure(store: TaskStore | None = None, **settings: Any) -> TaskRuntime:
    """Replace this process's runtime (before serving). Any running one is shut down."""
    global _runtime
    with _runtime_lock:
        previous, _runtime = _runtime, TaskRuntime(store, **settings)
    if previous is not None:
        previous.shutdown(wait=False)
    return _runtime
