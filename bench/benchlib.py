"""What the bench scripts share besides ``tests.support``: their deadlines, client threads
released together, errors counted by kind instead of ending a run, percentiles, and the
environment a run's figures depend on.

Every bench measures its servers with the same client (``tests.support.jsonwsp``'s
keep-alive ``JsonWsp``): a difference in client cost between two benches would read as a
difference between the servers.
"""

from __future__ import annotations

import argparse
import http.client
import os
import platform
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from tests.support.jsonwsp import HttpError, JsonWsp, Served, WireFault

BENCH_DIR = Path(__file__).resolve().parent
SERVICES_DIR = BENCH_DIR / "services"
OUTPUT_DIR = BENCH_DIR / "output"

#: Longest any single request may take before the bench gives up on a server.
REQUEST_TIMEOUT = 60.0
#: Longest a client waits for one task to finish before calling it lost.
TASK_DEADLINE = 30.0
#: Longest a server or worker may take to start answering.
STARTUP_DEADLINE = 60.0
#: Examples kept per kind of error, for the report.
EXAMPLES = 3
#: Redis commands the benches send themselves (counters, MONITOR and its end marker):
#: left out of a system's ``INFO commandstats``.
BENCH_COMMANDS = frozenset({"info", "config|resetstat", "config", "memory|stats", "monitor", "echo", "client|list"})


class GiveUp(RuntimeError):
    """A phase cannot sensibly go on: its system failed more often than the phase allows,
    or part of it died (a dead server fails every call at once, a dead worker makes every
    wait run out). The phase ends, and its row says why."""


def error_kind(error: BaseException) -> str:
    """A short name for a failed call, to count it by: ``fault NAME`` (ladon-tasks'
    fault strings start with their name; Ladon's are prose, kept short), ``http
    STATUS``, ``connection ERROR``, or the exception's type."""
    if isinstance(error, WireFault):
        head = error.string.split(":", 1)[0].strip()
        return f"fault {head}" if head and len(head) <= 40 and " " not in head else f"fault '{error.string[:60]}'"
    if isinstance(error, HttpError):
        return f"http {error.status}"
    if isinstance(error, (OSError, http.client.HTTPException)):
        return f"connection {type(error).__name__}"
    return type(error).__name__


@dataclass
class Faults:
    """Failed calls and tasks, counted by kind with a few examples, from any thread.

    A fault or crash is a figure of the row it happened in, not the end of the run;
    past ``limit`` faults the phase gives up (:class:`GiveUp`)."""

    limit: int | None = None
    counts: Counter = field(default_factory=Counter)
    examples: dict[str, list[str]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def count(self, error: BaseException | str, kind: str | None = None) -> None:
        """Count one error (an exception, or a message with its ``kind``)."""
        kind = kind or (error_kind(error) if isinstance(error, BaseException) else "error")
        message = f"{type(error).__name__}: {error}" if isinstance(error, BaseException) else error
        with self._lock:
            self.counts[kind] += 1
            kept = self.examples.setdefault(kind, [])
            if len(kept) < EXAMPLES:
                kept.append(message[:300])
            total = sum(self.counts.values())
        if self.limit is not None and total > self.limit:
            raise GiveUp(f"gave up after {total} errors ({', '.join(self.summary())})")

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def summary(self) -> list[str]:
        """``kind: n`` per kind, most frequent first."""
        return [f"{kind}: {n:,}" for kind, n in self.counts.most_common()]

    def to_json(self) -> dict[str, Any]:
        return {"total": self.total, "by_kind": dict(self.counts.most_common()), "examples": self.examples}


def attempt(faults: Faults, action: Callable[[], Any], pause: float = 0.0,
            died: Callable[[], list[str]] | None = None) -> bool:
    """Run ``action``: True when it succeeds. A failure is counted in ``faults`` instead of
    raised; then, if ``died()`` names processes of the system that have exited, or past
    the faults' limit, :class:`GiveUp` ends the phase; otherwise ``pause`` seconds pass,
    so that a broken system is not hammered in a loop."""
    try:
        action()
        return True
    except GiveUp:
        raise
    except Exception as error:  # noqa: BLE001 - counted in the row
        faults.count(error)
        dead = died() if died is not None else []
        if dead:
            raise GiveUp("crashed: " + "; ".join(dead)) from None
        time.sleep(pause)
        return False


def run_together(handles: list[Any], work: Callable[[Any], None], timeout: float,
                 prepare: Callable[[Any], None] | None = None) -> float:
    """Run ``work(handle)`` in one thread per handle, released together by a barrier
    after ``prepare(handle)`` has run in each (opening its connection, say); wall seconds
    from the release. The first exception of any thread is raised once all have ended,
    and so is a thread still busy after ``timeout`` seconds."""
    barrier = threading.Barrier(len(handles) + 1)
    errors: list[BaseException] = []

    def body(handle: Any) -> None:
        try:
            if prepare is not None:
                prepare(handle)
        except BaseException as exc:  # reported below; the thread still meets the barrier
            errors.append(exc)
        barrier.wait()
        if errors:
            return
        try:
            work(handle)
        except BaseException as exc:  # reported below, from the main thread
            errors.append(exc)

    threads = [threading.Thread(target=body, args=(handle,), daemon=True) for handle in handles]
    for thread in threads:
        thread.start()
    barrier.wait()
    started = time.perf_counter()
    for thread in threads:
        thread.join(max(0.0, started + timeout - time.perf_counter()))
    elapsed = time.perf_counter() - started
    if errors:
        raise errors[0]
    if any(thread.is_alive() for thread in threads):
        raise GiveUp(f"client threads did not finish within {timeout:.0f}s")
    return elapsed


def in_threads(server: Served, service: str, count: int, work: Callable[[JsonWsp], None],
               retry_reused: bool = True) -> float:
    """Run ``work`` in ``count`` threads, each with its own client; wall seconds.

    Each client's connection is opened before the clock starts, so the time covers
    requests only (a server that closes every connection makes clients reconnect
    anyway)."""
    clients = [JsonWsp(server, service, timeout=REQUEST_TIMEOUT, retry_reused=retry_reused) for _ in range(count)]
    try:
        return run_together(clients, work, REQUEST_TIMEOUT + TASK_DEADLINE, prepare=JsonWsp.open)
    finally:
        for client in clients:
            client.close()


def wait_result(client: JsonWsp, method: str, task_id: str) -> Any:
    """ladon-tasks' ``<method>_wait_result``: one request that returns the result the
    moment the task has finished, asked again while it answers ``TaskNotFinished``
    (its wait ran out first), for up to ``TASK_DEADLINE`` seconds."""
    deadline = time.monotonic() + TASK_DEADLINE
    while True:
        try:
            return client(f"{method}_wait_result", task_id=task_id, seconds=10.0)
        except WireFault as fault:
            if fault.name != "TaskNotFinished" or time.monotonic() > deadline:
                raise


def call_rate(server: Served, service: str, clients: int, seconds: float, method: str,
              args: dict[str, Any]) -> tuple[int, float]:
    """``method(**args)`` as fast as ``clients`` threads can call it for ``seconds``:
    the calls made and the wall seconds they took."""
    counts: list[int] = []
    limit = 1_000_000  # a bound on the loop whatever the clock does

    def work(client: JsonWsp) -> None:
        deadline = time.perf_counter() + seconds
        done = 0
        while time.perf_counter() < deadline and done < limit:
            client(method, **args)
            done += 1
        counts.append(done)

    elapsed = in_threads(server, service, clients, work)
    return sum(counts), elapsed


def stop_each(steps: Sequence[Callable[[], Any]]) -> None:
    """Run every stop step whatever the others did: a bench's servers, workers and
    redis-server must all go, even when one of them fails to stop cleanly."""
    for step in steps:
        try:
            step()
        except Exception:  # noqa: BLE001 - stopping the rest matters more
            pass


def text_table(rows: Sequence[Sequence[str]], left: int = 1) -> str:
    """``rows`` (the first one the header) as aligned columns under a rule: the first
    ``left`` columns flush left, numbers flush right."""
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    lines = []
    for number, row in enumerate(rows):
        cells = [cell.ljust(width) if column < left else cell.rjust(width)
                 for column, (cell, width) in enumerate(zip(row, widths, strict=True))]
        lines.append("  ".join(cells).rstrip())
        if number == 0:
            lines.append("  ".join("-" * width for width in widths))
    return "\n".join(lines)


def ratio(value: float, best: float) -> str:
    """``value / best`` as ``1.23x``; ``-`` where either is missing (zero or NaN)."""
    return f"{value / best:.2f}x" if best and value and value == value else "-"


def percentile(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile of ``values``; NaN for none."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(fraction * len(ordered) + 0.5) - 1))]


def arguments(doc: str | None, name: str, quick: str) -> argparse.ArgumentParser:
    """A bench's command line, with the options every bench has: ``--quick`` (what it
    shrinks the run to) and ``--output`` (``bench/output/NAME.json`` by default)."""
    parser = argparse.ArgumentParser(description=(doc or "").split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help=f"{quick}: a smoke run, figures not judged")
    parser.add_argument("--output", type=Path, default=OUTPUT_DIR / f"{name}.json", help="where the JSON goes")
    return parser


def wanted(label: str, words: list[str] | None) -> bool:
    """For ``--only WORD...``: whether ``label`` holds one of ``words`` (any label, without words)."""
    return not words or any(word.lower() in label.lower() for word in words)


def environment(*packages: str) -> dict[str, Any]:
    """What the figures depend on besides the code: interpreter, libraries, cores."""
    from importlib.metadata import PackageNotFoundError, version

    found: dict[str, Any] = {"python": platform.python_version(), "cpus": os.cpu_count(),
                             "machine": platform.machine()}
    for package in ("ladon", "werkzeug", "waitress", "redis", *packages):
        try:
            found[package] = version(package)
        except PackageNotFoundError:
            found[package] = None
    return found
