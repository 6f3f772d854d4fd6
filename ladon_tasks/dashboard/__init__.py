"""An operator's web page over the task store: list, filter, inspect and cancel tasks.

The dashboard reads and cancels only through the runtime (:func:`ladon_tasks.runtime.get_runtime`),
so it shows exactly what the wire methods show and enforces the same state machine. It runs
either beside the services in one WSGI application (:func:`mount`: required for the
in-process store, whose records live in the serving process) or on its own
(:func:`serve_dashboard`: for the Redis store, which every process can see).
"""

from ladon_tasks.dashboard.app import DashboardApp, mount, serve_dashboard

__all__ = ["DashboardApp", "mount", "serve_dashboard"]
