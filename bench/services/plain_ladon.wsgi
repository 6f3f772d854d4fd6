"""WSGI handler of Ladon on its own under mod_wsgi, for the anchors and the hand-wired
peers of the benches: Ladon's ``LadonWSGIApplication`` (``bench.plain_ladon``:
ladon-tasks is never imported, so its plugin is not active) serving the modules of this
directory that ``BENCH_LADON_SERVICES`` names (comma-separated).

Settings come in the environment of the command that starts Apache, as
``deploy/apache`` has them: ``BENCH_LADON_SERVICES``, and for ``peer_service``
``BENCH_PEER`` and ``BENCH_REDIS_URL``. Ladon 1.0.7's own tasktype keeps task state in
each daemon process's memory, as it does for any Ladon deployment under mod_wsgi.
"""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
REPOSITORY = os.path.dirname(os.path.dirname(HERE))
if REPOSITORY not in sys.path:
    sys.path.insert(0, REPOSITORY)

from bench.plain_ladon import application as plain_application  # noqa: E402

application = plain_application(os.environ["BENCH_LADON_SERVICES"].split(","), HERE)
