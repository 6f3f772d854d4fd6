"""A service written for Ladon's own tasktype, untouched: it imports ladonize from Ladon.
It runs on ladon-tasks because the application activates the plugin before importing it."""

from ladon.compat import PORTABLE_STRING
from ladon.ladonizer import ladonize


class LegacyService(object):

    @ladonize(PORTABLE_STRING, int, rtype=int, tasktype=True)
    def countTo(self, session_id, counter, **kw):
        set_progress = kw['update_progress']
        for i in range(counter):
            set_progress(float(i + 1) / counter)
        return counter

    @ladonize(PORTABLE_STRING, rtype=PORTABLE_STRING)
    def hello(self, name):
        return 'hello ' + name
