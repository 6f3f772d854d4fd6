"""The service of the Apache/mod_wsgi load bench, written for Ladon's own tasktype.

It imports ``ladonize`` from Ladon, so the one file serves both sides of the bench:
through ``deploy/apache/handler.wsgi`` it runs on ladon-tasks (Redis store, thread
executor); through ``plain_ladon.wsgi`` it runs on Ladon 1.0.7's thread-mode tasktype,
the anchor. Progress is reported as a bare float because Ladon's ``update_progress``
ignores anything else and takes no message.
"""

import os
import time

from ladon.ladonizer import ladonize

#: Seconds between two progress reports of ``steps``: four steps make a task of about
#: 0.4 s, long enough that clients poll it while it runs, short enough that 50 clients
#: finish thousands of them in a 30 s run.
STEP_SECONDS = 0.1


class ApacheBenchService(object):
    """A plain method naming the serving process, and a short task reporting progress."""

    @ladonize(rtype=int)
    def servingProcess(self):
        """The pid of the daemon process that answered: how the bench counts processes."""
        return os.getpid()

    @ladonize(int, rtype=int, tasktype=True)
    def steps(self, count, **kw):
        """Report progress ``count`` times, ``STEP_SECONDS`` apart; return the pid of the
        process the body ran in (never 0: Ladon's ``_result`` takes 0 for "no result")."""
        update = kw['update_progress']
        for number in range(count):
            update(float(number) / count)
            time.sleep(STEP_SECONDS)
        return os.getpid()
