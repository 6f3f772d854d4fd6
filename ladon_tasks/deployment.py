"""Build the application of a deployment from its settings (environment variables).

Used by the WSGI handlers (the one ``ladon-tasks apache-config`` writes, and
``deploy/apache/handler.wsgi``) and anything else configured by environment rather
than by command-line options. The one rule it enforces: a server that runs several
processes must keep task state in Redis, because a progress call may land in any
process. Such a server without Redis is refused at start-up, with the reason, rather
than left to answer "UnknownTask" for tasks that do exist.

:func:`handler_application` is what a handler calls. When the services are known at
import time (written in the handler, or in the process environment) it builds the
application then, so that under mod_wsgi (``WSGIImportScript``, or
``mod_wsgi-express``, which imports the handler when a daemon starts) a bad
configuration is reported once per daemon process, at start, in one line of the error
log. Settings given only with Apache's ``SetEnv`` reach the application with the first
request, so only then can it be built; a refusal is still logged once. Either way
every request of a refused server gets a short ``500`` - no traceback per request.

Every application built here answers only the ``Host`` names of
:mod:`ladon_tasks.hosts` (DNS rebinding), plus ``LADON_TASKS_ALLOWED_HOSTS``.
"""

from __future__ import annotations

import os
import re
import sys
import threading
import traceback
from typing import Any, Callable, Iterable, Mapping, Sequence

from ladon_tasks import defaults
from ladon_tasks.hosts import AllowedHosts, HostCheck, parse_names
from ladon_tasks.stores.base import TaskStore
from ladon_tasks.wsgi_types import WSGIApp

SETTINGS = (
    "LADON_TASKS_SERVICES",
    "LADON_TASKS_REDIS_URL",
    "LADON_TASKS_DEBUG",
    "LADON_TASKS_THREAD_WORKERS",
    "LADON_TASKS_PROCESS_WORKERS",
    "LADON_TASKS_DASHBOARD_TOKEN",
    "LADON_TASKS_HEALTH_OPEN",
    "LADON_TASKS_SHUTDOWN_GRACE",
    "LADON_TASKS_OWNER_LEASE",
    "LADON_TASKS_ALLOWED_HOSTS",
    "LADON_TASKS_MAX_QUEUED_TASKS",
    "LADON_TASKS_MAX_STORE_BYTES",
    "LADON_TASKS_MAX_QUEUED_BYTES",
    "LADON_TASKS_WAIT_THREADS",
    "LADON_TASKS_PRINCIPAL",
    "LADON_TASKS_REQUIRE_PRINCIPAL",
    "REDIS_HOST",
    "REDIS_PORT",
    "REDIS_USERNAME",
    "REDIS_PASSWORD",
)


class DeploymentError(RuntimeError):
    """The settings cannot make a working deployment; the message says what to change."""


def read_settings(environ: Mapping[str, Any] | None = None) -> dict[str, str]:
    """Process environment first, then (for Apache's ``SetEnv``) the WSGI environ."""
    settings = {}
    for name in SETTINGS:
        value = os.environ.get(name)
        if value is None and environ is not None and isinstance(environ.get(name), str):
            value = environ[name]
        if value:
            settings[name] = value
    return settings


def switched_on(settings: Mapping[str, str], name: str) -> bool:
    """A yes/no setting: ``1``, ``true`` or ``yes`` say yes."""
    return str(settings.get(name, "")).strip().lower() in ("1", "true", "yes")


def redis_configured(settings: Mapping[str, str]) -> bool:
    """Whether the settings name a Redis store."""
    return bool(settings.get("LADON_TASKS_REDIS_URL") or settings.get("REDIS_HOST"))


def whole_number(settings: Mapping[str, str], name: str, most: int | None = None) -> int | None:
    """A setting that must be a whole number >= 1 (and <= ``most``), or ``None`` when it
    is not set."""
    text = settings.get(name, "").strip()
    if not text:
        return None
    if not (text.isascii() and text.isdigit()) or int(text) < 1:
        raise ValueError(f"{name} must be a whole number of at least 1, not {text[:40]!r}")
    if most is not None and int(text) > most:
        raise ValueError(f"{name} is at most {most:,} on Redis, not {text[:40]}")
    return int(text)


def make_store(settings: Mapping[str, str]) -> TaskStore | None:
    """A Redis store when Redis is configured, bounded as the settings say
    (``LADON_TASKS_MAX_QUEUED_TASKS``, ``LADON_TASKS_MAX_QUEUED_BYTES``); else an
    in-process store with the bounds the settings give (``LADON_TASKS_MAX_QUEUED_TASKS``,
    ``LADON_TASKS_MAX_STORE_BYTES``), or ``None`` for the embedded default."""
    max_queued = whole_number(settings, "LADON_TASKS_MAX_QUEUED_TASKS")
    if not redis_configured(settings):
        max_bytes = whole_number(settings, "LADON_TASKS_MAX_STORE_BYTES")
        if max_queued is None and max_bytes is None:
            return None
        from ladon_tasks.stores.memory import MemoryStore

        return MemoryStore(max_queued=max_queued or defaults.MAX_QUEUED_TASKS,
                           max_bytes=max_bytes or defaults.MEMORY_STORE_MAX_BYTES)
    from ladon_tasks.redis import MAX_QUEUED_BYTES_LIMIT, MAX_QUEUED_LIMIT, open_store, store_from_environment

    whole_number(settings, "LADON_TASKS_MAX_QUEUED_TASKS", most=MAX_QUEUED_LIMIT)
    max_queued_bytes = whole_number(settings, "LADON_TASKS_MAX_QUEUED_BYTES", most=MAX_QUEUED_BYTES_LIMIT)
    bounds = dict(max_queued=max_queued or defaults.REDIS_MAX_QUEUED_TASKS,
                  max_queued_bytes=max_queued_bytes or defaults.REDIS_MAX_QUEUED_BYTES)
    url = settings.get("LADON_TASKS_REDIS_URL")
    return open_store(url, **bounds) if url else store_from_environment(settings, **bounds)


def server_processes(environ: Mapping[str, Any] | None) -> int:
    """How many processes serve requests: mod_wsgi knows; elsewhere the WSGI flag says
    more than one or not."""
    try:
        import mod_wsgi

        return int(getattr(mod_wsgi, "maximum_processes", 1))
    except ImportError:
        pass
    return 2 if environ is not None and environ.get("wsgi.multiprocess") else 1


def wait_threads_setting(settings: Mapping[str, str]) -> int | None:
    """``LADON_TASKS_WAIT_THREADS``: request threads waits may hold at once (0: waits
    never hold one), or ``None`` when it is not set."""
    text = settings.get("LADON_TASKS_WAIT_THREADS", "").strip()
    if not text:
        return None
    if not (text.isascii() and text.isdigit()):
        raise ValueError(f"LADON_TASKS_WAIT_THREADS must be a whole number, not {text[:40]!r}")
    return int(text)


def wait_threads(settings: Mapping[str, str]) -> int | None:
    """The wait budget of a process: ``LADON_TASKS_WAIT_THREADS``, else the share of
    mod_wsgi's threads per daemon, else ``None`` (the runtime's default) where the
    server's threads are not known."""
    asked = wait_threads_setting(settings)
    if asked is not None:
        return asked
    try:
        import mod_wsgi
    except ImportError:
        return None
    threads = getattr(mod_wsgi, "threads_per_process", None)
    if not isinstance(threads, int) or threads < 1:
        return None
    from ladon_tasks.waits import budget_for

    return budget_for(threads)


def principal_settings(settings: Mapping[str, str]) -> dict[str, Any]:
    """``principal`` and ``require_principal`` for the runtime, from
    ``LADON_TASKS_PRINCIPAL`` (an environ key or a dotted name of a hook:
    :mod:`ladon_tasks.principals`) and ``LADON_TASKS_REQUIRE_PRINCIPAL``; empty when
    neither is set (the default: ``REMOTE_USER``, not required, no ``m_list``)."""
    chosen: dict[str, Any] = {}
    if settings.get("LADON_TASKS_PRINCIPAL", "").strip():
        chosen["principal"] = settings["LADON_TASKS_PRINCIPAL"].strip()
    if settings.get("LADON_TASKS_REQUIRE_PRINCIPAL", "").strip():
        chosen["require_principal"] = switched_on(settings, "LADON_TASKS_REQUIRE_PRINCIPAL")
    return chosen


def build_from_settings(environ: Mapping[str, Any] | None = None, default_services_dir: str = "") -> Any:
    """The application the settings describe, or :class:`DeploymentError` saying what
    to change."""
    from ladon_tasks.wsgi import make_application

    settings = read_settings(environ)
    processes = server_processes(environ)
    if processes > 1 and not redis_configured(settings):
        raise DeploymentError(
            f"ladon-tasks: this server runs {processes} processes, but no Redis store is configured. "
            "Task state kept in one process's memory is invisible to the others. Set "
            "LADON_TASKS_REDIS_URL (or REDIS_HOST), or run a single process."
        )
    services = [s for s in re.split(r"[:,]", settings.get("LADON_TASKS_SERVICES", "")) if s.strip()]
    if not services and default_services_dir:
        services = [
            os.path.join(default_services_dir, name)
            for name in sorted(os.listdir(default_services_dir))
            if name.endswith(".py") and not name.startswith("_")
        ]
    if not services:
        raise DeploymentError("ladon-tasks: no services configured (LADON_TASKS_SERVICES)")
    runtime_settings: dict[str, Any] = {}
    store = make_store(settings)
    if store is not None:
        runtime_settings["store"] = store
    for name, key in (
        ("LADON_TASKS_THREAD_WORKERS", "thread_workers"),
        ("LADON_TASKS_PROCESS_WORKERS", "process_workers"),
    ):
        if name in settings:
            runtime_settings[key] = whole_number(settings, name)
    budget = wait_threads(settings)
    if budget is not None:
        runtime_settings["wait_threads"] = budget
    if "LADON_TASKS_OWNER_LEASE" in settings:
        runtime_settings["owner_lease"] = float(settings["LADON_TASKS_OWNER_LEASE"])
    runtime_settings.update(principal_settings(settings))
    application: WSGIApp = make_application(
        services,
        debug=switched_on(settings, "LADON_TASKS_DEBUG"),
        shutdown_grace=float(settings.get("LADON_TASKS_SHUTDOWN_GRACE", defaults.SHUTDOWN_GRACE)),
        **runtime_settings,
    )
    token = settings.get("LADON_TASKS_DASHBOARD_TOKEN")
    if token:
        from ladon_tasks.dashboard import DashboardApp, mount

        application = mount(
            application,
            DashboardApp(token=token, health_open=switched_on(settings, "LADON_TASKS_HEALTH_OPEN")),
            prefix="/_tasks",
        )
    return HostCheck(application, allowed_hosts(settings, str((environ or {}).get("SERVER_ADDR", ""))))


def allowed_hosts(settings: Mapping[str, str], bind_address: str, extra: Sequence[str] = ()) -> AllowedHosts:
    """The ``Host`` names a server bound to ``bind_address`` answers: the defaults of
    :class:`~ladon_tasks.hosts.AllowedHosts`, ``LADON_TASKS_ALLOWED_HOSTS`` and ``extra``."""
    names = parse_names(settings.get("LADON_TASKS_ALLOWED_HOSTS", "")) + list(extra)
    return AllowedHosts.for_address(bind_address, names)



#: The answer of a server whose configuration was refused: the reason is in the log,
#: not on the wire (it may name paths or hosts).
_REFUSED_BODY = (
    b"Internal Server Error: ladon-tasks is not configured correctly; the reason is in the server's error log\n"
)


class HandlerApplication:
    """The WSGI application of a handler file: built at once when its services are
    known, else at the first request (from ``SetEnv`` values); refused configurations
    logged in one line, once."""

    def __init__(self, settings: Mapping[str, str] | None = None, default_services_dir: str = "") -> None:
        self.settings = dict(settings or {})
        self.default_services_dir = default_services_dir
        self._application: WSGIApp | None = None
        self._refused = False
        self._lock = threading.Lock()
        if self.settings.get("LADON_TASKS_SERVICES") or os.environ.get("LADON_TASKS_SERVICES"):
            self._build(None)

    def _build(self, environ: Mapping[str, Any] | None) -> None:
        for name, value in self.settings.items():  # written in the handler: they win
            os.environ[name] = value
        try:
            self._application = build_from_settings(environ, self.default_services_dir)
        except Exception as exc:
            self._refused = True
            reason = str(exc) if isinstance(exc, DeploymentError) else f"{type(exc).__name__}: {exc}"
            reason = " ".join(reason.split())  # one line in the error log, whatever the message
            if not reason.startswith("ladon-tasks:"):
                reason = f"ladon-tasks: {reason}"
            print(f"{reason} - not serving (pid {os.getpid()})", file=sys.stderr, flush=True)
            if switched_on(os.environ, "LADON_TASKS_DEBUG"):
                traceback.print_exc(file=sys.stderr)

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if self._application is None and not self._refused:
            with self._lock:
                if self._application is None and not self._refused:
                    self._build(environ)
        if self._application is None:
            start_response("500 Internal Server Error", [
                ("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(_REFUSED_BODY))),
            ])
            return [_REFUSED_BODY]
        return self._application(environ, start_response)


def handler_application(
    settings: Mapping[str, str] | None = None, default_services_dir: str = ""
) -> HandlerApplication:
    """The ``application`` of a WSGI handler file: ``settings`` (the same names as the
    environment variables) override the environment."""
    return HandlerApplication(settings, default_services_dir)
