"""The no-op task for huey, and how a producer hands it over and waits for it.

``notify_result=True``: a blocking result waits on a notification list (``BLPOP``)
instead of polling with back-off - about 1 ms a round trip instead of about 50 ms, huey
at its fastest. The consumer loads ``huey`` from this module. A :class:`Producer` is
what the queue bench's producer threads and the hand-wired Ladon service
(``peer_service.py``) use alike.
"""

import os
import time

import redis
from huey import RedisHuey

REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
TASK_NAME = "huey_noop"
SLEEP_TASK_NAME = "huey_sleep"


def make_huey(url):
    # redis-py 8 bounds a pool at 100 connections by default: a threaded web server or a
    # consumer with more threads than that would fail with "Too many connections".
    pool = redis.ConnectionPool.from_url(url, max_connections=10_000)
    return RedisHuey("bench", connection_pool=pool, notify_result=True)


def noop(value):
    """No work, so only the queue machinery is measured."""
    return value


def sleep_for(seconds):
    """A task of a few seconds for the followers bench; the time it ended."""
    time.sleep(seconds)
    return time.time()


huey = make_huey(REDIS_URL)
huey_noop = huey.task(name=TASK_NAME)(noop)
huey_sleep = huey.task(name=SLEEP_TASK_NAME)(sleep_for)


class Producer(object):
    """Call the task; wait with a blocking ``result`` by id."""

    def __init__(self, url):
        self.huey = make_huey(url)
        self.task = self.huey.task(name=TASK_NAME)(noop)
        self.sleep_task = self.huey.task(name=SLEEP_TASK_NAME)(sleep_for)

    def start(self, value):
        return self.task(value).id

    def start_sleep(self, seconds):
        return self.sleep_task(seconds).id

    def peek(self, job_id):
        """The result if there is one, else ``None``; never blocks, never consumes it:
        what a client polling for its task's end asks."""
        return self.huey.result(job_id, preserve=True)

    def result(self, job_id, timeout):
        return self.huey.result(job_id, blocking=True, timeout=timeout)

    def close(self):
        self.huey.storage.conn.close()
