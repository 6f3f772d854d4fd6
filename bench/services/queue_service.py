"""The ladon-tasks side of the queue and web benches: a no-op task and a plain method.

With ``executor='queue'`` (the default) each start records and enqueues the task in
Redis and the body runs in a ``ladon-tasks worker``: the path whose cost the queue bench
measures. ``BENCH_EXECUTOR=thread`` runs the body in the web process's thread pool
instead, for the web bench's thread-executor row; the worker and the web server must
see the same value.
"""

import os

from ladon_tasks import ladonize

EXECUTOR = os.environ.get("BENCH_EXECUTOR", "queue")


class QueueBenchService(object):
    """A plain method as the yardstick, and a task that does nothing."""

    @ladonize(int, rtype=int)
    def echo(self, value):
        """Plain call: what one JSON-WSP round trip costs on the same server."""
        return value

    @ladonize(int, rtype=int, tasktype=dict(executor=EXECUTOR))
    def noop(self, value, **kw):
        """No work, so only the executor, the store and (with the queue) the worker are measured."""
        return value
