"""The no-op task for RQ, and how a producer hands it over and waits for it.

The worker (``rq worker --path bench/services``) imports ``peer_rq.noop`` by its dotted
name. A :class:`Producer` is what the queue bench's producer threads and the hand-wired
Ladon service (``peer_service.py``) use alike.
"""

import redis
from rq import Queue
from rq.job import Job
from rq.results import Result


def noop(value):
    """No work, so only the queue machinery is measured."""
    return value


class Producer(object):
    """Enqueue on the default queue; wait with RQ's blocking ``latest_result``."""

    def __init__(self, url):
        self.connection = redis.Redis.from_url(url)
        self.queue = Queue("default", connection=self.connection)

    def start(self, value):
        return self.queue.enqueue(noop, value).id

    def result(self, job_id, timeout):
        result = Job(job_id, connection=self.connection).latest_result(timeout=int(timeout))
        if result is None:
            raise TimeoutError("RQ job %s not done after %ss" % (job_id, timeout))
        if result.type != Result.Type.SUCCESSFUL:
            raise RuntimeError("RQ job %s: %s" % (job_id, result.exc_string))
        return result.return_value

    def close(self):
        self.connection.close()
