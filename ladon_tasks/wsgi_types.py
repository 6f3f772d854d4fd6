"""The types of WSGI (PEP 3333) the modules that serve or wrap an application share."""

from __future__ import annotations

from typing import Any, Callable, Iterable

#: ``start_response(status, headers, exc_info=None)``.
StartResponse = Callable[..., Any]

#: A WSGI application: ``application(environ, start_response)`` -> body chunks.
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]
