"""Mends of Ladon's SOAP: SOAP 1.1 namespaces and ``SOAPAction`` checked, the
document/literal interfaces redone (:mod:`ladon_tasks.soap_document`), faults answered
with HTTP 500 and qualified codes, and the Python 2 ``xmlrpc`` interface taken out of
the catalogue."""

from __future__ import annotations

from ladon_tasks import faults
from ladon_tasks.compat.requests import quote, refuse_document_type

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
    parser.StartDoctypeDeclHandler = refuse_document_type
    parser.EntityDeclHandler = refuse_document_type
    try:
        parser.Parse(body, True)
    except _ScanDone:
        pass
    except (expat.ExpatError, ValueError) as exc:  # Ladon parsed it, but its namespaces are broken
        return faults.MalformedRequest(f"not a well-formed SOAP envelope: {quote(str(exc))[1:-1]}")
    if not found or found[0][1].lower() != "envelope":
        return None
    if found[0][0] != SOAP11_ENVELOPE:
        return faults.VersionMismatch(
            f"the envelope is in namespace {quote(found[0][0])}; this service speaks SOAP 1.1 ({SOAP11_ENVELOPE})"
        )
    if len(found) > 1 and found[1][0] != SOAP11_ENVELOPE:
        return faults.MalformedRequest(f"the Body must be in the namespace {SOAP11_ENVELOPE}")
    expected = f"urn:{servicename}"
    if len(found) > 2 and found[2][0] != expected:
        return faults.MalformedRequest(
            f"operation {quote(found[2][1])} is in namespace {quote(found[2][0])}; "
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
    return f"the SOAPAction header names {quote(named)} but the body calls {quote(methodname)}"


def _install_soap_conformance_checks() -> None:
    """SOAP requests must be SOAP 1.1, in the service's namespace, and agree with their
    ``SOAPAction`` header; see :func:`_soap_namespace_fault` and
    :func:`_soap_action_problem`. Checked on each SOAP request's own interface instance,
    right after Ladon has parsed the body."""
    from ladon.server.dispatcher import Dispatcher

    original = Dispatcher.dispatch_request
    if getattr(original, "_ladon_tasks_soap_checked", False):
        return

    def dispatch_request(self: Dispatcher, request_data: bytes, export_dict: dict) -> object:
        if self.iface._interface_name() == "soap11":
            parse = self.iface.parse_request
            action = export_dict.get("HTTP_SOAPACTION")
            servicename = self.sinst.servicename

            def parse_request(*args, **kw):  # type: ignore[no-untyped-def]
                req_dict = parse(*args, **kw)
                fault = _soap_namespace_fault(request_data, servicename)
                if fault is not None:
                    raise fault
                problem = _soap_action_problem(
                    action, req_dict.get("methodname") if isinstance(req_dict, dict) else None
                )
                if problem is not None:
                    raise faults.MalformedRequest(problem)
                return req_dict

            self.iface.parse_request = parse_request
        return original(self, request_data, export_dict)

    dispatch_request._ladon_tasks_soap_checked = True  # type: ignore[attr-defined]
    dispatch_request._ladon_tasks_patched = True  # type: ignore[attr-defined]
    Dispatcher.dispatch_request = dispatch_request


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

    def dispatch_request(self: Dispatcher, request_data: bytes, export_dict: dict) -> object:
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
    Dispatcher.dispatch_request = dispatch_request
    LadonWSGIApplication.__call__ = __call__
