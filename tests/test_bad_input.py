"""Bad input gets a clear fault, never a traceback, and nothing is lost.

Hypothesis throws malformed requests at the task methods of the example services on a
real ``ladon-tasks serve``: broken JSON-WSP bodies, broken SOAP 1.1 envelopes (entity
tricks included), JSON-RPC garbage, odd task ids and odd ``seconds``; then the classes
of hostile input probed from the outside: charsets (byte transforms as well as real
ones), lone surrogates, non-finite numbers, ``Host`` names, SOAP envelopes and
operations of other namespaces, ``SOAPAction`` headers and ids that ``int(v, 16)``
would take. Every answer must be something a client can read - a ``jsonwsp/fault``, a
SOAP ``Fault``, a JSON-RPC ``error`` (in strict JSON), or a one-line 4xx for a request
that cannot be routed - and never an HTTP 500 or a Python traceback. Afterwards the
same server still runs a task end to end, and a task started before the barrage still
has its result.

The plain tests at the end pin each failure the property tests, or the probes, found.
"""

from __future__ import annotations

import codecs
import http.client
import json
import math
import re
import time
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass
from typing import Any, Iterator
from xml.sax.saxutils import escape

import pytest
import zeep
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from ladon.clients.jsonwsp import JSONWSPClient

import ladon_tasks  # noqa: F401  (mends Ladon's JSON-WSP client on Python 3)
from support.servers import SERVICES, RunningServer, start_server, wait_until

SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
TASK_ID_FAULTS = ("MalformedTaskId", "UnknownTask")
COMPANIONS = ("_progress", "_result", "_cancel", "_wait")
INTERFACES = ("jsonwsp", "soap11", "jsonrpc10")

#: Every task method of the example services, with its declared arguments in order.
#: ``str``/``int``/``[str]`` stand for the Ladon types the services declare.
TASK_METHODS: dict[tuple[str, str], tuple[tuple[str, Any], ...]] = {
    ("TaskService", "taskExample"): (("session_id", str), ("counter", int)),
    ("InstanceService", "cloneInstance"): (("instance_id", str), ("new_instance_name", str)),
    ("ReportService", "buildReport"): (("minutes", int),),
    ("ReportService", "importRecords"): (("records", [str]),),
}
VALID_VALUES = {str: "s", int: 1, (str,): ["a=1"]}

#: Hypothesis settings shared by the property tests: the whole module stays well under
#: a minute against one server.
FUZZ = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)


# -- talking to the server ---------------------------------------------------------------


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")


def exchange(
    server: RunningServer,
    path: str,
    body: bytes,
    content_type: str = "application/json",
    headers: dict[str, str] | None = None,
    timeout: float = 20.0,
    method: str = "POST",
) -> Reply:
    """One raw request (a POST unless told), headers under the caller's control
    (``Content-Length`` and ``Host`` included)."""
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=timeout)
    try:
        all_headers = {"Content-Type": content_type, "Content-Length": str(len(body)), **(headers or {})}
        connection.putrequest(method, path, skip_host="Host" in all_headers, skip_accept_encoding=True)
        for name, value in all_headers.items():
            connection.putheader(name, value)
        connection.endheaders()
        connection.send(body)
        response = connection.getresponse()
        return Reply(response.status, {k.lower(): v for k, v in response.getheaders()}, response.read())
    finally:
        connection.close()


def is_soap_fault(reply: Reply) -> bool:
    """SOAP 1.1 sends its faults with HTTP 500: that status is the protocol, not a crash."""
    return reply.status == 500 and reply.headers.get("content-type", "").startswith("text/xml") \
        and b"Fault>" in reply.body


def assert_no_traceback(reply: Reply) -> None:
    assert reply.status < 500 or is_soap_fault(reply), f"HTTP {reply.status}: {reply.text[:2000]}"
    assert "Traceback (most recent call last)" not in reply.text, reply.text[:2000]
    assert not re.search(r'File "/', reply.text), reply.text[:2000]


def readable_fault(reply: Reply, interface: str) -> str:
    """The fault string a client of ``interface`` reads; fails if there is none."""
    assert_no_traceback(reply)
    if reply.status != 200 and not is_soap_fault(reply):
        assert 400 <= reply.status < 500, reply.status
        assert reply.headers.get("content-type", "").startswith("text/plain"), reply.headers
        assert 0 < len(reply.text) < 400 and reply.text.count("\n") <= 1, reply.text
        return reply.text
    if interface == "soap11":
        root = ElementTree.fromstring(reply.body)
        fault = root.find(f"{{{SOAP_ENV}}}Body/{{{SOAP_ENV}}}Fault")
        assert fault is not None, reply.text[:2000]
        string = fault.findtext("faultstring")
        assert fault.findtext("faultcode") and string, reply.text[:2000]
        return string
    document = json.loads(reply.body)
    if interface == "jsonwsp":
        assert document.get("type") == "jsonwsp/fault", reply.text[:2000]
        fault = document["fault"]
    else:
        assert "id" in document and document.get("result") is None, reply.text[:2000]
        fault = document["error"]
    assert isinstance(fault, dict) and fault.get("code"), reply.text[:2000]
    assert isinstance(fault.get("string"), str) and fault["string"].strip(), reply.text[:2000]
    detail = "\n".join(fault.get("detail") or [])
    assert "Traceback" not in detail and 'File "' not in detail, detail
    return fault["string"]


def path(service: str, interface: str) -> str:
    return f"/{service}/{interface}"


def soap_envelope(
    service: str,
    operation: str,
    args: dict[str, str],
    namespace: str = SOAP_ENV,
    operation_namespace: str | None = None,
) -> bytes:
    """A SOAP 1.1 request as zeep would send it (Ladon's element names use ``-``; the
    operation is in the service's namespace, ``urn:<service>``, unless told otherwise)."""
    parts = "".join(
        f"<{name.replace('_', '-')}>{escape(value)}</{name.replace('_', '-')}>" for name, value in args.items()
    )
    op_namespace = f"urn:{service}" if operation_namespace is None else operation_namespace
    return (
        f'<?xml version="1.0" encoding="UTF-8"?><soap:Envelope xmlns:soap="{namespace}" '
        f'xmlns:ns="{escape(op_namespace, {chr(34): "&quot;"})}"><soap:Body><ns:{operation}>{parts}</ns:{operation}>'
        "</soap:Body></soap:Envelope>"
    ).encode("utf-8", "surrogatepass")


def call(server: RunningServer, interface: str, service: str, method: str, args: dict[str, Any]) -> Reply:
    """A well-formed call of ``method`` with ``args`` (which may hold bad values)."""
    if interface == "jsonwsp":
        body = json.dumps({"methodname": method, "args": args}).encode()
        return exchange(server, path(service, interface), body)
    if interface == "jsonrpc10":
        body = json.dumps({"method": method, "params": list(args.values()), "id": 7}).encode()
        return exchange(server, path(service, interface), body)
    return exchange(
        server, path(service, interface), soap_envelope(service, method, {k: str(v) for k, v in args.items()}),
        content_type="text/xml; charset=utf-8",
    )


def jsonwsp_result(server: RunningServer, service: str, method: str, **args: Any) -> Any:
    reply = exchange(server, path(service, "jsonwsp"), json.dumps({"methodname": method, "args": args}).encode())
    assert reply.status == 200, reply.text
    document = json.loads(reply.body)
    assert document["type"] == "jsonwsp/response", document
    return document["result"]


def run_import_task(server: RunningServer, records: list[str]) -> tuple[str, Any]:
    """Start ``importRecords``, poll until it has finished, return (task id, result)."""
    task_id = jsonwsp_result(server, "ReportService", "importRecords", records=records)["task_id"]

    def finished() -> bool:
        state = jsonwsp_result(server, "ReportService", "importRecords_progress", task_id=task_id)["state"]
        return state in ("succeeded", "failed", "cancelled")

    wait_until(finished, timeout=20, what="importRecords to finish")
    return task_id, jsonwsp_result(server, "ReportService", "importRecords_result", task_id=task_id)


# -- the server ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    services = [str(SERVICES / name) for name in ("task_service.py", "instance_service.py", "report_service.py")]
    running = start_server(services, tmp_path_factory.mktemp("bad-input"), "--thread-workers", "4")
    yield running
    running.stop()


@pytest.fixture(scope="module")
def finished_task(server: RunningServer) -> str:
    """An importRecords task that has succeeded: ``_wait`` on it answers at once."""
    task_id, result = run_import_task(server, ["a=1"])
    assert result == 1
    return task_id


@pytest.fixture(scope="module")
def task_before_barrage(server: RunningServer) -> str:
    """A clone started before the property tests; its result must survive them."""
    started = jsonwsp_result(
        server, "InstanceService", "cloneInstance", instance_id="vm-keep", new_instance_name="kept"
    )
    return started["task_id"]


# -- strategies ---------------------------------------------------------------------------

#: Any text, lone surrogates and other unicode oddities included.
ODD_TEXT = st.text(st.characters(blacklist_categories=()), max_size=60)
#: Text that survives inside an XML document (XML 1.0 forbids most control characters).
XML_TEXT = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00\ufffe\uffff").filter(
        lambda c: c in "\t\n\r" or ord(c) >= 0x20
    ),
    max_size=60,
)
JSON_JUNK = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | ODD_TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(ODD_TEXT, inner, max_size=4),
    max_leaves=12,
)
HUGE_TEXT = st.integers(min_value=100_000, max_value=1_500_000).map(lambda n: "x" * n)


def _is_int_literal(text: str) -> bool:
    try:
        int(text)
    except ValueError:
        return False
    return True


def _is_float_literal(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


#: Values Ladon must refuse for each declared type (a JSON number is a valid string).
WRONG_FOR = {
    int: st.one_of(
        ODD_TEXT.filter(lambda s: not _is_int_literal(s)),
        st.floats(allow_nan=False, allow_infinity=False).filter(lambda f: not f.is_integer()),
        st.lists(st.integers(), max_size=3),
        st.dictionaries(ODD_TEXT, JSON_JUNK, max_size=2),
        st.none(),
    ),
    str: st.one_of(
        st.lists(JSON_JUNK, min_size=1, max_size=3), st.dictionaries(ODD_TEXT, JSON_JUNK, max_size=3), st.none()
    ),
    (str,): st.one_of(
        st.lists(
            st.lists(JSON_JUNK, max_size=2) | st.dictionaries(ODD_TEXT, JSON_JUNK, max_size=2) | st.none(),
            min_size=1,
            max_size=3,
        ),
        st.dictionaries(ODD_TEXT, JSON_JUNK, min_size=1, max_size=2),
        st.none(),
    ),
}


def _kind(declared: Any) -> Any:
    return (str,) if isinstance(declared, list) else declared


@st.composite
def bad_start_args(draw: st.DrawFn, arguments: tuple[tuple[str, Any], ...]) -> dict[str, Any]:
    """Arguments for a start method with at least one argument missing or wrong-typed,
    maybe plus extra arguments and huge strings: never a request that starts a task."""
    args = {name: VALID_VALUES[_kind(declared)] for name, declared in arguments}
    broken = draw(st.lists(st.sampled_from([name for name, _ in arguments]), min_size=1, unique=True))
    declared_of = dict(arguments)
    for name in broken:
        if draw(st.booleans()):
            del args[name]
        else:
            args[name] = draw(WRONG_FOR[_kind(declared_of[name])])
    extras = draw(st.dictionaries(ODD_TEXT.filter(lambda s: s not in declared_of), JSON_JUNK | HUGE_TEXT, max_size=2))
    args.update(extras)
    return args


TASK_METHOD_KEYS = st.sampled_from(sorted(TASK_METHODS))


@st.composite
def jsonwsp_bodies(draw: st.DrawFn) -> tuple[str, bytes]:
    service, method = draw(TASK_METHOD_KEYS)
    shape = draw(st.sampled_from(["bytes", "junk", "no-method", "unknown-method", "bad-args-shape", "bad-args"]))
    if shape == "bytes":
        return service, draw(st.binary(max_size=200))
    if shape == "junk":
        return service, json.dumps(draw(JSON_JUNK.filter(lambda v: not isinstance(v, dict)))).encode()
    document: dict[str, Any] = {}
    if shape == "no-method":
        document["args"] = draw(JSON_JUNK)
        if draw(st.booleans()):
            document["methodname"] = draw(JSON_JUNK.filter(lambda v: not isinstance(v, str)))
    elif shape == "unknown-method":
        names = {m for _, m in TASK_METHODS} | {m + c for _, m in TASK_METHODS for c in COMPANIONS}
        document["methodname"] = draw(ODD_TEXT.filter(lambda s: s not in names))
        document["args"] = draw(JSON_JUNK)
    elif shape == "bad-args-shape":
        document["methodname"] = method
        document["args"] = draw(JSON_JUNK.filter(lambda v: not isinstance(v, dict)))
    else:
        document["methodname"] = method
        document["args"] = draw(bad_start_args(TASK_METHODS[(service, method)]))
    if draw(st.booleans()):
        document["mirror"] = draw(JSON_JUNK)
    document.update(draw(st.dictionaries(st.sampled_from(["type", "version", "extra"]), JSON_JUNK, max_size=2)))
    return service, json.dumps(document).encode()


XML_NAMES = st.from_regex(r"[A-Za-z_][A-Za-z0-9_.-]{0,20}", fullmatch=True)

BILLION_LAUGHS = (
    '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
    + "".join(
        f'<!ENTITY lol{n} "{("&lol" + (str(n - 1) if n > 1 else "") + ";") * 10}">' for n in range(1, 10)
    )
    + ']><soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body>'
    "<ns:{op}><task-id>&lol9;</task-id></ns:{op}></soap:Body></soap:Envelope>"
)
EXTERNAL_ENTITY = (
    '<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/hostname">]>'
    '<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body>'
    "<ns:{op}><task-id>&e;</task-id></ns:{op}></soap:Body></soap:Envelope>"
)


def _nested_xml(names: list[str], leaf: str) -> str:
    return "".join(f"<{n}>" for n in names) + escape(leaf) + "".join(f"</{n}>" for n in reversed(names))


def soap_text(value: Any) -> str:
    """What of ``value`` XML can carry, escaped; a wrong text value stays wrong."""
    kept = "".join(c for c in str(value) if c in "\t\n\r" or (0x20 <= ord(c) < 0xD800) or 0xE000 <= ord(c) < 0xFFFE)
    if isinstance(value, str) and value != VALID_VALUES[str] and _is_int_literal(kept.strip() or "x"):
        kept = "x" + kept  # stripped of what XML cannot hold, it must not become a number
    return escape(kept)


def soap_value(value: Any, draw: st.DrawFn) -> str:
    """Ladon's SOAP encoding of ``value``: arrays as ``item`` elements, objects as child
    elements; a nested array or object is always a child element, so never a string."""
    if isinstance(value, list):
        return "".join(
            f"<item>{soap_text(item) if not isinstance(item, (list, dict)) and item is not None else '<junk>x</junk>'}"
            "</item>"
            for item in value
        )
    if isinstance(value, dict):
        return _nested_xml(draw(st.lists(XML_NAMES, min_size=1, max_size=3)), draw(XML_TEXT))
    return soap_text(value)


@st.composite
def soap_bodies(draw: st.DrawFn) -> tuple[str, bytes]:
    service, method = draw(TASK_METHOD_KEYS)
    shape = draw(st.sampled_from(["bytes", "text", "no-body", "namespace", "unknown-op", "bad-values", "entities"]))
    if shape == "bytes":
        return service, draw(st.binary(max_size=200))
    if shape == "text":
        return service, draw(ODD_TEXT).encode("utf-8", "surrogatepass")
    if shape == "no-body":
        inner = _nested_xml(draw(st.lists(XML_NAMES, max_size=3)), draw(XML_TEXT))
        return service, f'<soap:Envelope xmlns:soap="{SOAP_ENV}">{inner}</soap:Envelope>'.encode()
    if shape == "entities":
        template = draw(st.sampled_from([BILLION_LAUGHS, EXTERNAL_ENTITY]))
        return service, template.format(op=f"{method}{draw(st.sampled_from(COMPANIONS))}").encode()
    args = {
        name.replace("_", "-"): value for name, value in draw(bad_start_args(TASK_METHODS[(service, method)])).items()
    }
    list_args = {
        name.replace("_", "-") for name, declared in TASK_METHODS[(service, method)] if isinstance(declared, list)
    }
    parts = []
    for name, value in args.items():
        tag = name if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.-]*", name or "") else "junk"
        if value is None and name in list_args:
            parts.append(f"<{tag}><junk>x</junk></{tag}>")  # nil is SOAP's empty array: valid
        elif value is None:
            parts.append(f'<{tag} xsi:nil="true" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"/>')
        else:
            parts.append(f"<{tag}>{soap_value(value, draw)}</{tag}>")
    if shape == "unknown-op":
        operation = draw(XML_NAMES.filter(lambda n: not n.startswith(method)))
    else:
        operation = method
    namespace = (
        SOAP_ENV
        if shape != "namespace"
        else draw(st.sampled_from(["urn:wrong", "http://www.w3.org/2003/05/soap-envelope", ""]))
    )
    op_namespace = f"urn:{service}" if shape != "namespace" else f"urn:{draw(XML_NAMES)}"
    envelope = (
        f'<soap:Envelope xmlns:soap="{namespace}" xmlns:ns="{op_namespace}"><soap:Body>'
        f"<ns:{operation}>{''.join(parts)}</ns:{operation}></soap:Body></soap:Envelope>"
    )
    return service, envelope.encode("utf-8", "surrogatepass")


@st.composite
def jsonrpc_bodies(draw: st.DrawFn) -> tuple[str, bytes]:
    service, method = draw(TASK_METHOD_KEYS)
    shape = draw(st.sampled_from(["bytes", "junk", "object"]))
    if shape == "bytes":
        return service, draw(st.binary(max_size=200))
    if shape == "junk":
        return service, json.dumps(draw(JSON_JUNK.filter(lambda v: not isinstance(v, dict)))).encode()
    document: dict[str, Any] = {}
    if draw(st.booleans()):
        document["id"] = draw(JSON_JUNK)
    choice = draw(st.sampled_from(["start", "companion-junk", "other"]))
    if choice == "start":
        document["method"] = method
        args = draw(bad_start_args(TASK_METHODS[(service, method)]))
        declared = [name for name, _ in TASK_METHODS[(service, method)]]
        if any(name not in args for name in declared):
            args = {name: args[name] for name in declared[: declared.index(next(n for n in declared if n not in args))]}
        document["params"] = list(args.values()) if draw(st.booleans()) else args
    elif choice == "companion-junk":
        document["method"] = method + draw(st.sampled_from(COMPANIONS))
        document["params"] = draw(
            JSON_JUNK.filter(lambda v: not isinstance(v, list)) | st.lists(JSON_JUNK, min_size=3, max_size=4)
        )
    else:
        if draw(st.booleans()):
            document["method"] = draw(JSON_JUNK)
        if draw(st.booleans()):
            document["params"] = draw(JSON_JUNK)
    return service, json.dumps(document).encode()


ODD_TASK_IDS = st.one_of(
    st.just(""),
    st.from_regex(r"[0-9A-F]{32}", fullmatch=True).filter(lambda s: s != s.lower()),
    st.from_regex(r"[0-9a-f]{1,31}|[0-9a-f]{33,64}", fullmatch=True),
    st.from_regex(r"[0-9a-f]{31}[g-zG-Z./ -]", fullmatch=True),
    st.integers().map(str),
    st.integers(min_value=1000, max_value=20_000).map(lambda n: "a" * n),
    XML_TEXT,
    st.from_regex(r"[0-9a-f]{32}", fullmatch=True),  # well formed, never handed out
)
ODD_SECONDS = st.one_of(
    st.floats(max_value=-1e-9),
    st.sampled_from(
        ["NaN", "nan", "-nan", "inf", "-inf", "Infinity", "1e999", "-1e999", "", " ", "ten", "0x10", "1,5"]
    ),
    st.integers(min_value=10**6, max_value=10**400).map(str),
    XML_TEXT,
)


# -- property tests ---------------------------------------------------------------------


def test_a_task_is_started_before_the_barrage(task_before_barrage: str) -> None:
    assert len(task_before_barrage) == 32


@FUZZ
@given(case=jsonwsp_bodies())
def test_malformed_jsonwsp_gets_a_fault(server: RunningServer, case: tuple[str, bytes]) -> None:
    service, body = case
    readable_fault(exchange(server, path(service, "jsonwsp"), body), "jsonwsp")


@FUZZ
@given(case=soap_bodies())
def test_malformed_soap_gets_a_fault(server: RunningServer, case: tuple[str, bytes]) -> None:
    service, body = case
    started = time.monotonic()
    reply = exchange(server, path(service, "soap11"), body, content_type="text/xml; charset=utf-8")
    readable_fault(reply, "soap11")
    assert time.monotonic() - started < 5, "an entity trick kept the server busy"
    assert b"lollol" not in reply.body


@FUZZ
@given(case=jsonrpc_bodies())
def test_jsonrpc_garbage_gets_an_error(server: RunningServer, case: tuple[str, bytes]) -> None:
    service, body = case
    readable_fault(exchange(server, path(service, "jsonrpc10"), body), "jsonrpc10")


@FUZZ
@given(
    target=TASK_METHOD_KEYS,
    companion=st.sampled_from(COMPANIONS),
    interface=st.sampled_from(INTERFACES),
    task_id=ODD_TASK_IDS,
)
def test_odd_task_ids_get_a_named_fault(
    server: RunningServer, target: tuple[str, str], companion: str, interface: str, task_id: str
) -> None:
    service, method = target
    args: dict[str, Any] = {"task_id": task_id}
    if companion == "_wait":
        args["seconds"] = "1"  # a good number: the id alone must be what the fault names
    fault = readable_fault(call(server, interface, service, method + companion, args), interface)
    assert fault.startswith(TASK_ID_FAULTS), fault
    if len(task_id) > 100:
        assert len(fault) < 300, "a fault must not echo a huge id back"


@FUZZ
@given(interface=st.sampled_from(INTERFACES), seconds=ODD_SECONDS)
def test_odd_seconds_to_wait_get_an_answer_or_a_named_fault(
    server: RunningServer, finished_task: str, interface: str, seconds: str
) -> None:
    reply = call(
        server, interface, "ReportService", "importRecords_wait", {"task_id": finished_task, "seconds": seconds}
    )
    assert_no_traceback(reply)
    number = float(seconds) if _is_float_literal(seconds) else None
    if number is not None and not math.isnan(number):
        assert reply.status == 200
        assert b"succeeded" in reply.body, reply.text  # a finished task answers at once
    else:
        assert readable_fault(reply, interface).startswith("InvalidArgument"), reply.text


# -- hostile input classes: charsets, lone surrogates, non-finite numbers, Host names,
#    SOAP namespaces, near-miss task ids -------------------------------------------------

#: Codecs Python knows that are no character set of a document: each must get 415.
NOT_TEXT_CHARSETS = (
    "rot13", "rot_13", "base64", "zlib", "hex", "bz2", "uu", "quopri", "idna", "undefined", "punycode",
    "unicode_escape", "raw_unicode_escape",
)
#: Real character sets: each must get an answer written in it.
TEXT_CHARSETS = ("utf-8", "latin-1", "ascii", "utf-16", "cp1252", "koi8-r", "shift_jis", "utf-7", "utf-8-sig", "cp037")
#: Text without lone surrogates (those cannot be sent in any charset).
PLAIN_TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=40)
NON_FINITE = st.sampled_from(["NaN", "Infinity", "-Infinity", "1e400", "-1e400"])
#: Names a rebinding attacker could use: anything but localhost.
HOST_NAMES = st.from_regex(r"[a-z][a-z0-9-]{0,20}(\.[a-z][a-z0-9-]{0,12}){0,3}", fullmatch=True).filter(
    lambda name: name != "localhost"
)
SOAP12_ENV = "http://www.w3.org/2003/05/soap-envelope"
OTHER_NAMESPACES = st.sampled_from(
    [SOAP12_ENV, "urn:wrong", SOAP_ENV.rstrip("/"), SOAP_ENV.upper(), "urn:TaskService"]
) | st.from_regex(r"(urn:|https?://)[A-Za-z0-9._/-]{1,30}", fullmatch=True)


def _loose_ids() -> st.SearchStrategy[str]:
    """32 characters that ``int(value, 16)`` takes but that are not 32 lowercase hex
    digits: surrounding space, a sign, ``0x``, ``_``, non-ASCII digits, a newline."""
    hex_digits = lambda n: st.from_regex(f"[0-9a-f]{{{n}}}", fullmatch=True)  # noqa: E731
    return st.one_of(
        hex_digits(31).map(lambda h: " " + h),
        hex_digits(31).map(lambda h: h + "\n"),
        hex_digits(30).map(lambda h: "\t" + h + " "),
        hex_digits(31).flatmap(lambda h: st.sampled_from(["+", "-"]).map(lambda sign: sign + h)),
        hex_digits(30).map(lambda h: "0x" + h),
        hex_digits(31).flatmap(lambda h: st.integers(1, 30).map(lambda i: h[:i] + "_" + h[i:])),
        hex_digits(31).flatmap(lambda h: st.sampled_from("\u0663\u0967\uff13\u09e9").map(lambda d: h + d)),
    ).filter(lambda v: len(v) == 32 and isinstance(int(v, 16), int))


def strict_json(body: bytes, charset: str = "utf-8") -> Any:
    """JSON as every parser reads it: ``NaN`` and ``Infinity`` are not JSON."""

    def refuse(name: str) -> None:
        raise AssertionError(f"{name} in an answer is not JSON: {body[:300]!r}")

    return json.loads(body.decode(charset), parse_constant=refuse)


def _charset_expectation(charset: str) -> str:
    """'refused', 'served' or 'either' (a random name that happens to be a codec)."""
    if charset in NOT_TEXT_CHARSETS:
        return "refused"
    if charset in TEXT_CHARSETS:
        return "served"
    try:
        info = codecs.lookup(charset)
    except LookupError:
        return "refused"
    if not info._is_text_encoding or info.name in {codecs.lookup(name).name for name in NOT_TEXT_CHARSETS}:
        return "refused"  # another spelling of a codec that is no character set ("uu_", "hex-")
    return "either"


@FUZZ
@given(
    charset=st.sampled_from(NOT_TEXT_CHARSETS + TEXT_CHARSETS)
    | st.from_regex(r"[a-z][-_.a-z0-9]{0,15}", fullmatch=True),
    header=st.sampled_from(["Content-Type", "Accept-Charset"]),
    interface=st.sampled_from(["jsonwsp", "jsonrpc10"]),
    text=PLAIN_TEXT,
)
@example(charset="uu_", header="Content-Type", interface="jsonwsp", text="a")  # once found: another spelling of uu
def test_any_charset_gets_an_answer_written_in_it_or_415(
    server: RunningServer, charset: str, header: str, interface: str, text: str
) -> None:
    records = [text + "=1"]  # a task that ends at once: the barrage must not fill the pool
    document: dict[str, Any] = (
        {"methodname": "importRecords", "args": {"records": records}} if interface == "jsonwsp"
        else {"method": "importRecords", "params": [records], "id": 1}
    )
    expected = _charset_expectation(charset)
    encoding = "utf-8" if expected == "refused" else charset
    try:
        body = json.dumps(document, ensure_ascii=False).encode(encoding)
    except UnicodeError:  # text the charset lacks: sent escaped, as a client would
        body = json.dumps(document).encode(encoding)
    headers = {"Accept-Charset": charset} if header == "Accept-Charset" else {}
    content_type = "application/json" + (f"; charset={charset}" if header == "Content-Type" else "")
    reply = exchange(server, path("ReportService", interface), body, content_type=content_type, headers=headers)
    assert_no_traceback(reply)
    if expected == "refused" or (expected == "either" and reply.status == 415):
        assert reply.status == 415, reply.text
        assert charset[:20] in reply.text and reply.text.count("\n") <= 1, reply.text
        return
    assert reply.status == 200, reply.text
    answer = strict_json(reply.body, charset)  # written in the request's charset
    assert answer.get("type") in ("jsonwsp/response", "jsonwsp/fault") or "result" in answer, answer


#: The str-typed arguments of the example task methods, with their position.
STRING_ARGUMENTS = [
    (service, method, position, name)
    for (service, method), arguments in TASK_METHODS.items()
    for position, (name, declared) in enumerate(arguments)
    if declared is str or isinstance(declared, list)
]


@FUZZ
@given(
    target=st.sampled_from(STRING_ARGUMENTS),
    surrogate=st.integers(0xD800, 0xDFFF).map(chr),
    around=st.tuples(PLAIN_TEXT, PLAIN_TEXT),
    interface=st.sampled_from(["jsonwsp", "jsonrpc10"]),
)
def test_a_lone_surrogate_in_any_string_argument_is_invalid_argument_naming_it(
    server: RunningServer, target: tuple[str, str, int, str], surrogate: str, around: tuple[str, str], interface: str
) -> None:
    service, method, position, name = target
    arguments = TASK_METHODS[(service, method)]
    args = {arg: VALID_VALUES[_kind(declared)] for arg, declared in arguments}
    bad = around[0] + surrogate + around[1]
    args[name] = [bad] if isinstance(arguments[position][1], list) else bad
    document = (
        {"methodname": method, "args": args} if interface == "jsonwsp"
        else {"method": method, "params": list(args.values()), "id": 3}
    )
    reply = exchange(server, path(service, interface), json.dumps(document).encode())  # \udXXX escapes
    fault = readable_fault(reply, interface)
    assert (
        fault == f"InvalidArgument: {method}: argument {name} holds text that is not valid Unicode (a lone surrogate)"
    )


@FUZZ
@given(
    where=st.sampled_from(["id", "mirror", "counter", "task_id", "seconds"]),
    literal=NON_FINITE,
)
def test_non_finite_numbers_anywhere_get_an_answer_that_is_json(
    server: RunningServer, finished_task: str, where: str, literal: str
) -> None:
    if where == "id":
        body, interface = (
            '{"method": "taskExample_progress", "params": ["%s"], "id": %s}' % (finished_task, literal),
            "jsonrpc10",
        )
    elif where == "mirror":
        body, interface = (
            '{"methodname": "importRecords_progress", "args": {"task_id": "%s"}, "mirror": [%s]}'
            % (finished_task, literal),
            "jsonwsp",
        )
    elif where == "seconds":
        body = '{"methodname": "importRecords_wait", "args": {"task_id": "%s", "seconds": %s}}' % (
            finished_task,
            literal,
        )
        interface = "jsonwsp"
    elif where == "task_id":
        body, interface = '{"methodname": "importRecords_progress", "args": {"task_id": %s}}' % literal, "jsonwsp"
    else:
        body, interface = (
            '{"methodname": "taskExample", "args": {"session_id": "s", "counter": %s}}' % literal,
            "jsonwsp",
        )
    service = "ReportService" if where in ("seconds", "task_id", "mirror") else "TaskService"
    reply = exchange(server, path(service, interface), body.encode())
    assert_no_traceback(reply)
    assert reply.status == 200, reply.text
    answer = strict_json(reply.body)
    if where == "id":
        assert answer["id"] is None and answer["error"]["string"].startswith("MalformedRequest: id "), answer
    elif where == "counter":
        assert answer["fault"]["string"] == "InvalidArgument: taskExample: argument counter must be an int", answer
    elif where == "task_id":
        assert answer["fault"]["string"].startswith("MalformedTaskId:"), answer


@FUZZ
@given(name=HOST_NAMES, port=st.none() | st.integers(1, 65535), target=st.sampled_from(
    ["/", "/TaskService/jsonwsp", "/TaskService/soap11/description", "/_tasks/", "/_tasks/api/tasks"]
))
def test_unknown_host_names_are_refused_everywhere(
    server: RunningServer, name: str, port: int | None, target: str
) -> None:
    host = name if port is None else f"{name}:{port}"
    reply = exchange(
        server, target, b"{}", headers={"Host": host}, method="POST" if target.endswith("jsonwsp") else "GET"
    )
    assert reply.status == 400, reply.text
    assert reply.headers["content-type"].startswith("text/plain") and reply.text.count("\n") == 1
    assert f"host name '{name}'" in reply.text and "--allowed-host" in reply.text


@FUZZ
@given(host=st.one_of(
    st.ip_addresses(v=4).map(str),
    st.ip_addresses(v=6).map(lambda address: f"[{address}]"),
    st.sampled_from(["localhost", "LOCALHOST", "localhost.", "Localhost"]),
), port=st.none() | st.integers(1, 65535))
def test_addresses_and_localhost_are_answered(server: RunningServer, host: str, port: int | None) -> None:
    reply = exchange(server, "/_tasks/api/tasks", b"", headers={"Host": host if port is None else f"{host}:{port}"},
                     method="GET")
    assert reply.status == 200, reply.text
    assert "tasks" in strict_json(reply.body)


@FUZZ
@given(namespace=OTHER_NAMESPACES.filter(lambda ns: ns != SOAP_ENV), counter=st.integers(0, 10))
def test_an_envelope_of_another_namespace_gets_version_mismatch(
    server: RunningServer, namespace: str, counter: int
) -> None:
    body = soap_envelope(
        "TaskService", "taskExample", {"session_id": "s", "counter": str(counter)}, namespace=escape(namespace)
    )
    reply = exchange(server, "/TaskService/soap11", body, content_type="text/xml; charset=utf-8")
    assert readable_fault(reply, "soap11").startswith("VersionMismatch:"), reply.text
    assert (
        ElementTree.fromstring(reply.body).findtext(f".//{{{SOAP_ENV}}}Fault/faultcode") == "SOAP-ENV:VersionMismatch"
    )


@FUZZ
@given(namespace=OTHER_NAMESPACES.filter(lambda ns: ns != "urn:TaskService"), counter=st.integers(0, 10))
def test_an_operation_of_another_namespace_is_refused(server: RunningServer, namespace: str, counter: int) -> None:
    body = soap_envelope(
        "TaskService", "taskExample", {"session_id": "s", "counter": str(counter)}, operation_namespace=namespace
    )
    reply = exchange(server, "/TaskService/soap11", body, content_type="text/xml; charset=utf-8")
    fault = readable_fault(reply, "soap11")
    assert fault.startswith("MalformedRequest: operation 'taskExample' is in namespace"), fault


@FUZZ
@given(
    named=st.sampled_from(["taskExample", "taskExample_cancel", "taskExample_result", "other"]),
    form=st.sampled_from(["url", "quoted-url", "urn", "bare"]),
)
def test_a_soap_action_must_name_the_operation_in_the_body(
    server: RunningServer, finished_task: str, named: str, form: str
) -> None:
    action = {
        "url": f"{server.url}/TaskService/soap11/{named}",
        "quoted-url": f'"{server.url}/TaskService/soap11/{named}"',
        "urn": f"urn:TaskService#{named}",
        "bare": named,
    }[form]
    body = soap_envelope("TaskService", "taskExample_progress", {"task_id": finished_task})
    reply = exchange(server, "/TaskService/soap11", body, content_type="text/xml", headers={"SOAPAction": action})
    fault = readable_fault(reply, "soap11")
    assert fault.startswith(
        f"MalformedRequest: the SOAPAction header names '{named}' but the body calls 'taskExample_progress'"
    )


@FUZZ
@given(task_id=_loose_ids(), interface=st.sampled_from(INTERFACES), companion=st.sampled_from(COMPANIONS))
def test_ids_that_int_would_read_as_hex_are_malformed(
    server: RunningServer, task_id: str, interface: str, companion: str
) -> None:
    args: dict[str, Any] = {"task_id": task_id}
    if companion == "_wait":
        args["seconds"] = "0"
    fault = readable_fault(call(server, interface, "ReportService", "importRecords" + companion, args), interface)
    assert fault.startswith("MalformedTaskId:"), fault


def test_the_server_still_serves_after_the_barrage(server: RunningServer, task_before_barrage: str) -> None:
    task_id, result = run_import_task(server, ["a=1", "b=2", "c=3"])
    assert result == 3
    waited = jsonwsp_result(server, "InstanceService", "cloneInstance_wait", task_id=task_before_barrage, seconds=20)
    assert waited["state"] == "succeeded"
    clone = jsonwsp_result(server, "InstanceService", "cloneInstance_result", task_id=task_before_barrage)
    assert clone["name"] == "kept" and clone["source_id"] == "vm-keep"
    assert "Ladon could not serve" not in server.log(), "Ladon failed on a request (see the server log)"


# -- regressions: one per failure the property tests found --------------------------------


@pytest.mark.parametrize("body", [b"not json", b"\xff\xfe", b"[" * 100_000])
def test_jsonwsp_body_that_is_not_json_gets_malformed_request(server: RunningServer, body: bytes) -> None:
    # Was: HTTP 400 "UnboundLocalError: ... 'req_dict'" (Ladon failed in its own handler).
    fault = readable_fault(exchange(server, "/TaskService/jsonwsp", body), "jsonwsp")
    assert fault.startswith("MalformedRequest:")


@pytest.mark.parametrize("body", [b"[1, 2]", b"null", b'"x"', b"3"])
def test_jsonwsp_body_that_is_not_an_object_gets_malformed_request(server: RunningServer, body: bytes) -> None:
    # Was: HTTP 400 "AttributeError: 'list' object has no attribute 'get'".
    fault = readable_fault(exchange(server, "/TaskService/jsonwsp", body), "jsonwsp")
    assert fault == "MalformedRequest: a jsonwsp request must be an object"


def test_jsonwsp_request_without_methodname_says_so(server: RunningServer) -> None:
    # Was: a fault whose whole string was "'methodname'".
    fault = readable_fault(exchange(server, "/TaskService/jsonwsp", b'{"args": {}}'), "jsonwsp")
    assert fault == "MalformedRequest: the jsonwsp request names no method"


def test_unknown_method_is_named(server: RunningServer) -> None:
    reply = exchange(server, "/TaskService/jsonwsp", b'{"methodname": "nope", "args": {}}')
    assert readable_fault(reply, "jsonwsp") == "UnknownMethod: TaskService has no method 'nope'"


def test_jsonwsp_args_that_are_not_an_object_get_malformed_request(server: RunningServer) -> None:
    # Was: a server fault from deep inside Ladon's argument loop.
    reply = exchange(server, "/TaskService/jsonwsp", b'{"methodname": "taskExample", "args": [1, 2]}')
    assert readable_fault(reply, "jsonwsp").startswith("MalformedRequest: args must be an object")


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ({"session_id": "s"}, "InvalidArgument: taskExample: argument counter is missing"),
        ({"session_id": "s", "counter": "abc"}, "InvalidArgument: taskExample: argument counter must be an int"),
        ({"session_id": ["s"], "counter": 1}, "InvalidArgument: taskExample: argument session_id must be a str"),
    ],
)
def test_wrong_or_missing_arguments_are_a_client_fault(server: RunningServer, args: dict, expected: str) -> None:
    # Was: code "server" and Ladon's converter message ("While handling attribute: None...").
    body = json.dumps({"methodname": "taskExample", "args": args}).encode()
    document = json.loads(exchange(server, "/TaskService/jsonwsp", body).body)
    assert document["fault"]["code"] == "client"
    assert document["fault"]["string"] == expected
    assert document["fault"]["detail"] == ["InvalidArgument"]


def test_lone_surrogate_in_mirror_still_gets_a_fault(server: RunningServer) -> None:
    # Was: Ladon failed encoding its own fault (the mirror is echoed back) -> HTTP 400.
    body = b'{"methodname": "taskExample", "args": {"counter": "x"}, "mirror": "\\ud800"}'
    assert readable_fault(exchange(server, "/TaskService/jsonwsp", body), "jsonwsp").startswith(
        ("InvalidArgument", "MalformedRequest")
    )


@pytest.mark.parametrize(
    ("body", "expected_id", "expected"),
    [
        (b"not json", None, "MalformedRequest:"),
        (b"[]", None, "MalformedRequest:"),
        (b'{"params": [], "id": 3}', 3, 'Request doesn\'t have "method"'),
        (b'{"method": "nope", "params": [], "id": 4}', 4, "UnknownMethod: TaskService has no method 'nope'"),
        (b'{"method": "taskExample", "params": ["s"], "id": 5}', 5, 'Request doesn\'t have "counter"'),
        (
            b'{"method": "taskExample", "params": ["s", "x"], "id": 6}',
            6,
            "InvalidArgument: taskExample: argument counter",
        ),
        (b'{"method": "taskExample", "params": ["s", 1], "id": "\\udc00"}', None, "MalformedRequest: id holds text"),
    ],
)
def test_jsonrpc_garbage_gets_an_error_object(
    server: RunningServer, body: bytes, expected_id: Any, expected: str
) -> None:
    # Was: every unparsable JSON-RPC request ended in HTTP 400 "UnboundLocalError";
    # Ladon's own RequestPropFault could not even be constructed (missing ``hint``);
    # method faults had no id, other answers echoed 5 as "5"; an id that cannot be
    # encoded failed the answer after the task had started.
    reply = exchange(server, "/TaskService/jsonrpc10", body)
    assert readable_fault(reply, "jsonrpc10").startswith(expected)
    assert json.loads(reply.body)["id"] == expected_id


@pytest.mark.parametrize(
    "body",
    [
        b"not xml",
        b"<a/>",
        f'<soap:Envelope xmlns:soap="{SOAP_ENV}"/>'.encode(),
        f'<soap:Envelope xmlns:soap="{SOAP_ENV}"><soap:Body/></soap:Envelope>'.encode(),
    ],
)
def test_soap_without_an_operation_gets_malformed_request(server: RunningServer, body: bytes) -> None:
    # Was: HTTP 400 "UnboundLocalError" for non-XML, a fault string "'methodname'" otherwise.
    reply = exchange(server, "/TaskService/soap11", body, content_type="text/xml")
    assert readable_fault(reply, "soap11").startswith("MalformedRequest:")


def test_billion_laughs_is_refused_at_once(server: RunningServer) -> None:
    # Was: the request never answered (20 s timeout) while a server thread spun at full CPU.
    started = time.monotonic()
    reply = exchange(server, "/TaskService/soap11", BILLION_LAUGHS.format(op="taskExample_progress").encode(),
                     content_type="text/xml", timeout=10)
    assert time.monotonic() - started < 2
    fault = readable_fault(reply, "soap11")
    assert fault.startswith("MalformedRequest:") and "document type declaration" in fault


def test_external_entities_are_never_read(server: RunningServer) -> None:
    reply = exchange(server, "/TaskService/soap11", EXTERNAL_ENTITY.format(op="taskExample_progress").encode(),
                     content_type="text/xml")
    fault = readable_fault(reply, "soap11")
    assert "document type declaration" in fault


def test_soap_wrong_typed_value_is_a_client_fault_zeep_can_read(server: RunningServer) -> None:
    reply = call(server, "soap11", "TaskService", "taskExample", {"session_id": "s", "counter": "many"})
    assert readable_fault(reply, "soap11") == "InvalidArgument: taskExample: argument counter must be an int"
    client = zeep.Client(f"{server.url}/TaskService/soap11/description")
    with pytest.raises(zeep.exceptions.Fault) as caught:
        client.service.taskExample_progress(**{"task-id": "NOT A TASK"})
    assert caught.value.message.startswith("MalformedTaskId:")


def test_ladon_jsonwsp_client_reads_an_invalid_argument_fault(server: RunningServer) -> None:
    client = JSONWSPClient(f"{server.url}/TaskService/jsonwsp/description")
    response = client.taskExample(session_id="s", counter="many").response_dict
    assert response["type"] == "jsonwsp/fault"
    assert response["fault"]["string"] == "InvalidArgument: taskExample: argument counter must be an int"


def test_oversized_request_gets_413_without_being_read(server: RunningServer) -> None:
    # Ladon reads a whole body into memory; a declared 1 GB body is refused from its headers.
    reply = exchange(server, "/TaskService/jsonwsp", b"{}", headers={"Content-Length": str(10**9)})
    assert reply.status == 413
    assert_no_traceback(reply)
    assert str(4 * 1024 * 1024) in reply.text  # the limit, named


def test_non_numeric_content_length_gets_400(server: RunningServer) -> None:
    reply = exchange(server, "/TaskService/jsonwsp", b"{}", headers={"Content-Length": "\xb2"})
    assert reply.status == 400 and "Content-Length" in reply.text
    assert_no_traceback(reply)


def test_unknown_charset_gets_415(server: RunningServer) -> None:
    # Was: Ladon could not encode even its fault in the named charset -> HTTP 400 LookupError.
    reply = exchange(server, "/TaskService/jsonwsp", b"{}", content_type="application/json; charset=no-such-codec")
    assert reply.status == 415 and "no-such-codec" in reply.text


def test_oversized_arguments_under_the_request_limit_get_invalid_argument(server: RunningServer) -> None:
    body = json.dumps({"methodname": "taskExample", "args": {"session_id": "x" * 1_100_000, "counter": 1}}).encode()
    fault = readable_fault(exchange(server, "/TaskService/jsonwsp", body), "jsonwsp")
    assert fault.startswith("InvalidArgument: taskExample: arguments take")


def test_extra_arguments_are_ignored_as_ladon_does(server: RunningServer) -> None:
    task_id = jsonwsp_result(server, "ReportService", "importRecords", records=["k=v"], unexpected="ignored")["task_id"]
    waited = jsonwsp_result(server, "ReportService", "importRecords_wait", task_id=task_id, seconds=10)
    assert waited["state"] == "succeeded"


@pytest.mark.parametrize("records", ["a=1", {"a=1": 1}, None])
def test_a_list_argument_must_be_a_list(server: RunningServer, records: Any) -> None:
    # Was: Ladon iterated a string's characters or an object's keys and started the task;
    # null was a server fault ("'NoneType' object is not iterable").
    body = json.dumps({"methodname": "importRecords", "args": {"records": records}}).encode()
    fault = readable_fault(exchange(server, "/ReportService/jsonwsp", body), "jsonwsp")
    assert fault == "InvalidArgument: importRecords: argument records must be a list of str"


def test_an_empty_soap_array_is_an_empty_list(server: RunningServer) -> None:
    body = soap_envelope("ReportService", "importRecords", {}).replace(
        b"<ns:importRecords>", b'<ns:importRecords><records xsi:nil="true" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"/>'
    )
    reply = exchange(server, "/ReportService/soap11", body, content_type="text/xml")
    assert reply.status == 200 and b"<task-id>" in reply.body, reply.text


# -- regressions: hostile input found probing from the outside ------------------------------


@pytest.mark.parametrize("charset", ["rot13", "base64", "zlib", "hex", "idna", "undefined"])
@pytest.mark.parametrize("header", ["Content-Type", "Accept-Charset"])
def test_charsets_that_are_not_text_encodings_get_415(server: RunningServer, charset: str, header: str) -> None:
    # Was: HTTP 500 - Ladon failed encoding even its fault in the named codec.
    headers = {"Accept-Charset": charset} if header == "Accept-Charset" else {}
    content_type = "application/json" + (f"; charset={charset}" if header == "Content-Type" else "")
    body = b'{"methodname": "importRecords", "args": {"records": ["a=1"]}}'
    reply = exchange(server, "/ReportService/jsonwsp", body, content_type=content_type, headers=headers)
    assert reply.status == 415, reply.text
    assert reply.text == f"Unsupported Media Type: charset '{charset}' is not a text encoding\n"


@pytest.mark.parametrize("interface", ["jsonwsp", "jsonrpc10"])
def test_a_lone_surrogate_is_invalid_argument_naming_its_argument(server: RunningServer, interface: str) -> None:
    # Was: a server fault "'utf-8' codec can't encode ..." whose hint named another argument.
    if interface == "jsonwsp":
        body = b'{"methodname": "cloneInstance", "args": {"instance_id": "vm", "new_instance_name": "a\\udc80b"}}'
    else:
        body = b'{"method": "cloneInstance", "params": ["vm", "a\\ud800"], "id": 9}'
    fault = readable_fault(exchange(server, f"/InstanceService/{interface}", body), interface)
    assert fault == ("InvalidArgument: cloneInstance: argument new_instance_name holds text that is not valid"
                     " Unicode (a lone surrogate)")


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e400"])
def test_a_jsonrpc_id_json_cannot_carry_gets_an_error_with_a_null_id(
    server: RunningServer, finished_task: str, literal: str
) -> None:
    # Was: the id echoed back as NaN or Infinity, which makes the whole answer invalid JSON.
    body = f'{{"method": "importRecords_progress", "params": ["{finished_task}"], "id": {literal}}}'.encode()
    reply = exchange(server, "/ReportService/jsonrpc10", body)
    answer = strict_json(reply.body)
    assert answer["id"] is None and answer["result"] is None
    assert (
        answer["error"]["string"]
        == "MalformedRequest: id holds a number JSON cannot carry (NaN, Infinity or out of range)"
    )


@pytest.mark.parametrize("task_id", [
    " " + "a" * 31, "a" * 31 + "\n", "+" + "a" * 31, "-" + "a" * 31, "0x" + "a" * 30,
    "a" * 15 + "_" + "a" * 16, "a" * 31 + "\u0663", "a" * 31 + "\uff13",
])
@pytest.mark.parametrize("interface", ["jsonwsp", "jsonrpc10"])
def test_ids_int_would_take_as_hex_are_malformed_not_unknown(
    server: RunningServer, task_id: str, interface: str
) -> None:
    # Was: int(v, 16) let these through to the store, so they were "UnknownTask".
    int(task_id, 16)  # no ValueError: the loose check took it
    assert len(task_id) == 32
    fault = readable_fault(
        call(server, interface, "ReportService", "importRecords_progress", {"task_id": task_id}), interface
    )
    assert fault.startswith("MalformedTaskId:")


def _soap_fault(reply: Reply) -> tuple[str, str]:
    fault = ElementTree.fromstring(reply.body).find(f"{{{SOAP_ENV}}}Body/{{{SOAP_ENV}}}Fault")
    assert fault is not None, reply.text
    return fault.findtext("faultcode") or "", fault.findtext("faultstring") or ""


@pytest.mark.parametrize("namespace", [SOAP12_ENV, "urn:wrong"])
def test_an_envelope_that_is_not_soap_1_1_gets_version_mismatch_and_starts_nothing(
    server: RunningServer, namespace: str
) -> None:
    # Was: executed anyway - a task started from a SOAP 1.2 envelope.
    body = soap_envelope("ReportService", "importRecords", {"records": "a=1"}, namespace=namespace)
    code, string = _soap_fault(exchange(server, "/ReportService/soap11", body, content_type="text/xml"))
    assert code == "SOAP-ENV:VersionMismatch"
    assert string == (f"VersionMismatch: the envelope is in namespace '{namespace}'; "
                      f"this service speaks SOAP 1.1 ({SOAP_ENV})")


def test_an_operation_in_a_foreign_namespace_is_refused(server: RunningServer) -> None:
    # Was: executed anyway, whatever the operation element's namespace.
    body = soap_envelope("ReportService", "importRecords", {"records": "a=1"}, operation_namespace="urn:TaskService")
    code, string = _soap_fault(exchange(server, "/ReportService/soap11", body, content_type="text/xml"))
    assert code == "SOAP-ENV:Client"
    assert string == ("MalformedRequest: operation 'importRecords' is in namespace 'urn:TaskService'; "
                      "the operations of ReportService are in 'urn:ReportService'")


def test_a_soap_action_naming_another_operation_is_refused(server: RunningServer, finished_task: str) -> None:
    # Was: ignored, so a gateway allowing only _progress by SOAPAction let a _cancel through.
    body = soap_envelope("ReportService", "importRecords_cancel", {"task_id": finished_task})
    action = f'"{server.url}/ReportService/soap11/importRecords_progress"'
    code, string = _soap_fault(exchange(server, "/ReportService/soap11", body, content_type="text/xml",
                                        headers={"SOAPAction": action}))
    assert code == "SOAP-ENV:Client"
    assert string == ("MalformedRequest: the SOAPAction header names 'importRecords_progress' "
                      "but the body calls 'importRecords_cancel'")


@pytest.mark.parametrize(
    "action",
    [
        '""',
        "",
        "{url}/ReportService/soap11/importRecords_progress",
        '"{url}/ReportService/soap11/importRecords_progress"',
        "urn:ReportService#importRecords_progress",
    ],
)
def test_a_soap_action_that_names_the_operation_or_nothing_is_served(
    server: RunningServer, finished_task: str, action: str
) -> None:
    body = soap_envelope("ReportService", "importRecords_progress", {"task_id": finished_task})
    reply = exchange(server, "/ReportService/soap11", body, content_type="text/xml",
                     headers={"SOAPAction": action.format(url=server.url)})
    assert reply.status == 200 and b"<state>succeeded</state>" in reply.body, reply.text


@pytest.mark.parametrize("interface", ["jsonwsp", "jsonrpc10"])
def test_faults_name_no_server_file_or_line(server: RunningServer, interface: str) -> None:
    # Was: "filename": "runtime", "lineno": 195 in every fault.
    reply = call(server, interface, "ReportService", "importRecords_progress", {"task_id": "0" * 32})
    document = strict_json(reply.body)
    fault = document["fault"] if interface == "jsonwsp" else document["error"]
    assert fault["string"].startswith("UnknownTask:")
    assert "filename" not in fault and "lineno" not in fault, fault


@pytest.mark.parametrize("charset", ["ascii", "latin-1", "koi8-r"])
@pytest.mark.parametrize("interface", ["jsonwsp", "jsonrpc10"])
def test_an_answer_the_charset_cannot_hold_is_written_with_escapes(
    server: RunningServer, charset: str, interface: str
) -> None:
    # Was: a one-line 400 "UnicodeEncodeError" instead of the result.
    name = "café ☕ кофе"
    task_id = jsonwsp_result(server, "InstanceService", "cloneInstance", instance_id="vm", new_instance_name=name)[
        "task_id"
    ]
    document = (
        {"methodname": "cloneInstance_wait_result", "args": {"task_id": task_id, "seconds": 20}}
        if interface == "jsonwsp"
        else {"method": "cloneInstance_wait_result", "params": [task_id, 20], "id": 2}
    )
    reply = exchange(server, f"/InstanceService/{interface}", json.dumps(document).encode(charset),
                     content_type=f"application/json; charset={charset}")
    assert reply.status == 200, reply.text
    assert reply.headers["content-type"].endswith(f"charset={charset}")
    assert strict_json(reply.body, charset)["result"]["name"] == name
