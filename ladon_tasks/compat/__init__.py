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
* Ladon's sources compile with ``SyntaxWarning`` lines on 3.12+ (invalid escapes);
  :mod:`.syntax` silences them for Ladon's files alone.
* SOAP faults came back with HTTP 200 and a faultcode ``client``/``server`` in no
  namespace. SOAP 1.1 wants HTTP 500 and ``SOAP-ENV:Client``/``SOAP-ENV:Server``;
  both SOAP interfaces now answer so.

Every fault keeps the shape the real clients read (zeep's ``Fault``, Ladon's
``jsonwsp/fault``, a JSON-RPC ``error``); nothing else on the wire changes.
"""

from __future__ import annotations

from ladon_tasks.compat.syntax import quiet_ladon_syntax_warnings

quiet_ladon_syntax_warnings()  # before anything compiles a file of Ladon's

from ladon_tasks.compat import python, requests, soap  # noqa: E402
from ladon_tasks.compat.soap import SOAP_FAULT_KEY  # noqa: E402

__all__ = ["SOAP_FAULT_KEY", "install"]


def install() -> None:
    """Apply every mend; safe to call more than once."""
    python._install_getargspec()
    python._install_imp_stand_in()
    python._install_fault_detail_default()
    python._install_ladontype_attribute_filter()
    python._install_jsonwsp_client_methods()
    requests._install_request_guards()
    requests._install_jsonrpc_request_checks()
    requests._install_soap_parser_guard()
    requests._install_fault_location_filter()
    requests._install_json_answer_escapes()
    soap._install_soap_conformance_checks()
    soap._install_soap_document_literal()
    soap._drop_xmlrpc_interface()
    soap._install_soap_fault_codes()
    soap._install_soap_fault_http_status()  # after the request guards: it wraps that dispatch


install()
