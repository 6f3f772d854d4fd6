"""WSGI handler of the anchor: the bench service on Ladon 1.0.7's own tasktype.

Only ``ladon_tasks.compat`` is imported (Ladon needs its ``getargspec`` shim on Python
3.11); the plugin is never activated, so task state lives in each daemon process's
memory, as it does for any Ladon 1.0.7 deployment under mod_wsgi.
"""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
REPOSITORY = os.path.dirname(os.path.dirname(HERE))
for path in (REPOSITORY, HERE):
    if path not in sys.path:
        sys.path.insert(0, path)

import ladon_tasks.compat  # noqa: E402,F401  (Python 3.11 shim only)
from ladon.server.wsgi import LadonWSGIApplication  # noqa: E402

application = LadonWSGIApplication(["apache_bench_service"], [HERE])
