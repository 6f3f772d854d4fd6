"""Every interface in Ladon's catalogue, with independent real clients: zeep and suds
(Python), PHP's SoapClient, and JSON. Task methods and their companions work over
SOAP RPC/encoded (``soap11``) and document/literal (``soap``, ``soapdocumentliteral``);
SOAP faults are HTTP 500 with ``SOAP-ENV:Client``/``SOAP-ENV:Server``; ``xmlrpc`` is
gone from the catalogue; and the README's table of what each client sees is what
they see."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from decimal import Decimal

import pytest
import requests
import zeep
from suds.client import Client as SudsClient

from support.jsonwsp import JsonWsp
from support.servers import FIXTURE_SERVICES, ROOT, start_server

pytestmark = pytest.mark.smoke  # the SOAP mends, on every supported interpreter

PHP_CLIENT = ROOT / "tests" / "clients" / "soap_client.php"
DOCUMENT_LITERAL = ("soap", "soapdocumentliteral")


@pytest.fixture(scope="module")
def iface_server(output_dir):
    running = start_server(
        [str(FIXTURE_SERVICES / "probe_service.py"), str(FIXTURE_SERVICES / "interface_service.py")], output_dir
    )
    yield running
    running.stop()


def wsdl(server, service: str, interface: str) -> str:
    return f"{server.url}/{service}/{interface}/description"


def php() -> str:
    binary = shutil.which("php")
    if binary is None:
        message = "php is not installed (apt-get install php-cli php-soap)"
        if os.environ.get("CI"):
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    return binary


def run_php(server, interface: str, text: str) -> dict:
    style = "rpc" if interface == "soap11" else "document"
    out = subprocess.run([php(), str(PHP_CLIENT), wsdl(server, "ProbeService", interface), style, text],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    return json.loads(out.stdout)


# -- document/literal: every companion, with zeep and PHP --------------------------------------


@pytest.mark.parametrize("interface", DOCUMENT_LITERAL)
def test_zeep_runs_a_task_and_every_companion_over_document_literal(iface_server, interface):
    client = zeep.Client(wsdl(iface_server, "ProbeService", interface))
    binding = client.service._binding
    assert "document" in {op.style for op in binding._operations.values()}
    started = client.service.echo(text="doc/lit")
    task_id = started["task-id"]
    assert len(task_id) == 32 and started["state"] in ("queued", "running", "succeeded")
    waited = client.service.echo_wait(**{"task-id": task_id, "seconds": 20})
    assert waited["state"] == "succeeded" and waited["finished"] is True
    assert isinstance(waited["progress"], float) and isinstance(waited["submitted"], float)
    assert client.service.echo_progress(**{"task-id": task_id})["progress"] == 1.0
    assert client.service.echo_result(**{"task-id": task_id}) == "doc/lit"
    assert client.service.echo_wait_result(**{"task-id": task_id, "seconds": 5}) == "doc/lit"
    assert client.service.echo_cancel(**{"task-id": task_id})["state"] == "succeeded"  # too late to cancel

    gate = client.service.gated(gate=os.devnull + ".never")
    assert client.service.gated_cancel(**{"task-id": gate["task-id"]})["state"] == "cancelled"
    with pytest.raises(zeep.exceptions.Fault) as caught:
        client.service.gated_result(**{"task-id": gate["task-id"]})
    assert caught.value.message.startswith("TaskCancelled:") and caught.value.code == "SOAP-ENV:Client"


@pytest.mark.parametrize("interface", DOCUMENT_LITERAL)
def test_zeep_reads_ladontype_and_list_results_over_document_literal(iface_server, interface):
    """Ladon's own document/literal failed on these, for plain methods as for tasks."""
    client = zeep.Client(wsdl(iface_server, "InterfaceService", interface))
    measured = client.service.measure(name="m")
    assert measured["name"] == "m" and measured["ratio"] == 0.25 and measured["count"] == 3
    assert measured["exact"] is True and measured["parts"]["item"] == ["m", "M"]
    task_id = client.service.measureAll(name="n")["task-id"]
    assert client.service.measureAll_wait(**{"task-id": task_id, "seconds": 20})["state"] == "succeeded"
    listed = client.service.measureAll_result(**{"task-id": task_id})
    assert [item["name"] for item in listed] == ["n"]  # zeep unwraps a result array
    pairs = zeep.Client(wsdl(iface_server, "ProbeService", interface))
    task_id = pairs.service.pairs(prefix="p")["task-id"]
    pairs.service.pairs_wait(**{"task-id": task_id, "seconds": 20})
    assert [item["key"] for item in pairs.service.pairs_result(**{"task-id": task_id})]


@pytest.mark.parametrize("interface", ("soap11", "soap", "soapdocumentliteral"))
def test_php_soapclient_runs_a_task_and_every_companion(iface_server, interface):
    seen = run_php(iface_server, interface, f"php over {interface}")
    task_id = seen["start"]["task-id"]
    assert seen["wait"]["state"] == "succeeded" and seen["wait"]["task-id"] == task_id
    assert seen["progress"]["finished"] is True
    assert seen["result"] == seen["wait_result"] == f"php over {interface}"
    assert seen["cancel"]["state"] == "succeeded"
    assert seen["fault"]["code"] == "SOAP-ENV:Client"
    assert seen["fault"]["string"].startswith("UnknownTask:")


@pytest.mark.parametrize("interface", ("soap11", "soap"))
def test_suds_runs_a_task(iface_server, interface):
    client = SudsClient(wsdl(iface_server, "ProbeService", interface), cache=None)
    task_id = client.service.echo("suds")["task-id"]
    assert client.service.echo_wait(task_id, 20).state == "succeeded"
    assert client.service.echo_result(task_id) == "suds"


# -- faults ---------------------------------------------------------------------------------


def _soap_call(server, service: str, interface: str, body: str) -> requests.Response:
    envelope = ('<?xml version="1.0" encoding="UTF-8"?><SOAP-ENV:Envelope '
                'xmlns:SOAP-ENV="http://schemas.xmlsoap.org/soap/envelope/" '
                f'xmlns:ns="urn:{service}"><SOAP-ENV:Body>{body}</SOAP-ENV:Body></SOAP-ENV:Envelope>')
    return requests.post(f"{server.url}/{service}/{interface}", data=envelope.encode(),
                         headers={"Content-Type": "text/xml; charset=utf-8", "SOAPAction": '""'}, timeout=30)


@pytest.mark.parametrize("interface", ("soap11", "soap"))
def test_soap_faults_are_http_500_with_qualified_codes(iface_server, interface):
    client_fault = _soap_call(iface_server, "ProbeService", interface,
                              f"<ns:echo_result><ns:task-id>{'0' * 32}</ns:task-id></ns:echo_result>")
    assert client_fault.status_code == 500
    assert re.search(r"<faultcode[^>]*>SOAP-ENV:Client</faultcode>", client_fault.text), client_fault.text
    server_fault = _soap_call(iface_server, "InterfaceService", interface,
                              "<ns:breakDown><ns:text>x</ns:text></ns:breakDown>")
    assert server_fault.status_code == 500
    assert re.search(r"<faultcode[^>]*>SOAP-ENV:Server</faultcode>", server_fault.text), server_fault.text
    assert "broke on x" in server_fault.text and "Traceback" not in server_fault.text
    answered = _soap_call(iface_server, "ProbeService", interface, "<ns:plain><ns:text>ok</ns:text></ns:plain>")
    assert answered.status_code == 200


def test_json_faults_keep_http_200(iface_server):
    """JSON-WSP and JSON-RPC clients read faults from the body; their status is unchanged."""
    fault = requests.post(f"{iface_server.url}/ProbeService/jsonwsp",
                          json={"methodname": "echo_result", "args": {"task_id": "0" * 32}}, timeout=30)
    assert fault.status_code == 200 and fault.json()["type"] == "jsonwsp/fault"


def test_a_finished_tasks_answer_is_the_same_bytes_every_time_in_every_charset(iface_server):
    """A finished task's ``_progress`` answer is kept, its JSON written once and framed
    for each call (:mod:`ladon_tasks.answers`): the bytes are those of the first call, and
    the text is the text Ladon writes itself where nothing is kept (a charset other than
    UTF-8), with the JSON-WSP mirror and the JSON-RPC id echoed as sent; over SOAP, the
    same answer every time."""
    probe = JsonWsp(iface_server, "ProbeService")
    task_id = probe("explode", text="ünïcode \"quoted\"")["task_id"]
    assert probe("explode_wait", task_id=task_id, seconds=20.0)["state"] == "failed"
    calls = {
        "jsonwsp": {"methodname": "explode_progress", "args": {"task_id": task_id}, "mirror": {"é": ['"result": 0']}},
        "jsonrpc10": {"method": "explode_progress", "params": [task_id], "id": "call-1"},
    }
    for interface, call in calls.items():
        answers = {}
        for charset in ("utf-8", "utf-8", "UTF8", "iso-8859-1"):
            reply = requests.post(f"{iface_server.url}/ProbeService/{interface}", timeout=30,
                                  data=json.dumps(call).encode(),
                                  headers={"Content-Type": f"application/json; charset={charset}"})
            assert reply.status_code == 200
            answers.setdefault(charset.replace("UTF8", "utf-8"), []).append(reply.content)
        kept, by_ladon = answers["utf-8"], answers["iso-8859-1"][0]
        assert len(set(kept)) == 1, kept
        assert kept[0].decode("utf-8") == by_ladon.decode("iso-8859-1")
        result = json.loads(by_ladon.decode("iso-8859-1"))["result"]
        assert result["finished"] is True and "ünïcode" in result["error"]
    for interface in ("soap11", *DOCUMENT_LITERAL):  # kept as text: the same answer every time
        body = f"<ns:explode_progress><ns:task-id>{task_id}</ns:task-id></ns:explode_progress>"
        first, again = (_soap_call(iface_server, "ProbeService", interface, body) for _ in range(2))
        assert first.status_code == again.status_code == 200
        assert first.content == again.content and "ünïcode" in first.text


def test_xmlrpc_is_out_of_the_catalogue(iface_server):
    assert requests.get(f"{iface_server.url}/ProbeService/xmlrpc/description", timeout=30).status_code == 404
    page = requests.get(f"{iface_server.url}/ProbeService", timeout=30).text
    assert "xmlrpc" not in page.lower() and "soapdocumentliteral" in page


# -- what each client sees: the README's table ---------------------------------------------


def _python_cell(value: object) -> str:
    return (
        '`""`'
        if value == "" and isinstance(value, str)
        else f"`{type(value).__name__}`"
        if value is not None
        else "`None`"
    )


def _php_cell(value: object) -> str:
    if value == "" and isinstance(value, str):
        return '`""`'
    return {float: "float", str: "string", bool: "bool", int: "int"}[type(value)]


def _json_cell(value: object) -> str:
    if value == "" and isinstance(value, str):
        return '`""`'
    return {float: "number", bool: "boolean", int: "number", str: "string"}[type(value)]


ROWS = {  # row of the README table -> the TaskProgressResponse field that shows it
    "a float (`progress`, `duration`, timestamps)": "submitted",
    "an empty string (`message`, `error`)": "error",
    "a boolean (`finished`)": "finished",
}


def readme_table() -> dict[str, dict[str, str]]:
    text = (ROOT / "README.md").read_text()
    block = text.split("<!-- client-types -->", 2)[1]
    lines = [line for line in block.strip().splitlines() if line.startswith("|")]
    header = [cell.strip() for cell in lines[0].strip("|").split("|")]
    table = {}
    for line in lines[2:]:
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        table[cells[0]] = dict(zip(header[1:], cells[1:], strict=True))
    return table


def test_readme_says_what_each_client_sees(iface_server):
    waited = {}
    for interface in ("soap11", "soap"):
        client = zeep.Client(wsdl(iface_server, "ProbeService", interface))
        task_id = client.service.echo(text="t")["task-id"]
        waited[f"zeep `{interface}`"] = (_python_cell, client.service.echo_wait(**{"task-id": task_id, "seconds": 20}))
        suds = SudsClient(wsdl(iface_server, "ProbeService", interface), cache=None)
        status = suds.service.echo_wait(task_id, 20)
        waited[f"suds `{interface}`"] = (
            _python_cell,
            {field: getattr(status, field) for field in ("submitted", "error", "finished")},
        )
        waited[f"PHP `{interface}`"] = (_php_cell, run_php(iface_server, interface, "t")["wait"])
    task_id = JsonWsp(iface_server, "ProbeService")("echo", text="t")["task_id"]
    waited["JSON-WSP, JSON-RPC"] = (
        _json_cell,
        JsonWsp(iface_server, "ProbeService")("echo_wait", task_id=task_id, seconds=20),
    )
    observed = {
        row: {column: cell(values[field]) for column, (cell, values) in waited.items()}
        for row, field in ROWS.items()
    }
    for column, (_, values) in waited.items():  # the fields the rows stand for, as expected
        assert values["error"] in ("", None), column
    assert isinstance(waited["zeep `soap11`"][1]["submitted"], Decimal)
    assert readme_table() == observed
