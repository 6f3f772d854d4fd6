"""``/metrics`` and ``/health`` over HTTP: the answers, and the small server a worker
runs them on (``ladon-tasks worker --metrics-port P``).

The dashboard serves both beside its API (at ``/_tasks/metrics`` and
``/_tasks/health`` under ``ladon-tasks serve``), behind its access rules; a worker's
server keeps the same rules (:class:`~ladon_tasks.dashboard.guard.AccessGuard`: a token
when one is given, known ``Host`` names only). Either may open ``/health`` alone to
requests without the token (``health_open``): load-balancer and container probes carry
none, and the answer holds no task data.
"""

from __future__ import annotations

import json
from typing import Any, Callable, Iterable

from werkzeug.wrappers import Request, Response

from ladon_tasks.dashboard.guard import AccessGuard
from ladon_tasks.health import Health
from ladon_tasks.hosts import AllowedHosts
from ladon_tasks.metrics import CONTENT_TYPE, exposition
from prometheus_client.registry import Collector


def metrics_response(collector: Collector) -> Response:
    response = Response(exposition(collector), content_type=CONTENT_TYPE)
    response.headers["Cache-Control"] = "no-store"
    return response


def health_response(health: Health) -> Response:
    response = Response(json.dumps(health.to_json()), status=200 if health.ok else 503,
                        content_type="application/json")
    response.headers["Cache-Control"] = "no-store"
    return response


class ProbeApp:
    """``GET /metrics`` and ``GET /health`` (and nothing else) of one process."""

    def __init__(self, health: Callable[[], Health], collector: Collector, token: str | None = None, *,
                 allowed_hosts: AllowedHosts | Iterable[str] | None = None, health_open: bool = False) -> None:
        self.health = health
        self.collector = collector
        self.guard = AccessGuard(token, allowed_hosts=allowed_hosts)
        self.health_open = health_open

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        request = Request(environ)
        return self.respond(request)(environ, start_response)

    def respond(self, request: Request) -> Response:
        if not self.guard.host_allowed(request):
            return Response("unexpected Host header\n", status=400, content_type="text/plain; charset=utf-8")
        if request.path not in ("/metrics", "/health"):
            return Response("not found: /metrics and /health are served here\n", status=404,
                            content_type="text/plain; charset=utf-8")
        if request.method not in ("GET", "HEAD"):
            return Response("method not allowed\n", status=405, content_type="text/plain; charset=utf-8")
        open_health = self.health_open and request.path == "/health"
        if not open_health and not self.guard.authorised(request):
            response = Response("this endpoint needs its token: send Authorization: Bearer <token>\n", status=401,
                                content_type="text/plain; charset=utf-8")
            response.headers["WWW-Authenticate"] = 'Bearer realm="ladon-tasks"'
            return response
        if request.path == "/health":
            return health_response(self.health())
        return metrics_response(self.collector)


