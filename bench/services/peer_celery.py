"""The no-op task for Celery, and how a producer hands it over and waits for it.

The worker (``celery -A peer_celery worker``) loads ``app`` from this module; the Redis
URL comes from ``BENCH_REDIS_URL``, because each system of a bench gets its own fresh
redis-server on a port picked at run time. A :class:`Producer` is what the queue
bench's producer threads and the hand-wired Ladon service (``peer_service.py``) use
alike. Each has its own app: an app's result consumer is one pub/sub connection.
"""

import os

from celery import Celery

REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
TASK_NAME = "peer_celery.noop"
SETTINGS = dict(
    broker_connection_retry_on_startup=True,
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
)

app = Celery("peer_celery", broker=REDIS_URL, backend=REDIS_URL)
app.conf.update(SETTINGS)


@app.task(name=TASK_NAME)
def noop(value):
    """No work, so only the queue machinery is measured."""
    return value


class Producer(object):
    """``send_task`` by name; wait with ``AsyncResult.get``."""

    def __init__(self, url):
        self.app = Celery("bench-producer", broker=url, backend=url)
        self.app.conf.update(SETTINGS)

    def start(self, value):
        return self.app.send_task(TASK_NAME, args=(value,)).id

    def result(self, job_id, timeout):
        return self.app.AsyncResult(job_id).get(timeout=timeout)

    def close(self):
        self.app.close()
