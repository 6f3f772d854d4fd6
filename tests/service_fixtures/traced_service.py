"""Task methods whose traces a test follows, and the OpenTelemetry SDK set up as a
deployment sets it up: in every process that imports the service (the web server, the
process executor's children, a worker and its children), spans go to the file named by
``TRACED_SPANS`` - the SDK's console exporter writing one JSON document per line, so
the test reads every process's spans in one place.

* ``stepped`` (thread executor) runs two steps and fails its first attempt when the
  file ``fail-once`` in ``marker_dir`` exists (and removes it), to be retried;
* ``inProcess`` (process executor) and ``queued`` (executor='queue') run one step each.
"""

import json
import os

from ladon.compat import PORTABLE_STRING

from ladon_tasks import ladonize


def _export_spans(path):
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import ConsoleSpanExporter, SimpleSpanProcessor

    out = open(path, 'a', buffering=1)  # one write per span, appended: every process's lines whole
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(ConsoleSpanExporter(
        out=out, formatter=lambda span: json.dumps(json.loads(span.to_json())) + '\n')))
    trace.set_tracer_provider(provider)


if os.environ.get('TRACED_SPANS'):
    _export_spans(os.environ['TRACED_SPANS'])


def _double(value):
    return value * 2


class TracedService(object):

    @ladonize(PORTABLE_STRING, int, rtype=int, tasktype=dict(retries=1, retry_delay=0.01))
    def stepped(self, marker_dir, value, **kw):
        doubled = kw['step']('double', _double, value, rtype=int)
        failing = os.path.join(marker_dir, 'fail-once')
        if os.path.exists(failing):
            os.remove(failing)
            raise RuntimeError('first attempt fails')
        return kw['step']('again', _double, doubled, rtype=int)

    @ladonize(int, rtype=int, tasktype=dict(executor='process'))
    def inProcess(self, value, **kw):
        return kw['step']('double', _double, value, rtype=int)

    @ladonize(int, rtype=int, tasktype=dict(executor='queue'))
    def queued(self, value, **kw):
        return kw['step']('double', _double, value, rtype=int)

    @ladonize(PORTABLE_STRING, rtype=[PORTABLE_STRING])
    def loadedModules(self, prefix, **kw):
        """The modules this server process has imported whose names start with ``prefix``."""
        import sys

        return sorted(name for name in sys.modules if name.startswith(prefix))
