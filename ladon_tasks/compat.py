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
  Ladon's JSON-RPC faults (``RequestPropFault`` and friends) omit the ``hint``
  argument ``ServiceFault`` requires, so it defaults to empty.
* Ladon's dispatcher answers a request it cannot parse (not JSON, not XML, JSON that
  is not an object, a JSON-RPC call of an unknown method) by failing inside its own
  error handler, which ends in an HTTP 500 with a traceback. We parse first and answer
  such a request with a ``MalformedRequest`` (or ``UnknownMethod``) client fault in
  the interface's own format. A JSON-RPC answer, fault or not, carries the request's
  ``id`` as sent (Ladon turns numbers into strings and drops it from method faults),
  or ``null`` when it could not be read. A ``mirror`` or ``id`` that cannot be encoded
  back is refused up front, before any task starts, rather than failing the answer.
* Ladon reports arguments it cannot convert to the declared type, and missing
  arguments, as *server* faults. They are the caller's mistake: they become
  ``InvalidArgument`` client faults naming the argument. Ladon also takes a string or
  an object where a list is declared (iterating characters or keys); that is refused
  the same way. A SOAP array left empty (an empty or nil element) is an empty list.
* Ladon's SOAP parser accepts a document type declaration, so an entity-expansion
  body ("billion laughs") keeps a server thread busy for a long time. SOAP 1.1
  forbids DTDs in a message; we refuse any envelope that has one.
* Python reads ``NaN``, ``Infinity`` and ``1e400`` as JSON numbers, and Ladon would
  echo such a JSON-RPC ``id`` back as invalid JSON: it is refused, with a ``null`` id.
* Ladon writes the module and line that raised a fault (``filename``, ``lineno``) into
  JSON-WSP and JSON-RPC faults; outside debug mode they are left out. A JSON answer the
  request's charset cannot hold is written with ``\\u`` escapes rather than failing.
* Ladon's SOAP parser ignores namespaces and the ``SOAPAction`` header: a SOAP 1.2
  envelope gets ``VersionMismatch``, an operation outside ``urn:<service>`` and a
  ``SOAPAction`` naming another operation get ``MalformedRequest``.

* Ladon's ``soap``/``soapdocumentliteral`` interface (document/literal, what JAX-WS
  and .NET need) describes and answers LadonType results in ways no client can read;
  :mod:`ladon_tasks.soap_document` replaces it under the same names.
* Ladon's ``xmlrpc`` interface is Python 2 code (``iteritems``, ``unicode``): its
  description and every answer fail. It is taken out of the catalogue; the service
  page lists only interfaces that work.
* SOAP faults came back with HTTP 200 and a faultcode ``client``/``server`` in no
  namespace. SOAP 1.1 wants HTTP 500 and ``SOAP-ENV:Client``/``SOAP-ENV:Server``;
  both SOAP interfaces now answer so.

Every fault keeps the shape the real clients read (zeep's ``Fault``, Ladon's
``jsonwsp/fault``, a JSON-RPC ``error``); nothing else on the wire changes.
"""

from __future__ import annotations

import inspect
import json
import sys
import types
from collections import namedtuple

from ladon_tasks import faults

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


def _install_fault_detail_default() -> None:
    from ladon.exceptions.service import ServiceFault

    if getattr(ServiceFault, "_ladon_tasks_patched", False):
        return
    original_init = ServiceFault.__init__

    def __init__(self, faultcode, faultstring, detail=None, stack_depth=1, hint=""):  # type: ignore[no-untyped-def]
        if not detail and not faults.debug_enabled():
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


#: Longest excerpt of a client's own input quoted back in a fault: enough to recognise
#: it, never enough to turn a fault into an amplifier of a huge request.
_QUOTE_LIMIT = 80


def _quote(value: object) -> str:
    """``repr`` shortened and ASCII-only, so a fault can always be encoded and stays short."""
    text = ascii(value)
    return text if len(text) <= _QUOTE_LIMIT else text[: _QUOTE_LIMIT - 3] + "..."


def _describe_type(declared: object) -> str:
    """``int`` -> ``an int``; ``[str]`` -> ``a list of str``: the words a fault uses."""
    if isinstance(declared, (list, tuple)) and declared:
        return f"a list of {_describe_type(declared[0]).split(' ', 1)[1]}"
    name = getattr(declared, "__name__", str(declared))
    return f"{'an' if name[:1] in 'aeiou' else 'a'} {name}"


def _install_request_guards() -> None:
    import json

    from ladon.exceptions.dispatcher import LadonDispatchException
    from ladon.exceptions.service import ServiceFault
    from ladon.exceptions.types import LadonTypeException
    from ladon.server.dispatcher import Dispatcher
    from ladon.tools.multiparthandler import AttachmentHandler

    if getattr(Dispatcher.dispatch_request, "_ladon_tasks_patched", False):
        return
    original_dispatch = Dispatcher.dispatch_request
    original_call_method = Dispatcher.call_method

    def read_request(dispatcher: Dispatcher, request_data: bytes) -> dict:  # type: ignore[type-arg]
        """Ladon's parse, plus the shape checks Ladon's dispatcher assumes without making."""
        iface_name = dispatcher.iface._interface_name()
        try:
            req_dict = dispatcher.iface.parse_request(request_data, encoding=dispatcher.response_encoding)
        except ServiceFault:
            raise
        except RecursionError:
            raise faults.MalformedRequest(f"the {iface_name} request is nested too deeply") from None
        except Exception as exc:
            reason = str(exc).strip().splitlines()[-1:] or [type(exc).__name__]
            raise faults.MalformedRequest(f"not a readable {iface_name} request: {_quote(reason[0])[1:-1]}"
            ) from None
        if not isinstance(req_dict, dict):
            raise faults.MalformedRequest(f"a {iface_name} request must be an object")
        methodname = req_dict.get("methodname")
        if not isinstance(methodname, str) or not methodname:
            raise faults.MalformedRequest(f"the {iface_name} request names no method")
        if not dispatcher.sinst.method(methodname):
            raise faults.UnknownMethod(f"{dispatcher.sinst.servicename} has no method {_quote(methodname)}"
            )
        req_dict.setdefault("args", {})
        if not isinstance(req_dict["args"], dict):
            raise faults.MalformedRequest("args must be an object of argument names and values")
        for echoed in ("mirror", "id"):  # written back into the answer: must survive encoding
            problem = _echo_problem(req_dict.get(echoed), dispatcher.response_encoding)
            if problem is not None:
                req_dict.pop(echoed, None)
                raise faults.MalformedRequest(f"{echoed} {problem}")
        return req_dict

    def guard_fault_rendering(dispatcher: Dispatcher, request_id: object = None) -> None:
        """Make this request's fault answers complete and always encodable.

        A JSON-RPC error carries the request's ``id`` (Ladon leaves it out for faults
        raised by methods); an answer that cannot be encoded is sent without the echoed
        parts rather than turned into an HTTP 500."""
        iface = dispatcher.iface
        build = iface.build_fault_response
        is_jsonrpc = iface._interface_name() == "jsonrpc10"

        def build_fault_response(exc, methodname=None, encoding="UTF-8", reflection=None):  # type: ignore[no-untyped-def]
            if is_jsonrpc and not getattr(exc, "passback_dict", None):
                exc.passback_dict = {"id": request_id}
            try:
                return build(exc, methodname, encoding=encoding, reflection=reflection)
            except UnicodeError:
                if is_jsonrpc:
                    exc.passback_dict = {"id": None}
                return build(exc, methodname, encoding=encoding, reflection=None)

        iface.build_fault_response = build_fault_response

    def dispatch_request(self: Dispatcher, request_data: bytes, export_dict: dict) -> object:  # type: ignore[type-arg]
        """Parse first; only a request that parsed into the expected shape reaches Ladon."""
        try:
            req_dict = read_request(self, request_data)
        except ServiceFault as fault:
            export_dict["response_attachments"] = AttachmentHandler()
            guard_fault_rendering(self)
            return self.iface.build_fault_response(fault, None, encoding=self.response_encoding)
        # The interface instance belongs to this one request: hand Ladon the parsed dict.
        self.iface.parse_request = lambda *args, **kw: req_dict
        guard_fault_rendering(self, req_dict.get("id"))
        return original_dispatch(self, request_data, export_dict)

    def call_method(self: Dispatcher, method, req_dict, tc, export_dict, log_line):  # type: ignore[no-untyped-def]
        """Ladon's call; its argument conversion errors become the caller's fault."""
        for arg in method.args():
            name, declared = arg["name"], arg["type"]
            if not isinstance(declared, list) or name not in req_dict["args"]:
                continue
            value = req_dict["args"][name]
            if value in ("", None) and self.iface._interface_name() == "soap11":
                req_dict["args"][name] = []  # SOAP writes an empty array as an empty or nil element
            elif not isinstance(value, list):  # Ladon would iterate a string's characters or a dict's keys
                raise faults.InvalidArgument(f"{method.name()}: argument {name} must be {_describe_type(declared)}")
        try:
            return original_call_method(self, method, req_dict, tc, export_dict, log_line)
        except (LadonTypeException, LadonDispatchException):
            name = self.fault_hint.rpartition("argument: ")[2].strip('"')
            declared = {arg["name"]: arg["type"] for arg in method.args()}
            if name not in declared:
                raise
            if name not in req_dict["args"]:
                raise faults.InvalidArgument(f"{method.name()}: argument {name} is missing") from None
            raise faults.InvalidArgument(
                f"{method.name()}: argument {name} must be {_describe_type(declared[name])}"
            ) from None

    dispatch_request._ladon_tasks_patched = True  # type: ignore[attr-defined]
    Dispatcher.dispatch_request = dispatch_request  # type: ignore[method-assign]
    Dispatcher.call_method = call_method  # type: ignore[method-assign]


def _install_jsonrpc_request_checks() -> None:
    import json

    from ladon.compat import PORTABLE_STRING
    from ladon.exceptions.service import ServiceFault
    from ladon.interfaces.jsonrpc10 import JSONRPCRequestHandler

    original = JSONRPCRequestHandler.parse_request
    if getattr(original, "_ladon_tasks_patched", False):
        return

    def parse_request(self, json_body, sinfo, encoding):  # type: ignore[no-untyped-def]
        """Name an unknown method and a non-object request before Ladon trips over them,
        and keep the request's ``id`` as sent (JSON-RPC matches answers to calls by it)."""
        request = json.loads(PORTABLE_STRING(json_body, encoding))
        if not isinstance(request, dict):
            raise faults.MalformedRequest("a jsonrpc10 request must be an object")
        passback = {"id": request.get("id") if _echo_problem(request.get("id"), encoding) is None else None}
        method = request.get("method")
        fault = None
        if "method" in request and not isinstance(method, str):
            fault = faults.MalformedRequest("method must be a string")
        elif isinstance(method, str) and method not in sinfo.methods:
            fault = faults.UnknownMethod(f"{sinfo.servicename} has no method {_quote(method)}")
        if fault is not None:
            fault.passback_dict = passback
            raise fault
        try:
            req_dict = original(self, json_body, sinfo, encoding)
        except ServiceFault as ladon_fault:
            ladon_fault.passback_dict = passback
            raise
        if "id" in request:  # Ladon reads numbers as strings; an answer echoes the id as sent
            req_dict["id"] = request["id"]
        return req_dict

    parse_request._ladon_tasks_patched = True  # type: ignore[attr-defined]
    JSONRPCRequestHandler.parse_request = parse_request


def _refuse_document_type(*args: object) -> None:
    raise ValueError("SOAP messages must not contain a document type declaration")


def _install_soap_parser_guard() -> None:
    from io import BytesIO
    from xml.sax import make_parser
    from xml.sax.handler import feature_external_ges, feature_external_pes
    from xml.sax.xmlreader import InputSource

    from ladon.interfaces import soap11

    if getattr(soap11.SOAP11RequestHandler.parse_request, "_ladon_tasks_patched", False):
        return

    class GuardedContentHandler(soap11.SOAP11ContentHandler):
        """Ladon's SOAP content handler on a parser that stops at any DTD."""

        def startDocument(self) -> None:
            super().startDocument()
            self.parser._parser.StartDoctypeDeclHandler = _refuse_document_type
            self.parser._parser.EntityDeclHandler = _refuse_document_type

    def parse_request(self, soap_body, sinfo, encoding):  # type: ignore[no-untyped-def]
        """Ladon's parse (same handler, same result) without DTDs or external entities."""
        parser = make_parser()
        parser.setFeature(feature_external_ges, False)
        parser.setFeature(feature_external_pes, False)
        handler = GuardedContentHandler(parser)
        parser.setContentHandler(handler)
        source = InputSource()
        source.setByteStream(BytesIO(soap_body))
        parser.parse(source)
        return handler.req_dict

    parse_request._ladon_tasks_patched = True  # type: ignore[attr-defined]
    soap11.SOAP11RequestHandler.parse_request = parse_request


def _echo_problem(value: object, encoding: str) -> str | None:
    """Why ``value`` (a JSON-RPC ``id``, a JSON-WSP ``mirror``) cannot be written back
    into an answer, or ``None``. Python reads ``NaN``, ``Infinity`` and ``1e400`` from a
    request, but writing them back would make the answer invalid JSON; text with lone
    surrogates, or characters the charset lacks, cannot be encoded at all."""
    try:
        json.dumps(value, ensure_ascii=False, allow_nan=False).encode(encoding)
    except ValueError as exc:
        if isinstance(exc, UnicodeError):
            return f"holds text that cannot be written in {encoding}"
        return "holds a number JSON cannot carry (NaN, Infinity or out of range)"
    return None


def _install_fault_location_filter() -> None:
    """Ladon writes the module and line that raised a fault (``filename``, ``lineno``)
    into every JSON-WSP and JSON-RPC fault: server internals a client has no use for.
    They are left out unless debug mode is on."""
    from ladon.interfaces.jsonrpc10 import JSONRPCFaultHandler
    from ladon.interfaces.jsonwsp import JSONWSPFaultHandler

    for handler in (JSONWSPFaultHandler, JSONRPCFaultHandler):
        original = handler.build_fault_response
        if getattr(original, "_ladon_tasks_patched", False):
            continue

        def build_fault_response(self, service_exc, sinfo, methodname, encoding, reflection, _build=original):  # type: ignore[no-untyped-def]
            answer = _build(self, service_exc, sinfo, methodname, encoding, reflection)
            if faults.debug_enabled():
                return answer
            document = json.loads(answer.decode(encoding))
            fault = document.get("fault") if "fault" in document else document.get("error")
            if isinstance(fault, dict):
                fault.pop("filename", None)
                fault.pop("lineno", None)
            return json.dumps(document, ensure_ascii=False).encode(encoding)

        build_fault_response._ladon_tasks_patched = True  # type: ignore[attr-defined]
        handler.build_fault_response = build_fault_response


def _install_json_answer_escapes() -> None:
    """Ladon writes a JSON-WSP or JSON-RPC answer in the request's charset, and fails
    (the client sees a one-line 400 instead of its answer) when the charset lacks a
    character of it: a result with an "é" asked for in ``charset=ascii``. Such an answer
    is written with JSON's ``\\u`` escapes instead, which every charset can carry."""
    from ladon.interfaces.jsonrpc10 import JSONRPCResponseHandler
    from ladon.interfaces.jsonwsp import JSONWSPResponseHandler

    for handler in (JSONWSPResponseHandler, JSONRPCResponseHandler):
        original = handler.build_response
        if getattr(original, "_ladon_tasks_patched", False):
            continue

        def build_response(self, res_dict, sinfo, encoding, _build=original):  # type: ignore[no-untyped-def]
            try:
                return _build(self, dict(res_dict), sinfo, encoding)  # Ladon edits the dict's top level
            except UnicodeEncodeError:
                document = json.loads(_build(self, dict(res_dict), sinfo, "utf-8"))
                return json.dumps(document, ensure_ascii=True).encode(encoding)

        build_response._ladon_tasks_patched = True  # type: ignore[attr-defined]
        handler.build_response = build_response


#: The envelope namespace of SOAP 1.1, the only SOAP version Ladon speaks.
SOAP11_ENVELOPE = "http://schemas.xmlsoap.org/soap/envelope/"


class _ScanDone(Exception):
    """Stops the namespace scan once the operation element has been seen."""


def _soap_namespace_fault(body: bytes, servicename: str) -> Exception | None:
    """The fault for a SOAP request in the wrong namespaces, or ``None``.

    Ladon's parser matches ``Envelope`` and ``Body`` by local name and takes any
    element inside the body for the operation, so a SOAP 1.2 envelope, or an operation
    of another service's namespace, would be executed. A SOAP 1.1 node answers an
    envelope of another namespace with ``VersionMismatch``; the operation must be in the
    namespace the WSDL declares (``urn:<service>``). Reads only up to the operation's
    start tag; the body was parsed (and any DTD refused) before."""
    from xml.parsers import expat

    found: list[tuple[str, str]] = []  # (namespace, local name) of envelope, body, operation

    def start(name: str, attrs: object) -> None:
        namespace, _, local = name.rpartition(" ")
        depth = len(found)
        if depth == 0 or (depth == 1 and local.lower() == "body") or depth == 2:
            found.append((namespace, local))
        if len(found) == 3:
            raise _ScanDone

    parser = expat.ParserCreate(namespace_separator=" ")
    parser.StartElementHandler = start
    parser.StartDoctypeDeclHandler = _refuse_document_type
    parser.EntityDeclHandler = _refuse_document_type
    try:
        parser.Parse(body, True)
    except _ScanDone:
        pass
    except (expat.ExpatError, ValueError) as exc:  # Ladon parsed it, but its namespaces are broken
        return faults.MalformedRequest(f"not a well-formed SOAP envelope: {_quote(str(exc))[1:-1]}")
    if not found or found[0][1].lower() != "envelope":
        return None
    if found[0][0] != SOAP11_ENVELOPE:
        return faults.VersionMismatch(
            f"the envelope is in namespace {_quote(found[0][0])}; this service speaks SOAP 1.1 ({SOAP11_ENVELOPE})"
        )
    if len(found) > 1 and found[1][0] != SOAP11_ENVELOPE:
        return faults.MalformedRequest(f"the Body must be in the namespace {SOAP11_ENVELOPE}")
    expected = f"urn:{servicename}"
    if len(found) > 2 and found[2][0] != expected:
        return faults.MalformedRequest(
            f"operation {_quote(found[2][1])} is in namespace {_quote(found[2][0])}; "
            f"the operations of {servicename} are in {expected!r}"
        )
    return None


def _soap_action_problem(header: str | None, methodname: object) -> str | None:
    """Why a ``SOAPAction`` header does not fit the operation in the body, or ``None``.

    A gateway may allow or deny calls by SOAPAction; a body calling another operation
    than the header names would slip past it. The header is optional, and an empty one
    means "see the request"; otherwise its last ``/`` or ``#`` part must name the
    operation (the WSDL declares ``<service url>/<operation>``)."""
    if header is None:
        return None
    action = header.strip().strip('"').strip()
    if not action:
        return None
    named = action.replace("#", "/").rsplit("/", 1)[-1].replace("-", "_")
    if isinstance(methodname, str) and named == methodname.replace("-", "_"):
        return None
    return f"the SOAPAction header names {_quote(named)} but the body calls {_quote(methodname)}"


def _install_soap_conformance_checks() -> None:
    """SOAP requests must be SOAP 1.1, in the service's namespace, and agree with their
    ``SOAPAction`` header; see :func:`_soap_namespace_fault` and
    :func:`_soap_action_problem`. Checked on each SOAP request's own interface instance,
    right after Ladon has parsed the body."""
    from ladon.server.dispatcher import Dispatcher

    original = Dispatcher.dispatch_request
    if getattr(original, "_ladon_tasks_soap_checked", False):
        return

    def dispatch_request(self: Dispatcher, request_data: bytes, export_dict: dict) -> object:  # type: ignore[type-arg]
        if self.iface._interface_name() == "soap11":
            parse = self.iface.parse_request
            action = export_dict.get("HTTP_SOAPACTION")
            servicename = self.sinst.servicename

            def parse_request(*args, **kw):  # type: ignore[no-untyped-def]
                req_dict = parse(*args, **kw)
                fault = _soap_namespace_fault(request_data, servicename)
                if fault is not None:
                    raise fault
                problem = _soap_action_problem(action, req_dict.get("methodname") if isinstance(req_dict, dict) else None)
                if problem is not None:
                    raise faults.MalformedRequest(problem)
                return req_dict

            self.iface.parse_request = parse_request
        return original(self, request_data, export_dict)

    dispatch_request._ladon_tasks_soap_checked = True  # type: ignore[attr-defined]
    dispatch_request._ladon_tasks_patched = True  # type: ignore[attr-defined]
    Dispatcher.dispatch_request = dispatch_request  # type: ignore[method-assign]


def _install_soap_document_literal() -> None:
    """Ladon's document/literal interface, redone (:mod:`ladon_tasks.soap_document`)."""
    from ladon_tasks import soap_document

    soap_document.install()


def _drop_xmlrpc_interface() -> None:
    """Ladon's ``xmlrpc`` fails on Python 3 for every call: out of the catalogue."""
    from ladon import interfaces

    interfaces._interfaces.pop("xmlrpc", None)


#: Key in the WSGI environ set while a SOAP fault is the answer, so the HTTP status
#: can say so (Ladon sends every answer as ``200 OK``).
SOAP_FAULT_KEY = "ladon_tasks.soap_fault"

#: SOAP 1.1 fault codes, qualified with the envelope's namespace prefix.
_SOAP_FAULT_CODES = {"client": "SOAP-ENV:Client", "server": "SOAP-ENV:Server"}


def _install_soap_fault_codes() -> None:
    """``client`` -> ``SOAP-ENV:Client``, ``server`` -> ``SOAP-ENV:Server`` in SOAP faults."""
    from ladon.interfaces.soap11 import SOAP11FaultHandler

    original = SOAP11FaultHandler.build_fault_response
    if getattr(original, "_ladon_tasks_fault_codes", False):
        return

    def build_fault_response(self, service_exc, sinfo, methodname, encoding, reflection):  # type: ignore[no-untyped-def]
        code = service_exc.faultcode
        service_exc.faultcode = _SOAP_FAULT_CODES.get(str(code).lower(), code)
        try:
            return original(self, service_exc, sinfo, methodname, encoding, reflection)
        finally:
            service_exc.faultcode = code

    build_fault_response._ladon_tasks_fault_codes = True  # type: ignore[attr-defined]
    SOAP11FaultHandler.build_fault_response = build_fault_response


def _install_soap_fault_http_status() -> None:
    """A SOAP fault is answered with HTTP 500, as SOAP 1.1 requires."""
    from ladon.interfaces.soap11 import SOAP11Interface
    from ladon.server.dispatcher import Dispatcher
    from ladon.server.wsgi_application import LadonWSGIApplication

    from ladon_tasks.soap_document import DocumentLiteralInterface

    inner_dispatch = Dispatcher.dispatch_request
    if getattr(inner_dispatch, "_ladon_tasks_fault_status", False):
        return
    inner_call = LadonWSGIApplication.__call__

    def dispatch_request(self: Dispatcher, request_data: bytes, export_dict: dict) -> object:  # type: ignore[type-arg]
        if isinstance(self.iface, (SOAP11Interface, DocumentLiteralInterface)):
            build = self.iface.build_fault_response

            def build_fault_response(*args, **kw):  # type: ignore[no-untyped-def]
                export_dict[SOAP_FAULT_KEY] = True
                return build(*args, **kw)

            self.iface.build_fault_response = build_fault_response
        return inner_dispatch(self, request_data, export_dict)

    def __call__(self, environ, start_response):  # type: ignore[no-untyped-def]
        def start(status, headers, exc_info=None):  # type: ignore[no-untyped-def]
            if environ.get(SOAP_FAULT_KEY) and str(status).startswith("200"):
                status = "500 Internal Server Error"
            return start_response(status, headers, exc_info) if exc_info else start_response(status, headers)

        return inner_call(self, environ, start)

    dispatch_request._ladon_tasks_fault_status = True  # type: ignore[attr-defined]
    Dispatcher.dispatch_request = dispatch_request  # type: ignore[method-assign]
    LadonWSGIApplication.__call__ = __call__


def install() -> None:
    """Apply every mend; safe to call more than once."""
    _install_getargspec()
    _install_imp_stand_in()
    _install_fault_detail_default()
    _install_ladontype_attribute_filter()
    _install_jsonwsp_client_methods()
    _install_request_guards()
    _install_jsonrpc_request_checks()
    _install_soap_parser_guard()
    _install_fault_location_filter()
    _install_json_answer_escapes()
    _install_soap_conformance_checks()
    _install_soap_document_literal()
    _drop_xmlrpc_interface()
    _install_soap_fault_codes()
    _install_soap_fault_http_status()  # after _install_request_guards: it wraps that dispatch


install()
