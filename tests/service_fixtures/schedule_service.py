"""A periodic task method for the schedule tests: every second, on the workers' queue.

``tick(marker_dir)`` leaves a marker named after its task id holding the time it ran;
the directory comes from ``LADON_TASKS_TEST_MARKERS``, which the test sets for every
process it starts (a schedule's arguments are fixed at decoration).
"""

import os
import time

from ladon.compat import PORTABLE_STRING

from ladon_tasks import ladonize

MARKERS = os.environ.get('LADON_TASKS_TEST_MARKERS', '/nonexistent')


class ScheduleService(object):

    @ladonize(PORTABLE_STRING, rtype=PORTABLE_STRING,
              tasktype=dict(executor='queue', every='1s', args=[MARKERS], overlap='run'))
    def tick(self, marker_dir, **kw):
        with open(os.path.join(marker_dir, kw['task_id']), 'a') as handle:
            handle.write(repr(time.time()) + '\n')
        return kw['task_id']
