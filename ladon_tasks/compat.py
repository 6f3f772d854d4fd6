"""Make Ladon 1.0.7 import, decorate and answer faults on Python 3.11-3.13.

Ladon 1.0.7 was written for Python 2.6-3.10. Three things break or misbehave on a
current interpreter, and this module mends each one in place, once, when
``ladon_tasks`` is imported:

* ``inspect.getargspec`` (removed in 3.11) is called whenever a method is ladonized.
  We restore it as a thin view over ``inspect.getfullargspec``.
* ``ladon/interfaces/__init__.py`` does ``import imp`` (removed in 3.12) but never uses
  it. Where no ``imp`` module exists we register an empty stand-in so the import works.
* Python 3.13 gives every class statement ``__firstlineno__`` and
  ``__static_attributes__``; Ladon takes every non-standard class attribute of a
  LadonType for a field and refuses them. Dunder names are never fields, so we skip them.
* Ladon's JSON-WSP client builds its per-method callables with ``exec`` and a module
  it never imports (``types``), which fails on every Python 3. We rebuild them with
  ``functools.partial`` so ``JSONWSPClient(url).someMethod(...)`` works.
* A fault raised without a ``detail`` makes every Ladon interface put
  ``traceback.format_exc()`` on the wire. Clients should never see server internals,
  so unless debug mode is on, a fault's detail defaults to its own fault string.

Nothing here changes Ladon's behaviour on the wire beyond that last point.
"""

from __future__ import annotations

import inspect
import sys
import types
from collections import namedtuple

_ArgSpec = namedtuple("ArgSpec", "args varargs keywords defaults")


def _getargspec(func):  # type: ignore[no-untyped-def]
    """The Python 2 ``getargspec`` shape (``keywords`` for ``**kw``) that Ladon reads."""
    spec = inspect.getfullargspec(func)
    return _ArgSpec(spec.args, spec.varargs, spec.varkw, spec.defaults)


def _install_getargspec() -> None:
    if not hasattr(inspect, "getargspec"):
        inspect.getargspec = _getargspec  # type: ignore[attr-defined]


def _install_imp_stand_in() -> None:
    try:
        import imp  # noqa: F401  (present up to 3.11, or through zombie-imp)
    except ImportError:
        sys.modules["imp"] = types.ModuleType("imp", "empty stand-in: Ladon imports imp but never uses it")


_debug_mode = False


def set_debug(enabled: bool) -> None:
    """In debug mode, faults carry the server's traceback, as Ladon does by default."""
    global _debug_mode
    _debug_mode = bool(enabled)


def debug_enabled() -> bool:
    return _debug_mode


def _install_fault_detail_default() -> None:
    from ladon.exceptions.service import ServiceFault

    if getattr(ServiceFault, "_ladon_tasks_patched", False):
        return
    original_init = ServiceFault.__init__

    def __init__(self, faultcode, faultstring, detail, stack_depth, hint):  # type: ignore[no-untyped-def]
        if not detail and not _debug_mode:
            detail = str(faultstring) or faultcode
        original_init(self, faultcode, faultstring, detail, stack_depth + 1, hint)

    ServiceFault.__init__ = __init__  # type: ignore[method-assign]
    ServiceFault._ladon_tasks_patched = True  # type: ignore[attr-defined]


def _install_jsonwsp_client_methods() -> None:
    import functools
    import json

    from ladon.clients import jsonwsp
    from ladon.compat import PORTABLE_STRING

    def parse_description(self):  # type: ignore[no-untyped-def]
        response = self.post_request("", "", via_proxy=self.via_proxy)
        charset = jsonwsp.probe_charset(response.headers)
        self.jsonwsp_description = json.loads(PORTABLE_STRING(response.response_body, charset))
        self.parse_url(self.jsonwsp_description["url"])
        for method_name in self.jsonwsp_description["methods"]:
            setattr(self, method_name, functools.partial(self.call_method, method_name))
        self.description_loaded = True

    jsonwsp.JSONWSPClient.parse_description = parse_description


def _install_ladontype_attribute_filter() -> None:
    from ladon.types import typemanager

    original = typemanager.get_userdef_class_attributes
    if getattr(original, "_ladon_tasks_patched", False):
        return

    def get_userdef_class_attributes(cls, exclude_methods=True):  # type: ignore[no-untyped-def]
        return [name for name in original(cls, exclude_methods) if not (name.startswith("__") and name.endswith("__"))]

    get_userdef_class_attributes._ladon_tasks_patched = True  # type: ignore[attr-defined]
    typemanager.get_userdef_class_attributes = get_userdef_class_attributes


def install() -> None:
    """Apply every mend; safe to call more than once."""
    _install_getargspec()
    _install_imp_stand_in()
    _install_fault_detail_default()
    _install_ladontype_attribute_filter()
    _install_jsonwsp_client_methods()


install()
