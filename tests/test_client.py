"""The Python client and ``ladon-tasks call`` against a real server: results, typed
errors, the non-blocking handle, and a progress bar that shows the task's message."""

from __future__ import annotations

import io
import json
import subprocess
import sys

import pytest

from ladon_tasks.client import (
    RemoteFault, TaskCancelledError, TaskClient, TaskExpiredError, TaskFailedError, TaskNotFinishedError, WaitTimeout,
)
from support.servers import ROOT, wait_until


def test_run_returns_the_ladontype_result_with_a_progress_bar(server):
    client = TaskClient(f"{server.url}/InstanceService")
    bar = io.StringIO()
    result = client.run("cloneInstance", instance_id="a", new_instance_name="b", progress=bar)
    assert result["instance_id"] == "vm-b" and result["source_id"] == "a"
    drawn = bar.getvalue()
    assert "cloneInstance" in drawn and "100%" in drawn
    assert "copying disk images" in drawn  # the task's message is shown while it runs


def test_failed_and_cancelled_tasks_raise_typed_errors(server, tmp_path):
    probe = TaskClient(f"{server.url}/ProbeService")
    with pytest.raises(TaskFailedError) as failed:
        probe.run("explode", text="gravel")
    assert "ValueError: cannot digest gravel" in str(failed.value)
    assert failed.value.status.state == "failed"

    handle = probe.start("gated", gate=str(tmp_path / "gate"))
    with pytest.raises(TaskNotFinishedError):
        handle.result()
    assert handle.cancel().state == "cancelled"
    with pytest.raises(TaskCancelledError):
        handle.result()


def test_handle_waits_with_a_timeout_and_unknown_ids_are_expired(server, tmp_path):
    probe = TaskClient(f"{server.url}/ProbeService")
    handle = probe.start("gated", gate=str(tmp_path / "gate"))
    status = handle.wait(timeout=0.3)
    assert not status.finished and status.state in ("queued", "running")
    with pytest.raises(WaitTimeout):
        probe.run("gated", gate=str(tmp_path / "gate"), timeout=0.3)
    (tmp_path / "gate").touch()
    assert handle.wait(timeout=20).state == "succeeded" and handle.result() == 7
    with pytest.raises(TaskExpiredError):
        probe.handle("gated", "0" * 32).progress()
    with pytest.raises(RemoteFault, match="needs the argument"):
        probe.start("gated")


def test_call_command_waits_and_prints_the_result(server):
    out = subprocess.run(
        [sys.executable, "-m", "ladon_tasks", "call", server.url, "InstanceService.cloneInstance",
         "instance_id=src", "new_instance_name=copy", "--wait"],
        capture_output=True, text=True, timeout=60, cwd=ROOT,
    )
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["instance_id"] == "vm-copy"
    assert "100%" in out.stderr and "task " in out.stderr


def test_call_command_reports_a_failure_without_traceback(server):
    out = subprocess.run(
        [sys.executable, "-m", "ladon_tasks", "call", server.url, "ReportService.importRecords",
         'records=["a=1", "broken"]', "--wait", "--quiet"],
        capture_output=True, text=True, timeout=60, cwd=ROOT,
    )
    assert out.returncode == 1
    assert "TaskFailed" in out.stderr and 'record 2 (\'broken\') has no "="' in out.stderr
    assert "Traceback" not in out.stderr


def test_call_command_without_wait_prints_the_task_id(server):
    out = subprocess.run(
        [sys.executable, "-m", "ladon_tasks", "call", server.url, "ProbeService.echo", "text=hi"],
        capture_output=True, text=True, timeout=60, cwd=ROOT,
    )
    assert out.returncode == 0, out.stderr
    task_id = out.stdout.strip()
    probe = TaskClient(f"{server.url}/ProbeService")
    wait_until(lambda: probe.handle("echo", task_id).wait(5).finished, what="echo to finish")
    assert probe.handle("echo", task_id).result() == "hi"
