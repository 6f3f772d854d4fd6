"""Redis Cluster's own failover: three primaries, each with a replica, every node a real
``redis-server``, and ``ladon-tasks serve`` and ``ladon-tasks worker`` processes on the
``redis+cluster://`` URL users give.

Tasks flow over the three executors (the traffic of ``test_failover.py``, the Sentinel
test) while the primary holding the most started tasks is killed with SIGKILL; the other
primaries promote its replica. Every acknowledged task must end with its right result,
starts must succeed again, and no task of a live web process or worker may be taken over
or reissued - with leases of 3 s, about as long as the failover, and with the default
leases, beside CPU burners. What the failover cost is printed and left in
``test-output/cluster-failover-<leases>.json``, not asserted: those are measurements.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path
from typing import Iterator

import pytest

import test_failover as failover  # its traffic and helpers (a module name: pytest collects nothing twice)
from ladon_tasks import defaults
from ladon_tasks.redis.cluster import shard_of, shard_prefixes
from ladon_tasks.redis.keys import DEFAULT_PREFIX
from support.redis_cluster import RedisClusterProcesses, start_cluster
from support.processes import burn
from support.redis_server import RedisServer
from support.servers import wait_until

#: Milliseconds a node may not answer before the others take it for down: short, so a
#: test's failover takes seconds (Redis' default is 15000).
NODE_TIMEOUT_MS = 1000


@pytest.fixture
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisClusterProcesses]:
    started = start_cluster(tmp_path_factory.mktemp("cluster-failover"), primaries=3, replicas=1,
                            node_timeout_ms=NODE_TIMEOUT_MS)
    yield started
    started.stop()


def busiest_primary(cluster: RedisClusterProcesses, task_ids: list[str]) -> tuple[RedisServer, set[int]]:
    """The primary whose shards hold the most of ``task_ids``, and its shards."""
    prefixes = shard_prefixes(DEFAULT_PREFIX, defaults.CLUSTER_SHARDS)
    node_of_shard = [cluster.node_of_key(prefix) for prefix in prefixes]
    ports = Counter(node_of_shard[shard_of(task_id, len(prefixes))].port for task_id in task_ids)
    victim = next(node for node in cluster.nodes if node.port == ports.most_common(1)[0][0])
    return victim, {shard for shard, node in enumerate(node_of_shard) if node is victim}


#: ``serve --lease`` and ``worker --lease`` of each run: leases of 3 s, about as long as the
#: failover itself, and the defaults (10 s and 30 s).
LEASES = {"leases-3s": ("3", "3"), "default-leases": (None, None)}

#: CPU burners beside the cluster and the processes: a busy host, where calls are slow.
BURNERS = 2


@pytest.mark.parametrize("leases", list(LEASES))
def test_every_task_ends_through_a_cluster_failover(cluster: RedisClusterProcesses, output_dir: Path,
                                                    tmp_path: Path, leases: str) -> None:
    """Every task ends with its right result, no acknowledged start is lost, and no task
    of a live process is taken over or reissued: its web process and worker were only
    waiting for the cluster, and their leases are not judged until they could renew."""
    web_lease, worker_lease = LEASES[leases]
    with burn(BURNERS):
        traffic = failover.Traffic(cluster.url, output_dir, tmp_path, web_lease=web_lease,
                                   worker_lease=worker_lease, thread_worker=True)
        try:
            traffic.thread.start()
            wait_until(lambda: len(traffic.started) >= failover.BEFORE, timeout=60,
                       what=f"{failover.BEFORE} tasks to start")
            victim, shards = busiest_primary(cluster, list(traffic.started.values()))
            replica = cluster.replica_of(victim)
            failed_over_at = time.time()
            cluster.kill(victim)
            cluster.wait_promoted(replica, timeout=failover.STARTS_BACK_WITHIN)
            promoted_after = time.time() - failed_over_at
            wait_until(lambda: any(ok and when > failed_over_at for when, ok in traffic.calls),
                       timeout=failover.STARTS_BACK_WITHIN, interval=0.05,
                       what="a start to succeed after the failover")
            traffic.thread.join(timeout=180)
            assert not traffic.thread.is_alive() and len(traffic.started) == failover.TASKS, \
                "every task could be started"
            finals, lost = failover.wait_for_ends(traffic)
            assert len(traffic.live_pids()) == 4, "every web process and worker is still running"
            taken = traffic.taken_from_live()

            report = failover.measure(traffic, finals, lost, failed_over_at, promoted_after, "cluster-kill")
            report["leases"] = leases
            on_victim = {n for n, task_id in traffic.started.items()
                         if shard_of(task_id, defaults.CLUSTER_SHARDS) in shards}
            report["tasks_on_the_killed_primary"] = len(on_victim)
            report["tasks_unfinished_at_failover_on_the_killed_primary"] = sum(
                1 for n in on_victim
                if n in finals and finals[n]["submitted"] <= failed_over_at <= finals[n]["finishtime"])
            report["tasks_of_live_processes_taken"] = len(taken)
            (output_dir / f"cluster-failover-{leases}.json").write_text(json.dumps(report, indent=2))
            print("cluster failover:", json.dumps(report))
            assert not lost, f"acknowledged starts lost: {report['lost']}"
            assert not taken, f"{len(taken)} task(s) of live processes taken over or reissued:\n" + "\n".join(taken)
        finally:
            traffic.stop()
