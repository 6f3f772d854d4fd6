"""The same no-op task for the peers of the queue bench: RQ and Celery.

RQ imports ``noop`` by its dotted name; Celery's worker loads ``app`` from this module.
The Redis URL comes from ``BENCH_REDIS_URL``, because each system gets its own fresh
redis-server on a port the bench picks at run time.
"""

import os

from celery import Celery

REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")

app = Celery("peer_tasks", broker=REDIS_URL, backend=REDIS_URL)
app.conf.update(
    broker_connection_retry_on_startup=True,
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
)


def noop(value):
    """RQ's task: no work, so only the queue machinery is measured."""
    return value


@app.task(name="peer_tasks.celery_noop")
def celery_noop(value):
    """Celery's task: the same no-op, registered with the Celery app."""
    return value
