"""The no-op task for dramatiq (Redis broker, Redis result backend), and how a producer
hands it over and waits for it.

The worker (``dramatiq peer_dramatiq``) declares the actor on the broker this module
sets. A :class:`Producer` builds its own broker and backend on the system's Redis and
sends the message by actor name; it is what the queue bench's producer threads and the
hand-wired Ladon service (``peer_service.py``) use alike.
"""

import os

import dramatiq
from dramatiq.brokers.redis import RedisBroker
from dramatiq.results import Results
from dramatiq.results.backends import RedisBackend

REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
ACTOR_NAME = "dramatiq_noop"
QUEUE_NAME = "default"


def make_broker(url):
    broker = RedisBroker(url=url)
    backend = RedisBackend(url=url)
    broker.add_middleware(Results(backend=backend))
    return broker, backend


broker, backend = make_broker(REDIS_URL)
dramatiq.set_broker(broker)


@dramatiq.actor(actor_name=ACTOR_NAME, queue_name=QUEUE_NAME, store_results=True, max_retries=0)
def dramatiq_noop(value):
    """No work, so only the queue machinery is measured."""
    return value


def _message(args=(), message_id=None):
    """A message of the actor; the result backend finds a result by queue, actor and id."""
    extra = {"message_id": message_id} if message_id else {}
    return dramatiq.Message(queue_name=QUEUE_NAME, actor_name=ACTOR_NAME, args=args, kwargs={}, options={}, **extra)


class Producer(object):
    """``enqueue`` a message; wait with the backend's blocking ``get_result``."""

    def __init__(self, url):
        self.broker, self.backend = make_broker(url)

    def start(self, value):
        return self.broker.enqueue(_message((value,))).message_id

    def result(self, job_id, timeout):
        return self.backend.get_result(_message(message_id=job_id), block=True, timeout=int(timeout * 1000))

    def close(self):
        self.broker.close()
