"""Mends that make Ladon 1.0.7 import and decorate on Python 3.11-3.13: ``getargspec``,
``imp``, the class attributes of 3.13, its JSON-WSP client, and fault details that
default to the fault string rather than a traceback."""

from __future__ import annotations

import inspect
import json
import sys
import types
from collections import namedtuple

from ladon_tasks import faults

ArgSpec = namedtuple("ArgSpec", "args varargs keywords defaults")


def _getargspec(func):  # type: ignore[no-untyped-def]
    """The Python 2 ``getargspec`` shape (``keywords`` for ``**kw``) that Ladon reads."""
    spec = inspect.getfullargspec(func)
    return ArgSpec(spec.args, spec.varargs, spec.varkw, spec.defaults)


def _install_getargspec() -> None:
    if not hasattr(inspect, "getargspec"):
        inspect.getargspec = _getargspec  # type: ignore[attr-defined]


def _install_imp_stand_in() -> None:
    try:
        import imp  # noqa: F401  (present up to 3.11, or through zombie-imp)
    except ImportError:
        sys.modules["imp"] = types.ModuleType("imp", "empty stand-in: Ladon imports imp but never uses it")


def _install_fault_detail_default() -> None:
    from ladon.exceptions.service import ServiceFault

    if getattr(ServiceFault, "_ladon_tasks_patched", False):
        return
    original_init = ServiceFault.__init__

    def __init__(self, faultcode, faultstring, detail=None, stack_depth=1, hint=""):  # type: ignore[no-untyped-def]
        if not detail and not faults.debug_enabled():
            detail = str(faultstring) or faultcode
        original_init(self, faultcode, faultstring, detail, stack_depth + 1, hint)

    ServiceFault.__init__ = __init__
    ServiceFault._ladon_tasks_patched = True


def _install_jsonwsp_client_methods() -> None:
    import functools

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


#: Longest excerpt of a client's own input quoted back in a fault: enough to recognise
#: it, never enough to turn a fault into an amplifier of a huge request.
