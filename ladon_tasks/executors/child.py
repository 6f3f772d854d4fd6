"""The child side of the process executor: ``python -m ladon_tasks.executors.child R W``.

Started with a fresh interpreter (never a fork of a threaded web server), it inherits
only the two pipe descriptors it is given - never the server's listening socket - and
runs one job at a time. Every message either way is one JSON document:

* parent -> child: ``{"t": "path", "sys_path": [...]}`` once, then
  ``{"t": "job", "job": {...}, "attempt": n}``;
* child -> parent: ``{"t": "progress", "p": 0.5, "m": "..."}`` and ``{"t": "touch"}``
  any number of times, then ``{"t": "done", "outcome": {...}}``.

The parent enforces cancel and timeout by killing this process, so the child needs no
way to be told.
"""

from __future__ import annotations

import json
import sys
from multiprocessing.connection import Connection

from ladon_tasks.executors.base import Job, Reporter, run_body


class PipeReporter(Reporter):
    def __init__(self, events: Connection) -> None:
        self.events = events

    def progress(self, value: float | None, message: str | None) -> bool:
        self.events.send_bytes(json.dumps({"t": "progress", "p": value, "m": message}).encode())
        return True

    def touch(self) -> None:
        self.events.send_bytes(b'{"t": "touch"}')


def serve(jobs: Connection, events: Connection) -> None:
    reporter = PipeReporter(events)
    while True:
        try:
            message = json.loads(jobs.recv_bytes())
        except EOFError:
            return
        if message["t"] == "path":
            for entry in reversed(message["sys_path"]):
                if entry not in sys.path:
                    sys.path.insert(0, entry)
        elif message["t"] == "job":
            outcome = run_body(Job.from_json(message["job"]), message["attempt"], reporter)
            events.send_bytes(json.dumps({"t": "done", "outcome": outcome.to_json()}).encode())


def main(argv: list[str]) -> None:
    jobs = Connection(int(argv[0]), writable=False)
    events = Connection(int(argv[1]), readable=False)
    serve(jobs, events)


if __name__ == "__main__":
    main(sys.argv[1:])
