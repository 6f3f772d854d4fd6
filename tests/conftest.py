"""Fixtures shared by the suite: a real ``ladon-tasks serve`` with the example and probe
services, and small JSON-WSP / JSON-RPC helpers that speak raw HTTP to it."""

from __future__ import annotations

import json
import os
import urllib.request
from pathlib import Path

import pytest

from server_support import FIXTURE_SERVICES, ROOT, SERVICES, RunningServer, start_server

ALL_SERVICES = [
    str(SERVICES / "task_service.py"),
    str(SERVICES / "instance_service.py"),
    str(SERVICES / "report_service.py"),
    str(FIXTURE_SERVICES / "probe_service.py"),
]


@pytest.fixture(scope="session")
def output_dir() -> Path:
    """Where tests leave artefacts (screenshots, server logs) for people to look at."""
    path = Path(os.environ.get("LADON_TASKS_TEST_OUTPUT", ROOT / "test-output"))
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="module")
def server(output_dir: Path):
    running = start_server(ALL_SERVICES, output_dir, "--thread-workers", "4", "--process-workers", "2")
    yield running
    running.stop()


def post_json(url: str, payload: object, timeout: float = 30.0) -> tuple[int, dict]:
    request = urllib.request.Request(
        url, data=json.dumps(payload).encode(), headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, {"http_error": error.read().decode(errors="replace")}


class JsonWsp:
    """Raw JSON-WSP calls: returns the ``result``, or raises :class:`WireFault`."""

    def __init__(self, server: RunningServer, service: str) -> None:
        self.url = f"{server.url}/{service}/jsonwsp"

    def __call__(self, method: str, **args: object) -> object:
        status, body = post_json(self.url, {"methodname": method, "args": args})
        assert status == 200, body
        if body.get("type") == "jsonwsp/fault":
            raise WireFault(body["fault"])
        return body["result"]


class WireFault(Exception):
    def __init__(self, fault: dict) -> None:
        super().__init__(fault["string"])
        self.fault = fault
        self.string = fault["string"]
        self.code = fault["code"]
        self.name = self.string.split(":", 1)[0]


@pytest.fixture
def probe(server: RunningServer) -> JsonWsp:
    return JsonWsp(server, "ProbeService")
