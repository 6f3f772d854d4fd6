"""One set of store tests, run against every backend: ``MemoryStore``, ``RedisStore``
(on a real redis-server) and ``ShardedRedisStore`` (on a real Redis Cluster of three
primaries). What a backend promises is in ``ladon_tasks/stores/base.py``;
the tests at the end check what only Redis promises (JSON only, prefixed keys, TTLs,
cheap progress, surviving a Redis outage)."""

from __future__ import annotations

import json
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
import redis

from ladon_tasks.executors.settle import settle
from ladon_tasks.jobs import Job, Outcome
from ladon_tasks.model import TRANSITIONS, TaskRecord, TaskState, new_task_id
from ladon_tasks.spec import MethodRef
from ladon_tasks.steps import StepRecord
from ladon_tasks.stores.base import StoreError, StoreFull, TaskStore
from ladon_tasks.stores.memory import MemoryStore
from ladon_tasks.redis import ShardedRedisStore
from ladon_tasks.redis import RedisStore
from support.redis_cluster import RedisClusterProcesses
from support.redis_server import RedisServer, start_redis
from support.servers import wait_until

# Run on every supported interpreter: the Redis path is where versions differ most.
pytestmark = pytest.mark.smoke

QUEUED, RUNNING = TaskState.QUEUED, TaskState.RUNNING
SUCCEEDED, FAILED, CANCELLED = TaskState.SUCCEEDED, TaskState.FAILED, TaskState.CANCELLED


# -- backends --------------------------------------------------------------------------


@dataclass
class Backend:
    """A store under test, and a way to open another handle on the same records - what
    another process sees (for memory, the same store: it has no other processes)."""

    name: str
    store: TaskStore
    peer: Callable[[], TaskStore]
    server: RedisServer | None = None
    prefix: str = ""
    opened: list[TaskStore] = field(default_factory=list)


def _shared_backend(name: str, open_on: Callable[[str], TaskStore], server: RedisServer | None = None,
                    ) -> Iterator[Backend]:
    """Stores over one Redis deployment under a fresh prefix; ``open_on(prefix)`` opens one."""
    prefix = f"test-{uuid.uuid4().hex[:8]}:"
    opened: list[TaskStore] = []

    def open_store() -> TaskStore:
        store = open_on(prefix)
        opened.append(store)
        return store

    yield Backend(name, open_store(), open_store, server, prefix, opened)
    for store in opened:
        store.close()


def _redis_backend(server: RedisServer) -> Iterator[Backend]:
    with server.client() as client:
        client.flushall()
    # a long recheck, so a prompt wake-up can only come from the finish notification
    yield from _shared_backend("redis", lambda prefix: RedisStore(server.url, prefix=prefix, wait_recheck=5.0),
                               server)


def _cluster_backend(cluster: RedisClusterProcesses) -> Iterator[Backend]:
    """The same tests on a 3-primary Redis Cluster, the records spread over its shards."""
    cluster.flushall()
    yield from _shared_backend("cluster",
                               lambda prefix: ShardedRedisStore(cluster.url, prefix=prefix, wait_recheck=5.0))


@pytest.fixture(params=["memory", "redis", "cluster"])
def backend(request: pytest.FixtureRequest) -> Iterator[Backend]:
    if request.param == "memory":
        store = MemoryStore()
        yield Backend("memory", store, lambda: store)
    elif request.param == "cluster":
        yield from _cluster_backend(request.getfixturevalue("redis_cluster"))
    else:
        yield from _redis_backend(request.getfixturevalue("redis_server"))


@pytest.fixture
def redis_backend(redis_server: RedisServer) -> Iterator[Backend]:
    yield from _redis_backend(redis_server)


@pytest.fixture
def store(backend: Backend) -> TaskStore:
    return backend.store


def new_record(method: str = "work", **fields: Any) -> TaskRecord:
    return TaskRecord(task_id=new_task_id(), service="ExampleService", method=method, **fields)


def record_in(store: TaskStore, state: TaskState, **fields: Any) -> TaskRecord:
    """A stored record brought to ``state`` by legal moves only."""
    record = store.create(new_record(**fields))
    if state is QUEUED:
        return record
    if state is CANCELLED:
        return store.request_cancel(record.task_id)
    record = store.transition(record.task_id, RUNNING)
    if state is RUNNING:
        return record
    return store.transition(record.task_id, state, finished_at=time.time())


def race(count: int, action: Callable[[int], Any]) -> list[Any]:
    """Run ``action(i)`` in ``count`` threads released together; their answers in order."""
    barrier = threading.Barrier(count)
    results: list[Any] = [None] * count

    def run(index: int) -> None:
        barrier.wait()
        results[index] = action(index)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


# -- records ---------------------------------------------------------------------------


def test_created_record_reads_back_whole(store: TaskStore) -> None:
    record = new_record(
        args=[["a", "ü"], {"k": [1, 2.5, None]}, 2**70, []],
        max_attempts=3, priority=200, tags=["nightly", "report"],
        idempotency_key="", result_ttl=120.0,
    )
    created = store.create(record)
    assert created.submitted_at > 0, "the store stamps the submission time"
    assert store.get(record.task_id) == created


def test_unknown_task_is_none_everywhere(store: TaskStore) -> None:
    unknown = new_task_id()
    assert store.get(unknown) is None
    assert store.transition(unknown, RUNNING) is None
    assert store.report(unknown, 0.5) is False
    assert store.request_cancel(unknown) is None
    started = time.monotonic()
    assert store.wait(unknown, 5.0) is None
    assert time.monotonic() - started < 2.0, "waiting on an unknown task returns at once"


@pytest.mark.parametrize(
    "current,target",
    [(c, t) for c in TaskState for t in TaskState],
    ids=lambda s: s.value,
)
def test_transitions_follow_the_state_machine(store: TaskStore, current: TaskState, target: TaskState) -> None:
    record = record_in(store, current)
    moved = store.transition(record.task_id, target, finished_at=time.time())
    if target in TRANSITIONS[current]:
        assert moved is not None and moved.state is target
        assert store.get(record.task_id).state is target
    else:
        assert moved is None
        assert store.get(record.task_id).state is current, "a refused move changes nothing"


def test_running_counts_attempts_and_retry_goes_back_to_queued(store: TaskStore) -> None:
    record = store.create(new_record(max_attempts=3))
    first = store.transition(record.task_id, RUNNING)
    assert (first.attempts, first.state, first.finished_at) == (1, RUNNING, 0.0)
    assert first.started_at > 0
    retry = store.transition(record.task_id, QUEUED, attempt=1, error_type="ValueError", message="retry 2/3")
    assert (retry.state, retry.attempts, retry.error_type) == (QUEUED, 1, "ValueError")
    second = store.transition(record.task_id, RUNNING)
    assert second.attempts == 2 and second.started_at >= first.started_at
    done = store.transition(record.task_id, SUCCEEDED, attempt=2, result=42)
    assert (done.state, done.attempts, done.result) == (SUCCEEDED, 2, 42)
    assert done.finished_at >= done.started_at, "a finish without a time is stamped by the store"


def test_stale_attempt_cannot_overwrite_newer_one(store: TaskStore) -> None:
    record = record_in(store, RUNNING, max_attempts=2)
    store.transition(record.task_id, QUEUED, attempt=1)
    store.transition(record.task_id, RUNNING)
    # the first attempt's late answer arrives
    assert store.transition(record.task_id, SUCCEEDED, attempt=1, result="stale") is None
    assert store.report(record.task_id, 0.9, "stale", attempt=1) is False
    current = store.get(record.task_id)
    assert (current.state, current.attempts, current.result) == (RUNNING, 2, None)
    assert current.message != "stale"
    assert store.transition(record.task_id, SUCCEEDED, attempt=2, result="fresh").result == "fresh"


@pytest.mark.parametrize("value", [0, 0.0, "", False, [], {}, None], ids=repr)
def test_falsy_results_survive(store: TaskStore, value: Any) -> None:
    record = record_in(store, RUNNING)
    store.transition(record.task_id, SUCCEEDED, attempt=1, result=value)
    result = store.get(record.task_id).result
    assert result == value and type(result) is type(value)


def test_finished_records_expire_after_result_ttl(store: TaskStore) -> None:
    # the short-lived record made last, with seconds to spare: a busy machine's pause
    # between its create and the reads below must not outlast it
    kept = record_in(store, SUCCEEDED, result_ttl=600.0)
    waiting = record_in(store, QUEUED, result_ttl=0.3)
    short = record_in(store, SUCCEEDED, result_ttl=2.0)
    assert store.get(short.task_id) is not None, "readable (repeatedly) until it expires"
    assert store.get(short.task_id) is not None
    wait_until(lambda: store.get(short.task_id) is None, timeout=30, what="the record to expire")
    listed = {r.task_id for r in store.list_tasks()}
    assert short.task_id not in listed
    assert {kept.task_id, waiting.task_id} <= listed
    assert store.get(waiting.task_id).state is QUEUED, "unfinished records do not expire"


def test_memory_store_evicts_oldest_finished_beyond_capacity() -> None:
    store = MemoryStore(capacity=2)
    waiting = record_in(store, QUEUED)
    finished = [record_in(store, SUCCEEDED) for _ in range(3)]
    assert store.get(finished[0].task_id) is None
    assert all(store.get(r.task_id) is not None for r in finished[1:])
    assert store.get(waiting.task_id) is not None, "queued and running records are never evicted"


def test_idempotency_key_returns_the_existing_task(store: TaskStore) -> None:
    first = store.create(new_record(idempotency_key="order-17", args=[1]))
    again = store.create(new_record(idempotency_key="order-17", args=[2]))
    assert again.task_id == first.task_id and again.args == [1]
    assert len(store.list_tasks()) == 1
    other_method = store.create(new_record(method="other", idempotency_key="order-17"))
    assert other_method.task_id != first.task_id, "keys are per service and method"


def test_idempotency_keys_are_per_principal(store: TaskStore) -> None:
    def keyed(principal: str, args: Any) -> TaskRecord:
        task_id = store.new_task_id("ExampleService", "work", "order-9", principal)
        return TaskRecord(task_id=task_id, service="ExampleService", method="work", args=args,
                          idempotency_key="order-9", principal=principal)

    alices = store.create(keyed("alice", [1]))
    bobs = store.create(keyed("bob", [2]))
    nobodys = store.create(keyed("", [3]))
    assert len({alices.task_id, bobs.task_id, nobodys.task_id}) == 3, "one key, three callers: three tasks"
    assert (bobs.principal, bobs.args) == ("bob", [2])
    assert store.create(keyed("alice", [4])).task_id == alices.task_id
    assert store.create(keyed("", [5])).task_id == nobodys.task_id
    store.request_cancel(bobs.task_id)
    assert store.purge([CANCELLED]) == 1
    again = store.create(keyed("bob", [6]))
    assert again.task_id not in (bobs.task_id, alices.task_id), "a purge frees the key of its own caller"
    assert store.create(keyed("alice", [7])).task_id == alices.task_id, "and only that one"


def test_listing_filters_by_principal(store: TaskStore) -> None:
    alices = [record_in(store, state, principal="alice") for state in (QUEUED, SUCCEEDED)]
    bobs = record_in(store, QUEUED, principal="bob")
    nobodys = record_in(store, FAILED)
    assert {r.task_id for r in store.list_tasks(principal="alice")} == {r.task_id for r in alices}
    assert [r.task_id for r in store.list_tasks(principal="alice", states=[SUCCEEDED])] == [alices[1].task_id]
    assert [r.task_id for r in store.list_tasks(principal="bob")] == [bobs.task_id]
    assert [r.task_id for r in store.list_tasks(principal="")] == [nobodys.task_id]
    assert len(store.list_tasks()) == 4, "no principal asked: every task (operators)"
    assert store.get(bobs.task_id).principal == "bob"


def test_idempotency_key_is_free_again_once_the_task_expired(store: TaskStore) -> None:
    first = record_in(store, SUCCEEDED, idempotency_key="nightly", result_ttl=0.2)
    wait_until(lambda: store.get(first.task_id) is None, timeout=10, what="the record to expire")
    second = store.create(new_record(idempotency_key="nightly"))
    assert second.task_id != first.task_id and store.get(second.task_id) is not None


# -- cancel and report -----------------------------------------------------------------


def test_cancel_of_queued_task_is_immediate(store: TaskStore) -> None:
    record = record_in(store, QUEUED)
    cancelled = store.request_cancel(record.task_id)
    assert (cancelled.state, cancelled.cancel_requested) == (CANCELLED, True)
    assert cancelled.finished_at > 0
    assert store.transition(record.task_id, RUNNING) is None, "a cancelled task never starts"
    assert store.wait(record.task_id, 5.0).state is CANCELLED


def test_cancel_of_running_task_asks_the_body_to_stop(backend: Backend) -> None:
    store, other_process = backend.store, backend.peer()
    record = record_in(store, RUNNING)
    assert store.report(record.task_id, 0.1, "working", attempt=1) is True
    flagged = other_process.request_cancel(record.task_id)
    assert (flagged.state, flagged.cancel_requested) == (RUNNING, True), "a body stops cooperatively"
    wait_until(lambda: store.report(record.task_id, 0.2, attempt=1) is False, timeout=5, what="report to say stop")


def test_cancel_of_finished_task_changes_nothing(store: TaskStore) -> None:
    record = record_in(store, SUCCEEDED)
    after = store.request_cancel(record.task_id)
    assert (after.state, after.cancel_requested) == (SUCCEEDED, False)


def test_report_is_false_unless_the_attempt_runs(store: TaskStore) -> None:
    assert store.report(record_in(store, QUEUED).task_id, 0.5) is False
    finished = record_in(store, RUNNING)
    store.transition(finished.task_id, FAILED, attempt=1)
    assert store.report(finished.task_id, 0.5, attempt=1) is False


def test_reported_progress_becomes_visible(backend: Backend) -> None:
    store, reader = backend.store, backend.peer()
    record = record_in(store, RUNNING)
    assert store.report(record.task_id, 0.25, "a quarter", attempt=1) is True
    assert store.report(record.task_id, 0.5, attempt=1) is True
    assert store.report(record.task_id, None, "half", attempt=1) is True

    def seen() -> bool:
        current = reader.get(record.task_id)
        return (current.progress, current.message) == (0.5, "half")

    wait_until(seen, timeout=5, what="progress to reach another reader")


def test_last_progress_of_a_tight_loop_is_never_lost(store: TaskStore) -> None:
    record = record_in(store, RUNNING)
    for i in range(1, 10_001):
        store.report(record.task_id, i / 10_000 * 0.9, f"step {i}", attempt=1)
    failed = store.transition(record.task_id, FAILED, attempt=1, error_type="RuntimeError")
    assert (failed.progress, failed.message) == (0.9, "step 10000")
    assert store.get(record.task_id).progress == 0.9, "a failed task keeps its real progress"


def test_progress_never_overwrites_a_result(backend: Backend) -> None:
    """Two threads: one reporting as fast as it can, one finishing the task. Whatever the
    interleaving, the finished record keeps its state and result."""
    store = backend.store
    for _ in range(5):
        record = record_in(store, RUNNING)
        stop = threading.Event()

        def hammer(record: TaskRecord = record, stop: threading.Event = stop) -> None:
            i = 0
            while not stop.is_set() and store.report(record.task_id, 0.5, f"tick {i}", attempt=1):
                i += 1

        reporter = threading.Thread(target=hammer)
        reporter.start()
        wait_until(
            lambda record=record: store.get(record.task_id).message.startswith("tick"), timeout=5, what="progress"
        )
        store.transition(record.task_id, SUCCEEDED, attempt=1, result="done", progress=1.0, message="finished")
        stop.set()
        reporter.join()
        final = backend.peer().get(record.task_id)
        assert (final.state, final.result, final.progress, final.message) == (SUCCEEDED, "done", 1.0, "finished")


# -- wait ------------------------------------------------------------------------------


def test_wait_returns_promptly_when_another_thread_finishes(backend: Backend) -> None:
    store, finisher = backend.store, backend.peer()
    record = record_in(store, RUNNING)
    finished_at: list[float] = []

    def finish() -> None:
        finished_at.append(time.monotonic())
        finisher.transition(record.task_id, SUCCEEDED, attempt=1, result=7)

    timer = threading.Timer(0.2, finish)
    timer.start()
    try:
        result = store.wait(record.task_id, 10.0)
    finally:
        timer.join()
    returned = time.monotonic()
    assert (result.state, result.result) == (SUCCEEDED, 7)
    assert returned - finished_at[0] < 1.0, "woken by the finish, not by a periodic re-check"


def test_wait_gives_up_after_the_timeout(store: TaskStore) -> None:
    record = record_in(store, RUNNING)
    started = time.monotonic()
    result = store.wait(record.task_id, 0.3)
    elapsed = time.monotonic() - started
    assert result.state is RUNNING
    assert 0.29 <= elapsed < 3.0


def test_wait_on_finished_task_returns_at_once(store: TaskStore) -> None:
    record = record_in(store, FAILED)
    started = time.monotonic()
    assert store.wait(record.task_id, 10.0).state is FAILED
    assert time.monotonic() - started < 2.0


# -- list ------------------------------------------------------------------------------


def test_list_is_newest_first_with_filters_and_paging(store: TaskStore) -> None:
    base = time.time()
    plan = [
        ("a", QUEUED),
        ("b", RUNNING),
        ("a", SUCCEEDED),
        ("b", FAILED),
        ("a", RUNNING),
        ("b", CANCELLED),
        ("a", QUEUED),
    ]
    records = []
    for i, (method, state) in enumerate(plan):
        record = store.create(new_record(method=method, submitted_at=base + i))
        records.append(record)
        if state is CANCELLED:
            store.request_cancel(record.task_id)
        elif state is not QUEUED:
            store.transition(record.task_id, RUNNING)
            if state is not RUNNING:
                store.transition(record.task_id, state, attempt=1)
    newest_first = [r.task_id for r in reversed(records)]
    expected_states = {r.task_id: s for r, (_, s) in zip(records, plan, strict=True)}
    expected_methods = {r.task_id: m for r, (m, _) in zip(records, plan, strict=True)}

    def ids(**query: Any) -> list[str]:
        return [r.task_id for r in store.list_tasks(**query)]

    assert ids() == newest_first
    assert ids(states=[RUNNING]) == [t for t in newest_first if expected_states[t] is RUNNING]
    finished = {SUCCEEDED, FAILED, CANCELLED}
    assert ids(states=finished) == [t for t in newest_first if expected_states[t] in finished]
    assert ids(method="b") == [t for t in newest_first if expected_methods[t] == "b"]
    assert ids(method="a", states=[QUEUED, SUCCEEDED]) == [
        t for t in newest_first if expected_methods[t] == "a" and expected_states[t] in (QUEUED, SUCCEEDED)
    ]
    assert ids(method="nobody") == []
    pages = [ids(limit=3, offset=offset) for offset in (0, 3, 6)]
    assert [t for page in pages for t in page] == newest_first
    assert [len(page) for page in pages] == [3, 3, 1]
    assert ids(states=[QUEUED, RUNNING], limit=2, offset=1) == [
        t for t in newest_first if expected_states[t] in (QUEUED, RUNNING)
    ][1:3]
    assert ids(offset=50) == []
    listed = store.list_tasks(states=[SUCCEEDED])[0]
    assert listed == store.get(listed.task_id), "listed records are whole records"


# -- counts, where attempts ran, filters, purge ------------------------------------------


def _states_listed(store: TaskStore, method: str) -> dict[str, int]:
    found = {state.value: 0 for state in TaskState}
    for record in store.list_tasks(method=method, limit=1000):
        found[record.state.value] += 1
    return found


def test_counts_follow_every_kind_of_move_exactly(backend: Backend) -> None:
    store, other = backend.store, backend.peer()
    method = f"counted{uuid.uuid4().hex[:6]}"
    done = record_in(store, SUCCEEDED, method=method)
    record_in(store, FAILED, method=method)
    record_in(store, CANCELLED, method=method)          # cancelled while queued: never ran
    running = record_in(store, RUNNING, method=method, max_attempts=3)
    record_in(store, QUEUED, method=method)
    retried = record_in(store, RUNNING, method=method, max_attempts=2)
    store.transition(retried.task_id, QUEUED, attempt=1, error_type="ValueError", error_message="x")
    lost = record_in(store, RUNNING, method=method)
    other.transition(lost.task_id, QUEUED, attempt=1, message="reissued: its worker died")
    stopped = record_in(store, RUNNING, method=method)
    other.request_cancel(stopped.task_id)
    other.transition(stopped.task_id, CANCELLED, attempt=1, finished_at=time.time())
    store.create(new_record(method=method, idempotency_key="same"))
    store.create(new_record(method=method, idempotency_key="same"))  # the same task: not counted again
    assert store.transition(done.task_id, FAILED, attempt=1) is None  # refused: nothing changes

    numbers = other.counts().methods[method]
    listed = _states_listed(store, method)
    assert numbers.by_state() == listed == {
        "queued": 4, "running": 1, "succeeded": 1, "failed": 1, "cancelled": 2}
    assert (numbers.submitted, numbers.retried, numbers.reissued) == (9, 1, 1)
    assert numbers.never_ran == {"cancelled": 1}
    assert sum(numbers.buckets["cancelled"]) == 1 and numbers.seconds["succeeded"] >= 0
    assert other.counts().by_state([method]) == listed
    assert store.transition(running.task_id, SUCCEEDED, attempt=1) is not None
    assert other.counts().methods[method].by_state()["running"] == 0


def test_a_start_records_where_its_attempt_runs(store: TaskStore) -> None:
    record = store.create(new_record(max_attempts=2))
    first = store.transition(record.task_id, RUNNING, where="host-a:11:aa")
    assert first.ran_on == ["host-a:11:aa"] and first.worker == "host-a:11:aa"
    store.transition(record.task_id, QUEUED, attempt=1, error_type="E")
    second = store.transition(record.task_id, RUNNING, where="host-b:22:bb")
    assert second.ran_on == ["host-a:11:aa", "host-b:22:bb"]
    done = store.transition(record.task_id, SUCCEEDED, attempt=2, result=1)
    assert store.get(done.task_id).ran_on == ["host-a:11:aa", "host-b:22:bb"]


def test_an_unrecorded_attempt_records_where_it_ran_with_its_outcome(redis_backend: Backend) -> None:
    store = redis_backend.store
    short = store.create(new_record())
    store.begin(short.task_id, 1, time.time(), where="worker-1:5:ab")
    assert store.transition(short.task_id, SUCCEEDED, attempt=1, result=1).ran_on == ["worker-1:5:ab"]
    lost = store.create(new_record())  # its worker died before writing anything; the reaper knows who held it
    moved = redis_backend.peer().transition(lost.task_id, QUEUED, attempt=1, where="worker-2:6:cd", message="x")
    assert moved.ran_on == ["worker-2:6:cd"] and moved.attempts == 1
    assert redis_backend.peer().counts().methods["work"].reissued == 1


def test_listing_filters_by_tag_and_task_id_prefix(store: TaskStore) -> None:
    nightly = record_in(store, SUCCEEDED, tags=["nightly", "report"])
    adhoc = record_in(store, QUEUED, tags=["adhoc"])
    plain = record_in(store, RUNNING)
    assert [r.task_id for r in store.list_tasks(tag="nightly")] == [nightly.task_id]
    assert [r.task_id for r in store.list_tasks(tag="report", states=[SUCCEEDED])] == [nightly.task_id]
    assert store.list_tasks(tag="nightly", states=[QUEUED]) == []
    assert store.list_tasks(tag="night") == [], "a tag matches whole"
    for record in (nightly, adhoc, plain):
        found = store.list_tasks(id_prefix=record.task_id[:10])
        assert [r.task_id for r in found] == [record.task_id]
    assert {r.task_id for r in store.list_tasks(id_prefix="")} == {nightly.task_id, adhoc.task_id, plain.task_id}


def test_purge_deletes_finished_records_of_the_states_and_method_asked(backend: Backend) -> None:
    store, other = backend.store, backend.peer()
    failed = [record_in(store, FAILED, method="purged") for _ in range(3)]
    kept = [record_in(store, SUCCEEDED, method="purged"), record_in(store, FAILED, method="elsewhere"),
            record_in(store, RUNNING, method="purged"), record_in(store, QUEUED, method="purged")]
    assert other.get(failed[0].task_id) is not None  # cached by the other process: it must forget it
    before = store.counts().methods["purged"].by_state()
    assert store.purge([FAILED], method="purged", dry_run=True) == 3
    assert all(store.get(r.task_id) is not None for r in failed), "a dry run deletes nothing"
    assert store.purge([FAILED, RUNNING, QUEUED], method="purged") == 3, "unfinished tasks are never purged"
    assert all(store.get(r.task_id) is None for r in failed)
    wait_until(lambda: all(other.get(r.task_id) is None for r in failed), timeout=5, what="other caches to forget")
    assert all(store.get(r.task_id) is not None for r in kept)
    assert store.counts().methods["purged"].by_state() == before, "counts are totals: a purge leaves them"
    assert store.purge([FAILED]) == 1  # every method


def test_counts_and_a_metrics_scrape_cost_the_same_however_many_tasks(redis_backend: Backend) -> None:
    from ladon_tasks.metrics import TaskMetrics, exposition

    store = redis_backend.store
    client = redis_backend.server.client()
    collector = TaskMetrics(lambda: store)

    def commands_per_scrape() -> int:
        def calls() -> int:
            return sum(v["calls"] for k, v in client.info("commandstats").items() if k != "cmdstat_info")

        counted = []
        for _ in range(5):  # the least of a few: the store's own threads may write meanwhile
            before = calls()
            exposition(collector)
            counted.append(calls() - before)
        return min(counted)

    for method in ("a", "b"):
        record_in(store, SUCCEEDED, method=method)
    few = commands_per_scrape()
    for n in range(200):
        record_in(store, [QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELLED][n % 5], method="ab"[n % 2])
    assert commands_per_scrape() == few, "a scrape reads no record"
    assert store.counts().by_state() == {"queued": 40, "running": 40, "succeeded": 42, "failed": 40, "cancelled": 40}


# -- races -----------------------------------------------------------------------------


def test_exactly_one_of_many_concurrent_starts_wins(backend: Backend) -> None:
    record = record_in(backend.store, QUEUED)
    handles = [backend.peer() for _ in range(4)]
    results = race(16, lambda i: handles[i % 4].transition(record.task_id, RUNNING))
    winners = [r for r in results if r is not None]
    assert len(winners) == 1
    assert backend.store.get(record.task_id).attempts == 1


def test_exactly_one_of_many_concurrent_finishes_wins(backend: Backend) -> None:
    record = record_in(backend.store, RUNNING)
    handles = [backend.peer() for _ in range(4)]
    targets = [SUCCEEDED, FAILED, CANCELLED]  # every one final: after the first, none is legal
    results = race(15, lambda i: handles[i % 4].transition(record.task_id, targets[i % 3], attempt=1, result=i))
    winners = [(i, r) for i, r in enumerate(results) if r is not None]
    assert len(winners) == 1
    index, winner = winners[0]
    stored = backend.store.get(record.task_id)
    assert (stored.state, stored.result) == (targets[index % 3], index) == (winner.state, winner.result)


# -- Redis only ------------------------------------------------------------------------


def _exercise(store: TaskStore) -> list[TaskRecord]:
    """A bit of everything, so the inspection tests below see every kind of key."""
    done = record_in(store, RUNNING, args=[{"x": [1, 2]}], idempotency_key="once", result_ttl=60.0)
    store.report(done.task_id, 0.5, "half", attempt=1)
    store.record_step(done.task_id, 1, StepRecord("fetch", "succeeded", 1, 1.0, 2.0, result={"ids": [1, 2]}))
    store.transition(done.task_id, SUCCEEDED, attempt=1, result={"rows": [1, 2, 3]}, finished_at=time.time())
    cancelled = record_in(store, CANCELLED)
    failed = record_in(store, FAILED, method="other")
    running = record_in(store, RUNNING)
    store.report(running.task_id, 0.3, "going", attempt=1)
    return [done, cancelled, failed, running]


def test_redis_holds_json_only_under_the_prefix(redis_backend: Backend) -> None:
    _exercise(redis_backend.store)
    redis_backend.store.close()  # every pending write is in Redis now
    raw = redis.Redis(host="127.0.0.1", port=redis_backend.server.port)  # bytes, nothing decoded
    keys = list(raw.scan_iter("*"))
    assert keys and all(key.startswith(redis_backend.prefix.encode()) for key in keys)
    for key in keys:
        kind = raw.type(key)
        if kind == b"string":
            values = [raw.get(key)]
        elif kind == b"hash":
            values = list(raw.hgetall(key).values())
        elif kind == b"zset":
            values = [m for m in raw.zrange(key, 0, -1) if m.startswith(b"[")]  # others are task ids
        elif kind == b"set":  # method names, queue streams, workers: plain names
            assert key in {f"{redis_backend.prefix}{name}".encode() for name in ("methods", "queues", "workers")}
            values = [json.dumps(m.decode()).encode() for m in raw.smembers(key)]
        elif kind == b"stream":  # lifecycle events: flat fields, each a plain string
            assert key == f"{redis_backend.prefix}events".encode()
            values = [json.dumps(v.decode()).encode() for _, entry in raw.xrange(key) for v in entry.values()]
        else:
            pytest.fail(f"unexpected {kind!r} at {key!r}")
        for value in values:
            assert not value.startswith(b"\x80"), f"pickle at {key!r}"
            json.loads(value)  # every value is JSON


def test_finished_records_carry_a_redis_ttl(redis_backend: Backend) -> None:
    done, cancelled, failed, running = _exercise(redis_backend.store)
    client = redis_backend.server.client()
    key = lambda record: f"{redis_backend.prefix}task:{record.task_id}"  # noqa: E731
    assert 0 < client.pttl(key(done)) <= 60_000
    assert 0 < client.pttl(key(cancelled)) <= cancelled.result_ttl * 1000
    assert 0 < client.pttl(key(failed)) <= failed.result_ttl * 1000
    assert client.pttl(key(running)) == -1, "a running task must not vanish under its body"
    idempotency_keys = list(client.scan_iter(f"{redis_backend.prefix}idem:*"))
    assert idempotency_keys and all(0 < client.pttl(k) <= 60_000 for k in idempotency_keys)
    assert client.memory_usage(key(done)) < 2048, "a small finished task stays small"
    steps = lambda record: f"{redis_backend.prefix}steps:{record.task_id}"  # noqa: E731
    assert 0 < client.pttl(steps(done)) <= 60_000, "steps expire with their record"
    assert not client.exists(steps(failed)), "a task without steps has no steps key"


def test_expired_records_leave_no_index_entries(redis_backend: Backend) -> None:
    store = redis_backend.store
    record = record_in(store, SUCCEEDED, result_ttl=0.2)
    wait_until(lambda: store.get(record.task_id) is None, timeout=10, what="the record to expire")
    assert store.list_tasks() == []
    client = redis_backend.server.client()
    for key in client.scan_iter(f"{redis_backend.prefix}*", _type="zset"):  # the event stream keeps history
        assert not any(record.task_id in member for member in client.zrange(key, 0, -1)), key


def test_tight_report_loop_costs_few_redis_commands(redis_backend: Backend) -> None:
    store = redis_backend.store
    record = record_in(store, RUNNING)
    client = redis_backend.server.client()

    def commands() -> int:
        stats = client.info("commandstats")
        return sum(v["calls"] for k, v in stats.items() if k != "cmdstat_info")

    before = commands()
    for i in range(10_000):
        assert store.report(record.task_id, i / 10_000, f"step {i}", attempt=1)
    used = commands() - before
    assert used < 100, f"10,000 reports cost {used} Redis commands"
    wait_until(
        lambda: client.hget(f"{redis_backend.prefix}task:{record.task_id}", "message") == '"step 9999"',
        timeout=5, what="the last value to be flushed",
    )


def test_close_writes_pending_progress(redis_backend: Backend) -> None:
    store = redis_backend.peer()
    record = record_in(store, RUNNING)
    for i in range(100):
        store.report(record.task_id, i / 100, f"step {i}", attempt=1)
    store.close()
    current = redis_backend.store.get(record.task_id)
    assert (current.progress, current.message) == (0.99, "step 99")


def test_from_environment(redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch) -> None:
    task = new_record()
    by_parts = RedisStore.from_environment(
        {"REDIS_HOST": "127.0.0.1", "REDIS_PORT": str(redis_server.port)}, prefix="env-test:"
    )
    try:
        by_parts.create(task)
    finally:
        by_parts.close()
    monkeypatch.setenv("LADON_TASKS_REDIS_URL", redis_server.url)
    monkeypatch.setenv("REDIS_PORT", "1")  # the URL wins
    by_url = RedisStore.from_environment(prefix="env-test:")
    try:
        assert by_url.get(task.task_id) == task
    finally:
        by_url.close()
    with pytest.raises(ValueError, match="REDIS_PORT"):
        RedisStore.from_environment({"REDIS_PORT": "redis"})


def test_existing_client_is_used_and_left_open(redis_server: RedisServer) -> None:
    client = redis.Redis(host="127.0.0.1", port=redis_server.port)  # bytes replies, our own pool
    store = RedisStore(client, prefix="borrowed:")
    record = record_in(store, RUNNING)
    assert store.report(record.task_id, 0.5, "half", attempt=1) is True
    store.transition(record.task_id, SUCCEEDED, attempt=1, result={"ok": True})
    assert [r.result for r in store.list_tasks()] == [{"ok": True}]
    store.close()
    assert client.ping(), "the caller's client still works after the store is closed"
    with pytest.raises(ValueError, match="socket_timeout"):
        RedisStore(client, socket_timeout=1.0)
    with pytest.raises(ValueError, match="redis://"):
        RedisStore("http://127.0.0.1:6379")
    client.close()


def test_password_and_unix_socket(tmp_path: Path) -> None:
    server = start_redis(tmp_path / "auth", password="s3cr:et/", unix_socket=True)
    stores: list[RedisStore] = []
    try:
        env = {"REDIS_HOST": "127.0.0.1", "REDIS_PORT": str(server.port)}
        stores.append(RedisStore.from_environment({**env, "REDIS_USERNAME": "default", "REDIS_PASSWORD": "s3cr:et/"}))
        stores[-1].create(task := new_record())
        stores.append(RedisStore(f"unix://:s3cr%3Aet%2F@{server.socket_path}?db=0"))
        assert stores[-1].get(task.task_id) == task
        stores.append(RedisStore.from_environment({**env, "REDIS_PASSWORD": "wrong"}))
        with pytest.raises(StoreError, match=f"127.0.0.1:{server.port}") as caught:
            stores[-1].get(task.task_id)
        assert "wrong" not in str(caught.value) and "s3cr" not in str(caught.value)
    finally:
        for store in stores:
            store.close()
        server.stop()


def test_redis_outage_is_a_store_error_and_the_store_recovers(tmp_path: Path) -> None:
    server = start_redis(tmp_path / "aof", appendonly=True)
    store = RedisStore(server.url, prefix="outage:", socket_timeout=2.0)
    try:
        record = record_in(store, RUNNING)
        server.stop()
        calls = {
            "get": lambda: store.get(record.task_id),
            "create": lambda: store.create(new_record()),
            "transition": lambda: store.transition(record.task_id, FAILED, attempt=1),
            "request_cancel": lambda: store.request_cancel(record.task_id),
            "list": lambda: store.list_tasks(),
            "wait": lambda: store.wait(record.task_id, 0.2),
        }
        for call in calls.values():
            with pytest.raises(StoreError, match="Redis at 127.0.0.1"):
                call()
        # a body keeps running through an outage; its last progress is written later
        assert store.report(record.task_id, 0.75, "during the outage", attempt=1) is True
        server.start()  # same port and directory: the append-only file brings the task back
        current = store.get(record.task_id)
        assert (current.state, current.attempts) == (RUNNING, 1)
        wait_until(lambda: store.get(record.task_id).progress == 0.75, timeout=10, what="the kept progress")
        finished = store.transition(record.task_id, SUCCEEDED, attempt=1, result="after")
        assert finished.result == "after"
        assert store.wait(record.task_id, 1.0).state is SUCCEEDED
    finally:
        store.close()
        server.stop()


def test_an_unrecorded_attempt_finishes_in_one_write(redis_backend: Backend) -> None:
    """A queue worker's short body: begin() writes nothing yet, the outcome records the
    attempt and its start together."""
    store = redis_backend.store
    record = store.create(new_record())
    started = time.time()
    assert store.begin(record.task_id, 1, started)
    assert store.transition(record.task_id, SUCCEEDED, attempt=1, result=7, progress=1.0) is not None
    done = redis_backend.peer().get(record.task_id)
    assert (done.state, done.attempts, done.result) == (SUCCEEDED, 1, 7)
    assert done.started_at == pytest.approx(started)


def test_a_move_without_its_record_says_only_whether_it_was_made(store: TaskStore) -> None:
    record = record_in(store, RUNNING)
    assert store.transition_without_record(record.task_id, SUCCEEDED, attempt=1, result=[]) is True
    assert store.get(record.task_id).result == []
    assert store.transition_without_record(record.task_id, FAILED, attempt=1) is False  # finished: refused
    assert store.transition_without_record(new_task_id(), RUNNING) is False


def test_a_worker_finish_without_hooks_is_answered_without_the_record(redis_backend: Backend) -> None:
    """A worker keeps none of the records it writes, and a finish without completion
    hooks does not need its own: the script sends none back for it to decode."""
    store, server = redis_backend.store, redis_backend.server
    store.serve_worker()
    result = "x" * 100_000
    quiet, answered = store.create(new_record()), store.create(new_record())
    with server.client() as client:
        def bytes_sent() -> int:
            return int(client.info("stats")["total_net_output_bytes"])

        before = bytes_sent()
        assert store.transition_without_record(quiet.task_id, RUNNING) is True
        assert store.transition_without_record(quiet.task_id, SUCCEEDED, attempt=1, result=result) is True
        without = bytes_sent() - before
        before = bytes_sent()
        assert store.transition(answered.task_id, RUNNING) is not None
        assert store.transition(answered.task_id, SUCCEEDED, attempt=1, result=result).result == result
        with_record = bytes_sent() - before
    assert without < 20_000 < len(result) < with_record
    assert redis_backend.peer().get(quiet.task_id).result == result  # written all the same


def test_a_success_clears_an_earlier_attempts_error_and_a_first_one_sends_no_empty_fields(
        redis_backend: Backend) -> None:
    store, server = redis_backend.store, redis_backend.server
    assert isinstance(store, RedisStore) and server is not None
    ref = MethodRef("example_service", "ExampleService", "work")
    first, retried = store.create(new_record(max_attempts=2)), store.create(new_record(max_attempts=2))
    settle(store, Job(task_id=retried.task_id, ref=ref, args=[]), 1,
           Outcome("failed", error_type="OSError", error_message="flaky"))
    for record, attempt in ((first, 1), (retried, 2)):
        store.begin(record.task_id, attempt, time.time())
        assert settle(store, Job(task_id=record.task_id, ref=ref, args=[]), attempt,
                      Outcome("succeeded", result=attempt)).kind == "succeeded"
    peer = redis_backend.peer()
    again = peer.get(retried.task_id)
    assert (again.result, again.error_type, again.error_message) == (2, "", "")
    assert again.attempt_errors == ["attempt 1: OSError: flaky"]
    assert peer.get(first.task_id).error_type == ""
    with server.client() as client:  # a first attempt had no error to clear: none written
        assert not client.hexists(store.keys.task(first.task_id), "error_type")
        assert client.hexists(store.keys.task(retried.task_id), "error_type")


def test_an_attempt_that_runs_on_gets_recorded_as_running(redis_backend: Backend) -> None:
    store = redis_backend.store
    record = store.create(new_record())
    store.begin(record.task_id, 1, time.time())
    peer = redis_backend.peer()
    wait_until(lambda: peer.get(record.task_id).state is RUNNING, timeout=5, what="the start to be written")
    assert peer.get(record.task_id).attempts == 1


def test_an_unrecorded_attempt_is_fenced_like_a_running_one(redis_backend: Backend) -> None:
    store = redis_backend.store
    # reissued before it wrote anything: its late outcome is refused
    lost = store.create(new_record())
    store.begin(lost.task_id, 1, time.time())
    assert store.transition(lost.task_id, QUEUED, attempt=1, message="reissued") is not None
    assert store.transition(lost.task_id, SUCCEEDED, attempt=1, result=1) is None
    assert store.transition(lost.task_id, SUCCEEDED, attempt=2, result=2) is not None
    assert store.get(lost.task_id).result == 2
    # cancelled before it wrote anything: told to stop, and its outcome is refused
    cancelled = store.create(new_record())
    store.begin(cancelled.task_id, 1, time.time())
    assert store.request_cancel(cancelled.task_id).state is CANCELLED
    assert store.report(cancelled.task_id, 0.5, attempt=1) is False
    assert store.transition(cancelled.task_id, SUCCEEDED, attempt=1, result=1) is None
    assert store.get(cancelled.task_id).state is CANCELLED


# -- steps (ladon_tasks/steps.py): recorded fenced, read by later attempts, gone with the record ----


def step(name: str, state: str = "succeeded", attempt: int = 1, result: Any = None, **fields: Any) -> StepRecord:
    return StepRecord(name, state, attempt, started_at=fields.pop("started_at", time.time()), result=result, **fields)


def test_steps_are_recorded_and_a_later_attempt_reads_them(backend: Backend) -> None:
    store, other = backend.store, backend.peer()
    record = record_in(store, RUNNING, max_attempts=2)
    assert store.load_steps(record.task_id) == {}
    assert store.record_step(record.task_id, 1, step("list", "running"))
    assert store.get(record.task_id).step == "list"
    assert store.record_step(record.task_id, 1, step("list", result=["a", {"b": [0, False, None]}]))
    assert store.record_step(record.task_id, 1, step("copy a", "running"))
    assert store.record_step(record.task_id, 1, step("copy a", "failed", error="OSError: disk full"))
    seen = other.get(record.task_id)
    assert (seen.step, seen.steps_done) == ("copy a", 1)
    store.transition(record.task_id, QUEUED, attempt=1, error_type="OSError")  # a retry: the same task
    store.transition(record.task_id, RUNNING)
    steps = other.load_steps(record.task_id)
    assert steps["list"].result == ["a", {"b": [0, False, None]}] and steps["list"].state == "succeeded"
    assert (steps["copy a"].state, steps["copy a"].error, steps["copy a"].attempt) == (
        "failed",
        "OSError: disk full",
        1,
    )
    assert store.record_step(record.task_id, 2, step("copy a", attempt=2, result=True))
    done = store.transition(record.task_id, SUCCEEDED, attempt=2, result=1)
    assert (done.step, done.steps_done) == ("copy a", 2)
    assert other.load_steps(record.task_id)["copy a"].attempt == 2, "a finished task's steps stay readable"


def test_a_step_of_an_attempt_that_may_no_longer_write_is_not_recorded(backend: Backend) -> None:
    store = backend.store
    reissued = record_in(store, RUNNING, max_attempts=3)
    store.transition(reissued.task_id, QUEUED, attempt=1, message="its worker died")
    store.transition(reissued.task_id, RUNNING)
    assert store.record_step(reissued.task_id, 1, step("late", result="stale")) is False
    assert store.record_step(reissued.task_id, 3, step("early")) is False
    cancelled = record_in(store, RUNNING)
    store.request_cancel(cancelled.task_id)  # still running until its body stops
    assert store.record_step(cancelled.task_id, 1, step("after the cancel")) is False
    finished = record_in(store, SUCCEEDED)
    assert store.record_step(finished.task_id, 1, step("after the end")) is False
    assert store.record_step(new_task_id(), 1, step("unknown")) is False
    for record in (reissued, cancelled, finished):
        assert store.load_steps(record.task_id) == {}
        current = backend.peer().get(record.task_id)
        assert (current.step, current.steps_done) == ("", 0)


def test_a_task_can_start_with_steps_carried_over(backend: Backend) -> None:
    store = backend.store
    carried = [step("b", started_at=2.0, origin="f" * 32), step("a", started_at=1.0, origin="f" * 32)]
    record = store.create(new_record(idempotency_key="retry:x"), steps=carried)
    seen = backend.peer().get(record.task_id)
    assert (seen.step, seen.steps_done) == ("b", 2), "the last to have started"
    assert store.load_steps(record.task_id) == {s.name: s for s in carried}
    again = store.create(new_record(idempotency_key="retry:x"), steps=[step("c")])
    assert again.task_id == record.task_id and set(store.load_steps(record.task_id)) == {"a", "b"}


def test_steps_expire_and_are_purged_with_their_record(backend: Backend) -> None:
    store = backend.store
    expiring = record_in(store, RUNNING, result_ttl=0.3)
    purged = record_in(store, RUNNING, method="purged")
    at_once = record_in(store, RUNNING, result_ttl=0)
    for record in (expiring, purged, at_once):
        assert store.record_step(record.task_id, 1, step("one", result=1))
        store.transition(record.task_id, FAILED, attempt=1, error_type="E")
    assert store.load_steps(at_once.task_id) == {}
    assert set(store.load_steps(purged.task_id)) == {"one"}
    assert store.purge([FAILED], method="purged") == 1
    assert store.load_steps(purged.task_id) == {}
    wait_until(lambda: store.load_steps(expiring.task_id) == {}, timeout=10, what="the steps to expire")
    if backend.server is not None:
        client = backend.server.client()
        assert list(client.scan_iter(f"{backend.prefix}steps:*")) == []


def test_the_memory_store_counts_steps_in_its_bytes() -> None:
    store = MemoryStore(max_bytes=20_000)
    record = record_in(store, RUNNING)
    assert store.record_step(record.task_id, 1, step("big", result="x" * 15_000))
    with pytest.raises(StoreFull):
        store.create(new_record(args=["y" * 6_000]))
    store.transition(record.task_id, SUCCEEDED, attempt=1, result=1)
    store.create(new_record(args=["y" * 6_000]))  # the finished task and its steps made room
    assert store.get(record.task_id) is None and store.load_steps(record.task_id) == {}


def test_an_unrecorded_attempt_is_recorded_by_its_first_step(redis_backend: Backend) -> None:
    store = redis_backend.store
    record = store.create(new_record())
    started = time.time()
    store.begin(record.task_id, 1, started, where="worker-1:5:ab")
    assert store.record_step(record.task_id, 1, step("first", "running"))
    seen = redis_backend.peer().get(record.task_id)
    assert (seen.state, seen.attempts, seen.ran_on, seen.step) == (RUNNING, 1, ["worker-1:5:ab"], "first")
    assert seen.started_at == pytest.approx(started)
    assert redis_backend.peer().counts().methods["work"].by_state()["running"] == 1
    cancelled = store.create(new_record())
    store.begin(cancelled.task_id, 1, time.time())
    store.request_cancel(cancelled.task_id)
    assert store.record_step(cancelled.task_id, 1, step("first")) is False


def test_a_step_that_cannot_be_read_is_left_out(redis_backend: Backend) -> None:
    store = redis_backend.store
    record = record_in(store, RUNNING)
    assert store.record_step(record.task_id, 1, step("good", result=1))
    client = redis.Redis(host="127.0.0.1", port=redis_backend.server.port)
    key = f"{redis_backend.prefix}steps:{record.task_id}"
    client.hset(key, mapping={"bytes": b"\xff\xfe", "not json": "{", "wrong": '{"name": "wrong", "state": "odd"}'})
    assert set(store.load_steps(record.task_id)) == {"good"}


def test_what_steps_cost_in_redis_commands(redis_backend: Backend) -> None:
    """A task without steps costs what it did; a step record is one script of three
    commands; a task with steps adds one command at its finish (its steps' TTL)."""
    store = redis_backend.store
    client = redis_backend.server.client()

    def calls() -> dict[str, int]:
        return {k: v["calls"] for k, v in client.info("commandstats").items() if k != "cmdstat_info"}

    def used(action: Callable[[], Any]) -> dict[str, int]:
        before = calls()
        action()
        return {k: n - before.get(k, 0) for k, n in calls().items() if n != before.get(k, 0)}

    plain, stepped = record_in(store, RUNNING), record_in(store, RUNNING)
    one_step = used(lambda: store.record_step(stepped.task_id, 1, step("s", result=[1, 2, 3])))
    assert one_step == {"cmdstat_evalsha": 1, "cmdstat_hmget": 1, "cmdstat_hset": 2}
    finish_plain = used(lambda: store.transition(plain.task_id, SUCCEEDED, attempt=1, result=1))
    finish_stepped = used(lambda: store.transition(stepped.task_id, SUCCEEDED, attempt=1, result=1))
    assert "cmdstat_pexpire" in finish_plain and finish_plain.get("cmdstat_del") is None
    assert finish_stepped.pop("cmdstat_pexpire") == finish_plain.pop("cmdstat_pexpire") + 1
    assert finish_stepped == finish_plain
    assert used(lambda: store.load_steps(stepped.task_id)) == {"cmdstat_hgetall": 1}


@pytest.mark.parametrize("deployment", ["memory", "redis", "cluster"])
def test_starts_at_once_never_pass_the_bound_and_finishes_make_room(request: pytest.FixtureRequest,
                                                                   deployment: str) -> None:
    """Twenty starts at the same moment against a bound of five: five go in, in the one
    step that checks the bound; a reissue holds its place, a finish or cancel frees it."""
    prefix = f"bound-{uuid.uuid4().hex[:8]}:"
    if deployment == "memory":
        store: TaskStore = MemoryStore(max_queued=5)
    elif deployment == "redis":
        store = RedisStore(request.getfixturevalue("redis_server").url, prefix=prefix, max_queued=5)
    else:  # one shard, so the whole bound is on it
        store = ShardedRedisStore(request.getfixturevalue("redis_cluster").url, prefix=prefix, shards=1,
                                  max_queued=5)
    try:
        def start(_: int) -> Any:
            try:
                return store.create(new_record())
            except StoreFull as exc:
                return exc

        started = race(20, start)
        held = [record for record in started if isinstance(record, TaskRecord)]
        assert len(held) == 5 and all(isinstance(answer, StoreFull) for answer in started if answer not in held)
        running = store.transition(held[0].task_id, RUNNING)
        assert store.transition(held[0].task_id, QUEUED, attempt=running.attempts) is not None  # a reissue
        with pytest.raises(StoreFull):
            store.create(new_record())
        store.request_cancel(held[1].task_id)
        store.transition(held[2].task_id, RUNNING)
        store.transition(held[2].task_id, FAILED, finished_at=time.time())
        more = [store.create(new_record()) for _ in range(2)]
        with pytest.raises(StoreFull):
            store.create(new_record())
        for record in [*held[3:], *more]:  # every way out: finished, failed, cancelled while queued
            store.request_cancel(record.task_id)
        store.transition(held[0].task_id, RUNNING)
        store.transition(held[0].task_id, SUCCEEDED, finished_at=time.time())
        if deployment != "memory":  # nothing held is left over: the next flood meets the whole bound
            shard = store.shards[0] if isinstance(store, ShardedRedisStore) else store
            assert shard.client.get(shard.keys.held) == "0"
        assert len([store.create(new_record()) for _ in range(5)]) == 5
    finally:
        store.close()
