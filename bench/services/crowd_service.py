"""The ladon-tasks side of the followers bench: a plain method, and a task of a few
seconds that clients start and follow to its end (thread executor: the body sleeps in
the web process's pool, ``--thread-workers`` / ``LADON_TASKS_THREAD_WORKERS``)."""

import time

from ladon_tasks import ladonize


class CrowdService(object):
    """A plain method to time beside the crowd, and the task the crowd follows."""

    @ladonize(int, rtype=int)
    def echo(self, value):
        """Plain call: answered beside any crowd of followers."""
        return value

    @ladonize(float, rtype=float, tasktype=True)
    def sleepy(self, seconds, **kw):
        """Sleeps ``seconds``; the time it ended."""
        time.sleep(seconds)
        return time.time()
