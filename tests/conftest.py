"""Fixtures shared by the suite: a real ``ladon-tasks serve`` with the example and probe
services, and a JSON-WSP caller for its probe service."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

import pytest

from support.jsonwsp import JsonWsp
from support.redis_server import RedisServer, start_redis
from support.servers import FIXTURE_SERVICES, ROOT, SERVICES, RunningServer, start_server

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
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A redis-server of the module's own on a free loopback port (a module that needs
    append-only files or restarts makes its own)."""
    server = start_redis(tmp_path_factory.mktemp("redis"))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory):
    """A Redis Cluster of three primaries (append-only files on), shared by the modules
    that run their Redis tests on a cluster too; each test flushes what it needs."""
    from support.redis_cluster import start_cluster

    cluster = start_cluster(tmp_path_factory.mktemp("redis-cluster"), primaries=3, appendonly=True)
    yield cluster
    cluster.stop()


@pytest.fixture(scope="module")
def server(output_dir: Path):
    running = start_server(ALL_SERVICES, output_dir, "--thread-workers", "4", "--process-workers", "2")
    yield running
    running.stop()


@pytest.fixture
def probe(server: RunningServer) -> JsonWsp:
    return JsonWsp(server, "ProbeService")
