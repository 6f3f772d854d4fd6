"""Task methods with one task per key (``concurrency_key``), one per executor, and one
that is refused beyond its limit.

``hold*(instance_id, marker_dir, seconds)`` runs ``seconds`` and leaves a marker file
``<instance_id>-<uuid>`` holding the times it started and ended, so a test sees how
many ran at once without guessing. A body that is killed leaves its start only.
"""

import os
import time
import uuid

from ladon.compat import PORTABLE_STRING

from ladon_tasks import ladonize


def hold(instance_id, marker_dir, seconds, pid=False):
    path = os.path.join(marker_dir, '%s-%s' % (instance_id, uuid.uuid4().hex))
    with open(path, 'w') as handle:
        handle.write('%r %d\n' % (time.time(), os.getpid()))
    time.sleep(seconds)
    with open(path, 'a') as handle:
        handle.write('%r\n' % time.time())
    return 1


class LimitService(object):

    @ladonize(PORTABLE_STRING, PORTABLE_STRING, float, rtype=int,
              tasktype=dict(concurrency_key='instance_id', concurrency=1, executor='thread'))
    def holdThread(self, instance_id, marker_dir, seconds, **kw):
        return hold(instance_id, marker_dir, seconds)

    @ladonize(PORTABLE_STRING, PORTABLE_STRING, float, rtype=int,
              tasktype=dict(concurrency_key='instance_id', concurrency=2, executor='process'))
    def holdTwoProcess(self, instance_id, marker_dir, seconds, **kw):
        return hold(instance_id, marker_dir, seconds)

    @ladonize(PORTABLE_STRING, PORTABLE_STRING, float, rtype=int,
              tasktype=dict(concurrency_key='instance_id', concurrency=1, executor='queue'))
    def holdQueue(self, instance_id, marker_dir, seconds, **kw):
        return hold(instance_id, marker_dir, seconds)

    @ladonize(PORTABLE_STRING, PORTABLE_STRING, float, rtype=int,
              tasktype=dict(concurrency_key='instance_id', concurrency=1, on_limit='refuse', executor='thread'))
    def holdOrRefuse(self, instance_id, marker_dir, seconds, **kw):
        return hold(instance_id, marker_dir, seconds)
