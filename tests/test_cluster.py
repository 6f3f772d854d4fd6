"""What only a Redis Cluster deployment does, on a real cluster of three primaries: tasks
spread over every primary, what spans shards (listing, counts, events, idempotency keys,
owner leases, queue depths and workers), the ``redis+cluster://`` URL through
``ladon-tasks serve`` and ``worker`` end to end, and bad URLs refused at start-up.

The store contract suite (``test_store_contract.py``) and the queue worker tests
(``test_queue_worker.py``) run on the same cluster too, each test as it is.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from typing import Iterator

import pytest

from ladon_tasks import defaults
from ladon_tasks.jobs import Job
from ladon_tasks.model import TaskRecord, TaskState, new_task_id
from ladon_tasks.redis.cluster import (
    ClusterURL,
    id_on_shard,
    idempotency_shard,
    shard_of,
    shard_prefixes,
    shard_tags,
)
from ladon_tasks.redis import ShardedRedisStore, open_store
from ladon_tasks.redis import RedisStore
from ladon_tasks.spec import MethodRef
from ladon_tasks.stats import WorkerInfo
from ladon_tasks.stores.base import StoreError
from support.jsonwsp import JsonWsp
from support.queues import claimed_when_due
from support.redis_cluster import RedisClusterProcesses
from support.redis_server import start_redis
from support.servers import ROOT, free_port, start_server, wait_until
from support.workers import PROBE, Workers

SUCCEEDED = TaskState.SUCCEEDED


@pytest.fixture
def store(redis_cluster: RedisClusterProcesses) -> Iterator[ShardedRedisStore]:
    redis_cluster.flushall()
    opened = ShardedRedisStore(redis_cluster.url, prefix=f"cl-{uuid.uuid4().hex[:6]}:")
    yield opened
    opened.close()


def new_record(method: str = "work", **fields) -> TaskRecord:
    return TaskRecord(task_id=new_task_id(), service="ClusterService", method=method, **fields)


def test_shards_spread_evenly_over_equal_slot_ranges(redis_cluster: RedisClusterProcesses) -> None:
    client = redis_cluster.client()
    try:
        owners = Counter(client.get_node_from_key(prefix).port for prefix in shard_prefixes("x:", 16))
    finally:
        client.close()
    assert sorted(owners.values()) == [5, 5, 6]  # 16 shards on 3 primaries: as even as can be
    assert len(set(shard_tags(16))) == 16 and shard_tags(16) == shard_tags(16)  # the same in every process


def test_tasks_spread_over_every_primary(store: ShardedRedisStore, redis_cluster: RedisClusterProcesses) -> None:
    for n in range(300):
        store.create(new_record(args=[n]))
    per_node = redis_cluster.keys_per_node(f"{store.prefix}*task:*")
    assert sum(per_node.values()) == 300
    assert all(count >= 60 for count in per_node.values()), per_node  # about 100 each


def test_listing_pages_merge_every_shard_newest_first(store: ShardedRedisStore) -> None:
    made = []
    for n in range(40):
        made.append(store.create(new_record(method="listed" if n % 2 else "other", args=[n],
                                            tags=["t"] if n % 4 == 1 else [], submitted_at=1_000_000.0 + n)))
    assert len({shard_of(record.task_id, len(store.shards)) for record in made}) > 8
    newest_first = [record.task_id for record in reversed(made)]
    pages = [store.list_tasks(limit=7, offset=offset) for offset in range(0, 42, 7)]
    assert [record.task_id for page in pages for record in page] == newest_first
    listed = [record.task_id for record in store.list_tasks(method="listed", limit=100)]
    assert listed == [record.task_id for record in reversed(made) if record.method == "listed"]
    tagged = store.list_tasks(tag="t", limit=100)
    assert [record.args[0] for record in tagged] == [37, 33, 29, 25, 21, 17, 13, 9, 5, 1]
    running = store.transition(made[3].task_id, TaskState.RUNNING)
    assert running is not None
    assert [record.task_id for record in store.list_tasks(states=[TaskState.RUNNING])] == [made[3].task_id]


def test_counts_events_and_purge_span_every_shard(store: ShardedRedisStore) -> None:
    ids = [store.create(new_record(method="counted")).task_id for _ in range(24)]
    for task_id in ids[:10]:
        store.transition(task_id, TaskState.RUNNING)
        store.transition(task_id, SUCCEEDED, attempt=1, finished_at=time.time(), result=1)
    assert store.counts().methods["counted"].by_state() == {
        "queued": 14, "running": 0, "succeeded": 10, "failed": 0, "cancelled": 0}
    events = store.events("0", block=0.1, count=1000)
    assert Counter(event["state"] for _, event in events) == {"running": 10, "succeeded": 10}
    assert {event["task"] for _, event in events} == set(ids[:10])
    stamps = [int(event_id.split("-")[0]) for event_id, _ in events]
    assert stamps == sorted(stamps)  # merged by time
    # an event's id carries every shard's position: reading on from it misses nothing
    middle_id = events[9][0]
    rest = store.events(middle_id, block=0.1, count=1000)
    assert [event_id for event_id, _ in rest] == [event_id for event_id, _ in events[10:]]
    assert store.events("$", block=0.1) == []
    store.request_cancel(ids[20])
    assert [event["task"] for _, event in store.events(events[-1][0], block=0.5)] == [ids[20]]
    assert store.purge([SUCCEEDED], dry_run=True) == 10
    assert store.purge([SUCCEEDED]) == 10
    assert all(store.get(task_id) is None for task_id in ids[:10])
    assert store.counts().methods["counted"].by_state()["succeeded"] == 10  # totals stay


def test_finish_messages_stay_on_their_shard(store: ShardedRedisStore, redis_cluster: RedisClusterProcesses) -> None:
    """A shard channel (SPUBLISH): the message goes to its shard's node, not to all."""
    for node in redis_cluster.nodes:
        node.reset_stats()
    record = store.create(new_record())
    store.transition(record.task_id, TaskState.RUNNING)
    store.transition(record.task_id, SUCCEEDED, attempt=1, finished_at=time.time(), result=1)
    assert store.wait(record.task_id, 5).state is SUCCEEDED
    calls = Counter()
    for node in redis_cluster.nodes:
        for name, count in node.commands().items():
            calls[name] += count
    assert calls["spublish"] >= 1 and calls["publish"] == 0, calls


def test_an_idempotency_key_and_its_task_share_a_shard(store: ShardedRedisStore) -> None:
    count = len(store.shards)
    task_id = store.new_task_id("ClusterService", "work", "order-1")
    assert shard_of(task_id, count) == idempotency_shard("ClusterService", "work", "order-1", count)
    first = store.create(TaskRecord(task_id=task_id, service="ClusterService", method="work",
                                    idempotency_key="order-1", args=[1]))
    again = store.create(TaskRecord(task_id=store.new_task_id("ClusterService", "work", "order-1"),
                                    service="ClusterService", method="work", idempotency_key="order-1", args=[2]))
    assert again.task_id == first.task_id and again.args == [1]


@pytest.mark.parametrize("first_on_key_shard", [True, False])
def test_an_id_made_elsewhere_still_finds_its_key(store: ShardedRedisStore, first_on_key_shard: bool) -> None:
    """A caller's own ids, one on the key's shard and one not, in either order: one task."""
    count = len(store.shards)
    key_shard = idempotency_shard("ClusterService", "work", "mixed", count)
    on_key, off_key = id_on_shard(key_shard, count), id_on_shard((key_shard + 1) % count, count)
    ids = [on_key, off_key] if first_on_key_shard else [off_key, on_key]
    made = [store.create(TaskRecord(task_id=task_id, service="ClusterService", method="work",
                                    idempotency_key="mixed", args=[n])) for n, task_id in enumerate(ids)]
    assert made[1].task_id == made[0].task_id == ids[0] and made[1].args == [0]
    assert len(store.list_tasks()) == 1
    # once its task is gone, the key is free again, whichever shard the next id is on
    store.transition(ids[0], TaskState.RUNNING)
    store.transition(ids[0], SUCCEEDED, attempt=1, finished_at=time.time(), result_ttl=0.0)
    store.purge([SUCCEEDED])
    third = store.create(TaskRecord(task_id=ids[1], service="ClusterService", method="work",
                                    idempotency_key="mixed", args=[3]))
    assert third.task_id == ids[1] and third.args == [3]


def test_owner_leases_workers_and_queue_depths_merge_over_shards(store: ShardedRedisStore) -> None:
    ownership, fleet = store.ownership(), store.fleet()
    owner = f"host:{uuid.uuid4().hex[:6]}"
    held = [store.create(new_record(owner=owner)).task_id for _ in range(12)]
    for task_id in held:
        store.transition(task_id, TaskState.RUNNING, owner=owner)
    assert len({shard_of(task_id, len(store.shards)) for task_id in held}) > 4
    ownership.renew(owner, 0.2)
    assert ownership.held(owner) == sorted(held)
    _, webs = fleet.workers()
    assert [(web.owner, web.holds) for web in webs] == [(owner, 12)]
    # every shard's lease was renewed at once, so each runs out at its own moment
    expired = wait_until(lambda: (found := ownership.expired(tasks=100)) and len(found[0][2]) == len(held) and found,
                         timeout=5, what="the lease to run out on every shard")
    assert [(name, sorted(ids)) for name, _, ids in expired] == [(owner, sorted(held))]
    adopted = [ownership.adopt(task_id, owner, "host:new", 3, "gone") for task_id in held[:2]]
    assert all(record is not None and record.state is TaskState.QUEUED for record in adopted)
    assert ownership.release(owner, 3, "leaving") == 10
    queue = store.queue("merged")
    info = WorkerInfo(worker_id="w-1", host="h", pid=1, queues=("merged",), concurrency=2, version="x",
                      started_at=time.time(), heartbeat_at=time.time())
    fleet.beat(info, 5)
    queue.ensure_groups()
    for n in range(6):
        record = new_record(method="queued")
        job = Job(task_id=record.task_id, ref=MethodRef("cluster_service", "ClusterService", "queued"), args=[n],
                  queue="merged")
        store.create(record, job=queue.entry(job.priority, job.dumps()))
    depths = {depth.name: depth for depth in fleet.queues()}
    assert depths["merged"].waiting == 6
    claims = queue.claim(0.1)
    assert len(claims) == 1 and fleet.queues()[0].running == 1
    workers, _ = fleet.workers()
    assert [worker.worker_id for worker in workers] == ["w-1"]


def test_a_jobs_moves_stay_on_its_tasks_shard(store: ShardedRedisStore) -> None:
    """A job is named by its queue and priority, and the store puts it, and every move of
    it, on its task's shard: queued, handed back, retried and moved back when due, then
    released with the outcome - each read again from that shard alone."""
    queue = store.queue("moves", levels=[7])
    record = new_record(method="moved", max_attempts=2)
    home = shard_of(record.task_id, len(store.shards))
    job = Job(task_id=record.task_id, ref=MethodRef("cluster_service", "ClusterService", "moved"), args=[],
              queue="moves", priority=7)
    store.create(record, job=queue.entry(job.priority, job.dumps()))

    def read() -> list:
        claims = queue.claim(0)
        assert all(queue.shards[home].read_from(claim) for claim in claims)
        return claims

    first = read()
    assert [claim.job.task_id for claim in first] == [record.task_id]
    queue.requeue(first[0].job, first[0])  # handed back, as the same attempt
    handed = read()
    assert len(handed) == 1 and handed[0].entry != first[0].entry and handed[0].job.attempt == 1
    running = store.transition(record.task_id, TaskState.RUNNING)
    assert running is not None
    retried = store.transition(record.task_id, TaskState.QUEUED, attempt=running.attempts,
                               job=queue.retry_later(handed[0], 0.0), error_type="Flaky", error_message="again")
    assert retried is not None and queue.move_due() == 1
    second = read()
    assert len(second) == 1 and second[0].job.attempt == 2
    running = store.transition(record.task_id, TaskState.RUNNING)
    assert running is not None
    assert store.transition(record.task_id, TaskState.SUCCEEDED, attempt=running.attempts,
                            job=queue.release(second[0]), finished_at=time.time()) is not None
    assert read() == [] and queue.shards[home].claimable() is False


def test_a_delayed_start_waits_on_its_tasks_shard_until_due(store: ShardedRedisStore) -> None:
    """A delayed start's job goes to its queue's delayed set on its task's shard (in the
    slot of that shard's prefix), and is moved to the stream and read there once due."""
    queue = store.queue("late-q_1", levels=[2])
    record = new_record(method="late", not_before=time.time() + 1.0)
    home = shard_of(record.task_id, len(store.shards))
    job = Job(task_id=record.task_id, ref=MethodRef("cluster_service", "ClusterService", "late"), args=[],
              queue="late-q_1", priority=2, not_before=record.not_before)
    store.create(record, job=queue.entry(job.priority, job.dumps()))
    claims = claimed_when_due(queue, store.shards[home].client, store.shards[home].keys.delayed("late-q_1"), job)
    assert queue.shards[home].read_from(claims[0])


def test_a_read_for_several_idle_slots_takes_the_highest_first_over_shards_and_no_more(
        store: ShardedRedisStore) -> None:
    """A worker with n idle slots reads up to n jobs in one claim: from every shard, the
    higher priority before the lower, and never more than n - the others stay free for
    any worker."""
    queue = store.queue("batch", levels=[200])
    for priority, many in ((defaults.PRIORITY, 6), (200, 3)):
        for _ in range(many):
            record = new_record(method="batched")
            job = Job(task_id=record.task_id, ref=MethodRef("cluster_service", "ClusterService", "batched"), args=[],
                      queue="batch", priority=priority)
            store.create(record, job=queue.entry(job.priority, job.dumps()))
    first = queue.claim(0, count=5)
    assert [claim.job.priority for claim in first] == [200] * 3 + [defaults.PRIORITY] * 2
    rest = queue.claim(0, count=10)
    assert [claim.job.priority for claim in rest] == [defaults.PRIORITY] * 4
    assert len({claim.job.task_id for claim in first + rest}) == 9
    assert queue.claim(0, count=3) == []


def test_an_idle_worker_hears_of_a_job_on_any_shard_at_once(store: ShardedRedisStore,
                                                            redis_cluster: RedisClusterProcesses) -> None:
    """The job bell: a slot waiting with nothing to do reads a new job's shard when the
    job is queued, without looking at every shard in turn and without a round trip to
    ask redis-py's way for a stream read's keys (COMMAND GETKEYS)."""
    queue = store.queue("bell")
    assert queue.claim(0.3) == [] and queue.claim(0.3) == []  # idle: the bell is listened to now
    for node in redis_cluster.nodes:
        node.reset_stats()
    shards = set()
    for n in range(8):
        got: list = []
        reader = threading.Thread(target=lambda got=got: got.extend(_claim_within(queue, 5.0)))
        reader.start()
        time.sleep(0.2)  # the slot waits
        record = new_record(method="rung")
        job = Job(task_id=record.task_id, ref=MethodRef("cluster_service", "ClusterService", "rung"), args=[n],
                  queue="bell")
        queued_at = time.monotonic()
        store.create(record, job=queue.entry(job.priority, job.dumps()))
        reader.join()
        assert got and got[0][0].job.task_id == record.task_id
        assert got[0][1] - queued_at < 0.3, got[0][1] - queued_at  # a sweep would come up to 1 s later
        shards.add(shard_of(record.task_id, len(store.shards)))
        queue.ack([got[0][0]])
    assert len(shards) > 2
    calls = Counter()
    for node in redis_cluster.nodes:
        calls.update(node.commands())
    assert calls["command|getkeys"] == 0 and calls["xreadgroup"] <= 8 + 2 * len(store.shards), calls


def test_a_shard_that_cannot_be_read_leaves_the_others_working(store: ShardedRedisStore, monkeypatch) -> None:
    """A shard whose primary died, until the cluster promotes its replica
    (``test_cluster_failover.py``), is left out of a sweep: the other shards' jobs are
    still read, and the error comes out only when none had a job."""
    queue = store.queue("halfdown")
    queue.ensure_groups()
    home = 1  # a sweep starts at shard 0 here: one that fails
    record = TaskRecord(task_id=id_on_shard(home, len(store.shards)), service="ClusterService", method="queued")
    job = Job(task_id=record.task_id, ref=MethodRef("cluster_service", "ClusterService", "queued"), args=[1],
              queue="halfdown")
    store.create(record, job=queue.entry(job.priority, job.dumps()))

    def refused(*args, **kwargs):
        raise StoreError("queue 'halfdown': claim failed: Connection refused")

    for index, shard in enumerate(queue.shards):
        if index != home:
            monkeypatch.setattr(shard, "read_level", refused)
    claims = queue.claim(0)
    assert [claim.job.task_id for claim in claims] == [record.task_id]
    queue.ack(claims)
    with pytest.raises(StoreError, match="Connection refused"):
        queue.claim(0)


def _claim_within(queue, seconds: float) -> list:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        claims = queue.claim(1.0)
        if claims:
            return [(claims[0], time.monotonic())]
    return []


def test_a_killed_web_process_has_its_tasks_taken_over_from_every_shard(redis_cluster: RedisClusterProcesses,
                                                                        output_dir, tmp_path) -> None:
    """Owner leases on a cluster, for real: a web process killed with SIGKILL while it
    runs tasks on several shards; the other one takes each over and runs it again."""
    import test_every_task_ends as ends  # its helpers (a module name: pytest collects nothing twice)

    redis_cluster.flushall()
    webs = ends.WebServers(redis_cluster.url, output_dir)
    try:
        doomed, survivor = webs.start(), webs.start()
        dirs = [tmp_path / f"task{n}" for n in range(4)]
        ids = []
        for marker_dir in dirs:
            marker_dir.mkdir()
            ids.append(ends.marked(doomed)("threadMarked", marker_dir=str(marker_dir))["task_id"])
        assert len({shard_of(task_id, 16) for task_id in ids}) > 1
        for marker_dir in dirs:
            ends.running_pid(marker_dir, 1)
        os.kill(doomed.process.pid, signal.SIGKILL)
        doomed.process.wait(timeout=10)
        for marker_dir in dirs:
            assert ends.running_pid(marker_dir, 2) == survivor.process.pid
            (marker_dir / "gate").touch()
        for task_id in ids:
            final = ends.wait_final(ends.marked(survivor), "threadMarked", task_id)
            assert final["state"] == "succeeded" and final["attempts"] == 2
    finally:
        webs.stop_all()


def test_cluster_urls(redis_cluster: RedisClusterProcesses) -> None:
    parsed = ClusterURL.parse("redis+cluster://u:p%40ss@[::1]:7000,h2,h3:7002/?shards=32")
    assert parsed.nodes == (("::1", 7000), ("h2", 6379), ("h3", 7002))
    assert (parsed.username, parsed.password, parsed.shards) == ("u", "p@ss", 32)
    assert "p@ss" not in parsed.describe()
    for bad, says in (("redis+cluster://", "lists its cluster nodes"), ("redis+cluster://h:1/0", "one database"),
                      ("redis+cluster://h:1?shards=0", "shards is a number"), ("redis+cluster://h:1?db=2", "shards=N"),
                      ("redis+cluster://h:99999", "port")):
        with pytest.raises(ValueError, match=says):
            ClusterURL.parse(bad)
    with pytest.raises(ValueError, match="redis\\+cluster"):
        RedisStore(redis_cluster.url)  # one shard cannot be a whole deployment
    opened = open_store(redis_cluster.url_with("shards=4"))
    try:
        assert isinstance(opened, ShardedRedisStore) and len(opened.shards) == 4
    finally:
        opened.close()
    # the settings every deployment reads (LADON_TASKS_REDIS_URL, the Apache handler's)
    from ladon_tasks.deployment import make_store

    configured = make_store({"LADON_TASKS_REDIS_URL": redis_cluster.url})
    try:
        assert isinstance(configured, ShardedRedisStore) and len(configured.shards) == 16
        configured.ping()
    finally:
        configured.close()


def test_a_cluster_url_that_reaches_no_cluster_is_refused(tmp_path) -> None:
    with pytest.raises(StoreError, match="connecting failed"):
        ShardedRedisStore(f"redis+cluster://127.0.0.1:{free_port()}")
    plain = start_redis(tmp_path / "plain")
    try:
        with pytest.raises(StoreError, match="[Cc]luster"):
            ShardedRedisStore(f"redis+cluster://127.0.0.1:{plain.port}")
    finally:
        plain.stop()
    for command in ("serve", "worker"):
        down = subprocess.run(
            [sys.executable, "-m", "ladon_tasks", command, PROBE,
             "--redis", f"redis+cluster://127.0.0.1:{free_port()}"],
            capture_output=True, text=True, timeout=60, cwd=ROOT,
        )
        assert down.returncode == 1 and "Traceback" not in down.stderr
        assert down.stderr.strip().startswith(f"ladon-tasks {command}: ") and "connecting failed" in down.stderr


def test_serve_and_worker_on_a_cluster_url_end_to_end(redis_cluster: RedisClusterProcesses, output_dir) -> None:
    redis_cluster.flushall()
    web = start_server([PROBE], output_dir, "--redis", redis_cluster.url)
    workers = Workers(redis_cluster.url, output_dir)
    try:
        workers.start()
        probe = JsonWsp(web, "QueueProbeService")
        ids = [probe("queuedEcho", text=f"n{n}")["task_id"] for n in range(30)]
        assert [probe("queuedEcho_wait_result", task_id=task_id, seconds=20) for task_id in ids] == [
            f"n{n}" for n in range(30)]
        per_node = redis_cluster.keys_per_node("ladon-tasks:*task:*")
        assert sum(per_node.values()) == 30 and all(per_node.values()), per_node
        keyed = [probe.call("queuedEcho", {"text": "once"}, headers={"Idempotency-Key": "k-1"})["task_id"]
                 for _ in range(3)]
        assert len(set(keyed)) == 1
        listed = subprocess.run(
            [sys.executable, "-m", "ladon_tasks", "tasks", "--redis", redis_cluster.url, "--method", "queuedEcho",
             "--json", "--limit", "100"],
            capture_output=True, text=True, timeout=60, cwd=ROOT,
        )
        assert listed.returncode == 0 and all(task_id in listed.stdout for task_id in ids + keyed), listed.stderr
    finally:
        workers.stop_all()
        web.stop()
