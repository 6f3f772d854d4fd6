"""Periodic task methods for the dashboard's and the CLI's schedule views, and for the
overlap policy over ``ladon-tasks serve`` (in-process store, thread executor).

``beat`` ticks every second and returns at once; ``yearly`` is due once a year, so in a
test it runs only when an operator asks; ``held`` ticks every second with
``overlap='skip'`` and holds until the file ``release`` exists in the directory
``LADON_TASKS_TEST_MARKERS`` names.
"""

import os
import time

from ladon.compat import PORTABLE_STRING

from ladon_tasks import ladonize

MARKERS = os.environ.get('LADON_TASKS_TEST_MARKERS', '/nonexistent')


class ScheduleBoard(object):

    @ladonize(rtype=int, tasktype=dict(every='1s'))
    def beat(self, **kw):
        return 1

    @ladonize(rtype=int, tasktype=dict(cron='0 3 1 1 *', tz='Europe/Brussels'))
    def yearly(self, **kw):
        return 1

    @ladonize(PORTABLE_STRING, rtype=int, tasktype=dict(every='1s', overlap='skip', args=[MARKERS]))
    def held(self, marker_dir, **kw):
        deadline = time.time() + 600  # released by the test; this only bounds a test gone wrong
        while not os.path.exists(os.path.join(marker_dir, 'release')) and time.time() < deadline:
            time.sleep(0.05)  # the body's own wait for the test to let it go
        return 1
