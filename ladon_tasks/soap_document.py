"""SOAP 1.1 document/literal for Ladon's ``soap`` and ``soapdocumentliteral`` interfaces.

Document/literal is the SOAP style Java (JAX-WS) and .NET generate clients from; Ladon's
``soap11`` interface is RPC/encoded only. Ladon 1.0.7 has a document/literal interface,
but its WSDL and its answers do not agree: a method returning a LadonType is described
with one field and answered with all of them, loose in the response element, in
dictionary order, and the types live in a namespace that no prefix points to. Every
client fails on it (zeep: "Unexpected element"), for task methods and plain ones alike.

This module is that interface redone in the WS-I "wrapped" convention:

* one schema, target namespace ``urn:<Service>``, elements qualified;
* a complex type per LadonType, its fields in declaration order, ``_`` written ``-``
  in names as in all of Ladon's SOAP (``task_id`` is ``task-id``);
* ``ArrayOf<T>``: a sequence of ``item`` elements;
* per method ``m``: an element ``m`` with the arguments and an element ``mResponse``
  holding one ``result`` of the declared return type;
* ``int`` is ``xsd:long``, ``float`` is ``xsd:double`` (Ladon says ``xsd:decimal``,
  which clients turn into decimals), ``bool`` is ``xsd:boolean``, text ``xsd:string``.

Requests are read by Ladon's SOAP 1.1 parser (with the guards of
:mod:`ladon_tasks.compat`), which reads wrapped document/literal requests as they
are; faults are the SOAP 1.1 faults of that interface. :func:`install` puts the
interface in Ladon's catalogue under both names.
"""

from __future__ import annotations

import xml.dom.minidom as minidom
from typing import Any

from ladon.compat import PORTABLE_STRING, pytype_support
from ladon.interfaces.base import BaseInterface, BaseResponseHandler, ServiceDescriptor

SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
WSDL = "http://schemas.xmlsoap.org/wsdl/"
WSDL_SOAP = "http://schemas.xmlsoap.org/wsdl/soap/"
XSD = "http://www.w3.org/2001/XMLSchema"
XSI = "http://www.w3.org/2001/XMLSchema-instance"

#: Python types and the XML Schema types a client sees for them.
XSD_TYPES: dict[Any, str] = {int: "long", float: "double", bool: "boolean", PORTABLE_STRING: "string", bytes: "string"}


def namespace(servicename: str) -> str:
    return f"urn:{servicename}"


def xml_name(name: str) -> str:
    """Ladon's SOAP spelling of a name: ``task_id`` -> ``task-id``."""
    return name.replace("_", "-")


def _type_name(typ: Any, type_dict: dict[Any, Any]) -> str:
    """The qualified schema type of a Ladon type (``tns:`` for ours, ``xsd:`` for primitives)."""
    if isinstance(typ, (list, tuple)):
        return f"tns:ArrayOf{_bare_name(typ[0], type_dict)}"
    if typ in type_dict:
        return f"tns:{typ.__name__}"
    return f"xsd:{XSD_TYPES.get(typ, 'string')}"


def _bare_name(typ: Any, type_dict: dict[Any, Any]) -> str:
    return typ.__name__ if typ in type_dict else XSD_TYPES.get(typ, "string")


class DocumentLiteralDescriptor(ServiceDescriptor):
    """The WSDL (see the module docstring for its shape)."""

    _content_type = "text/xml"

    def generate(self, servicename, servicenumber, typemanager, methodlist, service_url, encoding, **kw):  # type: ignore[no-untyped-def]
        type_dict = typemanager.type_dict
        doc = minidom.Document()
        definitions = _element(doc, doc, "definitions", {
            "xmlns": WSDL, "xmlns:soap": WSDL_SOAP, "xmlns:xsd": XSD, "xmlns:tns": namespace(servicename),
            "name": servicename, "targetNamespace": namespace(servicename),
        })
        types = _element(doc, definitions, "types")
        schema = _element(doc, types, "xsd:schema", {
            "targetNamespace": namespace(servicename), "elementFormDefault": "qualified",
        })
        arrays: dict[str, Any] = {}
        for typ in typemanager.type_order:
            if isinstance(typ, list):
                arrays[_bare_name(typ[0], type_dict)] = typ[0]
                continue
            complex_type = _element(doc, schema, "xsd:complexType", {"name": typ["name"]})
            sequence = _element(doc, complex_type, "xsd:sequence")
            for name, field_type, props in typ["attributes"]:
                attrs = {"name": xml_name(name), "type": _type_name(field_type, type_dict)}
                if props.get("nullable"):
                    attrs.update(minOccurs="0", nillable="true")
                _element(doc, sequence, "xsd:element", attrs)
        for method in methodlist:  # arrays used only by arguments or results are in no type_order
            for typ in [arg["type"] for arg in method.args()] + [method._rtype]:
                if isinstance(typ, (list, tuple)):
                    arrays[_bare_name(typ[0], type_dict)] = typ[0]
        for name, inner in sorted(arrays.items()):
            complex_type = _element(doc, schema, "xsd:complexType", {"name": f"ArrayOf{name}"})
            sequence = _element(doc, complex_type, "xsd:sequence")
            _element(doc, sequence, "xsd:element", {
                "name": "item", "type": _type_name(inner, type_dict), "minOccurs": "0", "maxOccurs": "unbounded",
            })
        for method in methodlist:
            request = _element(doc, schema, "xsd:element", {"name": method.name()})
            sequence = _element(doc, _element(doc, request, "xsd:complexType"), "xsd:sequence")
            for arg in method.args():
                attrs = {"name": xml_name(arg["name"]), "type": _type_name(arg["type"], type_dict)}
                if arg.get("optional"):
                    attrs["minOccurs"] = "0"
                _element(doc, sequence, "xsd:element", attrs)
            response = _element(doc, schema, "xsd:element", {"name": f"{method.name()}Response"})
            sequence = _element(doc, _element(doc, response, "xsd:complexType"), "xsd:sequence")
            _element(doc, sequence, "xsd:element", {"name": "result", "type": _type_name(method._rtype, type_dict)})
        for method in methodlist:
            for message, element in ((method.name(), method.name()), (f"{method.name()}Response",) * 2):
                node = _element(doc, definitions, "message", {"name": message})
                _element(doc, node, "part", {"name": "parameters", "element": f"tns:{element}"})
        port_type = _element(doc, definitions, "portType", {"name": f"{servicename}PortType"})
        for method in methodlist:
            operation = _element(doc, port_type, "operation", {"name": method.name()})
            if method.__doc__:
                _element(doc, operation, "documentation").appendChild(doc.createTextNode(method.__doc__))
            _element(doc, operation, "input", {"message": f"tns:{method.name()}"})
            _element(doc, operation, "output", {"message": f"tns:{method.name()}Response"})
        binding = _element(doc, definitions, "binding", {"name": servicename, "type": f"tns:{servicename}PortType"})
        _element(doc, binding, "soap:binding", {"style": "document", "transport": "http://schemas.xmlsoap.org/soap/http"})
        for method in methodlist:
            operation = _element(doc, binding, "operation", {"name": method.name()})
            _element(
                doc, operation, "soap:operation", {"soapAction": f"{service_url}/{method.name()}", "style": "document"}
            )
            for direction in ("input", "output"):
                _element(doc, _element(doc, operation, direction), "soap:body", {"use": "literal"})
        service = _element(doc, definitions, "service", {"name": servicename})
        port = _element(doc, service, "port", {"name": servicename, "binding": f"tns:{servicename}"})
        _element(doc, port, "soap:address", {"location": service_url})
        return doc.toxml()


class DocumentLiteralResponseHandler(BaseResponseHandler):
    """``<mResponse><result>...</result></mResponse>``, fields in the WSDL's order."""

    _content_type = "text/xml"
    _stringify_res_dict = True

    def build_response(self, res_dict, sinfo, encoding):  # type: ignore[no-untyped-def]
        doc = minidom.Document()
        envelope = _element(doc, doc, "SOAP-ENV:Envelope", {"xmlns:SOAP-ENV": SOAP_ENV, "xmlns:xsi": XSI})
        body = _element(doc, envelope, "SOAP-ENV:Body")
        response = _element(doc, body, f"{res_dict['method']}Response", {"xmlns": namespace(res_dict["servicename"])})
        method = sinfo.method(res_dict["method"])
        result = _element(doc, response, "result")
        _write_value(doc, result, res_dict.get("result"), method._rtype, sinfo.typemanager.type_dict)
        return doc.toxml(encoding=encoding)


def _write_value(
    doc: minidom.Document, parent: minidom.Element, value: Any, typ: Any, type_dict: dict[Any, Any]
) -> None:
    if value is None:
        parent.setAttribute("xsi:nil", "true")
    elif isinstance(typ, (list, tuple)):
        for item in value:
            _write_value(doc, _element(doc, parent, "item"), item, typ[0], type_dict)
    elif typ in type_dict:
        for name, field_type, _props in type_dict[typ]["attributes"]:
            _write_value(doc, _element(doc, parent, xml_name(name)), value.get(name), field_type, type_dict)
    else:
        parent.appendChild(doc.createTextNode(str(value)))


def _element(doc: minidom.Document, parent: Any, tag: str, attrs: dict[str, str] | None = None) -> minidom.Element:
    node = doc.createElement(tag)
    for name, value in (attrs or {}).items():
        node.setAttribute(name, value)
    parent.appendChild(node)
    return node


class DocumentLiteralInterface(BaseInterface):
    """Ladon's ``soap``/``soapdocumentliteral`` interface, redone (module docstring)."""

    def __init__(self, sinfo, **kw):  # type: ignore[no-untyped-def]
        from ladon.interfaces.soap11 import SOAP11FaultHandler, SOAP11RequestHandler

        settings = {
            "service_descriptor": DocumentLiteralDescriptor,
            "request_handler": SOAP11RequestHandler,
            "response_handler": DocumentLiteralResponseHandler,
            "fault_handler": SOAP11FaultHandler,
        }
        settings.update(kw)
        BaseInterface.__init__(self, sinfo, **settings)

    @staticmethod
    def _interface_name() -> list[str]:
        return ["soapdocumentliteral", "soap"]

    @staticmethod
    def _accept_basetype(typ: Any) -> bool:
        return pytype_support.count(typ) > 0

    @staticmethod
    def _accept_list() -> bool:
        return True

    @staticmethod
    def _accept_dict() -> bool:
        return False


def install() -> None:
    """Serve this interface under both of the names Ladon gave its own."""
    from ladon import interfaces

    for name in DocumentLiteralInterface._interface_name():
        interfaces._interfaces[name] = DocumentLiteralInterface
