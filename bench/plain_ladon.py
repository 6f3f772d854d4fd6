"""Ladon 1.0.7 on its own, as a Ladon user runs it on Python 3.11+: the anchors and the
hand-wired peers of the benches are served by this, never by ladon-tasks.

Ladon 1.0.7 decorates methods with ``inspect.getargspec``, which Python 3.11 removed, and
its interfaces import ``imp``, which 3.12 removed; a Ladon user on a current Python puts
back those two and nothing else. ladon-tasks' own mends (``ladon_tasks.compat``) are not
applied: some of them make Ladon's request handling faster, and that is ladon-tasks'
doing, to be counted on its side of a comparison. Importing anything of ``ladon_tasks``
would also activate the plugin (``import ladon_tasks`` turns Ladon's ``tasktype=True``
into ladon-tasks' task methods), so :func:`application` refuses to build when it has
been imported.
"""

from __future__ import annotations

import inspect
import sys
import types
from collections import namedtuple
from typing import Any

ArgSpec = namedtuple("ArgSpec", "args varargs keywords defaults")


def _getargspec(func: Any) -> ArgSpec:
    spec = inspect.getfullargspec(func)
    return ArgSpec(spec.args, spec.varargs, spec.varkw, spec.defaults)


def install() -> None:
    """Put back ``inspect.getargspec`` and an empty ``imp``, where the interpreter lacks them."""
    if not hasattr(inspect, "getargspec"):
        inspect.getargspec = _getargspec  # type: ignore[attr-defined]
    try:
        import imp  # noqa: F401
    except ImportError:
        sys.modules["imp"] = types.ModuleType("imp")


def application(modules: list[str], directory: str) -> Any:
    """Ladon's own ``LadonWSGIApplication`` for ``modules`` found in ``directory``."""
    install()
    if directory not in sys.path:
        sys.path.insert(0, directory)
    from ladon.server.wsgi import LadonWSGIApplication

    built = LadonWSGIApplication(modules, [directory])
    if any(name == "ladon_tasks" or name.startswith("ladon_tasks.") for name in sys.modules):
        raise RuntimeError("ladon_tasks was imported: Ladon would not be on its own (the plugin is active)")
    return built
