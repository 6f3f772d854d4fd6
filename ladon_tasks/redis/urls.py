"""The parts Redis URLs share. Every form reads its credentials here
(:func:`split_credentials`), and every message about a URL shows it through
:func:`masked_url`, so no error, log line or fault ever shows a password - not even
part of one.

The credentials of a URL run from ``scheme://`` to the URL's *last* ``@``: a password
may hold ``/``, ``?``, ``#`` or ``@`` unescaped (base64 passwords hold ``/`` and
``+``), where a strict URL parser would end the host at the first ``/`` and read part
of the password as a port. An ``@`` in a query value is written ``%40``.

``redis+sentinel://`` and ``redis+cluster://`` both name
``[user:password@]host:port,host:port``, then their own path and options
(:class:`HostListURL`): parsed here once, so both forms read credentials, IPv6 hosts and
ports alike and say what is wrong in the same words."""

from __future__ import annotations

import contextlib
import urllib.parse
from dataclasses import dataclass
from typing import Iterator


def split_credentials(url: str) -> tuple[str, str | None, str | None]:
    """``url`` without its ``user:password@``, then the user and the password
    (percent-decoded; ``None`` when not given). The credentials run to the URL's last
    ``@``, so a password with an unescaped ``/``, ``?`` or ``#`` is read whole."""
    scheme, separator, rest = url.partition("://")
    userinfo, at, after = rest.rpartition("@")
    if not (separator and at):
        return url, None, None
    user, has_password, secret = userinfo.partition(":")
    username = urllib.parse.unquote(user) or None
    password = urllib.parse.unquote(secret) if has_password else None
    return f"{scheme}://{after}", username, password


def masked_url(url: str) -> str:
    """``url`` for messages: its credentials shown as ``***`` and its query (which may
    carry ``password=`` or ``sentinel_password=``) as ``?...``."""
    without, username, password = split_credentials(url)
    scheme, separator, rest = without.partition("://")
    if not separator:
        return "a URL without scheme://"
    auth = "***@" if username is not None or password is not None else ""
    rest, question, _ = rest.partition("?")
    return f"{scheme}://{auth}{rest}{'?...' if question else ''}"


@contextlib.contextmanager
def naming(url: str) -> Iterator[None]:
    """A ``ValueError`` about ``url`` says which URL, masked (:func:`masked_url`)."""
    try:
        yield
    except ValueError as exc:
        raise ValueError(f"{masked_url(url)}: {exc}") from None


@dataclass(frozen=True)
class HostListURL:
    """A URL of the form ``scheme://[user:password@]host:port,...[/path][?query]``."""

    hosts: tuple[tuple[str, int], ...]
    username: str | None
    password: str | None
    path: str
    query: str

    @classmethod
    def parse(cls, url: str, scheme: str, default_port: int, what: str, form: str) -> "HostListURL":
        """``url``'s parts; ``what`` names one listed server (``sentinel``, ``cluster
        node``) and ``form`` the URL's whole shape, in ``ValueError`` messages that never
        show the password."""
        without, username, password = split_credentials(url)
        rest = without[len(scheme) + 3:]
        rest, _, query = rest.partition("?")
        if "#" in rest or "#" in query:
            raise ValueError(f"a {scheme}:// URL has no #fragment; expected {form}")
        hosts_text, _, path = rest.partition("/")
        where = f"a {scheme}:// URL lists its {what}s as host:port, separated by commas: {form}"
        hosts = tuple(host_port(part, default_port, what, where) for part in hosts_text.split(","))
        return cls(hosts=hosts, username=username, password=password, path=path, query=query)


def host_port(text: str, default_port: int, what: str, form: str) -> tuple[str, int]:
    """``host:port`` or ``[IPv6]:port`` of a URL's host list (``default_port`` when none
    is given); ``what`` names the server and ``form`` the URL's shape in messages."""
    text = text.strip()
    if text.startswith("["):
        host, _, after = text[1:].partition("]")
        port_text = after[1:] if after.startswith(":") else ""
        if after and not after.startswith(":"):
            raise ValueError(f"a {what} address is host:port or [IPv6]:port, not {text[:60]!r}")
    else:
        host, _, port_text = text.partition(":")
    if not host:
        raise ValueError(form)
    if not port_text:
        return host, default_port
    if not (port_text.isascii() and port_text.isdigit()) or not 0 < int(port_text) < 65536:
        raise ValueError(f"a {what}'s port is a number from 1 to 65535, not {port_text[:20]!r}")
    return host, int(port_text)


def describe_hosts(hosts: tuple[tuple[str, int], ...]) -> str:
    """``host:port,[IPv6]:port`` for messages."""
    return ",".join(f"[{host}]:{port}" if ":" in host else f"{host}:{port}" for host, port in hosts)
