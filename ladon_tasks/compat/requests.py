"""Mends of Ladon's request handling: what it cannot parse or convert gets a named client
fault in the interface's own format instead of an HTTP 500 with a traceback; DTDs are
refused; JSON-RPC ids and JSON-WSP mirrors are echoed as sent or refused; faults carry
no server file or line outside debug mode; JSON answers a charset cannot hold are
escaped."""

from __future__ import annotations

import json

from ladon_tasks import faults, principals

QUOTE_LIMIT = 80


def quote(value: object) -> str:
    """``repr`` shortened and ASCII-only, so a fault can always be encoded and stays short."""
    text = ascii(value)
    return text if len(text) <= QUOTE_LIMIT else text[: QUOTE_LIMIT - 3] + "..."


def _describe_type(declared: object) -> str:
    """``int`` -> ``an int``; ``[str]`` -> ``a list of str``: the words a fault uses."""
    if isinstance(declared, (list, tuple)) and declared:
        return f"a list of {_describe_type(declared[0]).split(' ', 1)[1]}"
    name = getattr(declared, "__name__", str(declared))
    return f"{'an' if name[:1] in 'aeiou' else 'a'} {name}"


def _install_request_guards() -> None:

    from ladon.exceptions.dispatcher import LadonDispatchException
    from ladon.exceptions.service import ServiceFault
    from ladon.exceptions.types import LadonTypeException
    from ladon.server.dispatcher import Dispatcher
    from ladon.tools.multiparthandler import AttachmentHandler

    if getattr(Dispatcher.dispatch_request, "_ladon_tasks_patched", False):
        return
    original_dispatch = Dispatcher.dispatch_request
    original_call_method = Dispatcher.call_method

    def read_request(dispatcher: Dispatcher, request_data: bytes) -> dict:
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
            raise faults.MalformedRequest(f"not a readable {iface_name} request: {quote(reason[0])[1:-1]}"
            ) from None
        if not isinstance(req_dict, dict):
            raise faults.MalformedRequest(f"a {iface_name} request must be an object")
        methodname = req_dict.get("methodname")
        if not isinstance(methodname, str) or not methodname:
            raise faults.MalformedRequest(f"the {iface_name} request names no method")
        if not dispatcher.sinst.method(methodname):
            raise faults.UnknownMethod(f"{dispatcher.sinst.servicename} has no method {quote(methodname)}"
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

    def dispatch_request(self: Dispatcher, request_data: bytes, export_dict: dict) -> object:
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
        caller_only = getattr(method, "_ladon_tasks_caller_only", False)
        if caller_only:  # a companion Ladon passes no keywords: who calls is the environ's (export_dict)
            principals.dispatching(export_dict)
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
        finally:
            if caller_only:
                principals.dispatching(None)

    dispatch_request._ladon_tasks_patched = True  # type: ignore[attr-defined]
    Dispatcher.dispatch_request = dispatch_request
    Dispatcher.call_method = call_method


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
            fault = faults.UnknownMethod(f"{sinfo.servicename} has no method {quote(method)}")
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


def refuse_document_type(*args: object) -> None:
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
            self.parser._parser.StartDoctypeDeclHandler = refuse_document_type
            self.parser._parser.EntityDeclHandler = refuse_document_type

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


#: Integer ids below this size are written back as sent in every charset.
_PLAIN_ID_BOUND = 2**63


def _echo_problem(value: object, encoding: str) -> str | None:
    """Why ``value`` (a JSON-RPC ``id``, a JSON-WSP ``mirror``) cannot be written back
    into an answer, or ``None``. Python reads ``NaN``, ``Infinity`` and ``1e400`` from a
    request, but writing them back would make the answer invalid JSON; text with lone
    surrogates, or characters the charset lacks, cannot be encoded at all."""
    if value is None or (type(value) is int and -_PLAIN_ID_BOUND < value < _PLAIN_ID_BOUND):
        return None  # what nearly every call sends: nothing to check
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

    from ladon_tasks import answers

    for handler in (JSONWSPResponseHandler, JSONRPCResponseHandler):
        original = handler.build_response
        if getattr(original, "_ladon_tasks_patched", False):
            continue

        def build_response(self, res_dict, sinfo, encoding, _build=original, _kind=handler.__name__):  # type: ignore[no-untyped-def]
            kept = answers.framed(lambda frame, charset: _build(self, frame, sinfo, charset), res_dict, encoding,
                                  _kind)
            if kept is not None:  # a finished task's answer, its JSON written once
                return kept
            try:
                return _build(self, dict(res_dict), sinfo, encoding)  # Ladon edits the dict's top level
            except UnicodeEncodeError:
                document = json.loads(_build(self, dict(res_dict), sinfo, "utf-8"))
                return json.dumps(document, ensure_ascii=True).encode(encoding)

        build_response._ladon_tasks_patched = True  # type: ignore[attr-defined]
        handler.build_response = build_response
