"""The operator commands over HTTP: ``tasks``, ``inspect``, ``cancel``, ``events``,
``retry``, ``purge``, ``status``, ``workers`` and ``schedules`` with ``--url``, through a running
server's dashboard JSON API; and ``ping``, which reads a health endpoint.

This is how those commands reach tasks kept in a server's own memory (the in-process
store), and it works the same for the Redis store: the server answers from whatever
store it has. ``--url`` may name the dashboard itself (``ladon-tasks dashboard``, at
the root) or the server that mounts it (``ladon-tasks serve``, under ``/_tasks``):
the client finds which.

The API has no event stream, so ``events --url`` derives events from the task list:
it polls it and reports each task that appears or changes state. A task that passes
through several states between two polls is reported once, in the state it reached.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, Iterator, Sequence

from ladon_tasks import defaults
from ladon_tasks.dashboard.guard import CSRF_HEADER, CSRF_HEADER_VALUE

#: Where ``ladon-tasks serve`` mounts the dashboard.
SERVE_PREFIX = "/_tasks"

#: Tasks read per poll by ``derived_events``: the dashboard's largest page.
_POLL_LIMIT = 500


class RemoteError(Exception):
    """The server could not answer; the message is one line for the operator."""


class DashboardClient:
    """The dashboard's JSON API at ``url`` (with ``token`` when it has one)."""

    def __init__(self, url: str, token: str | None = None) -> None:
        self.token = token
        self.base = self._locate(url.rstrip("/"))

    def _locate(self, url: str) -> str:
        """The API's base: ``url``'s ``/_tasks`` (a ``serve`` server), or ``url`` itself (a
        standalone dashboard). ``/_tasks`` first: a standalone dashboard answers it with a
        plain 404, where the services of a ``serve`` server would log an unknown path."""
        candidates = [url] if url.endswith(SERVE_PREFIX) else [url + SERVE_PREFIX, url]
        for base in candidates:
            try:
                self._request(base, "/api/tasks?limit=1")
                return base
            except _NotFound:
                continue
        raise RemoteError(f"no ladon-tasks dashboard at {url} (tried {' and '.join(candidates)})")

    def list_tasks(self, states: Sequence[str] | None = None, method: str | None = None,
                   limit: int = defaults.LIST_LIMIT, offset: int = 0, tag: str | None = None) -> list[dict[str, Any]]:
        """Newest first, as the dashboard lists them."""
        query: list[tuple[str, str]] = [("state", state) for state in states or ()]
        if method:
            query.append(("method", method))
        if tag:
            query.append(("tag", tag))
        query += [("limit", str(limit)), ("offset", str(offset))]
        return self._request(self.base, "/api/tasks?" + urllib.parse.urlencode(query))["tasks"]

    def detail(self, task_id: str) -> dict[str, Any]:
        return self._request(self.base, f"/api/tasks/{urllib.parse.quote(task_id, safe='')}")["task"]

    def cancel(self, task_id: str) -> dict[str, Any]:
        """The task after the cancel; a task already finished is returned as it is."""
        path = f"/api/tasks/{urllib.parse.quote(task_id, safe='')}/cancel"
        try:
            return self._request(self.base, path, method="POST")["task"]
        except _AlreadyFinished as finished:
            return finished.task

    def retry(self, task_id: str, restart: bool = False) -> dict[str, Any]:
        """The new task that re-runs ``task_id`` (recovering its succeeded steps, unless
        ``restart``)."""
        path = f"/api/tasks/{urllib.parse.quote(task_id, safe='')}/retry"
        return self._request(self.base, path, method="POST", body={"restart": restart})["task"]

    def purge(self, states: Sequence[str], method: str | None, dry_run: bool) -> int:
        body = {"states": list(states), "method": method, "dry_run": dry_run}
        return int(self._request(self.base, "/api/purge", method="POST", body=body)["count"])

    def counts(self) -> dict[str, Any]:
        return self._request(self.base, "/api/counts")

    def queues(self) -> dict[str, Any]:
        return self._request(self.base, "/api/queues")

    def workers(self) -> dict[str, Any]:
        return self._request(self.base, "/api/workers")

    def schedules(self) -> list[dict[str, Any]]:
        """The periodic tasks, as the server's schedule book has them."""
        return self._request(self.base, "/api/schedules")["schedules"]

    def schedule(self, name: str, action: str) -> dict[str, Any]:
        """``pause``, ``resume`` or ``run`` the schedule ``name``: the schedule after it
        (and the task started, for a run the server starts itself)."""
        path = f"/api/schedules/{urllib.parse.quote(name, safe='')}/{action}"
        return self._request(self.base, path, method="POST")

    def _request(self, base: str, path: str, method: str = "GET", body: Any = None) -> dict[str, Any]:
        headers = {"Accept": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        data = None
        if method == "POST":
            headers[CSRF_HEADER] = CSRF_HEADER_VALUE
            data = json.dumps(body).encode() if body is not None else b""
            if body is not None:
                headers["Content-Type"] = "application/json"
        request = urllib.request.Request(base + path, data=data, method=method, headers=headers)
        try:
            with _open(request) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as error:
            raise _http_error(base, error) from None
        except (urllib.error.URLError, OSError) as error:
            reason = getattr(error, "reason", error)
            raise RemoteError(f"cannot reach {base}: {reason}") from None
        except ValueError:
            raise RemoteError(f"{base}{path} did not answer JSON: not a ladon-tasks dashboard") from None


class _NotFound(RemoteError):
    pass


class _AlreadyFinished(RemoteError):
    def __init__(self, message: str, task: dict[str, Any]) -> None:
        super().__init__(message)
        self.task = task


def _http_error(base: str, error: urllib.error.HTTPError) -> RemoteError:
    """The API's JSON error as one line (``UnknownTask: ...``)."""
    try:
        body = json.loads(error.read())
    except ValueError:
        body = {}
    name, message = body.get("error", ""), body.get("message", "")
    if error.code == 401:
        return RemoteError(f"{base} needs the dashboard's token: --token TOKEN (or $LADON_TASKS_DASHBOARD_TOKEN)")
    if error.code == 409 and "task" in body:
        return _AlreadyFinished(message, body["task"])
    if error.code == 404 and name not in ("UnknownTask", "MalformedTaskId", "UnknownSchedule"):
        return _NotFound(f"{base}: not found")
    if not name:
        return RemoteError(f"{base}: HTTP {error.code}")
    # a fault's message may already start with its name (``UnknownTask: no task ...``)
    return RemoteError(message if message.startswith(f"{name}:") else f"{name}: {message}")


class _SameOriginRedirects(urllib.request.HTTPRedirectHandler):
    """Follows a redirect only within the origin asked (scheme, host and port): urllib
    copies every header to the new URL, the token among them, and an answer from
    elsewhere is not this server's."""

    def redirect_request(self, req: urllib.request.Request, fp: Any, code: int, msg: str, headers: Any,
                         newurl: str) -> urllib.request.Request | None:
        target = urllib.parse.urljoin(req.full_url, newurl)
        if _origin(target) != _origin(req.full_url):
            raise RemoteError(f"{req.full_url} redirects to another origin ({_origin(target)}): "
                              "not followed, and the token not sent there")
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def _origin(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    port = parts.port or {"http": 80, "https": 443}.get(parts.scheme.lower())
    return f"{parts.scheme.lower()}://{(parts.hostname or '').lower()}:{port}"


_opener = urllib.request.build_opener(_SameOriginRedirects)


def _open(request: urllib.request.Request) -> Any:
    """``request`` through the opener that stays on its origin."""
    return _opener.open(request, timeout=defaults.REMOTE_TIMEOUT)


def health(url: str, token: str | None = None) -> tuple[bool, dict[str, Any], str]:
    """Ask a health endpoint: ``url`` itself when it ends in ``/health``, else the server's
    ``/_tasks/health``, then ``/health`` (a worker's ``--metrics-port``, a standalone
    dashboard). Returns (healthy, the answer, where it was asked); :class:`RemoteError`
    when nothing answers."""
    url = url.rstrip("/")
    candidates = [url] if url.endswith("/health") else [url + SERVE_PREFIX + "/health", url + "/health"]
    headers = {"Accept": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    for candidate in candidates:
        request = urllib.request.Request(candidate, headers=headers)
        try:
            with _open(request) as response:
                return True, json.loads(response.read()), candidate
        except urllib.error.HTTPError as error:
            if error.code == 503:
                try:
                    return False, json.loads(error.read()), candidate
                except ValueError:
                    return False, {"status": "unhealthy"}, candidate
            if error.code == 401:
                raise RemoteError(f"{candidate} needs a token: --token TOKEN") from None
            if error.code == 404:
                continue
            raise RemoteError(f"{candidate}: HTTP {error.code}") from None
        except (urllib.error.URLError, OSError) as error:
            raise RemoteError(f"cannot reach {candidate}: {getattr(error, 'reason', error)}") from None
        except ValueError:
            raise RemoteError(f"{candidate} did not answer JSON: not a ladon-tasks health endpoint") from None
    raise RemoteError(f"no ladon-tasks health endpoint at {url} (tried {' and '.join(candidates)})")


def derived_events(client: DashboardClient, from_start: bool,
                   interval: float = defaults.EVENTS_POLL_INTERVAL) -> Iterator[dict[str, Any]]:
    """Tasks that appear or change state, oldest change first, polling every ``interval``.

    Without ``from_start`` the tasks already listed at the first poll are the baseline
    and not reported."""
    seen: dict[str, tuple[str, int]] = {}
    first = True
    while True:
        tasks = client.list_tasks(limit=_POLL_LIMIT)
        changed = [task for task in reversed(tasks) if seen.get(task["task_id"]) != (task["state"], task["attempts"])]
        for task in changed:
            seen[task["task_id"]] = (task["state"], task["attempts"])
            if from_start or not first:
                yield task
        first = False
        time.sleep(interval)  # the polling period of the command, not a synchronisation


def event_time(task: dict[str, Any]) -> float:
    """When a task reached the state it is listed in."""
    if task["finished"]:
        return float(task.get("finished_at") or 0.0)
    if task["state"] == "running":
        return float(task.get("started_at") or 0.0)
    return float(task.get("submitted_at") or 0.0)
