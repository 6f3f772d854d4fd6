"""Task methods for delayed starts, one per executor, and one with a default delay.

``stamp*(marker_dir)`` writes a marker named after its task id holding the time its
body started, and returns that time (as text): a test sees when and how often each task
ran without guessing.
"""

import os
import time

from ladon.compat import PORTABLE_STRING

from ladon_tasks import ladonize


def stamp(marker_dir, kw):
    started = repr(time.time())
    with open(os.path.join(marker_dir, '%s-%d' % (kw['task_id'], kw['attempt'])), 'w') as handle:
        handle.write(started)
    return started


class TimingService(object):

    @ladonize(PORTABLE_STRING, rtype=PORTABLE_STRING, tasktype=dict(executor='thread'))
    def stampThread(self, marker_dir, **kw):
        return stamp(marker_dir, kw)

    @ladonize(PORTABLE_STRING, rtype=PORTABLE_STRING, tasktype=dict(executor='process'))
    def stampProcess(self, marker_dir, **kw):
        return stamp(marker_dir, kw)

    @ladonize(PORTABLE_STRING, rtype=PORTABLE_STRING, tasktype=dict(executor='queue'))
    def stampQueue(self, marker_dir, **kw):
        return stamp(marker_dir, kw)

    @ladonize(PORTABLE_STRING, rtype=PORTABLE_STRING, tasktype=dict(executor='thread', delay=2))
    def stampLater(self, marker_dir, **kw):
        """Waits 2 s unless its client asks for another time."""
        return stamp(marker_dir, kw)
