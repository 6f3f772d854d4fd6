"""Which ``Host`` names a server answers: the defence against DNS rebinding.

A page on an attacker's site can make its own host name resolve to 127.0.0.1 (or to
any address the victim's browser reaches) and then call a server there as if it were
its own origin: read the dashboard's task list, cancel tasks, start tasks, read
results. Every such request carries the attacker's name in ``Host``, so a server that
answers only names it knows closes that door. :class:`HostCheck` does that for a whole
WSGI application (services and dashboard alike); :class:`AllowedHosts` is the rule:

* an IP address (``127.0.0.1``, ``[::1]``, ``192.0.2.7``) is always answered: a
  rebinding attack needs a name it controls, and an address is nobody's name;
* ``localhost`` is always answered;
* a server bound beyond loopback also answers this machine's host name;
* the operator adds names (``ladon-tasks serve --allowed-host NAME``, or
  ``LADON_TASKS_ALLOWED_HOSTS`` separated by commas); ``*`` answers any name, for a
  server behind a proxy that checks names itself.

A request without any ``Host`` header passes: no browser sends one.
"""

from __future__ import annotations

import ipaddress
import socket
from typing import Any, Callable, Iterable

from ladon_tasks.wsgi import plain_response
from ladon_tasks.wsgi_types import WSGIApp

#: Names that reach this machine's loopback interface and nothing else.
LOOPBACK_NAMES = frozenset({"localhost"})

#: How many distinct ``Host`` headers a server remembers the answer for.
_REMEMBERED_HOSTS = 64

#: The name that, given as an allowed host, lets every name through.
ANY_NAME = "*"


def is_loopback(host: str) -> bool:
    """Whether binding to ``host`` keeps the server off the network."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def host_name(host_header: str) -> str:
    """``Host`` header without port, lower case, IPv6 brackets removed."""
    host = host_header.strip().lower()
    if host.startswith("["):
        return host[1:].split("]", 1)[0]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def _is_address(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


class AllowedHosts:
    """The ``Host`` names a server answers (see the module's rules)."""

    def __init__(self, names: Iterable[str] = ()) -> None:
        cleaned = {name.strip().lower().strip("[]").rstrip(".") for name in names if name and name.strip()}
        self.any_name = ANY_NAME in cleaned
        self.names = frozenset(cleaned - {ANY_NAME}) | LOOPBACK_NAMES
        # Host header -> permitted: parsing an address costs more than the rest of a
        # plain call's checks, and a server sees the same few headers again and again.
        self._answers: dict[str, bool] = {}

    @classmethod
    def for_address(cls, bind_address: str, extra: Iterable[str] = ()) -> "AllowedHosts":
        """The names a server bound to ``bind_address`` answers: ``localhost``, beyond
        loopback also this machine's host name, and ``extra``."""
        names = list(extra)
        if not is_loopback(bind_address):
            names.append(socket.gethostname())
        return cls(names)

    def permits(self, host_header: str | None) -> bool:
        if not host_header or self.any_name:
            return True
        known = self._answers.get(host_header)
        if known is None:
            name = host_name(host_header).rstrip(".")
            known = name in self.names or _is_address(name)
            if len(self._answers) < _REMEMBERED_HOSTS:  # bounded: every request may name another host
                self._answers[host_header] = known
        return known

    def describe(self) -> str:
        """For start-up lines and refusals: what is answered."""
        if self.any_name:
            return "any host name"
        return ", ".join(sorted(self.names)) + " and IP addresses"


def parse_names(text: str) -> list[str]:
    """``LADON_TASKS_ALLOWED_HOSTS``: names separated by commas or spaces."""
    return [name for name in text.replace(",", " ").split() if name]




class HostCheck:
    """WSGI middleware: a request for a ``Host`` name that is not allowed gets ``400``
    and one line naming the way to allow it; nothing behind it sees the request."""

    def __init__(self, application: WSGIApp, allowed: AllowedHosts) -> None:
        self.application = application
        self.allowed = allowed

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        host = environ.get("HTTP_HOST")
        if self.allowed.permits(host):
            return self.application(environ, start_response)
        name = host_name(str(host))
        # whole up to the longest DNS name (253), so the operator can copy it into
        # --allowed-host; cut inside the quotes beyond that
        shown = ascii(name if len(name) <= 253 else name[:250] + "...")
        return plain_response(
            start_response, "400 Bad Request",
            f"this server does not answer for the host name {shown} (it answers {self.allowed.describe()}; "
            "allow more with --allowed-host or LADON_TASKS_ALLOWED_HOSTS)",
        )
