"""Prometheus metrics, read from the task store at scrape time.

``GET /_tasks/metrics`` (and ``/metrics`` on ``ladon-tasks worker --metrics-port``)
answers in Prometheus' text format, written by ``prometheus_client``. The numbers are
read from the store when Prometheus asks - :meth:`TaskStore.counts` (one read of one
hash in Redis), the queue depths and the workers (one script each) - by a custom
collector, not kept in this process's memory. So every web process and every worker
answers the same numbers for the whole deployment: under mod_wsgi with several daemon
processes a scrape may land in any of them and is still right, without
prometheus_client's multiprocess mode (its files, its directory to clean at start, its
limits on gauges). With the in-process store the numbers are that process's own, which
is all there is.

Series (``method`` is the task method's name):

============================================  =======  ===================================
``ladon_tasks_tasks_submitted_total``         counter  tasks recorded by start calls
``ladon_tasks_tasks_finished_total``          counter  tasks finished, by ``state``
``ladon_tasks_tasks_retried_total``           counter  attempts run again after an error
``ladon_tasks_tasks_reissued_total``          counter  lost attempts run again
``ladon_tasks_tasks``                         gauge    tasks ``queued`` or ``running`` now
``ladon_tasks_task_duration_seconds``         hist.    run time of finished tasks that ran
``ladon_tasks_queue_jobs``                    gauge    per ``queue``: ``waiting``,
                                                       ``delayed``, ``running`` (``kind``)
``ladon_tasks_workers``                       gauge    workers whose heartbeat is live
``ladon_tasks_web_processes``                 gauge    web processes with a live owner lease
``ladon_tasks_store_up``                      gauge    1 when the store answered this scrape
============================================  =======  ===================================

A worker adds its own ``ladon_tasks_worker_slots`` and ``ladon_tasks_worker_busy_slots``;
a web process its wait budget (:mod:`ladon_tasks.waits`): ``ladon_tasks_wait_places``,
``ladon_tasks_waits_held`` (waits holding a request thread now) and
``ladon_tasks_waits_answered_at_once_total`` (waits that found no place), its own figures.
"""

from __future__ import annotations

from typing import Callable, Iterable, Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.registry import Collector, CollectorRegistry

from ladon_tasks.stats import DURATION_BUCKETS, FINISHED_NAMES, TaskCounts
from ladon_tasks.stores.base import StoreError, TaskStore
from ladon_tasks.waits import WaitBudget

#: The ``Content-Type`` of the answer.
CONTENT_TYPE = CONTENT_TYPE_LATEST


class TaskMetrics(Collector):
    """Reads the numbers from ``store_provider()``'s store at each collection; ``local``
    adds metrics of the process itself (a worker's slots)."""

    def __init__(self, store_provider: Callable[[], TaskStore],
                 local: Callable[[], Iterable[Metric]] | None = None) -> None:
        self.store_provider = store_provider
        self.local = local

    def collect(self) -> Iterator[Metric]:
        store = self.store_provider()
        up = GaugeMetricFamily("ladon_tasks_store_up", "1 when the task store answered this scrape, else 0")
        try:
            counts = store.counts()
            fleet = store.fleet()
            queues = fleet.queues() if fleet is not None else []
            workers, webs = fleet.workers() if fleet is not None else ([], [])
        except StoreError:
            up.add_metric([], 0)
            yield up
            yield from self._local()
            return
        up.add_metric([], 1)
        yield up
        yield from _task_metrics(counts)
        depth = GaugeMetricFamily("ladon_tasks_queue_jobs", "Jobs of a Redis queue: waiting (no worker read "
                                  "them yet), delayed (retries waiting for their time), running (held by a "
                                  "worker)", labels=["queue", "kind"])
        for queue in queues:
            for kind, value in (("waiting", queue.waiting), ("delayed", queue.delayed), ("running", queue.running)):
                depth.add_metric([queue.name, kind], value)
        yield depth
        if fleet is not None:
            yield GaugeMetricFamily("ladon_tasks_workers", "Workers whose heartbeat is live", value=len(workers))
            yield GaugeMetricFamily("ladon_tasks_web_processes",
                                    "Web processes whose owner lease is live (they run tasks in process)",
                                    value=len(webs))
        yield from self._local()

    def _local(self) -> Iterator[Metric]:
        if self.local is not None:
            yield from self.local()


def wait_metrics(budget: WaitBudget) -> Iterator[Metric]:
    """This process's wait budget: how full it is, and how often it was full."""
    yield GaugeMetricFamily("ladon_tasks_wait_places", "Request threads _wait calls may hold at once in this "
                            "process", value=budget.places)
    yield GaugeMetricFamily("ladon_tasks_waits_held", "_wait calls holding a request thread of this process now",
                            value=budget.held)
    yield CounterMetricFamily("ladon_tasks_waits_answered_at_once", "_wait calls this process answered at once, "
                              "with poll_after, for want of a place in its wait budget", value=budget.refused)


def _task_metrics(counts: TaskCounts) -> Iterator[Metric]:
    submitted = CounterMetricFamily("ladon_tasks_tasks_submitted", "Tasks recorded by start calls (new tasks)",
                                    labels=["method"])
    finished = CounterMetricFamily("ladon_tasks_tasks_finished", "Tasks finished, by final state",
                                   labels=["method", "state"])
    retried = CounterMetricFamily("ladon_tasks_tasks_retried", "Attempts run again after the body raised",
                                  labels=["method"])
    reissued = CounterMetricFamily("ladon_tasks_tasks_reissued", "Attempts run again because they were lost "
                                   "(their worker or web process died or stopped)", labels=["method"])
    now = GaugeMetricFamily("ladon_tasks_tasks", "Tasks queued or running now", labels=["method", "state"])
    duration = HistogramMetricFamily("ladon_tasks_task_duration_seconds",
                                     "Run time of finished tasks that ran (last attempt's start to finish)",
                                     labels=["method"])
    for method, numbers in sorted(counts.methods.items()):
        submitted.add_metric([method], numbers.submitted)
        retried.add_metric([method], numbers.retried)
        reissued.add_metric([method], numbers.reissued)
        now.add_metric([method, "queued"], numbers.queued)
        now.add_metric([method, "running"], numbers.running)
        per_bucket = [0] * (len(DURATION_BUCKETS) + 1)
        for state in FINISHED_NAMES:
            finished.add_metric([method, state], numbers.finished(state))
            for index, count in enumerate(numbers.buckets.get(state, ())):
                per_bucket[index] += count
        cumulative, buckets = 0, []
        for bound, count in zip([*(repr(b) for b in DURATION_BUCKETS), "+Inf"], per_bucket, strict=True):
            cumulative += count
            buckets.append((bound, cumulative))
        duration.add_metric([method], buckets, sum(numbers.seconds.values()))
    yield from (submitted, finished, retried, reissued, now, duration)


def exposition(collector: Collector) -> bytes:
    """The text Prometheus reads, from one collection of ``collector``."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    return generate_latest(registry)
