"""Traces follow a task through the queue (``ladon-tasks[otel]``): a start call made with
a W3C ``traceparent`` header runs in a span of that trace, and the body - in a thread of
``serve``, in a process executor's child, in a ``ladon-tasks worker`` over Redis - runs in
a span that is its child, after a span of its queue wait, with a span per step and one
per attempt (a failed, retried one marked as an error). Every process exports with the
real SDK (``traced_service``: its console exporter writing JSON lines to one file).

Without the package, nothing of it is imported and a task carries no trace."""

from __future__ import annotations

import json
import secrets
from pathlib import Path
from typing import Any, Iterator

import pytest

from ladon_tasks.redis import open_store
from support.jsonwsp import JsonWsp
from support.redis_server import RedisServer
from support.servers import FIXTURE_SERVICES, RunningServer, start_server, wait_until
from support.workers import Workers

TRACED = str(FIXTURE_SERVICES / "traced_service.py")


@pytest.fixture(scope="module")
def spans_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("spans") / "spans.jsonl"


@pytest.fixture(scope="module")
def traced(redis_server: RedisServer, spans_file: Path, output_dir: Path) -> Iterator[RunningServer]:
    """``serve --redis`` and one ``worker``, both exporting spans to ``spans_file``."""
    env = {"TRACED_SPANS": str(spans_file)}
    server = start_server([TRACED], output_dir, "--redis", redis_server.url, env=env)
    workers = Workers(redis_server.url, output_dir, services=[TRACED])
    workers.start(env=env)
    yield server
    workers.stop_all()
    server.stop()


def spans_of(spans_file: Path, trace_id: str) -> list[dict[str, Any]]:
    if not spans_file.exists():
        return []
    lines = spans_file.read_text().splitlines()
    spans = [json.loads(line) for line in lines if line.strip()]
    return [span for span in spans if span["context"]["trace_id"] == f"0x{trace_id}"]


def named(spans: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    return sorted((span for span in spans if span["name"] == name),
                  key=lambda span: span["attributes"].get("ladon_tasks.attempt", 0))


CASES = {
    "thread": ("stepped", ["double", "again"], 2),
    "process": ("inProcess", ["double"], 1),
    "queue": ("queued", ["double"], 1),
}


@pytest.mark.parametrize("executor", list(CASES))
def test_one_trace_from_the_http_start_to_the_bodys_end(traced: RunningServer, spans_file: Path,
                                                        redis_server: RedisServer, executor: str,
                                                        tmp_path: Path) -> None:
    method, steps, attempts = CASES[executor]
    trace_id, client_span = secrets.token_hex(16), secrets.token_hex(8)
    client = JsonWsp(traced, "TracedService")
    args: dict[str, Any] = {"value": 3}
    if method == "stepped":
        (tmp_path / "fail-once").touch()  # the first attempt fails, the retry succeeds
        args["marker_dir"] = str(tmp_path)
    started = client.call(method, args, headers={"traceparent": f"00-{trace_id}-{client_span}-01"})
    task_id = started["task_id"]
    assert client(f"{method}_wait_result", task_id=task_id, seconds=30) == (12 if method == "stepped" else 6)

    name = f"TracedService.{method}"
    wait_until(lambda: len(named(spans_of(spans_file, trace_id), name)) == attempts, timeout=30,
               what=f"the {attempts} attempt span(s) of the {executor} executor")
    spans = spans_of(spans_file, trace_id)
    [start] = named(spans, f"{name} start")
    assert start["parent_id"] == f"0x{client_span}", "the start call is a child of the request's span"
    assert start["kind"] == "SpanKind.PRODUCER" and start["attributes"]["ladon_tasks.task_id"] == task_id
    [queued] = named(spans, f"{name} queued")
    bodies = named(spans, name)
    for span in (queued, *bodies):
        assert span["parent_id"] == start["context"]["span_id"], span
        assert span["attributes"]["ladon_tasks.task_id"] == task_id
    assert [body["attributes"]["ladon_tasks.attempt"] for body in bodies] == list(range(1, attempts + 1))
    assert (
        bodies[-1]["status"]["status_code"] == "UNSET"
        and bodies[-1]["attributes"]["ladon_tasks.outcome"] == "succeeded"
    )
    if attempts == 2:  # the retried failure: an error span with its exception, then the retry
        failed = bodies[0]
        assert failed["status"]["status_code"] == "ERROR" and failed["attributes"]["ladon_tasks.retryable"] is True
        assert [(event["name"], event["attributes"]["exception.type"]) for event in failed["events"]] == \
            [("exception", "RuntimeError")]
    body_ids = {body["context"]["span_id"] for body in bodies}
    for step in steps:
        ran = named(spans, f"step {step}")
        assert ran and all(span["parent_id"] in body_ids for span in ran), (step, ran)

    store = open_store(redis_server.url)
    try:
        assert store.get(task_id).trace.startswith(f"00-{trace_id}-{start['context']['span_id'][2:]}-")
    finally:
        store.close()


def test_without_the_package_nothing_is_imported_and_no_task_carries_a_trace(
        redis_server: RedisServer, output_dir: Path, tmp_path: Path) -> None:
    shim = tmp_path / "no-otel" / "opentelemetry"
    shim.mkdir(parents=True)
    (shim / "__init__.py").write_text('raise ImportError("opentelemetry is not installed here")\n')
    server = start_server([TRACED], output_dir, "--redis", redis_server.url, env={"PYTHONPATH": str(shim.parent)})
    try:
        client = JsonWsp(server, "TracedService")
        trace_id = secrets.token_hex(16)
        for method in ("inProcess", "queued"):
            task_id = client.call(method, {"value": 2}, headers={"traceparent": f"00-{trace_id}-{'1' * 16}-01"})[
                "task_id"
            ]
            if method == "inProcess":
                assert client(f"{method}_wait_result", task_id=task_id, seconds=30) == 4
            store = open_store(redis_server.url)
            try:
                assert store.get(task_id).trace == ""
            finally:
                store.close()
        assert client("loadedModules", prefix="opentelemetry") == []
        assert client("loadedModules", prefix="ladon_tasks.tracing") == ["ladon_tasks.tracing"]
    finally:
        server.stop()


def test_without_an_sdk_the_task_keeps_the_requests_trace_and_state(
    redis_server: RedisServer, output_dir: Path
) -> None:
    server = start_server([TRACED], output_dir, "--redis", redis_server.url)  # no TRACED_SPANS: no SDK set up
    try:
        trace_id, client_span = secrets.token_hex(16), secrets.token_hex(8)
        task_id = JsonWsp(server, "TracedService").call(
            "queued", {"value": 1},
            headers={"traceparent": f"00-{trace_id}-{client_span}-01", "tracestate": "vendor=abc"})["task_id"]
        store = open_store(redis_server.url)
        try:
            assert store.get(task_id).trace == f"00-{trace_id}-{client_span}-01\nvendor=abc"
            # no trace to join and none to record: the start goes without a span, and its task carries none
            untraced = JsonWsp(server, "TracedService").call("queued", {"value": 1})["task_id"]
            assert store.get(untraced).trace == ""
        finally:
            store.close()
    finally:
        server.stop()
