"""What a client can rely on, over HTTP against a real server, in both in-process
executors: results of every type, repeatable reads, faults that name the problem,
cancel, timeout, retries, and a process pool that survives its children dying."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from support.jsonwsp import WireFault
from support.processes import process_alive
from support.servers import wait_until


def run(probe, method: str, **args) -> tuple[str, dict]:
    """Start a task, wait for it to finish, return (task_id, final progress)."""
    task_id = probe(method, **args)["task_id"]
    final = probe(f"{method}_wait", task_id=task_id, seconds=20)
    assert final["finished"], final
    return task_id, final


def fault_of(call, *args, **kwargs) -> WireFault:
    with pytest.raises(WireFault) as caught:
        call(*args, **kwargs)
    return caught.value


# -- results of every type --------------------------------------------------------


@pytest.mark.smoke
@pytest.mark.parametrize(
    "method, args, expected",
    [
        ("zero", {}, 0),
        ("empty", {}, ""),
        ("falseInProcess", {}, False),
        ("numbers", {"count": 4}, [0, 1, 2, 3]),
        ("numbers", {"count": 0}, []),
        ("numbersInProcess", {"count": 3}, [0, 1, 2]),
        ("pairs", {"prefix": "k"}, [{"key": f"k{n}", "value": n} for n in range(3)]),
        ("pairInProcess", {"key": "abc"}, {"key": "abc", "value": 3}),
        ("echo", {"text": "ünïcødé ✓"}, "ünïcødé ✓"),
    ],
)
def test_every_result_type_survives_and_can_be_read_twice(probe, method, args, expected):
    task_id, final = run(probe, method, **args)
    assert final["state"] == "succeeded" and final["progress"] == 1.0
    assert probe(f"{method}_result", task_id=task_id) == expected
    assert probe(f"{method}_result", task_id=task_id) == expected


def test_body_returning_the_wrong_type_fails_cleanly(probe):
    task_id, final = run(probe, "wrongType")
    assert final["state"] == "failed"
    assert final["error"].startswith("ReturnTypeMismatch: expected int, got str")
    fault = fault_of(probe, "wrongType_result", task_id=task_id)
    assert fault.name == "TaskFailed" and fault.code == "client"


def test_failed_task_never_looks_succeeded_and_sends_no_traceback(probe):
    task_id, final = run(probe, "explode", text="stones")
    assert final["state"] == "failed" and final["progress"] < 1.0
    assert final["error"] == "ValueError: cannot digest stones"
    fault = fault_of(probe, "explode_result", task_id=task_id)
    assert fault.name == "TaskFailed"
    assert "ValueError: cannot digest stones" in fault.string
    assert fault.fault["detail"] == ["TaskFailed"]
    assert "Traceback" not in str(fault.fault)


def test_progress_is_clamped_and_non_numbers_ignored(probe):
    task_id = probe("progressOddities")["task_id"]
    final = probe("progressOddities_wait", task_id=task_id, seconds=20)
    assert final["state"] == "succeeded"
    assert probe("progressOddities_result", task_id=task_id) == 0.0


# -- ids and early calls ----------------------------------------------------------


def test_task_ids_are_128_bit_hex_and_distinct(probe):
    ids = {probe("zero")["task_id"] for _ in range(20)}
    assert len(ids) == 20
    assert all(len(task_id) == 32 and int(task_id, 16) >= 0 for task_id in ids)


@pytest.mark.parametrize("method", ["zero_progress", "zero_result", "zero_cancel"])
def test_unknown_and_malformed_ids_get_named_client_faults(probe, method):
    unknown = fault_of(probe, method, task_id="ab" * 16)
    assert unknown.name == "UnknownTask" and unknown.code == "client" and "ab" * 16 in unknown.string
    for bad in ("", "xyz", "AB" * 16, "0" * 33, "../../etc/passwd"):
        malformed = fault_of(probe, method, task_id=bad)
        assert malformed.name == "MalformedTaskId", (bad, malformed.string)


def test_result_asked_too_early_names_state_and_progress(probe, tmp_path):
    task_id = probe("gated", gate=str(tmp_path / "gate"))["task_id"]
    wait_until(lambda: probe("gated_progress", task_id=task_id)["progress"] > 0, what="progress")
    fault = fault_of(probe, "gated_result", task_id=task_id)
    assert fault.name == "TaskNotFinished"
    assert "running" in fault.string and "progress 0." in fault.string
    (tmp_path / "gate").touch()
    assert probe("gated_wait", task_id=task_id, seconds=20)["state"] == "succeeded"
    assert probe("gated_result", task_id=task_id) == 7


def test_wait_returns_after_its_timeout_while_the_task_runs(probe, tmp_path):
    task_id = probe("gated", gate=str(tmp_path / "gate"))["task_id"]
    try:
        waited = probe("gated_wait", task_id=task_id, seconds=0.2)
        assert waited["finished"] is False and waited["state"] in ("queued", "running")
    finally:
        probe("gated_cancel", task_id=task_id)


# -- cancel -----------------------------------------------------------------------


def test_cancel_running_thread_task_is_cooperative_and_final(probe, tmp_path):
    task_id = probe("gated", gate=str(tmp_path / "gate"))["task_id"]
    wait_until(lambda: probe("gated_progress", task_id=task_id)["state"] == "running", what="running")
    cancelled = probe("gated_cancel", task_id=task_id)
    assert cancelled["state"] == "cancelled" and cancelled["cancel_requested"] is True
    assert fault_of(probe, "gated_result", task_id=task_id).name == "TaskCancelled"
    (tmp_path / "gate").touch()  # even if the body ended now, its result is not taken
    assert probe("gated_progress", task_id=task_id)["state"] == "cancelled"
    assert probe("gated_cancel", task_id=task_id)["state"] == "cancelled"  # idempotent


def test_cancel_in_process_kills_the_child(probe, tmp_path):
    pid_file = tmp_path / "pid"
    task_id = probe("stubbornInProcess", pid_file=str(pid_file))["task_id"]
    pid = int(wait_until(lambda: pid_file.exists() and pid_file.read_text(), what="child pid"))
    assert probe("stubbornInProcess_cancel", task_id=task_id)["state"] == "cancelled"
    wait_until(lambda: not process_alive(pid), what=f"child {pid} to be killed")
    # The pool replaced its child and still works.
    _, final = run(probe, "pairInProcess", key="after-cancel")
    assert final["state"] == "succeeded"


# -- timeouts, retries, dead children -----------------------------------------------


def test_timeout_in_thread_fails_the_task_with_a_timeout_message(probe, tmp_path):
    task_id = probe("slowThread", gate=str(tmp_path / "never"))["task_id"]
    final = probe("slowThread_wait", task_id=task_id, seconds=20)
    assert final["state"] == "failed" and final["error"].startswith("TaskTimeout:")
    assert "0.5s" in final["error"]
    assert fault_of(probe, "slowThread_result", task_id=task_id).name == "TaskFailed"


def test_timeout_in_process_is_enforced_by_killing_the_child(probe, tmp_path):
    pid_file = tmp_path / "pid"
    task_id = probe("slowProcess", pid_file=str(pid_file))["task_id"]
    final = probe("slowProcess_wait", task_id=task_id, seconds=20)
    assert final["state"] == "failed" and final["error"].startswith("TaskTimeout:")
    pid = int(pid_file.read_text())
    wait_until(lambda: not process_alive(pid), what=f"timed-out child {pid} to be killed")


def test_retries_run_the_body_again_and_count_attempts(probe, tmp_path):
    task_id, final = run(probe, "flaky", marker_dir=str(tmp_path))
    assert final["state"] == "succeeded" and final["attempts"] == 3
    assert probe("flaky_result", task_id=task_id) == 3
    assert sorted(os.listdir(tmp_path)) == ["attempt-1", "attempt-2", "attempt-3"]


@pytest.mark.parametrize("how, described", [(0, "exited with code 3"), (1, "was killed by SIGKILL")])
def test_child_that_dies_fails_its_task_and_the_pool_keeps_working(probe, how, described):
    task_id, final = run(probe, "dieInProcess", how=how)
    assert final["state"] == "failed"
    assert final["error"] == f"WorkerDied: the task's process {described}"
    assert fault_of(probe, "dieInProcess_result", task_id=task_id).name == "TaskFailed"
    _, after = run(probe, "numbersInProcess", count=2)
    assert after["state"] == "succeeded"


def test_children_hold_no_listening_socket_of_the_server(server, probe, tmp_path):
    task_id = probe("gatedInProcess", gate=str(tmp_path / "gate"))["task_id"]
    wait_until(lambda: probe("gatedInProcess_progress", task_id=task_id)["progress"] > 0, what="child running")
    server_sockets = _socket_inodes(server.process.pid)
    listening = _listening_inodes(server.port)
    assert listening & server_sockets, "the server itself should hold its listening socket"
    children = _children_of(server.process.pid)
    assert children, "the process executor should have started children"
    for child in children:
        assert not (_socket_inodes(child) & listening), f"child {child} inherited the listening socket"
    (tmp_path / "gate").touch()
    final = probe("gatedInProcess_wait", task_id=task_id, seconds=20)
    assert final["state"] == "succeeded"
    assert probe("gatedInProcess_result", task_id=task_id) in children


def test_thread_pool_is_bounded_and_extra_tasks_wait_queued(probe, tmp_path):
    gate = str(tmp_path / "gate")
    ids = [probe("gated", gate=gate)["task_id"] for _ in range(6)]  # the server has 4 threads
    try:
        def states():
            found = [probe("gated_progress", task_id=task_id)["state"] for task_id in ids]
            return found if found.count("running") == 4 else None

        found = wait_until(states, what="4 tasks running")
        assert found.count("queued") == 2
    finally:
        (tmp_path / "gate").touch()
    for task_id in ids:
        assert probe("gated_wait", task_id=task_id, seconds=20)["state"] == "succeeded"


def test_plain_methods_stay_plain(probe):
    assert probe("plain", text="as before") == "as before"


# -- helpers ----------------------------------------------------------------------



def _children_of(pid: int) -> list[int]:
    children = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                children.append(int(entry.name))
    return children


def _socket_inodes(pid: int) -> set[str]:
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    return inodes


def _listening_inodes(port: int) -> set[str]:
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == "0A":  # LISTEN
                inodes.add(fields[9])
    return inodes


def test_sigterm_stops_the_server_promptly(output_dir):
    from conftest import ALL_SERVICES
    from support.servers import start_server

    running = start_server(ALL_SERVICES[:1], output_dir)
    running.process.send_signal(signal.SIGTERM)
    assert running.process.wait(timeout=10) is not None


def test_wait_result_returns_the_result_in_one_call_or_says_not_finished(probe, tmp_path):
    task_id = probe("numbers", count=3)["task_id"]
    assert probe("numbers_wait_result", task_id=task_id, seconds=20) == [0, 1, 2]
    gated = probe("gated", gate=str(tmp_path / "gate"))["task_id"]
    assert fault_of(probe, "gated_wait_result", task_id=gated, seconds=0.1).name == "TaskNotFinished"
    (tmp_path / "gate").touch()
    assert probe("gated_wait_result", task_id=gated, seconds=20) == 7
    failed = probe("explode", text="x")["task_id"]
    assert fault_of(probe, "explode_wait_result", task_id=failed, seconds=20).name == "TaskFailed"


def test_idempotency_key_header_returns_the_existing_task(server):
    import json
    import urllib.request

    def start(key: str) -> str:
        request = urllib.request.Request(
            f"{server.url}/ProbeService/jsonwsp",
            data=json.dumps({"methodname": "echo", "args": {"text": "charge card"}}).encode(),
            headers={"Content-Type": "application/json", "Idempotency-Key": key},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())["result"]["task_id"]

    first = start("order-17")
    assert start("order-17") == first  # a client retrying after a timeout gets the same task
    assert start("order-18") != first


def test_idempotent_option_and_listing_method(probe):
    first = probe("once", text="a")["task_id"]
    assert probe("once", text="a")["task_id"] == first
    other = probe("once", text="b")["task_id"]
    assert other != first
    assert probe("once_wait_result", task_id=other, seconds=20) == "B"
    page = probe("once_list", state="", limit=1, offset=0)
    assert [task["task_id"] for task in page] == [other]  # newest first, one per page
    assert probe("once_list", state="", limit=1, offset=1)[0]["task_id"] == first
    assert other in {t["task_id"] for t in probe("once_list", state="succeeded", limit=10, offset=0)}
    assert fault_of(probe, "once_list", state="bogus", limit=1, offset=0).name == "InvalidArgument"
    assert fault_of(probe, "zero_list", state="", limit=1, offset=0).name in ("UnknownMethod", "MalformedRequest")


def test_debug_mode_sends_the_traceback_of_a_failure(output_dir):
    """Only with ``--debug`` does a failed task's fault carry the server's traceback."""
    from conftest import ALL_SERVICES
    from support.jsonwsp import JsonWsp
    from support.servers import start_server

    debug_server = start_server(ALL_SERVICES[3:], output_dir, "--debug")
    try:
        probe = JsonWsp(debug_server, "ProbeService")
        task_id = probe("explode", text="pebbles")["task_id"]
        probe("explode_wait", task_id=task_id, seconds=20)
        fault = fault_of(probe, "explode_result", task_id=task_id)
        detail = "\n".join(fault.fault["detail"])
        assert fault.name == "TaskFailed" and "Traceback (most recent call last)" in detail
        assert "ValueError: cannot digest pebbles" in detail
        assert {"filename", "lineno"} <= set(fault.fault), "debug mode keeps where the fault was raised"
    finally:
        debug_server.stop()
