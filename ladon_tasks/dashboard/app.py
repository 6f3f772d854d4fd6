"""The dashboard's WSGI application, the dispatcher that mounts it beside the services,
and a standalone server.

Routes, relative to wherever the application is mounted::

    GET  /                          the page (HTML; its script polls the API)
    GET  /static/<name>             the page's script and style sheet
    GET  /api/tasks?state=&method=&tag=&id=&limit=&offset=
                                    newest first; ``state`` repeatable or comma-separated,
                                    ``id`` the start of a task id
    GET  /api/tasks/<id>            one task, with its arguments and where it ran
    POST /api/tasks/<id>/cancel     cancel
    POST /api/tasks/<id>/retry      run a failed or cancelled task again: a new task,
                                    recovering its succeeded steps unless the body is
                                    ``{"restart": true}``
    POST /api/cancel                cancel several: ``{"task_ids": [...]}`` (500 at most)
    POST /api/purge                 delete finished tasks: ``{"states": [...], "method":
                                    name|null, "dry_run": bool}`` -> ``{"count": n}``
    GET  /api/counts                tasks per state, in all and per method
    GET  /api/queues                the Redis queues' depths
    GET  /api/workers               live workers, and web processes running tasks
    GET  /api/schedules             the periodic tasks: last run, next run, paused or not
    POST /api/schedules/<name>/pause|resume|run
                                    pause or resume ``Service.method``, or run it now: at
                                    once when this process declares it (the task is in the
                                    answer), else by the next process that runs it
    GET  /metrics                   Prometheus text format (:mod:`ladon_tasks.metrics`)
    GET  /health                    200 or 503 with the checks (:mod:`ladon_tasks.health`)

POSTs need the header ``X-Requested-By: ladon-tasks``. Every read goes through the
runtime's store (``store.list``, ``runtime.record``) and every change through the
runtime (``runtime.cancel``, ``runtime.rerun``), so the dashboard obeys the same state
machine and TTLs as the wire methods and never reaches into a backend. Access rules
live in :mod:`ladon_tasks.dashboard.guard`; ``/health`` may be opened to requests
without the token (``health_open``), every other route keeps them.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict
from importlib import resources
from typing import Any, Callable, Iterable
from urllib.parse import urlencode

from werkzeug.exceptions import BadRequest, HTTPException, NotFound
from werkzeug.middleware.dispatcher import DispatcherMiddleware
from werkzeug.routing import Map, Rule
from werkzeug.urls import iri_to_uri
from werkzeug.wrappers import Request, Response

from ladon_tasks import defaults, faults, scheduler
from ladon_tasks import spec as specs
from ladon_tasks.dashboard.guard import SESSION_COOKIE, AccessGuard
from ladon_tasks.dashboard.probes import health_response, metrics_response
from ladon_tasks.hosts import AllowedHosts, is_loopback
from ladon_tasks.dashboard.views import task_detail, task_summary
from ladon_tasks.health import runtime_health
from ladon_tasks.logs import about
from ladon_tasks.metrics import TaskMetrics, wait_metrics
from ladon_tasks.model import TaskRecord, TaskState, UnreadableRecord
from ladon_tasks.runtime import TaskRuntime, get_runtime
from ladon_tasks.stores.base import StoreError
from ladon_tasks.wsgi_types import WSGIApp

log = logging.getLogger(__name__)


#: Tasks one bulk cancel may name: a page's worth at most.
MAX_BULK = 500

#: Files the page loads, with their types; nothing else under ``static/`` is served.
STATIC_FILES = {
    "index.html": "text/html; charset=utf-8",
    "favicon.svg": "image/svg+xml",
    "dashboard.js": "text/javascript; charset=utf-8",
    "fleet.js": "text/javascript; charset=utf-8",
    "schedules.js": "text/javascript; charset=utf-8",
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
    (faults.UnknownSchedule, 404),
    (faults.StoreUnavailable, 503),
    (faults.CorruptTask, 409),  # cancel of a task whose record cannot be read
    (faults.NotRetryable, 409),
    (faults.ExecutorUnavailable, 503),
    (faults.ServerBusy, 503),
)


class DashboardApp:
    """A WSGI application: the task page and its JSON API.

    ``runtime_provider`` is called on every request rather than once, so a runtime that
    :func:`ladon_tasks.runtime.configure` replaces after start-up is the one shown.
    ``token`` (optional) is required on every request; ``allowed_hosts`` limits the
    ``Host`` headers served; ``trusted_origins`` adds origins (``https://ops.example``)
    allowed to POST besides the dashboard's own, for deployments behind a proxy that
    rewrites ``Host``; ``health_open`` serves ``/health`` without the token.
    """

    def __init__(
        self,
        runtime_provider: Callable[[], TaskRuntime] = get_runtime,
        token: str | None = None,
        *,
        allowed_hosts: AllowedHosts | Iterable[str] | None = None,
        trusted_origins: Iterable[str] = (),
        health_open: bool = False,
    ) -> None:
        self.runtime_provider = runtime_provider
        self.health_open = health_open
        self.metrics = TaskMetrics(lambda: self.runtime_provider().store,
                                   lambda: wait_metrics(self.runtime_provider().waits))
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
                Rule("/api/tasks/<task_id>/retry", endpoint="retry", methods=["POST"]),
                Rule("/api/cancel", endpoint="bulk_cancel", methods=["POST"]),
                Rule("/api/purge", endpoint="purge", methods=["POST"]),
                Rule("/api/counts", endpoint="counts", methods=["GET"]),
                Rule("/api/queues", endpoint="queues", methods=["GET"]),
                Rule("/api/workers", endpoint="workers", methods=["GET"]),
                Rule("/api/schedules", endpoint="schedules", methods=["GET"]),
                Rule("/api/schedules/<name>/<any(pause, resume, run):action>", endpoint="schedule_action",
                     methods=["POST"]),
                Rule("/metrics", endpoint="metrics", methods=["GET"]),
                Rule("/health", endpoint="health", methods=["GET"]),
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
        if self.health_open and request.path == "/health" and request.method in ("GET", "HEAD"):
            return self.on_health(request)  # probes carry no token; the answer holds no task data
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
        message = (
            "this dashboard needs its token: open it once with ?token=<token>, or send Authorization: Bearer <token>"
        )
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
            limit = _bounded_int(
                request.args.get("limit"), defaults.DASHBOARD_PAGE, 1, defaults.DASHBOARD_PAGE_MAX, "limit"
            )
            offset = _bounded_int(request.args.get("offset"), 0, 0, 10**9, "offset")
        except ValueError as exc:
            return _json({"error": "BadRequest", "message": str(exc)}, 400)
        method = request.args.get("method", "").strip() or None
        tag = request.args.get("tag", "").strip() or None
        id_prefix = request.args.get("id", "").strip().lower() or None
        if id_prefix is not None and (len(id_prefix) > 32 or any(c not in "0123456789abcdef" for c in id_prefix)):
            return _json({"error": "BadRequest", "message": "id must be the start of a task id (hex digits)"}, 400)
        try:
            records = self.runtime_provider().store.list_tasks(
                states=states, method=method, limit=limit + 1, offset=offset, tag=tag, id_prefix=id_prefix
            )
        except StoreError as exc:
            return _unavailable(exc)
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
        runtime = self.runtime_provider()
        try:
            try:
                record = runtime.record(task_id)
            except faults.CorruptTask as fault:  # shown marked, as in the list
                problem = str(fault.faultstring).partition(": ")[2]
                record = UnreadableRecord.salvage({"task_id": task_id}, problem)
            return _json({"task": _detail(runtime, record)})
        except Exception as exc:
            return _fault_response(exc)

    def on_cancel(self, request: Request, task_id: str) -> Response:
        runtime = self.runtime_provider()
        try:
            before = runtime.record(task_id)
            if before.finished:
                return _json(
                    {
                        "error": "AlreadyFinished",
                        "message": f"task {task_id} already {before.state.value}",
                        "task": _detail(runtime, before),
                    },
                    409,
                )
            record = runtime.cancel(task_id)
            about(log, record).info("cancel requested from the dashboard (%s)", request.remote_addr)
            return _json({"task": _detail(runtime, record)})
        except Exception as exc:
            return _fault_response(exc)

    def on_retry(self, request: Request, task_id: str) -> Response:
        body = _json_body(request) if request.content_length else {}
        restart = body.get("restart", False) if isinstance(body, dict) else None
        if not isinstance(restart, bool):
            return _json({"error": "BadRequest", "message": 'send nothing, or {"restart": true|false}'}, 400)
        runtime = self.runtime_provider()
        try:
            record = runtime.rerun(task_id, restart=restart)
            about(log, record).info("re-run of task %s (%s) asked from the dashboard (%s)", task_id,
                                    "restart" if restart else "recover", request.remote_addr)
            return _json({"task": _detail(runtime, record)})
        except Exception as exc:
            return _fault_response(exc)

    def on_bulk_cancel(self, request: Request) -> Response:
        """Cancel each task named; one answer per task, in order: its state after the
        cancel, or the error (an unknown task does not stop the others)."""
        body = _json_body(request)
        task_ids = body.get("task_ids") if isinstance(body, dict) else None
        if not isinstance(task_ids, list) or not all(isinstance(i, str) for i in task_ids) or not task_ids:
            return _json({"error": "BadRequest", "message": 'send {"task_ids": ["<task id>", ...]}'}, 400)
        if len(task_ids) > MAX_BULK:
            return _json({"error": "BadRequest", "message": f"at most {MAX_BULK} tasks at once"}, 400)
        runtime = self.runtime_provider()
        results = []
        for task_id in task_ids:
            try:
                record = runtime.cancel(task_id)
                results.append({"task_id": task_id, "state": record.shown_state})
            except Exception as exc:
                name = getattr(exc, "fault_name", type(exc).__name__)
                results.append({"task_id": task_id, "error": name, "message": str(getattr(exc, "faultstring", exc))})
        log.info("dashboard: bulk cancel of %d task(s) from %s", len(task_ids), request.remote_addr)
        return _json({"results": results})

    def on_purge(self, request: Request) -> Response:
        body = _json_body(request)
        body = body if isinstance(body, dict) else {}
        method, dry_run = body.get("method"), body.get("dry_run", False)
        try:
            states = _states([s for s in body.get("states") or [] if isinstance(s, str)])
        except ValueError as exc:
            return _json({"error": "BadRequest", "message": str(exc)}, 400)
        if not states or any(not state.finished for state in states) or not isinstance(dry_run, bool) \
                or not (method is None or isinstance(method, str)):
            return _json({"error": "BadRequest", "message": 'send {"states": ["failed", ...], "method": name or '
                          'null, "dry_run": false}; only succeeded, failed and cancelled tasks are purged'}, 400)
        try:
            count = self.runtime_provider().store.purge(states, method=method or None, dry_run=dry_run)
        except StoreError as exc:
            return _unavailable(exc)
        if not dry_run:
            log.info("dashboard: purged %d %s task(s)%s from %s", count, "/".join(s.value for s in states),
                     f" of {method}" if method else "", request.remote_addr)
        return _json({"count": count, "dry_run": dry_run})

    def on_counts(self, request: Request) -> Response:
        try:
            counts = self.runtime_provider().store.counts()
        except StoreError as exc:
            return _unavailable(exc)
        return _json({**counts.to_json(), "now": time.time()})

    def on_queues(self, request: Request) -> Response:
        fleet = self.runtime_provider().store.fleet()
        try:
            queues = fleet.queues() if fleet is not None else []
        except StoreError as exc:
            return _unavailable(exc)
        return _json({"queues": [queue.to_json() for queue in queues], "redis": fleet is not None,
                      "now": time.time()})

    def on_workers(self, request: Request) -> Response:
        fleet = self.runtime_provider().store.fleet()
        try:
            workers, webs = fleet.workers() if fleet is not None else ([], [])
        except StoreError as exc:
            return _unavailable(exc)
        return _json({"workers": [info.to_json() for info in workers], "web_processes": [w.to_json() for w in webs],
                      "redis": fleet is not None, "now": time.time()})

    def on_schedules(self, request: Request) -> Response:
        runtime = self.runtime_provider()
        try:
            rows = scheduler.states(runtime.store_for, runtime.store)
        except StoreError as exc:
            return _unavailable(exc)
        return _json({"schedules": [asdict(row) for row in rows], "now": time.time()})

    def on_schedule_action(self, request: Request, name: str, action: str) -> Response:
        """Pause, resume or run now, in the store's schedule book - the one the
        processes that run the schedule read, so every one of them obeys it."""
        runtime = self.runtime_provider()
        spec = scheduler.declared_schedule(name)
        answer: dict[str, Any] = {}
        try:
            book = runtime.store_for(spec).schedule_book() if spec is not None else runtime.store.schedule_book()
            if spec is None and name not in book.names():
                raise faults.UnknownSchedule(f"no schedule {name!r} here (a schedule is named Service.method)")
            if action == "run" and spec is not None:
                record = runtime.run_schedule_now(name)
                answer["task"] = task_summary(record, time.time())
            elif action == "run":
                answer["requested"] = book.request_run(name)
            else:
                book.set_paused(name, action == "pause")
            log.info("dashboard: schedule %s: %s (%s)", name, action, request.remote_addr)
            answer["schedule"] = asdict(scheduler.state_of(name, runtime.store_for, runtime.store))
        except StoreError as exc:
            return _unavailable(exc)
        except Exception as exc:
            return _fault_response(exc)
        return _json(answer)

    def on_metrics(self, request: Request) -> Response:
        return metrics_response(self.metrics)

    def on_health(self, request: Request) -> Response:
        return health_response(runtime_health(self.runtime_provider()))


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
    health_open: bool = False,
) -> None:
    """Serve the dashboard alone (Werkzeug, threaded) until interrupted.

    Meant for the Redis store, configured before the call. A dashboard reachable from
    the network must have a token, so a non-loopback ``host`` without one is refused.
    It answers the ``Host`` names of :meth:`AllowedHosts.for_address` plus
    ``allowed_hosts``.
    """
    if not is_loopback(host) and token is None:
        raise ValueError(f"the dashboard binds to {host}, off this machine: give it a token")
    if not runtime_provider().store.shared:
        log.warning(
            "ladon-tasks dashboard: the task store is in this process's memory, so it shows "
            "only tasks started here; configure the Redis store to see the servers' tasks"
        )
    from ladon_tasks.serving import make_server

    hosts = AllowedHosts.for_address(host, allowed_hosts)
    app = DashboardApp(runtime_provider, token, allowed_hosts=hosts, trusted_origins=trusted_origins,
                       health_open=health_open)
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


def _detail(runtime: TaskRuntime, record: TaskRecord) -> dict[str, Any]:
    """The detail view of a record, its arguments named by this process's declaration,
    with its steps (read only for a record that names one: a task without steps costs
    no read)."""
    steps = {}
    if record.step:
        try:
            steps = runtime.store.load_steps(record.task_id)
        except StoreError as exc:
            raise faults.StoreUnavailable(f"task state is not reachable: {exc}") from None
    return task_detail(record, time.time(), specs.find(record.service, record.method), steps.values())


def _fault_response(exc: Exception) -> Response:
    for fault_type, status in _FAULT_STATUS:
        if isinstance(exc, fault_type):
            name = getattr(exc, "fault_name", type(exc).__name__)
            text = str(getattr(exc, "faultstring", exc))
            return _json({"error": name, "message": text}, status)
    raise exc


def _json_body(request: Request) -> Any:
    """The request's JSON body, or ``None`` when it is not JSON (each endpoint answers
    that with the body it expects). A body nested deeper than the parser follows
    (``[[[[...`` 100,000 deep) raises ``RecursionError`` inside it: a 400 as well."""
    try:
        return request.get_json(silent=True)
    except RecursionError:
        raise BadRequest("the body nests too deep to be read as JSON") from None


def _unavailable(exc: StoreError) -> Response:
    return _json({"error": "StoreUnavailable", "message": f"task state is not reachable: {exc}"}, 503)


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
