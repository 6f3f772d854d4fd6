"""The seed's examples over every interface, with real clients: zeep from the WSDL,
Ladon's own JSONWSPClient, and raw JSON-RPC 1.0 - each a task end to end."""

from __future__ import annotations

import pytest
import zeep
from ladon.clients.jsonwsp import JSONWSPClient

import ladon_tasks  # noqa: F401  (mends Ladon's JSON-WSP client on Python 3)
from support.jsonwsp import post_json

pytestmark = pytest.mark.smoke

COMPANIONS = ("_progress", "_result", "_cancel", "_wait", "_wait_result")


def test_wsdl_describes_every_task_method_with_types(server):
    client = zeep.Client(f"{server.url}/InstanceService/soap11/description")
    operations = set(client.service._binding._operations)
    for suffix in ("",) + COMPANIONS:
        assert f"cloneInstance{suffix}" in operations
    progress_type = client.get_type("ns0:TaskProgressResponse")
    fields = {name for name, _ in progress_type.elements}
    # Ladon's fields are kept, ours added (SOAP spells _ as -).
    assert {"task-id", "progress", "duration", "starttime"} <= fields
    assert {"state", "message", "attempts", "finishtime", "error"} <= fields
    assert "next-attempt" in fields  # when a retry is due (tests/test_policies.py)


def test_soap_client_runs_clone_instance_end_to_end(server):
    client = zeep.Client(f"{server.url}/InstanceService/soap11/description")
    started = client.service.cloneInstance(**{"instance-id": "vm-1", "new-instance-name": "copy"})
    task_id = started["task-id"]
    assert len(task_id) == 32 and started["state"] in ("queued", "running")

    done = client.service.cloneInstance_wait(**{"task-id": task_id, "seconds": 20})
    assert done["state"] == "succeeded" and done["finished"] is True
    assert float(done["progress"]) == 1.0 and done["attempts"] == 1
    assert float(done["finishtime"]) >= float(done["starttime"]) > 0

    for _ in range(2):  # repeatable: the result is not deleted on first read
        result = client.service.cloneInstance_result(**{"task-id": task_id})
        assert result["instance-id"] == "vm-copy"
        assert result["source-id"] == "vm-1"
        assert result["disks"]["item"] == ["copy-disk0.qcow2"]


def test_soap_client_gets_named_fault_for_unknown_task(server):
    client = zeep.Client(f"{server.url}/InstanceService/soap11/description")
    with pytest.raises(zeep.exceptions.Fault) as caught:
        client.service.cloneInstance_progress(**{"task-id": "0" * 32})
    assert caught.value.message.startswith("UnknownTask:")
    assert "0" * 32 in caught.value.message
    detail = caught.value.detail
    assert detail is not None and "".join(detail.itertext()).strip() == "UnknownTask"


def test_soap_client_cancels_the_seed_task_example(server):
    client = zeep.Client(f"{server.url}/TaskService/soap11/description")
    started = client.service.taskExample(**{"session-id": "s1", "counter": 5})
    cancelled = client.service.taskExample_cancel(**{"task-id": started["task-id"]})
    assert cancelled["state"] == "cancelled" and cancelled["cancel-requested"] is True
    with pytest.raises(zeep.exceptions.Fault) as caught:
        client.service.taskExample_result(**{"task-id": started["task-id"]})
    assert caught.value.message.startswith("TaskCancelled:")


def test_ladon_jsonwsp_client_runs_clone_instance(server):
    client = JSONWSPClient(f"{server.url}/InstanceService/jsonwsp/description")
    for name in ("cloneInstance",) + tuple("cloneInstance" + s for s in COMPANIONS):
        assert name in client.jsonwsp_description["methods"]
    started = client.cloneInstance(instance_id="vm-2", new_instance_name="twin").response_dict["result"]
    waited = client.cloneInstance_wait(task_id=started["task_id"], seconds=20).response_dict["result"]
    assert waited["state"] == "succeeded"
    progress = client.cloneInstance_progress(task_id=started["task_id"]).response_dict["result"]
    assert progress["progress"] == 1.0 and progress["message"] == "starting the clone"
    result = client.cloneInstance_result(task_id=started["task_id"]).response_dict["result"]
    assert result == {
        "instance_id": "vm-twin", "name": "twin", "source_id": "vm-2",
        "disks": ["twin-disk0.qcow2"], "running": False,
    }


def test_ladon_jsonwsp_client_sees_progress_of_the_seed_task_example(server):
    client = JSONWSPClient(f"{server.url}/TaskService/jsonwsp/description")
    task_id = client.taskExample(session_id="s", counter=3).response_dict["result"]["task_id"]
    try:
        from support.servers import wait_until

        def moved():
            result = client.taskExample_progress(task_id=task_id).response_dict["result"]
            return result if result["progress"] > 0 else None

        progress = wait_until(moved, timeout=10, what="taskExample to report progress")
        assert progress["state"] == "running" and 0 < progress["progress"] < 1
        assert progress["starttime"] > 0 and progress["duration"] > 0
        early = client.taskExample_result(task_id=task_id).response_dict
        assert early["type"] == "jsonwsp/fault"
        assert early["fault"]["string"].startswith("TaskNotFinished:")
        assert "running" in early["fault"]["string"]
    finally:
        client.taskExample_cancel(task_id=task_id)


def test_jsonrpc_runs_a_task_end_to_end(server):
    url = f"{server.url}/ProbeService/jsonrpc10"
    status, started = post_json(url, {"method": "echo", "params": ["over json-rpc"], "id": 1})
    assert status == 200 and started["error"] is None, started
    task_id = started["result"]["task_id"]
    status, waited = post_json(url, {"method": "echo_wait", "params": [task_id, 20], "id": 2})
    assert waited["result"]["state"] == "succeeded"
    status, result = post_json(url, {"method": "echo_result", "params": [task_id], "id": 3})
    assert result["result"] == "over json-rpc" and str(result["id"]) == "3"  # Ladon echoes ids as strings
    status, fault = post_json(url, {"method": "echo_result", "params": ["f" * 32], "id": 4})
    assert "UnknownTask" in str(fault["error"])


def test_serve_keeps_a_clients_connection_open_between_calls(server):
    # HTTP/1.1 keep-alive: a client's calls share one connection (Werkzeug's development
    # server closed every connection after one answer).
    import http.client
    import json

    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        answers, sockets = [], []
        for text in ("one", "two", "three"):
            body = json.dumps({"methodname": "echo", "args": {"text": text}}).encode()
            connection.request("POST", "/ProbeService/jsonwsp", body, {"Content-Type": "application/json"})
            response = connection.getresponse()
            assert response.getheader("Connection", "").lower() != "close"
            answers.append(json.loads(response.read())["result"]["task_id"])
            sockets.append(connection.sock)
        assert len(set(answers)) == 3
        assert sockets[0] is not None and all(sock is sockets[0] for sock in sockets)
    finally:
        connection.close()
