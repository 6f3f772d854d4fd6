"""The recycling bench's service: a queued task whose body keeps 10 MiB more each run
for as long as its process lives (a leak), and answers the pid it ran in. ``leak`` has
no bound of its own (the worker's flags bound it); ``leakBounded`` replaces its child
past 200 MiB resident."""

import os

from ladon_tasks import ladonize

_LEAKED = []


def _leak():
    _LEAKED.append(b'x' * (10 << 20))  # written, so resident
    return os.getpid()


class RecycleBenchService(object):

    @ladonize(rtype=int, tasktype=dict(executor='queue'))
    def leak(self, **kw):
        return _leak()

    @ladonize(rtype=int, tasktype=dict(executor='queue', max_memory_per_child=200))
    def leakBounded(self, **kw):
        return _leak()
