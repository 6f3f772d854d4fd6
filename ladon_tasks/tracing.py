"""OpenTelemetry traces that follow a task wherever its body runs (``ladon-tasks[otel]``).

With ``opentelemetry-api`` installed, a start call runs in a span, ``Service.method
start`` (kind producer), a child of the request's trace: the current span when the
server is instrumented, else the W3C ``traceparent`` (and ``tracestate``) request
headers. That span's context is stored with the task (``TaskRecord.trace``, the
``traceparent`` text) and travels in its job, to a thread, a child process or a queue
worker on another host, where each attempt runs in a span ``Service.method`` (kind
consumer), a child of it - one trace from the HTTP start to the body's end:

* ``Service.method queued``: the wait before the first attempt started (from the
  start call's clock to the body's host's clock);
* ``Service.method``: one span per attempt (``ladon_tasks.attempt``); a failed one has
  status error and an ``exception`` event, and says whether it may be retried
  (``ladon_tasks.retryable``), so retries show as the next attempt's span;
* ``step NAME``: one span per step the body runs (``kw['step']``), in its attempt.

Spans go wherever the process's tracer provider sends them: configure the SDK (or
``opentelemetry-instrument``) in every process that runs bodies - web server, process
executor children (they import the service module: configure it there) and workers.

Without the package nothing is imported: the first start call looks for it once, and a
task then carries no trace and its body runs as before - a job gains no field, a body
no span.
"""

from __future__ import annotations

import contextlib
import time
from typing import TYPE_CHECKING, Any, Callable, Iterator, Mapping

if TYPE_CHECKING:
    from ladon_tasks.jobs import Job, Outcome
    from ladon_tasks.model import TaskRecord
    from ladon_tasks.spec import TaskSpec

#: The instrumentation's name, as tracers and exported spans carry it.
INSTRUMENTATION = "ladon_tasks"

_looked = False
_api: Any = None  # the ``opentelemetry.trace`` module, once found


def active() -> bool:
    """Whether ``opentelemetry-api`` is installed (looked for once per process)."""
    if not _looked:
        _look()
    return _api is not None


def _look() -> None:
    global _looked, _api
    try:
        import opentelemetry.trace as api
    except ImportError:
        api = None  # type: ignore[assignment]
    _api, _looked = api, True


def wanted(environ: Mapping[str, Any]) -> bool:
    """Whether a start call should run in a span: ``opentelemetry-api`` is installed and
    there is a trace to join or to record - a tracer provider configured, a current span,
    or a ``traceparent`` header. Without any of them the span would record nothing and
    the task would carry no trace, so the start goes without one: libraries pull in the
    API without an SDK often, and its no-op span cost a start about 6 % of its CPU."""
    if not active():
        return False
    if not isinstance(_api.get_tracer_provider(), (_api.ProxyTracerProvider, _api.NoOpTracerProvider)):
        return True
    return _api.get_current_span().get_span_context().is_valid or isinstance(environ.get("HTTP_TRACEPARENT"), str)


def _tracer() -> Any:
    # the global provider's tracer: a proxy until the process configures its SDK
    return _api.get_tracer(INSTRUMENTATION)


def traced_start(spec: "TaskSpec", environ: Mapping[str, Any], start: Callable[[str], "TaskRecord"]) -> "TaskRecord":
    """``start(traceparent)`` in the start call's span; the task it returns (another
    one's, for a known idempotency key) is named on the span."""
    import opentelemetry.propagate as propagate

    current = _api.get_current_span().get_span_context()
    parent = None
    if not current.is_valid:  # no instrumented server around: the request's headers
        headers = {name: environ[key] for name, key in (("traceparent", "HTTP_TRACEPARENT"),
                                                         ("tracestate", "HTTP_TRACESTATE"))
                   if isinstance(environ.get(key), str)}
        parent = propagate.extract(headers) if headers else None
    with _tracer().start_as_current_span(f"{spec.ref.service}.{spec.name} start", context=parent,
                                         kind=_api.SpanKind.PRODUCER) as span:
        carrier: dict[str, str] = {}
        propagate.inject(carrier)
        record = start(_pack(carrier))
        span.set_attribute("ladon_tasks.task_id", record.task_id)
        span.set_attribute("ladon_tasks.state", record.state.value)
        return record


def _pack(carrier: Mapping[str, str]) -> str:
    """The carrier as stored: ``traceparent``, and ``tracestate`` after a newline (a
    header value holds none)."""
    parent = carrier.get("traceparent", "")
    state = carrier.get("tracestate", "")
    return f"{parent}\n{state}" if parent and state else parent


def _unpack(trace: str) -> dict[str, str]:
    parent, _, state = trace.partition("\n")
    return {"traceparent": parent, **({"tracestate": state} if state else {})}


def run_traced(job: "Job", attempt: int, run: Callable[[], "Outcome"]) -> "Outcome":
    """``run()`` - one attempt of the job's body - in its span, a child of the start
    call's; before the first attempt, the queue wait as a span of its own."""
    if not active():
        return run()
    import opentelemetry.propagate as propagate

    with contextlib.suppress(Exception):  # the service module configures the SDK, maybe: import it first
        job.ref.resolve()
    parent = propagate.extract(_unpack(job.trace))
    tracer = _tracer()
    name = f"{job.ref.service}.{job.ref.method}"
    attributes = {"ladon_tasks.task_id": job.task_id, "ladon_tasks.attempt": attempt, "ladon_tasks.queue": job.queue}
    if attempt == 1 and job.submitted_at:
        now = time.time_ns()
        queued = tracer.start_span(f"{name} queued", context=parent, kind=_api.SpanKind.CONSUMER,
                                   start_time=min(now, int(job.submitted_at * 1e9)), attributes=attributes)
        queued.end(end_time=now)
    with tracer.start_as_current_span(name, context=parent, kind=_api.SpanKind.CONSUMER, attributes=attributes,
                                      record_exception=False, set_status_on_exception=False) as span:
        outcome = run()
        span.set_attribute("ladon_tasks.outcome", outcome.kind)
        if outcome.kind == "failed":
            span.add_event("exception", {"exception.type": outcome.error_type,
                                         "exception.message": outcome.error_message})
            span.set_attribute("ladon_tasks.retryable", bool(outcome.retry))
            span.set_status(_api.Status(_api.StatusCode.ERROR, f"{outcome.error_type}: {outcome.error_message}"))
        return outcome


@contextlib.contextmanager
def step_span(name: str) -> Iterator[None]:
    """A step of a traced body, as a span in its attempt's."""
    with _tracer().start_as_current_span(f"step {name}", attributes={"ladon_tasks.step": name}):
        yield
