"""A plain Ladon service that hands its work to a queue by hand: what a Ladon user writes
without ladon-tasks. ``start`` enqueues the no-op task and returns the job's id;
``result`` blocks until the queue has the job's result.

It uses Ladon's own ``ladonize`` and no task type, and is served by Ladon's own
``LadonWSGIApplication`` (``bench.plain_ladon``), on Werkzeug's threaded server or under
mod_wsgi (``plain_ladon.wsgi``). ``BENCH_PEER`` names the queue (``huey``,
``dramatiq``, ``rq``, ``celery``: the ``Producer`` of ``peer_<name>.py``), on the Redis
of ``BENCH_REDIS_URL``; without it only ``echo`` answers, the plain call of the
benches' ceiling. One producer serves every request thread, as a module-level queue
object does in a user's service.
"""

import importlib
import os

from ladon.compat import PORTABLE_STRING
from ladon.ladonizer import ladonize

PEER = os.environ.get("BENCH_PEER", "")
#: Longest ``result`` waits for a job, in seconds; a bench client gives up after that too.
RESULT_TIMEOUT = 30.0

producer = importlib.import_module("peer_" + PEER).Producer(os.environ["BENCH_REDIS_URL"]) if PEER else None


class PeerService(object):
    """The plain call, and a task's start and result wired to a queue by hand."""

    @ladonize(int, rtype=int)
    def echo(self, value):
        """Plain call: what one JSON-WSP round trip costs on this server."""
        return value

    @ladonize(int, rtype=PORTABLE_STRING)
    def start(self, value):
        """Enqueue the no-op task; the job's id."""
        return producer.start(value)

    @ladonize(PORTABLE_STRING, rtype=int)
    def result(self, job_id):
        """Block until the job's result is there, and return it."""
        return producer.result(job_id, RESULT_TIMEOUT)

    @ladonize(float, rtype=PORTABLE_STRING)
    def startSleep(self, seconds):
        """Enqueue a task of ``seconds`` (huey only): the followers bench's task."""
        return producer.start_sleep(seconds)

    @ladonize(PORTABLE_STRING, rtype=float)
    def peek(self, job_id):
        """When the job ended (seconds since the epoch), or 0.0 while it has not: the
        call a client polls to follow its task, as Ladon users do by hand."""
        ended = producer.peek(job_id)
        return float(ended) if ended is not None else 0.0
