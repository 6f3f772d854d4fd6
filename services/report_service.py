"""A long task, a failing one and one for workers, to see what clients get in each case.

``buildReport`` runs for ``minutes`` minutes, reports progress and a message every
second, honours cancel, and runs in a child process so cancel and timeout are enforced.
``importRecords`` fails on bad input - and a failed task never looks like a succeeded
one: its result is a ``TaskFailed`` fault naming the error, never a traceback.
``publishReport`` is queued in Redis and run by ``ladon-tasks worker`` processes
(``executor='queue'``): it needs the Redis store (``serve --redis``) and a worker.
"""

import time

from ladon.compat import PORTABLE_STRING

from ladon_tasks import ladonize


class ReportService(object):

    @ladonize(int, rtype=PORTABLE_STRING,
              tasktype=dict(executor='process', timeout=3600, result_ttl=86400))
    def buildReport(self, minutes, **kw):
        """Build a report for minutes minutes (a stand-in for real work)."""
        seconds = max(1, minutes * 60)
        for second in range(seconds):
            kw['update_progress'](second / seconds, 'section %d of %d' % (second + 1, seconds))
            time.sleep(1)
        return 'report of %d minute(s)' % minutes

    @ladonize([PORTABLE_STRING], rtype=int, tasktype=dict(retries=2, retry_delay=0.5))
    def importRecords(self, records, **kw):
        """Import records of the form key=value; a record without '=' fails the task."""
        imported = 0
        for number, record in enumerate(records):
            if '=' not in record:
                raise ValueError('record %d (%r) has no "="' % (number + 1, record))
            imported += 1
            kw['update_progress']((number + 1) / len(records))
        return imported

    @ladonize(PORTABLE_STRING, rtype=PORTABLE_STRING, tasktype=dict(executor='queue', retries=1))
    def publishReport(self, title, **kw):
        """Publish the report titled title; runs on a ladon-tasks worker, any host."""
        for part in range(3):
            kw['update_progress'](part / 3.0, 'publishing part %d of 3' % (part + 1))
            time.sleep(0.3)
        return 'published %s' % title
