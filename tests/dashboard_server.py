"""Serve the example services with the dashboard mounted beside them, for the tests.

    python tests/dashboard_server.py PORT [--token TOKEN] [SERVICE ...]

One WSGI application on 127.0.0.1:PORT: the services at ``/``, the dashboard at
``/_tasks``, sharing this process's in-process task store - the set-up an application
using the default store needs.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from werkzeug.serving import run_simple

from ladon_tasks.dashboard import DashboardApp, mount
from ladon_tasks.hosts import AllowedHosts
from ladon_tasks.wsgi import make_application

SERVICES = Path(__file__).resolve().parent.parent / "services"
DEFAULT_SERVICES = [str(SERVICES / name) for name in ("task_service.py", "report_service.py", "instance_service.py")]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("port", type=int)
    parser.add_argument("services", nargs="*", default=DEFAULT_SERVICES)
    parser.add_argument("--token", default=None)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    services_app = make_application(args.services, thread_workers=8, process_workers=4)
    dashboard = DashboardApp(token=args.token, allowed_hosts=AllowedHosts.for_address("127.0.0.1"))
    run_simple("127.0.0.1", args.port, mount(services_app, dashboard), threaded=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
