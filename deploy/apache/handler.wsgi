"""WSGI handler for Apache/mod_wsgi (and any other WSGI server), run from a checkout.

With ladon-tasks installed, `ladon-tasks apache-config` writes a handler of your own
(settings included) and its virtual host; this one serves the repository's example
services and is configured from environment variables:

  LADON_TASKS_SERVICES   service modules or .py files, separated by ':' or ','
                         (default: the example services of this repository)
  LADON_TASKS_REDIS_URL  redis:// (or redis+sentinel://) URL of the shared task store (or REDIS_HOST/PORT/...)
  LADON_TASKS_DEBUG      1 to send tracebacks with faults (never in production)
  LADON_TASKS_THREAD_WORKERS, LADON_TASKS_PROCESS_WORKERS  executor pool sizes
  LADON_TASKS_DASHBOARD_TOKEN  mount the dashboard at /_tasks/, guarded by this token
  LADON_TASKS_ALLOWED_HOSTS  host names answered besides localhost and IP addresses
                         (comma-separated; '*' for any); others get 400

Settings in the process environment are read when the handler is imported (at daemon
start under mod_wsgi-express or WSGIImportScript), so a bad configuration is refused
then, in one line of the error log. Settings given with Apache's SetEnv reach the
handler with the first request; it is built then.
"""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
REPOSITORY = os.path.dirname(os.path.dirname(HERE))
if REPOSITORY not in sys.path:
    sys.path.insert(0, REPOSITORY)

from ladon_tasks.deployment import handler_application  # noqa: E402

application = handler_application(default_services_dir=os.path.join(REPOSITORY, "services"))
