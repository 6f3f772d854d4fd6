"""The fast layer: the pieces every executor and the Redis store are built of, called in
this process with no task server - a slot pool over an in-memory source, settling
outcomes into the in-process store, the coalescing progress writer, the finish notifier
over a real redis-server. The suites over real servers show that the whole holds; these
show which piece broke when one does, in a second.
"""

from __future__ import annotations

import ast
import pathlib
import threading
import time
from typing import Any

import pytest

import ladon_tasks
from ladon_tasks.executors.local import LocalSource
from ladon_tasks.executors.settle import settle
from ladon_tasks.executors.slots import Attempt, Runner, SlotPool
from ladon_tasks.executors.timers import Timers
from ladon_tasks.jobs import Job, Outcome
from ladon_tasks.model import TaskRecord, TaskState, new_task_id
from ladon_tasks.policy import retry_delay
from ladon_tasks.redis.progress import Pending, ProgressWriter
from ladon_tasks.spec import MethodRef
from ladon_tasks.stores.base import StoreError
from ladon_tasks.stores.memory import MemoryStore
from support.servers import wait_until

REF = MethodRef("unit_service", "UnitService", "work")
DEADLINE = 10.0  # seconds any waited-for event may take on a busy machine


def queued(store: MemoryStore, max_attempts: int = 1, timeout: float | None = None,
           retry_delay_s: float = 1.0) -> Job:
    """A queued task in ``store`` and its job."""
    record = TaskRecord(task_id=new_task_id(), service=REF.service, method=REF.method,
                        max_attempts=max_attempts, submitted_at=time.time())
    store.create(record)
    return Job(task_id=record.task_id, ref=REF, args=[], timeout=timeout, retry_delay=retry_delay_s)


def running(store: MemoryStore, **job_options: Any) -> tuple[Job, int]:
    """A task whose first attempt has begun: its job and the attempt's number."""
    job = queued(store, **job_options)
    record = store.transition(job.task_id, TaskState.RUNNING)
    assert record is not None
    return job, record.attempts


# -- settle: an outcome into the record ---------------------------------------------------

def test_settle_writes_a_success_with_its_result() -> None:
    store = MemoryStore()
    job, attempt = running(store)
    settled = settle(store, job, attempt, Outcome("succeeded", result=[1, 2]))
    record = store.get(job.task_id)
    assert settled.kind == "succeeded"
    assert record is not None and record.state is TaskState.SUCCEEDED
    assert record.result == [1, 2] and record.progress == 1.0


def test_settle_queues_a_failure_again_while_attempts_remain_with_backoff() -> None:
    store = MemoryStore()
    job, attempt = running(store, max_attempts=3, retry_delay_s=0.5)
    delays: list[float] = []
    settled = settle(store, job, attempt, Outcome("failed", error_type="ValueError", error_message="bad"),
                     retry_change=lambda delay: delays.append(delay) or None)
    record = store.get(job.task_id)
    assert settled.kind == "retry" and settled.delay == 0.5 == delays[0]
    assert record is not None and record.state is TaskState.QUEUED
    assert "retry 2/3" in record.message and "ValueError: bad" in record.message
    assert [retry_delay(n, 0.5, 300.0) for n in (1, 2, 3)] == [0.5, 1.0, 2.0]
    assert retry_delay(30, 1.0, 300.0) == retry_delay(31, 1.0, 300.0) == 300.0  # capped


def test_settle_fails_the_last_attempt_with_its_error() -> None:
    store = MemoryStore()
    job, attempt = running(store)
    settled = settle(store, job, attempt, Outcome("failed", error_type="KeyError", error_message="'x'"))
    record = store.get(job.task_id)
    assert settled.kind == "failed"
    assert record is not None and record.state is TaskState.FAILED
    assert (record.error_type, record.error_message) == ("KeyError", "'x'")


def test_settle_drops_the_outcome_of_a_superseded_attempt() -> None:
    store = MemoryStore()
    job, attempt = running(store, max_attempts=2)
    assert store.transition(job.task_id, TaskState.QUEUED, attempt=attempt) is not None  # reissued
    assert store.transition(job.task_id, TaskState.RUNNING) is not None  # attempt 2 runs
    settled = settle(store, job, attempt, Outcome("succeeded", result="stale"))
    record = store.get(job.task_id)
    assert settled.kind == "superseded"
    assert record is not None and record.state is TaskState.RUNNING and record.result is None


def test_settle_leaves_an_interrupted_attempt_to_whoever_interrupted_it() -> None:
    store = MemoryStore()
    job, attempt = running(store)
    assert settle(store, job, attempt, Outcome("interrupted")).kind == "interrupted"
    record = store.get(job.task_id)
    assert record is not None and record.state is TaskState.RUNNING


# -- the slot pool -----------------------------------------------------------------------

class ScriptedRunner(Runner):
    """Runs each attempt as the test says: ``bodies[task_id](attempt)`` -> Outcome."""

    name = "scripted"

    def __init__(self) -> None:
        self.bodies: dict[str, Any] = {}
        self.stopped: list[str] = []

    def run(self, slot: int, attempt: Attempt) -> Outcome:
        return self.bodies[attempt.job.task_id](attempt)

    def stop(self, slot: int, task_id: str) -> None:
        self.stopped.append(task_id)


def pool_over(store: MemoryStore, size: int = 2) -> tuple[SlotPool, LocalSource, ScriptedRunner]:
    timers = Timers()
    source = LocalSource(timers)
    runner = ScriptedRunner()
    pool = SlotPool("unit", store, source, runner, size, timers)
    return pool, source, runner


def wait_for_state(store: MemoryStore, task_id: str, state: TaskState) -> TaskRecord:
    deadline = time.monotonic() + DEADLINE
    while True:
        record = store.get(task_id)
        if record is not None and record.state is state:
            return record
        assert time.monotonic() < deadline, f"{task_id} never reached {state}: {record}"
        time.sleep(0.01)


def test_a_slot_pool_runs_each_job_once_and_settles_it() -> None:
    store = MemoryStore()
    pool, source, runner = pool_over(store)
    jobs = [queued(store) for _ in range(5)]
    for job in jobs:
        runner.bodies[job.task_id] = lambda attempt: Outcome("succeeded", result=attempt.job.task_id)
        source.put(job)
    pool.start()
    try:
        for job in jobs:
            assert wait_for_state(store, job.task_id, TaskState.SUCCEEDED).result == job.task_id
            assert not source.holds(job.task_id)  # let go once written
    finally:
        pool.close(grace=1.0)
    assert pool.dead_slots() == 0


def test_a_slot_outlives_a_runner_that_raises() -> None:
    store = MemoryStore()
    pool, source, runner = pool_over(store, size=1)
    broken, fine = queued(store), queued(store)

    def explode(attempt: Attempt) -> Outcome:
        raise RuntimeError("runner bug")

    runner.bodies[broken.task_id] = explode
    runner.bodies[fine.task_id] = lambda attempt: Outcome("succeeded", result=1)
    source.put(broken)
    source.put(fine)
    pool.start()
    try:
        wait_for_state(store, fine.task_id, TaskState.SUCCEEDED)  # the one slot went on
    finally:
        pool.close(grace=1.0)


def test_a_timeout_counts_from_the_body_start_not_from_the_take() -> None:
    """A runner that takes a while before its body starts (a child process starting up)
    does not spend the body's time: the timer starts at ``attempt.started()``."""
    store = MemoryStore()
    pool, source, runner = pool_over(store, size=1)
    job = queued(store, timeout=0.3)
    release = threading.Event()

    def slow_start_then_wait(attempt: Attempt) -> Outcome:
        time.sleep(0.6)  # start-up, longer than the timeout: must not count
        record = store.get(attempt.job.task_id)
        assert record is not None and record.state is TaskState.RUNNING, "timed out before the body started"
        attempt.started()
        release.wait(DEADLINE)  # the body overruns: the timeout fires now
        return Outcome("interrupted")

    runner.bodies[job.task_id] = slow_start_then_wait
    source.put(job)
    pool.start()
    try:
        record = wait_for_state(store, job.task_id, TaskState.FAILED)
        assert record.error_type == "TaskTimeout"
        assert runner.stopped == [job.task_id]
    finally:
        release.set()
        pool.close(grace=1.0)


def test_a_retry_goes_back_to_the_source_after_its_delay() -> None:
    store = MemoryStore()
    pool, source, runner = pool_over(store, size=1)
    job = queued(store, max_attempts=2, retry_delay_s=0.05)
    runner.bodies[job.task_id] = lambda attempt: (
        Outcome("failed", error_type="OSError", error_message="flaky") if attempt.number == 1
        else Outcome("succeeded", result=attempt.number))
    source.put(job)
    pool.start()
    try:
        record = wait_for_state(store, job.task_id, TaskState.SUCCEEDED)
        assert record.result == 2 and record.attempts == 2
    finally:
        pool.close(grace=1.0)


# -- the progress writer -------------------------------------------------------------------

class ScriptedWrites:
    """The report script's stand-in for a unit test: records each call's items, answers
    ``go`` for each, raises ``StoreError`` while ``down`` is set."""

    def __init__(self) -> None:
        self.calls: list[list[tuple[str, int | None, Pending]]] = []
        self.go = True
        self.down = threading.Event()
        self.called = threading.Event()

    def __call__(self, items: list[tuple[str, int | None, Pending]]) -> list[int]:
        if self.down.is_set():
            raise StoreError("Redis at test: connection refused")
        self.calls.append(list(items))
        self.called.set()
        return [1 if self.go else 0 for _ in items]

    def latest(self, task_id: str) -> Pending:
        return [values for call in self.calls for (tid, _, values) in call if tid == task_id][-1]


def test_progress_reports_in_a_tight_loop_are_coalesced() -> None:
    writes = ScriptedWrites()
    writer = ProgressWriter(writes, flush_interval=0.05)
    try:
        for n in range(1, 1001):
            assert writer.report("t1", n / 1000, f"item {n}", 1)
        writer.close()
        assert writes.latest("t1").progress == 1.0 and writes.latest("t1").message == "item 1000"
        assert len(writes.calls) < 100  # 1,000 reports, a handful of writes
    finally:
        writer.close()


def test_a_stop_answer_reaches_the_body() -> None:
    writes = ScriptedWrites()
    writer = ProgressWriter(writes, flush_interval=0.05)
    try:
        assert writer.report("t1", 0.1, None, 1)
        writes.go = False  # the task was cancelled: the next answer Redis gives says stop
        deadline = time.monotonic() + DEADLINE
        while writer.report("t1", 0.2, None, 1):
            assert time.monotonic() < deadline, "the body was never told to stop"
            time.sleep(0.01)
    finally:
        writer.close()


def test_progress_kept_while_the_store_is_away_is_written_when_it_answers() -> None:
    writes = ScriptedWrites()
    writes.down.set()
    writer = ProgressWriter(writes, flush_interval=0.02)
    try:
        assert writer.report("t1", 0.5, "half", 1)  # the body goes on
        writes.down.clear()
        assert writes.called.wait(DEADLINE)
        deadline = time.monotonic() + DEADLINE
        while writes.latest("t1").progress != 0.5:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        assert writes.latest("t1").message == "half"
    finally:
        writer.close()


def test_pending_values_ride_with_a_state_change_and_come_back_if_it_fails() -> None:
    writes = ScriptedWrites()
    writer = ProgressWriter(writes, flush_interval=60.0)
    try:
        writer.report("t1", 0.1, None, 1)  # the first report writes at once (no answer yet)
        writes.down.set()  # the writer thread's own tries fail from now on: values stay pending
        writer.report("t1", 0.7, "nearly", 1)  # kept back: a fresh answer exists
        with pytest.raises(StoreError):
            with writer.pending_for("t1") as flat:
                assert flat[:3] == ["1", "0.7", '"nearly"']
                raise StoreError("the finish script failed")
        with writer.pending_for("t1") as again:  # restored for the next try
            assert again[:3] == ["1", "0.7", '"nearly"']
        with writer.pending_for("t1") as empty:  # carried by the successful change
            assert empty == []
    finally:
        writer.close()


class CountedWakes(threading.Condition):
    """A condition that counts the times the progress writer's thread wakes from it."""

    def __init__(self) -> None:
        super().__init__()
        self.writer_wakes = 0

    def wait(self, timeout: float | None = None) -> bool:
        woken = super().wait(timeout)
        if threading.current_thread().name == "ladon-tasks-redis-flush":
            self.writer_wakes += 1
        return woken


def test_a_worker_busy_with_short_bodies_does_not_wake_the_writer_thread_per_task() -> None:
    """Each start a queue worker keeps back (begin) leaves with its task's finish
    (pending_for) before the writer thread looks: the thread, asleep after a quiet
    second, is woken by the first and then looks on its timer, not once per task."""
    writes = ScriptedWrites()
    writer = ProgressWriter(writes, flush_interval=0.5)
    writer._reports = wakes = CountedWakes()
    try:
        writer.begin("t0", 1, time.time())
        with writer.pending_for("t0"):
            pass
        wait_until(lambda: writer._flusher_asleep, timeout=DEADLINE, what="the writer thread to fall asleep")
        before = wakes.writer_wakes
        for n in range(1, 201):
            writer.begin(f"t{n}", 1, time.time(), where="worker-1")
            with writer.pending_for(f"t{n}") as flat:
                assert flat[0] == "1" and flat[-1] == "worker-1"  # the start rides with the finish
            time.sleep(0.001)  # the body of the next task: the writer thread gets its turn
        assert wakes.writer_wakes - before < 50  # one per task was 200
        assert writes.calls == []  # nothing was due: every start went with its finish
    finally:
        writer.close()


def test_a_job_read_with_a_finish_wakes_no_idle_slot() -> None:
    """A finishing slot reads its next job with its finish and takes it at once: waking
    an idle slot for it costs a thread switch per task, and the woken slot finds it
    gone (or takes it, and the finishing slot reads again)."""
    import redis

    from ladon_tasks.redis.queue import Claim, RedisQueue
    from ladon_tasks.worker import QueueSource

    queue = RedisQueue(redis.Redis(host="127.0.0.1", port=1), "unit:")  # never called here
    source = QueueSource([queue], where="worker-1")
    ready, woken = threading.Event(), []

    def idle_slot() -> None:  # as a slot waits in take() while another reads
        with source._changed:
            ready.set()
            woken.append(source._changed.wait(1.0))

    waiter = threading.Thread(target=idle_slot)
    waiter.start()
    assert ready.wait(DEADLINE)
    job = Job(task_id=new_task_id(), ref=REF, args=[])
    source.hand_over(queue, [Claim(queue.stream_for(0), "1-1", job)])  # its lock: the idle slot waits by now
    ticket = source.take(0)  # the finishing slot's next
    waiter.join()
    assert ticket is not None and ticket.job is job
    assert woken == [False], "an idle slot was woken for the finishing slot's own next job"


def _ladon_encodings(response: Any) -> list[tuple[Any, Any]]:
    """(ours, Ladon's own) encoding of ``response`` for JSON-WSP (values as they are)
    and for SOAP (values as text)."""
    from ladon.types.typeconverter import TypeConverter
    from ladon.types.typemanager import TypeManager

    from ladon_tasks import wire

    TypeManager().analyze_class(type(response))  # as Ladon does for a service's return type
    pairs = []
    for as_text in (False, True):
        converter = TypeConverter(only_strings_to_unicode=not as_text)
        pairs.append((response.__dict__(converter), wire._ladon_encode(response, converter)))
    return pairs


def test_progress_responses_encode_as_ladons_own_encoder_encodes_them() -> None:
    """``_progress`` answers are encoded without Ladon's per-attribute walk: the same
    dict, key order included, for every kind of record, for JSON-WSP and SOAP alike."""
    from ladon_tasks import wire

    queued = TaskRecord(task_id=new_task_id(), service="S", method="m")
    running = TaskRecord(task_id=new_task_id(), service="S", method="m", state=TaskState.RUNNING,
                         started_at=time.time() - 2, progress=0.25, message="half-way: ünïcode", attempts=2,
                         ran_on=["host:1:a", ""], step="fetch", steps_done=3)
    failed = TaskRecord(task_id=new_task_id(), service="S", method="m", state=TaskState.FAILED,
                        started_at=time.time() - 2, finished_at=time.time(), error_type="ValueError",
                        error_message="bad", attempts=3, cancel_requested=True)
    for record, poll_after in ((queued, 1.0), (running, 0.0), (failed, 0.0)):
        for ours, ladons in _ladon_encodings(wire.progress_response(record, poll_after=poll_after)):
            assert ours == ladons and list(ours) == list(ladons)


def test_a_progress_response_ladon_would_convert_goes_through_ladons_encoder() -> None:
    """A value not of its attribute's exact type is left to Ladon: converted as Ladon
    converts it (a bool where an int is declared), or refused with Ladon's own error (an
    int where a float is declared, an attribute never set)."""
    from ladon.exceptions.types import AttributeConversionException, NeedToDefineParseTimeException

    from ladon_tasks import wire

    response = wire.progress_response(TaskRecord(task_id=new_task_id(), service="S", method="m"))
    response.attempts = True
    for ours, ladons in _ladon_encodings(response):
        assert ours == ladons and ours["attempts"] in (1, "1")
    response.progress = 1
    with pytest.raises(AttributeConversionException, match="progress"):
        _ladon_encodings(response)
    with pytest.raises(NeedToDefineParseTimeException, match="not nullable"):
        _ladon_encodings(wire.TaskProgressResponse())


def _finished_records() -> list[TaskRecord]:
    """Finished records of every end, one with text JSON writes as it is (not escaped)."""
    began = time.time() - 2
    common = dict(service="S", method="m", started_at=began, finished_at=began + 1.5, attempts=1,
                  ran_on=["host:1:a"], submitted_at=began - 0.5)
    return [
        TaskRecord(task_id=new_task_id(), state=TaskState.SUCCEEDED, progress=1.0, message="done: ünïcode ✓",
                   step="last", steps_done=2, **common),
        TaskRecord(task_id=new_task_id(), state=TaskState.FAILED, error_type="ValueError",
                   error_message='bad "input"\n', cancel_requested=True, **common),
        TaskRecord(task_id=new_task_id(), state=TaskState.CANCELLED, progress=0.5, not_before=began - 1,
                   **common),
    ]


def test_a_kept_answer_encodes_as_a_new_answer_of_its_record() -> None:
    """A finished task's answer is made once and kept: every interface's encoding of it,
    and the JSON text written once for the JSON interfaces, are those of an answer made
    anew (as Ladon's own encoder writes them: the test above)."""
    import json

    from ladon_tasks import answers, wire

    kept = answers.KeptAnswers(size=8)
    for record in _finished_records():
        first = kept.answer(record)
        assert isinstance(first, answers.KeptResponse)
        again = kept.answer(record.copy())  # a later read of the same record
        assert again is first
        for (_, ladons), (ours, _) in zip(_ladon_encodings(wire.progress_response(record)),
                                          _ladon_encodings(again.response), strict=True):
            assert ours == ladons and list(ours) == list(ladons)
        from ladon.types.typeconverter import TypeConverter
        for as_text in (False, True):
            converter = TypeConverter(only_strings_to_unicode=not as_text)
            encoded = again.__dict__(converter)
            fresh = wire.progress_response(record).__dict__(converter)
            assert encoded == fresh and list(encoded) == list(fresh)
            assert again.__dict__(converter) is encoded  # made once
            if not as_text:
                assert encoded.json == json.dumps(fresh, ensure_ascii=False).encode("utf-8")


def test_an_answer_is_kept_only_for_a_finish_and_a_new_finish_gets_a_new_one() -> None:
    from ladon_tasks import answers

    kept = answers.KeptAnswers(size=2)
    running = TaskRecord(task_id=new_task_id(), service="S", method="m", state=TaskState.RUNNING,
                         started_at=time.time(), attempts=1)
    assert not isinstance(kept.answer(running), answers.KeptResponse)  # its duration grows: made each time
    finished = _finished_records()[0]
    assert not isinstance(kept.answer(finished, poll_after=0.75), answers.KeptResponse)
    assert len(kept) == 0
    first = kept.answer(finished)
    again = finished.copy()  # finished again (a Redis that lost the finish ran it once more)
    again.attempts, again.finished_at = 2, finished.finished_at + 5
    second = kept.answer(again)
    assert second is not first and second.response.attempts == 2 and kept.answer(again) is second
    for record in _finished_records():  # bounded: the oldest go first
        kept.answer(record)
    assert len(kept) == 2 and kept.answer(again) is not second


def test_a_kept_json_answer_is_framed_in_the_bytes_ladon_writes() -> None:
    """JSON-WSP and JSON-RPC answers with a kept result: the frame Ladon writes around a
    stand-in, the kept JSON text in its place - byte for byte Ladon's answer, with a
    mirror or an id echoed, in any spelling of UTF-8; other charsets are left to Ladon."""
    import json

    import ladon_tasks  # noqa: F401 - its mends of Ladon's answer writers
    from ladon.interfaces.jsonrpc10 import JSONRPCResponseHandler
    from ladon.interfaces.jsonwsp import JSONWSPResponseHandler
    from ladon.types.typeconverter import TypeConverter
    from ladon.types.typemanager import TypeManager

    from ladon_tasks import answers, wire

    TypeManager().analyze_class(wire.TaskProgressResponse)  # as Ladon does for a service's return type
    converter = TypeConverter(only_strings_to_unicode=True)
    for record in _finished_records():
        result = answers.KeptResponse(record).__dict__(converter)
        assert isinstance(result, answers.JsonAnswer)
        for handler in (JSONWSPResponseHandler(), JSONRPCResponseHandler()):
            for extra in ({}, {"reflection": {"result": 0, "x": ["é", '"result": 0']}}, {"id": "7"}, {"id": 1},
                          {"id": True}, {"id": 1.0}):  # equal keys, written apart
                for encoding in ("utf-8", "UTF-8", "utf8", "latin-1"):
                    res_dict = {"servicename": "S", "servicenumber": 1, "method": "m_progress", "result": result,
                                **extra}
                    ladons = handler.build_response(dict(res_dict, result=dict(result)), None, encoding)
                    framed = answers.framed(lambda frame, charset, writer=handler: writer.build_response(
                        frame, None, charset), res_dict, encoding)
                    assert framed == (None if encoding == "latin-1" else ladons)
                    for _ in range(2):  # its frame written the first time, then kept
                        assert answers.framed(lambda frame, charset, writer=handler: writer.build_response(
                            frame, None, charset), res_dict, encoding, type(handler).__name__) == framed
                    assert handler.build_response(res_dict, None, encoding) == ladons  # as served
                    assert json.loads(ladons.decode(encoding))["result"] == result


# -- principals: what a hook may answer ----------------------------------------------------------


def test_a_principal_hook_names_the_caller_or_refuses_the_call() -> None:
    from ladon_tasks import faults
    from ladon_tasks.principals import Principals, resolve

    def strict(environ: Any) -> str:
        if "HTTP_X_TICKET" not in environ:
            raise faults.Unauthenticated("no ticket")
        return environ["HTTP_X_TICKET"]

    assert Principals(strict).of_request({"HTTP_X_TICKET": "alice"}) == "alice"
    with pytest.raises(faults.Unauthenticated):
        Principals(strict).of_request({})
    default, described = resolve(None)
    assert described == "REMOTE_USER" and Principals(default).of_request({"REMOTE_USER": "bob"}) == "bob"
    assert Principals(default).of_request({"HTTP_REMOTE_USER": "mallory"}) == "", "a header cannot name a caller"
    with pytest.raises(faults.Unauthenticated):
        Principals(default, required=True).of_request({})
    with pytest.raises(faults.InvalidArgument):
        Principals(default).of_request({"REMOTE_USER": "x" * 257})
    for wrong in ("no such hook", "no_such_module:caller", 42):
        with pytest.raises(ValueError):
            resolve(wrong)  # type: ignore[arg-type]


# -- stop signals ----------------------------------------------------------------------------


def test_a_stop_signal_inside_the_stop_handler_is_taken_once_and_never_waits() -> None:
    """The second of two stop signals can land while the first one's handler holds a
    lock (a parent forwarding its copy of a group kill). The handler must not run again
    there: it would wait for a lock its own thread holds, forever."""
    import os
    import signal

    from ladon_tasks.stop_signals import stop_on_signals

    before = {signum: signal.getsignal(signum) for signum in (signal.SIGTERM, signal.SIGINT)}
    held = threading.Lock()
    calls: list[int] = []

    def on_stop(signum: int) -> None:
        calls.append(signum)
        with held:  # what Event.set does: a lock taken in the handler
            os.kill(os.getpid(), signal.SIGINT)  # a signal to this thread: handled here, at once

    try:
        stop_on_signals(on_stop)
        os.kill(os.getpid(), signal.SIGTERM)  # handled before os.kill returns to this code
    finally:
        for signum, handler in before.items():
            signal.signal(signum, handler)
    assert calls == [signal.SIGTERM]


# -- finish notifier: waiters woken by Redis messages -----------------------------------------

#: Longer than any wait here: a waiter that returns sooner was woken by a message, not by
#: its own periodic re-read.
NO_RECHECK = 120.0


class FinishBoard:
    """The records a notifier reads (what the store's read would return), each read
    counted, and the finish messages as the store's scripts publish them."""

    def __init__(self, client: Any, channel: str) -> None:
        self.client = client
        self.channel = channel
        self.records: dict[str, TaskRecord] = {}
        self.reads: dict[str, int] = {}
        self._lock = threading.Lock()

    def read(self, task_id: str) -> TaskRecord | None:
        with self._lock:
            self.reads[task_id] = self.reads.get(task_id, 0) + 1
            record = self.records.get(task_id)
        return None if record is None else record.copy()

    def reads_of(self, task_id: str) -> int:
        with self._lock:
            return self.reads.get(task_id, 0)

    def running(self) -> str:
        record = TaskRecord(task_id=new_task_id(), service=REF.service, method=REF.method,
                            state=TaskState.RUNNING, submitted_at=time.time())
        self.records[record.task_id] = record
        return record.task_id

    def finish(self, task_id: str) -> TaskRecord:
        """The record finished (not published: :meth:`publish` says it)."""
        record = self.records[task_id].copy()
        record.state, record.result, record.progress, record.finished_at = TaskState.SUCCEEDED, 7, 1.0, time.time()
        self.records[task_id] = record
        return record

    def publish(self, task_id: str, with_record: bool = True) -> None:
        import json

        document = json.dumps(self.records[task_id].to_json()) if with_record else ""
        self.client.publish(self.channel, f"{task_id}\n{document}" if document else task_id)


class Waiter:
    """``notifier.wait(task_id, timeout)`` in a thread of its own."""

    def __init__(self, notifier: Any, task_id: str, timeout: float = NO_RECHECK / 2) -> None:
        self.answer: list[TaskRecord | None] = []
        self.thread = threading.Thread(target=lambda: self.answer.append(notifier.wait(task_id, timeout)),
                                       daemon=True)
        self.thread.start()

    def result(self, within: float = DEADLINE) -> TaskRecord | None:
        self.thread.join(within)
        assert not self.thread.is_alive(), f"the waiter was not woken within {within}s"
        return self.answer[0]


@pytest.fixture
def finish_board(redis_server: Any, request: pytest.FixtureRequest) -> Any:
    from ladon_tasks.redis.notifier import FinishNotifier

    client = redis_server.client()
    board = FinishBoard(client, f"unit-{request.node.name}:finished")
    notifier = FinishNotifier(client, board.channel, f"127.0.0.1:{redis_server.port}", board.read,
                              wait_recheck=NO_RECHECK)
    yield board, notifier
    notifier.close()
    client.close()


def waiting(board: FinishBoard, notifier: Any, task_id: str) -> Waiter:
    """A waiter on ``task_id`` past its first read, the notifier subscribed."""
    waiter = Waiter(notifier, task_id)
    wait_until(lambda: board.reads_of(task_id) >= 1 and board.client.pubsub_numsub(board.channel)[0][1] >= 1,
               timeout=DEADLINE, what="the waiter's first read and the subscription")
    return waiter


def test_a_finish_message_wakes_its_waiter_and_no_other(finish_board: Any) -> None:
    board, notifier = finish_board
    task, other = board.running(), board.running()
    waiter, bystander = waiting(board, notifier, task), waiting(board, notifier, other)
    board.finish(task)
    board.publish(task, with_record=False)  # a record too large to publish: the waiter reads it
    record = waiter.result()
    assert record is not None and record.state is TaskState.SUCCEEDED and record.result == 7
    assert board.reads_of(task) == 2  # the first read, and the one the message asked for
    assert bystander.thread.is_alive() and board.reads_of(other) == 1  # another's finish costs it nothing
    board.finish(other)
    board.publish(other)
    assert bystander.result() is not None


def test_a_finish_message_with_its_record_answers_this_and_later_waits_without_a_read(finish_board: Any) -> None:
    board, notifier = finish_board
    task = board.running()
    waiter = waiting(board, notifier, task)
    board.finish(task)
    board.publish(task)
    record = waiter.result()
    assert record is not None and record.state is TaskState.SUCCEEDED
    again = notifier.wait(task, 5.0)  # finished records are kept: no read, no wait
    assert again is not None and again.state is TaskState.SUCCEEDED
    assert board.reads_of(task) == 1  # only the waiter's first read, before the message


def test_a_purge_message_lets_its_waiters_go_with_no_record(finish_board: Any) -> None:
    board, notifier = finish_board
    task = board.running()
    waiter = waiting(board, notifier, task)
    del board.records[task]
    board.client.publish(board.channel, f"-{task}")
    assert waiter.result() is None


def test_after_redis_was_away_waiters_read_again_and_kept_records_are_dropped(finish_board: Any,
                                                                              redis_server: Any) -> None:
    """A finish published while the subscription was down is missed; and Redis may have
    lost finishes (a restart, a failover) that put a task back where it was. So once the
    notifier is subscribed again, every waiter reads its record again, and no finished
    record kept from before is trusted."""
    board, notifier = finish_board
    kept = board.running()
    board.finish(kept)
    notifier.remember(board.records[kept], 100)  # starts the subscription, which empties the cache once
    wait_until(notifier._subscribed.is_set, timeout=DEADLINE, what="the notifier's subscription")
    notifier.remember(board.records[kept], 100)
    assert notifier.cached(kept) is not None
    task = board.running()
    waiter = waiting(board, notifier, task)
    redis_server.stop()
    try:
        board.finish(task)  # its message is lost: nobody could publish it
    finally:
        redis_server.start()
    record = waiter.result(within=2 * DEADLINE)  # once subscribed again, far sooner than NO_RECHECK
    assert record is not None and record.state is TaskState.SUCCEEDED
    assert notifier.cached(kept) is None


# -- the import graph ------------------------------------------------------------------------


def _imports(module: str, path: pathlib.Path, modules: set[str]) -> set[str]:
    """The package's modules ``module`` imports: at its top, inside its functions, and
    under ``if TYPE_CHECKING`` too - an import only the type checker runs is still a
    module this one names and depends on, so a cycle of them is a cycle of the design.
    ``from a import b`` is module ``a.b`` when there is one, else ``a``; and a package's
    ``__init__`` is run by an import of any of its modules from outside it."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                name = alias.name
                while name and name not in modules:
                    name = name.rpartition(".")[0]
                found.add(name)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package
                for _ in range(node.level - 1):
                    anchor = anchor.rpartition(".")[0]
                base = f"{anchor}.{base}" if base else anchor
            for alias in node.names:
                found.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base)
    # importing a.b.c from outside package a.b runs a/b/__init__.py (and a's) first
    found |= {package for name in found for package in _packages_of(name) if not module.startswith(package + ".")}
    return {name for name in found if name in modules and name != module}


def _packages_of(module: str) -> list[str]:
    parts = module.split(".")
    return [".".join(parts[:end]) for end in range(1, len(parts))]


def _import_graph() -> dict[str, set[str]]:
    """Every module of the package -> the package's modules it imports (:func:`_imports`)."""
    root = pathlib.Path(ladon_tasks.__file__).parent
    paths = {".".join(("ladon_tasks", *path.relative_to(root).with_suffix("").parts)).removesuffix(".__init__"): path
             for path in root.rglob("*.py")}
    return {module: _imports(module, path, set(paths)) for module, path in paths.items()}


def test_the_package_has_no_import_cycle():
    """Calls flow one way: no module of the package imports, at its top, inside a
    function or for type checking only, one that imports it back - however many modules
    lie between."""
    graph = _import_graph()
    cycles: list[list[str]] = []
    done: set[str] = set()

    def visit(module: str, trail: list[str]) -> None:
        if module in trail:
            cycles.append(trail[trail.index(module):] + [module])
            return
        if module in done:
            return
        for imported in sorted(graph[module]):
            visit(imported, trail + [module])
        done.add(module)

    for module in sorted(graph):
        visit(module, [])
    assert len(graph) > 50 and graph["ladon_tasks.redis.store"], "the walk found the package's imports"
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(cycle) for cycle in cycles)


def test_only_the_redis_backend_knows_its_keys():
    """The key layout (redis/keys.py) is the Redis backend's own: the contract speaks of
    jobs by queue, priority and payload, and no module outside redis/ builds a key."""
    graph = _import_graph()
    outside = sorted(module for module, imported in graph.items()
                     if "ladon_tasks.redis.keys" in imported and not module.startswith("ladon_tasks.redis."))
    assert graph["ladon_tasks.redis.store"] >= {"ladon_tasks.redis.keys"}, "the walk sees who uses the layout"
    assert not outside, f"modules outside redis/ that know its keys: {outside}"


def test_the_package_opens_redis_stores_through_the_backends_front_door():
    """Outside redis/, a Redis store is opened through ``ladon_tasks.redis`` (open_store
    and the bounds it takes), never by reaching for the modules behind it."""
    behind = {"ladon_tasks.redis.opening", "ladon_tasks.redis.store", "ladon_tasks.redis.sharded"}
    graph = _import_graph()
    reaching = sorted(module for module, imported in graph.items()
                      if imported & behind and not module.startswith("ladon_tasks.redis"))
    assert "ladon_tasks.redis" in graph["ladon_tasks.deployment"], "the walk sees who opens stores"
    assert not reaching, f"modules opening Redis stores behind the front door: {reaching}"


# -- poll_after learned from run times ---------------------------------------------------------


def test_poll_after_learned_from_run_times_is_at_most_its_cap_and_needs_enough_of_them() -> None:
    """A method's running task is told to ask again when it will have run as long as the
    method's short runs (its 1 % quantile), at most ``POLL_AFTER_LEARNED_MAX`` ahead;
    0.75 s with fewer than ``RUN_TIMES_MIN`` run times known, for a queued task, and
    once it has run that long. Ends noted once each, when first answered."""
    from ladon_tasks import defaults
    from ladon_tasks.answers import KeptAnswers
    from ladon_tasks.waits import WaitBudget

    budget, now = WaitBudget(0), time.time()
    kept = KeptAnswers()
    method = f"long{new_task_id()}"

    def running(started: float) -> TaskRecord:
        return TaskRecord(task_id=new_task_id(), service="Units", method=method, state=TaskState.RUNNING,
                          started_at=started, attempts=1)

    def ended(seconds: float) -> TaskRecord:
        return TaskRecord(task_id=new_task_id(), service="Units", method=method, state=TaskState.SUCCEEDED,
                          started_at=now - seconds - 1, finished_at=now - 1, attempts=1)

    for _ in range(defaults.RUN_TIMES_MIN - 1):
        record = ended(60.0)
        kept.answer(record)
        kept.answer(record)  # the same end again: not noted twice
    assert budget.advice(running(now - 1.0), now) == defaults.POLL_AFTER  # too few known
    kept.answer(ended(60.0))
    assert budget.advice(running(now - 1.0), now) == defaults.POLL_AFTER_LEARNED_MAX
    assert budget.advice(running(now - 58.0), now) == pytest.approx(2.0)
    assert budget.advice(running(now - 59.5), now) == defaults.POLL_AFTER
    queued = TaskRecord(task_id=new_task_id(), service="Units", method=method, state=TaskState.QUEUED)
    assert budget.advice(queued, now) == defaults.POLL_AFTER
