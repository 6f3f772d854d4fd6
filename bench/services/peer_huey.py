"""The no-op task for huey, the queue bench's leanest peer.

``notify_result=True``: a blocking ``Result.get`` waits on a notification list
(``BLPOP``) instead of polling with back-off - about 1 ms a round trip instead of about
50 ms, huey at its fastest. The consumer loads ``huey`` from this module; producers
build their own instance on the system's Redis with :func:`make_huey`.
"""

import os

from huey import RedisHuey

REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
TASK_NAME = "huey_noop"


def make_huey(url):
    return RedisHuey("bench", url=url, notify_result=True)


def noop(value):
    """No work, so only the queue machinery is measured."""
    return value


huey = make_huey(REDIS_URL)
huey_noop = huey.task(name=TASK_NAME)(noop)
