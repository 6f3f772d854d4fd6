"""Who may use the dashboard, and which requests may change anything.

Three independent checks, each answering one threat:

* **Host** (optional ``allowed_hosts``, the rules of :mod:`ladon_tasks.hosts`): a page
  on another site can point its own host name at 127.0.0.1 (DNS rebinding) and then talk
  to a loopback dashboard as if it were same-origin; refusing unknown ``Host`` headers
  closes that door. A dashboard mounted by ``ladon-tasks serve`` or the Apache handler
  is behind the same check for the whole application instead.
* **Token** (optional): with a token set, every request carries it, either as
  ``Authorization: Bearer <token>`` (scripts) or as the session cookie set when the page
  is first opened with ``?token=<token>``. The cookie holds an HMAC of the token, not the
  token, is ``HttpOnly`` (scripts cannot read it) and ``SameSite=Strict`` (other sites'
  requests do not carry it).
* **Cross-site requests**: a state-changing request must be a POST with the custom
  header :data:`CSRF_HEADER` (a cross-origin page cannot send it without a CORS
  preflight this server never grants) and, when the browser says where it comes from,
  an ``Origin``/``Referer`` of this very origin.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Collection, Iterable
from urllib.parse import urlsplit

from werkzeug.wrappers import Request

from ladon_tasks.hosts import AllowedHosts

#: Header every state-changing request must carry, with :data:`CSRF_HEADER_VALUE`.
CSRF_HEADER = "X-Requested-By"
CSRF_HEADER_VALUE = "ladon-tasks"

#: Cookie that keeps a browser signed in after it opened the page with ``?token=``.
SESSION_COOKIE = "ladon_tasks_dashboard"


class AccessGuard:
    """The dashboard's access rules; pure decisions on a request, no responses."""

    def __init__(
        self,
        token: str | None = None,
        *,
        allowed_hosts: AllowedHosts | Iterable[str] | None = None,
        trusted_origins: Collection[str] = (),
    ) -> None:
        if token is not None and (not isinstance(token, str) or not token.strip()):
            raise ValueError("the dashboard token must be a non-empty string (or None for no token)")
        self.token = token
        if allowed_hosts is not None and not isinstance(allowed_hosts, AllowedHosts):
            allowed_hosts = AllowedHosts(allowed_hosts)
        self.allowed_hosts = allowed_hosts
        self.trusted_origins = frozenset(o.rstrip("/").lower() for o in trusted_origins)
        self._cookie_value = (
            hmac.new(token.encode(), b"ladon-tasks dashboard session", hashlib.sha256).hexdigest()
            if token is not None
            else ""
        )

    @property
    def needs_token(self) -> bool:
        return self.token is not None

    @property
    def cookie_value(self) -> str:
        """What the session cookie holds: derived from the token, never the token."""
        return self._cookie_value

    def host_allowed(self, request: Request) -> bool:
        return self.allowed_hosts is None or self.allowed_hosts.permits(request.headers.get("Host"))

    def token_matches(self, candidate: str | None) -> bool:
        """Constant-time comparison, so the token cannot be guessed byte by byte."""
        if self.token is None or not candidate:
            return False
        return hmac.compare_digest(candidate.encode(), self.token.encode())

    def authorised(self, request: Request) -> bool:
        """Token-free dashboards let everyone in; otherwise a bearer token or the cookie."""
        if self.token is None:
            return True
        scheme, _, credentials = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() == "bearer" and self.token_matches(credentials.strip()):
            return True
        cookie = request.cookies.get(SESSION_COOKIE, "")
        return bool(cookie) and hmac.compare_digest(cookie.encode(), self._cookie_value.encode())

    def cross_site_refusal(self, request: Request) -> str | None:
        """Why a state-changing request must be refused, or ``None`` when it may pass."""
        if request.method != "POST":
            return "state-changing requests must be POST"
        if request.headers.get(CSRF_HEADER) != CSRF_HEADER_VALUE:
            return f"missing header {CSRF_HEADER}: {CSRF_HEADER_VALUE}"
        own = f"{request.scheme}://{request.host}".lower()
        allowed = {own} | self.trusted_origins
        origin = request.headers.get("Origin")
        if origin is not None:
            return None if origin.rstrip("/").lower() in allowed else "cross-origin request refused"
        referer = request.headers.get("Referer")
        if referer is not None:
            parts = urlsplit(referer)
            source = f"{parts.scheme}://{parts.netloc}".lower()
            return None if source in allowed else "cross-origin request refused"
        # Neither header: not a browser (browsers send Origin on every POST), and the
        # custom header above already rules out a plain cross-site form.
        return None
