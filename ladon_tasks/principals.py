"""Who calls: the principal a request names, and which tasks it may see.

A task records the principal of the call that started it (``TaskRecord.principal``).
Through the wire, a caller sees only the tasks it started, and the tasks started
without a principal (whose id stays their only credential, as before): another
caller's task answers ``UnknownTask``, exactly as an id no store knows. Operators
(the dashboard, the command line) see every task, with its principal.

The principal is taken from the request by a **hook**, set once per process before its
services are imported (``ladon_tasks.configure(principal=...)``, ``make_application``,
``ladon-tasks serve --principal``, ``LADON_TASKS_PRINCIPAL``):

* the name of a WSGI environ key (default ``REMOTE_USER``: Apache's ``AuthType Basic``
  or a front proxy set it; a client cannot, since request headers arrive as
  ``HTTP_*``);
* a callable taking the request's WSGI environ (on a start call, Ladon's request
  keywords over it), returning the principal, or ``""``/``None`` for an anonymous call; it may raise
  :class:`~ladon_tasks.faults.Unauthenticated` itself;
* a dotted name of such a callable: ``package.module:function`` or
  ``package.module.function``.

``require_principal`` refuses anonymous calls with ``Unauthenticated``. A process whose
principals were configured (either setting given) adds ``m_list`` to its task methods by
default: the list shows each caller its own tasks only.
"""

from __future__ import annotations

import importlib
import re
import threading
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Union

from ladon_tasks import defaults, faults
from ladon_tasks.model import TaskRecord

#: What reads the principal of a request: given the WSGI environ, the name or ``None``.
Hook = Callable[[Mapping[str, Any]], Any]
#: How a hook is configured: an environ key, a dotted name, or the callable itself.
HookSetting = Union[str, Hook, None]

_ENVIRON_KEY = re.compile(r"[A-Z][A-Z0-9_]*")


@dataclass(frozen=True)
class Principals:
    """This process's rule for callers: how a request names one, whether it must."""

    hook: Hook
    required: bool = False
    #: Configured on purpose (rather than the default): task methods then get ``m_list``.
    configured: bool = False
    described: str = defaults.PRINCIPAL

    def of_request(self, environ: Mapping[str, Any]) -> str:
        """The caller of the request whose environ (Ladon's keywords) is ``environ``:
        ``""`` for an anonymous call, or ``Unauthenticated`` when one is required."""
        value = self.hook(environ)
        if value is None:
            value = ""
        if not isinstance(value, str):
            raise TypeError(f"the principal hook {self.described} gave {type(value).__name__}, not text")
        if len(value) > defaults.PRINCIPAL_MAX_CHARS:
            raise faults.InvalidArgument(
                f"the caller's name takes more than {defaults.PRINCIPAL_MAX_CHARS} characters")
        if not value and self.required:
            raise faults.Unauthenticated("this service needs an authenticated caller; "
                                         "log in (HTTP authentication) and call again")
        return value


def environ_key(name: str) -> Hook:
    """The hook that reads the environ's ``name`` (``REMOTE_USER``)."""

    def read(environ: Mapping[str, Any]) -> Any:
        value = environ.get(name)
        return value if isinstance(value, str) else ""

    read.__qualname__ = read.__name__ = f"environ[{name!r}]"
    return read


def resolve(setting: HookSetting) -> tuple[Hook, str]:
    """The hook a setting names, and how to name it in messages. A wrong setting is a
    configuration error, raised at once (``ValueError``) rather than at a request."""
    if setting is None or setting == "":
        return environ_key(defaults.PRINCIPAL), defaults.PRINCIPAL
    if callable(setting):
        return setting, getattr(setting, "__qualname__", repr(setting))
    if not isinstance(setting, str):
        raise ValueError(f"principal must be an environ key, a dotted name or a callable, got {setting!r}")
    if _ENVIRON_KEY.fullmatch(setting):
        return environ_key(setting), setting
    module_name, _, attribute = setting.partition(":") if ":" in setting else setting.rpartition(".")
    if not module_name or not attribute:
        raise ValueError(f"principal {setting!r} is neither an environ key (REMOTE_USER) "
                         "nor a dotted name (package.module:function)")
    try:
        hook = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"principal hook {setting!r} cannot be loaded: {exc}") from None
    if not callable(hook):
        raise ValueError(f"principal hook {setting!r} is not callable")
    return hook, setting


_current = Principals(environ_key(defaults.PRINCIPAL))


def configure(principal: HookSetting = None, require_principal: bool | None = None) -> Principals:
    """Set this process's rule (before its services are imported: ``m_list`` is added
    when they are). ``require_principal`` left ``None`` keeps the current choice."""
    global _current
    if require_principal is not None and not isinstance(require_principal, bool):
        raise ValueError(f"require_principal must be True or False, got {require_principal!r}")
    hook, described = resolve(principal)
    required = _current.required if require_principal is None else require_principal
    _current = Principals(hook, required, configured=True, described=described)
    return _current


def current() -> Principals:
    """This process's rule: the default reads ``REMOTE_USER`` and requires nothing."""
    return _current


#: The WSGI environ of the request this thread dispatches, set around Ladon's call of a
#: companion (:mod:`ladon_tasks.compat.requests`): the companions that only read a task take no
#: keywords from Ladon, which would copy the whole environ into them twice per call.
_dispatching = threading.local()


def dispatching(environ: Mapping[str, Any] | None) -> None:
    """This thread now dispatches the request of ``environ`` (``None``: none)."""
    _dispatching.environ = environ


def of_request(environ: Mapping[str, Any]) -> str:
    """The caller of a request, by this process's rule; without keywords (a companion
    Ladon passes none), the caller of the request this thread dispatches."""
    if not environ:
        environ = getattr(_dispatching, "environ", None) or {}
    return _current.of_request(environ)


def may_see(record: TaskRecord, caller: str | None) -> bool:
    """Whether ``caller`` may see ``record``: its own tasks, and those started without a
    principal; ``None`` is an operator (or the process itself), who sees every task."""
    return caller is None or not record.principal or record.principal == caller
