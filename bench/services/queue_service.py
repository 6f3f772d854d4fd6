"""The ladon-tasks side of the queue bench: a no-op task run by ``ladon-tasks worker``.

``executor='queue'`` sends each start to the Redis queue, so the web server only records
and enqueues, and the body runs in a worker process: the path whose cost is measured.
"""

from ladon_tasks import ladonize


class QueueBenchService(object):
    """A plain method as the yardstick, and a queued task that does nothing."""

    @ladonize(int, rtype=int)
    def echo(self, value):
        """Plain call: what one JSON-WSP round trip costs on the same server."""
        return value

    @ladonize(int, rtype=int, tasktype=dict(executor="queue"))
    def noop(self, value, **kw):
        """No work, so only the queue, the store and the worker are measured."""
        return value
