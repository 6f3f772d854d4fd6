"""Principal hooks for the tests (not a service): a front proxy that has authenticated
the caller names it in a request header, as ``X-Caller``."""


def caller(environ):
    """The caller a front proxy named (``X-Caller``), or ``None`` for an anonymous call."""
    return environ.get("HTTP_X_CALLER") or None
