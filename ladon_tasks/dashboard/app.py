"""The dashboard's WSGI application, the dispatcher that mounts it beside the services,
and a standalone server.

Routes, relative to wherever the application is mounted::

    GET  /                          the page (HTML; its script polls the API)
    GET  /static/<name>             the page's script and style sheet
    GET  /api/tasks?state=&method=&limit=&offset=
                                    newest first; ``state`` repeatable or comma-separated
    GET  /api/tasks/<id>            one task, with its arguments
    POST /api/tasks/<id>/cancel     cancel (needs the header ``X-Requested-By: ladon-tasks``)

Every read goes through the runtime's store (``store.list``, ``runtime.record``) and
every cancel through ``runtime.cancel``, so the dashboard obeys the same state machine
and TTLs as the wire methods and never reaches into a backend. Access rules live in
:mod:`ladon_tasks.dashboard.guard`.
"""

from __future__ import annotations

import json
import logging
import time
from importlib import resources
from typing import Any, Callable, Iterable
from urllib.parse import urlencode

from werkzeug.exceptions import HTTPException, NotFound
from werkzeug.middleware.dispatcher import DispatcherMiddleware
from werkzeug.routing import Map, Rule
from werkzeug.urls import iri_to_uri
from werkzeug.wrappers import Request, Response

from ladon_tasks import defaults, faults
from ladon_tasks import spec as specs
from ladon_tasks.dashboard.guard import SESSION_COOKIE, AccessGuard
from ladon_tasks.dashboard.views import task_detail, task_summary
from ladon_tasks.hosts import AllowedHosts, is_loopback
from ladon_tasks.model import TaskRecord, TaskState, UnreadableRecord
from ladon_tasks.runtime import TaskRuntime, get_runtime
from ladon_tasks.stores.base import StoreError
from ladon_tasks.stores.memory import MemoryStore
from ladon_tasks.wsgi_types import WSGIApp

log = logging.getLogger(__name__)


#: Files the page loads, with their types; nothing else under ``static/`` is served.
STATIC_FILES = {
    "index.html": "text/html; charset=utf-8",
    "favicon.svg": "image/svg+xml",
    "dashboard.js": "text/javascript; charset=utf-8",
    "dashboard.css": "text/css; charset=utf-8",
}

#: The page runs only its own script and style sheet, talks only to its own origin and
#: cannot be framed: an injected string can neither run nor phone home.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
}

#: Faults of the runtime and the HTTP status the API answers them with.
_FAULT_STATUS: tuple[tuple[type[Exception], int], ...] = (
    (faults.MalformedTaskId, 404),
    (faults.UnknownTask, 404),
    (faults.StoreUnavailable, 503),
    (faults.CorruptTask, 409),  # cancel of a task whose record cannot be read
)


class DashboardApp:
    """A WSGI application: the task page and its JSON API.

    ``runtime_provider`` is called on every request rather than once, so a runtime that
    :func:`ladon_tasks.runtime.configure` replaces after start-up is the one shown.
    ``token`` (optional) is required on every request; ``allowed_hosts`` limits the
    ``Host`` headers served; ``trusted_origins`` adds origins (``https://ops.example``)
    allowed to POST besides the dashboard's own, for deployments behind a proxy that
    rewrites ``Host``.
    """

    def __init__(
        self,
        runtime_provider: Callable[[], TaskRuntime] = get_runtime,
        token: str | None = None,
        *,
        allowed_hosts: AllowedHosts | Iterable[str] | None = None,
        trusted_origins: Iterable[str] = (),
    ) -> None:
        self.runtime_provider = runtime_provider
        self.guard = AccessGuard(
            token,
            allowed_hosts=allowed_hosts,
            trusted_origins=list(trusted_origins),
        )
        self.url_map = Map(
            [
                Rule("/", endpoint="page", methods=["GET"]),
                Rule("/static/<name>", endpoint="static", methods=["GET"]),
                Rule("/api/tasks", endpoint="list", methods=["GET"]),
                Rule("/api/tasks/<task_id>", endpoint="detail", methods=["GET"]),
                Rule("/api/tasks/<task_id>/cancel", endpoint="cancel", methods=["POST"]),
            ]
        )
        self._static: dict[str, bytes] = {}

    # -- WSGI ------------------------------------------------------------------------

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        request = Request(environ)
        response = self.respond(request)
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        return response(environ, start_response)

    def respond(self, request: Request) -> Response:
        """Access checks in order (host, token, cross-site), then the route."""
        if not self.guard.host_allowed(request):
            return _text("unexpected Host header\n", 400)
        if not request.environ.get("PATH_INFO") and request.script_root:
            # Mounted at /_tasks and opened without the slash: the page's relative
            # links only resolve below /_tasks/.
            return _redirect(request.script_root + "/" + _query(request))
        if self.guard.needs_token and "token" in request.args and request.path == "/":
            return self._sign_in(request)
        if not self.guard.authorised(request):
            return self._unauthorised(request)
        if request.method not in ("GET", "HEAD"):
            refusal = self.guard.cross_site_refusal(request)
            if refusal is not None:
                return _json({"error": "Forbidden", "message": refusal}, 403)
        adapter = self.url_map.bind_to_environ(request.environ)
        try:
            endpoint, values = adapter.match()
            return getattr(self, f"on_{endpoint}")(request, **values)
        except HTTPException as exc:
            if request.path.startswith("/api/"):
                return _json({"error": exc.name, "message": exc.description or exc.name}, exc.code or 500)
            return exc.get_response(request.environ)

    # -- access ------------------------------------------------------------------------

    def _sign_in(self, request: Request) -> Response:
        """``?token=`` on the page: swap it for the cookie and drop it from the address
        bar, so it stays out of history, bookmarks and ``Referer`` headers."""
        if not self.guard.token_matches(request.args.get("token")):
            return self._unauthorised(request)
        rest = [(k, v) for k, v in request.args.items(multi=True) if k != "token"]
        query = "?" + urlencode(rest) if rest else ""
        response = _redirect(request.script_root + "/" + query)
        response.set_cookie(
            SESSION_COOKIE,
            self.guard.cookie_value,
            path=(request.script_root or "") + "/",
            httponly=True,
            samesite="Strict",
            secure=request.scheme == "https",
        )
        return response

    def _unauthorised(self, request: Request) -> Response:
        message = "this dashboard needs its token: open it once with ?token=<token>, or send Authorization: Bearer <token>"
        if request.path.startswith("/api/"):
            response = _json({"error": "Unauthorized", "message": message}, 401)
        else:
            response = _text(message + "\n", 401)
        response.headers["WWW-Authenticate"] = 'Bearer realm="ladon-tasks dashboard"'
        return response

    # -- routes ------------------------------------------------------------------------

    def on_page(self, request: Request) -> Response:
        return self.on_static(request, "index.html")

    def on_static(self, request: Request, name: str) -> Response:
        if name not in STATIC_FILES:
            raise NotFound()
        if name not in self._static:
            self._static[name] = (resources.files(__package__) / "static" / name).read_bytes()
        response = Response(self._static[name], content_type=STATIC_FILES[name])
        response.headers["Cache-Control"] = "no-cache"
        return response

    def on_list(self, request: Request) -> Response:
        try:
            states = _states(request.args.getlist("state"))
            limit = _bounded_int(request.args.get("limit"), defaults.DASHBOARD_PAGE, 1, defaults.DASHBOARD_PAGE_MAX, "limit")
            offset = _bounded_int(request.args.get("offset"), 0, 0, 10**9, "offset")
        except ValueError as exc:
            return _json({"error": "BadRequest", "message": str(exc)}, 400)
        method = request.args.get("method", "").strip() or None
        try:
            records = self.runtime_provider().store.list_tasks(
                states=states, method=method, limit=limit + 1, offset=offset
            )
        except StoreError as exc:
            return _json({"error": "StoreUnavailable", "message": f"task state is not reachable: {exc}"}, 503)
        now = time.time()
        return _json(
            {
                "tasks": [task_summary(record, now) for record in records[:limit]],
                "has_more": len(records) > limit,
                "limit": limit,
                "offset": offset,
                "now": now,
            }
        )

    def on_detail(self, request: Request, task_id: str) -> Response:
        try:
            record = self.runtime_provider().record(task_id)
        except faults.CorruptTask as fault:  # shown marked, as in the list
            problem = str(fault.faultstring).partition(": ")[2]
            record = UnreadableRecord.salvage({"task_id": task_id}, problem)
        except Exception as exc:
            return _fault_response(exc)
        return _json({"task": _detail(record)})

    def on_cancel(self, request: Request, task_id: str) -> Response:
        runtime = self.runtime_provider()
        try:
            before = runtime.record(task_id)
            if before.finished:
                return _json(
                    {
                        "error": "AlreadyFinished",
                        "message": f"task {task_id} already {before.state.value}",
                        "task": _detail(before),
                    },
                    409,
                )
            record = runtime.cancel(task_id)
        except Exception as exc:
            return _fault_response(exc)
        log.info("dashboard: cancel of task %s requested from %s", task_id, request.remote_addr)
        return _json({"task": _detail(record)})


# -- mounting and serving ---------------------------------------------------------------


def mount(services_app: WSGIApp, dashboard_app: WSGIApp, prefix: str = "/_tasks") -> WSGIApp:
    """One WSGI application: ``prefix`` and below go to the dashboard, all else to the
    services. The in-process store needs this - its records live in the serving process."""
    if not prefix.startswith("/") or prefix.endswith("/") or len(prefix) < 2:
        raise ValueError(f"prefix must look like '/_tasks' (leading slash, no trailing one), got {prefix!r}")
    return DispatcherMiddleware(services_app, {prefix: dashboard_app})


def serve_dashboard(
    host: str = "127.0.0.1",
    port: int = 8090,
    token: str | None = None,
    *,
    runtime_provider: Callable[[], TaskRuntime] = get_runtime,
    allowed_hosts: Iterable[str] = (),
    trusted_origins: Iterable[str] = (),
    read_timeout: float = defaults.READ_TIMEOUT,
) -> None:
    """Serve the dashboard alone (Werkzeug, threaded) until interrupted.

    Meant for the Redis store, configured before the call. A dashboard reachable from
    the network must have a token, so a non-loopback ``host`` without one is refused.
    It answers the ``Host`` names of :meth:`AllowedHosts.for_address` plus
    ``allowed_hosts``.
    """
    if not is_loopback(host) and token is None:
        raise ValueError(f"the dashboard binds to {host}, off this machine: give it a token")
    if isinstance(runtime_provider().store, MemoryStore):
        log.warning(
            "ladon-tasks dashboard: the task store is in this process's memory, so it shows "
            "only tasks started here; configure the Redis store to see the servers' tasks"
        )
    from ladon_tasks.serving import make_server

    hosts = AllowedHosts.for_address(host, allowed_hosts)
    app = DashboardApp(runtime_provider, token, allowed_hosts=hosts, trusted_origins=trusted_origins)
    make_server(host, port, app, read_timeout=read_timeout).run()


# -- helpers -----------------------------------------------------------------------------


def _states(values: list[str]) -> list[TaskState] | None:
    names = [name.strip() for value in values for name in value.split(",") if name.strip()]
    if not names:
        return None
    try:
        return [TaskState(name) for name in names]
    except ValueError:
        known = ", ".join(state.value for state in TaskState)
        raise ValueError(f"unknown state in {names}; states are {known}") from None


def _bounded_int(raw: str | None, default: int, low: int, high: int, name: str) -> int:
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{name} must be an integer, got {raw[:40]!r}") from None
    if not low <= value <= high:
        raise ValueError(f"{name} must be between {low} and {high}, got {value}")
    return value


def _detail(record: TaskRecord) -> dict[str, Any]:
    """The detail view of a record, its arguments named by this process's declaration."""
    return task_detail(record, time.time(), specs.find(record.service, record.method))


def _fault_response(exc: Exception) -> Response:
    for fault_type, status in _FAULT_STATUS:
        if isinstance(exc, fault_type):
            name = getattr(exc, "fault_name", type(exc).__name__)
            text = str(getattr(exc, "faultstring", exc))
            return _json({"error": name, "message": text}, status)
    raise exc


def _json(payload: dict[str, Any], status: int = 200) -> Response:
    response = Response(json.dumps(payload), status=status, content_type="application/json")
    response.headers["Cache-Control"] = "no-store"
    return response


def _text(text: str, status: int) -> Response:
    return Response(text, status=status, content_type="text/plain; charset=utf-8")


def _redirect(location: str) -> Response:
    response = Response("", status=303)
    response.headers["Location"] = iri_to_uri(location)
    return response


def _query(request: Request) -> str:
    query = request.query_string.decode("latin-1")
    return "?" + query if query else ""
