"""One task method whose state lives in its own Redis (``redis=URL``), in an app whose
store is otherwise in process. The URL comes from the environment of the test."""

import os

from ladon.compat import PORTABLE_STRING

from ladon_tasks import ladonize


class SplitService(object):

    @ladonize(PORTABLE_STRING, rtype=PORTABLE_STRING,
              tasktype=dict(redis=os.environ.get('SPLIT_REDIS_URL', 'redis://127.0.0.1:6379/0')))
    def inRedis(self, text, **kw):
        return text[::-1]

    @ladonize(PORTABLE_STRING, rtype=PORTABLE_STRING, tasktype=True)
    def inMemory(self, text, **kw):
        return text
