"""The no-op task for dramatiq: Redis broker, Redis result backend.

The worker (``dramatiq peer_dramatiq``) declares the actor on the broker this module
sets; producers build their own broker and backend on the system's Redis with
:func:`make_broker` and send the message by actor name.
"""

import os

import dramatiq
from dramatiq.brokers.redis import RedisBroker
from dramatiq.results import Results
from dramatiq.results.backends import RedisBackend

REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
ACTOR_NAME = "dramatiq_noop"


def make_broker(url):
    broker = RedisBroker(url=url)
    backend = RedisBackend(url=url)
    broker.add_middleware(Results(backend=backend))
    return broker, backend


broker, backend = make_broker(REDIS_URL)
dramatiq.set_broker(broker)


@dramatiq.actor(actor_name=ACTOR_NAME, store_results=True, max_retries=0)
def dramatiq_noop(value):
    """No work, so only the queue machinery is measured."""
    return value
