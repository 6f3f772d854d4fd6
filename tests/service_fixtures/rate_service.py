"""Task methods with a rate limit (``rate='10/s'``), one per place bodies run.

``mark(marker_dir)`` leaves a marker file holding the time its body began, so a test
sees how often bodies began without guessing.
"""

import os
import time
import uuid

from ladon.compat import PORTABLE_STRING

from ladon_tasks import ladonize


def mark(marker_dir):
    with open(os.path.join(marker_dir, uuid.uuid4().hex), 'w') as handle:
        handle.write('%r\n' % time.time())
    return 1


class RateService(object):

    @ladonize(PORTABLE_STRING, rtype=int, tasktype=dict(rate='10/s', executor='thread'))
    def markThread(self, marker_dir, **kw):
        return mark(marker_dir)

    @ladonize(PORTABLE_STRING, rtype=int, tasktype=dict(rate='10/s', executor='queue'))
    def markQueue(self, marker_dir, **kw):
        return mark(marker_dir)

    @ladonize(PORTABLE_STRING, rtype=int, tasktype=dict(rate='10/m', executor='thread'))
    def markSlowThread(self, marker_dir, **kw):
        return mark(marker_dir)

    @ladonize(PORTABLE_STRING, rtype=int, tasktype=dict(rate='10/m', executor='queue'))
    def markSlowQueue(self, marker_dir, **kw):
        return mark(marker_dir)
