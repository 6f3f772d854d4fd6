"""Starts arriving together go to Redis together (``ladon_tasks/redis/group_commit.py``):
creates that arrive while one is in flight wait for it, then go as one script call in
which each create keeps its own checks. What the callers must not notice: each gets its
own answer - its own task, the task its idempotency key names, or its own refusal -, and
every task started runs once. What they should: fewer script calls than starts."""

from __future__ import annotations

import concurrent.futures
import threading
import uuid
from pathlib import Path
from typing import Any

import redis

from ladon_tasks.model import TaskRecord, TaskState, new_task_id
from ladon_tasks.redis import RedisStore, ShardedRedisStore
from ladon_tasks.stores.base import StoreError
from support.jsonwsp import JsonWsp, WireFault
from support.redis_server import start_redis
from support.servers import FIXTURE_SERVICES, start_server
from support.workers import Workers

PROBE = str(FIXTURE_SERVICES / "probe_service.py")

#: Callers starting at once, the store's bound on unfinished tasks (fewer than they
#: start), and the callers that share an idempotency key (the rest have none).
CALLERS = 50
BOUND = 30
KEYED = {"order-a": 5, "order-b": 5}


def at_once(calls: list[Any]) -> list[Any]:
    """Run ``calls`` each in its own thread, released together; their answers (or the
    exception each raised), in order."""
    barrier = threading.Barrier(len(calls))

    def one(call: Any) -> Any:
        barrier.wait(timeout=60)
        try:
            return call()
        except Exception as exc:
            return exc

    with concurrent.futures.ThreadPoolExecutor(len(calls)) as pool:
        return list(pool.map(one, calls))


def test_concurrent_starts_over_http_each_get_their_own_answer(tmp_path: Path, output_dir: Path) -> None:
    redis_server = start_redis(tmp_path / "redis")
    server = start_server([PROBE], output_dir, "--redis", redis_server.url, "--threads", "16",
                          env={"LADON_TASKS_MAX_QUEUED_TASKS": str(BOUND)})
    workers = Workers(redis_server.url, output_dir, [PROBE])
    try:
        # each caller's task leaves its marker in the caller's own directory (a key's
        # callers share one): a task id answered to the wrong caller shows there
        callers = [(f"caller-{n}", "") for n in range(CALLERS - sum(KEYED.values()))]
        callers += [(key, key) for key, count in KEYED.items() for _ in range(count)]
        for name, _ in callers:
            (tmp_path / name).mkdir(exist_ok=True)

        def start(name: str, key: str) -> Any:
            client = JsonWsp(server, "OnceService", timeout=60)
            return client.call("queuedOnce", {"marker_dir": str(tmp_path / name)},
                               {"Idempotency-Key": key} if key else None)["task_id"]

        answers = at_once([lambda name=name, key=key: start(name, key) for name, key in callers])

        refused = [answer for answer in answers if not isinstance(answer, str)]
        for fault in refused:
            assert isinstance(fault, WireFault), fault
            assert fault.string == (f"ServerBusy: task not started: {BOUND} tasks are queued or running, "
                                    "the most this store holds")
        started = {answer for answer in answers if isinstance(answer, str)}
        assert len(started) == BOUND  # no more than the bound, and each refusal a start of its own
        keyless = [answer for answer, (_, key) in zip(answers, callers, strict=True)
                   if not key and isinstance(answer, str)]
        assert len(set(keyless)) == len(keyless)  # no two callers got one task
        for key in KEYED:
            got = {answer if isinstance(answer, str) else "refused"
                   for answer, (_, named) in zip(answers, callers, strict=True) if named == key}
            assert len(got) == 1, (key, got)  # one task for the key, or (the bound met first) none
            assert not got & set(keyless)

        workers.start()
        once = JsonWsp(server, "OnceService", timeout=60)
        for task_id in started:
            assert once("queuedOnce_wait", task_id=task_id, seconds=30)["state"] == "succeeded", task_id
        for (name, _), answer in zip(callers, answers, strict=True):
            ran = sorted(marker.name for marker in (tmp_path / name).iterdir())
            assert ran == ([answer] if isinstance(answer, str) else []), (name, answer, ran)
    finally:
        workers.stop_all()
        server.stop()
        redis_server.stop()


def evalsha_calls(client: redis.Redis) -> int:
    return int(client.info("commandstats").get("cmdstat_evalsha", {}).get("calls", 0))


def new_record() -> TaskRecord:
    return TaskRecord(task_id=new_task_id(), service="GroupService", method="work")


def test_creates_of_many_threads_go_to_redis_in_fewer_script_calls(redis_server: Any) -> None:
    store = RedisStore(redis_server.url, prefix=f"group-{uuid.uuid4().hex}:")
    client = redis.Redis.from_url(redis_server.url)
    threads = 40
    try:
        for _ in range(5):  # a busy machine may run the first round's threads one by one
            records = [new_record() for _ in range(threads)]
            before = evalsha_calls(client)
            created = at_once([lambda record=record: store.create(record) for record in records])
            calls = evalsha_calls(client) - before
            assert [made.task_id for made in created] == [record.task_id for record in records]
            if calls < threads:
                break
        assert calls < threads, "every create went alone: no batch formed"
        for record in records:
            stored = store.current(record.task_id)
            assert stored is not None and stored.state is TaskState.QUEUED
        assert store.counts().methods["work"].queued >= threads  # each counted on its own
    finally:
        store.close()
        client.close()


def test_a_redis_outage_fails_each_waiting_create_with_its_own_store_error(tmp_path: Path) -> None:
    redis_server = start_redis(tmp_path / "redis")
    store = RedisStore(redis_server.url, prefix="outage:", socket_timeout=2.0)
    try:
        store.ping()
        redis_server.stop()
        records = [new_record() for _ in range(20)]
        answers = at_once([lambda record=record: store.create(record) for record in records])
        for record, answer in zip(records, answers, strict=True):
            assert isinstance(answer, StoreError), answer
            assert f"creating task {record.task_id} failed" in str(answer)
    finally:
        store.close()
        redis_server.stop()


def test_one_call_keeps_the_bound_and_the_keys_of_each_create(redis_server: Any) -> None:
    """In-process too: creates of one batch see those before them as written."""
    bound = 3
    store = RedisStore(redis_server.url, prefix=f"group-{uuid.uuid4().hex}:", max_queued=bound)
    try:
        keyed = [TaskRecord(task_id=new_task_id(), service="GroupService", method="work",
                            idempotency_key="same") for _ in range(8)]
        answers = at_once([lambda record=record: store.create(record) for record in keyed])
        assert len({answer.task_id for answer in answers}) == 1
        plain = [new_record() for _ in range(8)]
        answers = at_once([lambda record=record: store.create(record) for record in plain])
        made = [answer for answer in answers if isinstance(answer, TaskRecord)]
        assert len(made) == bound - 1
        assert all(type(answer).__name__ == "StoreFull" for answer in answers if answer not in made)
    finally:
        store.close()


def test_on_a_cluster_each_shard_batches_its_own_creates(redis_cluster: Any) -> None:
    """One batcher per shard: a create goes with creates of its shard only, and is
    found on its task's shard."""
    redis_cluster.flushall()
    store = ShardedRedisStore(redis_cluster.url, prefix=f"group-{uuid.uuid4().hex[:6]}:")
    try:
        records = [new_record() for _ in range(60)]
        created = at_once([lambda record=record: store.create(record) for record in records])
        assert [made.task_id for made in created] == [record.task_id for record in records]
        for record in records:
            stored = store.current(record.task_id)  # read on the shard its id names
            assert stored is not None and stored.state is TaskState.QUEUED
        assert sum(redis_cluster.keys_per_node(f"{store.prefix}*task:*").values()) == len(records)
    finally:
        store.close()


def test_a_create_that_redis_refuses_fails_alone(redis_server: Any) -> None:
    """A command refused inside one create of a batch fails that create's caller only."""
    store = RedisStore(redis_server.url, prefix=f"group-{uuid.uuid4().hex}:")
    client = redis.Redis.from_url(redis_server.url)
    try:
        client.set(store.keys.method_index("broken"), "not a sorted set")  # its creates' ZADD fails
        records = [TaskRecord(task_id=new_task_id(), service="GroupService", method=method)
                   for _ in range(10) for method in ("work", "broken")]
        answers = at_once([lambda record=record: store.create(record) for record in records])
        for record, answer in zip(records, answers, strict=True):
            if record.method == "work":
                assert isinstance(answer, TaskRecord) and answer.task_id == record.task_id
            else:
                assert isinstance(answer, StoreError), answer
                assert f"creating task {record.task_id} failed: ResponseError" in str(answer)
                assert "WRONGTYPE" in str(answer)
    finally:
        store.close()
        client.close()


def test_a_key_naming_a_record_that_is_not_utf8_fails_only_its_own_starts(tmp_path: Path, output_dir: Path) -> None:
    """One create of a batch meets a damaged record (bytes that are not UTF-8) through
    its idempotency key: the batch's answer is read as bytes and decoded per create, so
    that create gets ``CorruptTask`` - as reading the record does - and the others of
    its batch are started as if it were not there. Was: the whole answer failed to
    decode, and every start of that batch failed with it."""
    redis_server = start_redis(tmp_path / "redis")
    server = start_server([PROBE], output_dir, "--redis", redis_server.url, "--threads", "16")
    workers = Workers(redis_server.url, output_dir, [PROBE])
    raw = redis.Redis.from_url(redis_server.url)
    try:
        damaged_dir = tmp_path / "damaged"
        damaged_dir.mkdir()
        once = JsonWsp(server, "OnceService", timeout=60)
        damaged = once.call("queuedOnce", {"marker_dir": str(damaged_dir)}, {"Idempotency-Key": "damaged"})["task_id"]
        workers.start()
        assert once.followed("queuedOnce", damaged)["state"] == "succeeded"
        raw.hset(f"ladon-tasks:task:{damaged}", "message", b'"\xff\xfe"')

        callers = [f"caller-{n}" for n in range(24)]
        for name in callers:
            (tmp_path / name).mkdir()

        def start(name: str) -> Any:
            client = JsonWsp(server, "OnceService", timeout=60)
            return client.call("queuedOnce", {"marker_dir": str(tmp_path / name)})["task_id"]

        def start_damaged() -> Any:
            client = JsonWsp(server, "OnceService", timeout=60)
            return client.call("queuedOnce", {"marker_dir": str(damaged_dir)}, {"Idempotency-Key": "damaged"})

        calls = [lambda name=name: start(name) for name in callers]
        for at in range(0, len(calls) + 1, 4):  # among the others, so that batches hold both
            calls.insert(at, start_damaged)
        answers = at_once(calls)

        others = [answer for call, answer in zip(calls, answers, strict=True) if call is not start_damaged]
        assert all(isinstance(answer, str) for answer in others), [str(answer) for answer in others]
        for answer in (answer for call, answer in zip(calls, answers, strict=True) if call is start_damaged):
            assert isinstance(answer, WireFault), answer
            assert answer.code == "server" and answer.fault["detail"] == ["CorruptTask"], answer.string
            assert answer.string == (f"CorruptTask: the record of task {damaged} cannot be read: "
                                     "it holds bytes that are not UTF-8")
        started = [answer for answer in others if isinstance(answer, str)]
        assert len(set(started)) == len(callers)
        for task_id in started:
            assert once.followed("queuedOnce", task_id)["state"] == "succeeded", task_id
        for name, task_id in zip(callers, started, strict=True):
            assert sorted(marker.name for marker in (tmp_path / name).iterdir()) == [task_id], name
        assert sorted(marker.name for marker in damaged_dir.iterdir()) == [damaged], "nothing ran again"
        later = once.call("queuedOnce", {"marker_dir": str(tmp_path / callers[0])})["task_id"]
        assert once.followed("queuedOnce", later)["state"] == "succeeded", "the server serves on"
    finally:
        raw.close()
        workers.stop_all()
        server.stop()
        redis_server.stop()
