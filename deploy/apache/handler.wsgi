"""WSGI handler for Apache/mod_wsgi (and any other WSGI server).

Configured from environment variables, so one file serves every deployment:

  LADON_TASKS_SERVICES   service modules or .py files, separated by ':' or ','
                         (default: the example services of this repository)
  LADON_TASKS_REDIS_URL  redis:// URL of the shared task store (or REDIS_HOST/PORT/...)
  LADON_TASKS_DEBUG      1 to send tracebacks with faults (never in production)
  LADON_TASKS_THREAD_WORKERS, LADON_TASKS_PROCESS_WORKERS  executor pool sizes
  LADON_TASKS_DASHBOARD_TOKEN  mount the dashboard at /_tasks/, guarded by this token
  LADON_TASKS_ALLOWED_HOSTS  host names answered besides localhost and IP addresses
                         (comma-separated; '*' for any); others get 400

Variables are read from the process environment and, for Apache's ``SetEnv``, from the
first request's WSGI environ. The application is built on that first request. Under
several daemon processes without a Redis store it refuses to serve: progress calls
landing in another process would answer UnknownTask.
"""

import os
import sys
import threading

HERE = os.path.dirname(os.path.abspath(__file__))
REPOSITORY = os.path.dirname(os.path.dirname(HERE))
if REPOSITORY not in sys.path:
    sys.path.insert(0, REPOSITORY)

from ladon_tasks.deployment import build_from_settings  # noqa: E402

_application = None
_lock = threading.Lock()


def application(environ, start_response):
    global _application
    if _application is None:
        with _lock:
            if _application is None:
                _application = build_from_settings(environ, default_services_dir=os.path.join(REPOSITORY, "services"))
    return _application(environ, start_response)
