"""A service whose module takes seconds to import in a child process - as one with
heavy dependencies does - so a runtime limit that counted the child's start-up would
kill bodies that are well within it."""

import os
import sys
import time

from ladon_tasks import ladonize

if os.path.basename(sys.argv[0]) == 'child.py':  # python -m ladon_tasks.executors.child
    time.sleep(float(os.environ.get('SLOW_IMPORT_SECONDS', '2.0')))


class SlowImportService(object):

    @ladonize(float, rtype=int, tasktype=dict(executor='process', timeout=1.0))
    def quick(self, seconds, **kw):
        """Runs ``seconds`` (within its 1 s limit, or not) and returns the child's pid."""
        time.sleep(seconds)
        return os.getpid()
