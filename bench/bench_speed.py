"""Speed bench: the speed targets of the queue, the worker and the web path, judged
together, several runs in a row.

The targets are figures of three benches, each with its own tables: the raw queue
(:mod:`bench.bench_queue`), one worker draining a full queue (:mod:`bench.bench_worker`)
and the web path on ``serve`` and under Apache (:mod:`bench.bench_web`). Each run starts
the three, one after another, as child processes of the same Python, with only the
systems the targets need:

- ``bench_queue --only "ladon-tasks API" huey``;
- ``bench_worker`` (2 and 8 slots, ours and huey);
- ``bench_web --only ladon-tasks huey dramatiq ceiling`` (``--no-apache``: the serve
  stack only).

Each writes its JSON and log to ``bench/output/speed/run-N/``. From the JSON files this
script prints one table: a row per target, a column per run (the ratio, met or missed),
and in how many runs each was met; under it, each run's noise (CPU stolen and used by
other processes while its benches measured, summed over the three; :mod:`bench.noise`'s
limits say whether it was too noisy to judge) and load average, then the figures behind
the ratios. A bench that fails in one run is reported in that run's cells
(``failed: ...``), and the runs go on. The summary goes to ``bench/output/speed.json``.
``--quick`` passes ``--quick`` down: a smoke run, figures not judged.

    python -m bench.bench_speed [--quick] [--runs 3] [--no-apache] [--output bench/output/speed.json]
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

from bench import peers
from bench.bench_web import PEER_TARGET, main_http
from bench.benchlib import arguments, environment, text_table
from bench.noise import CpuShare
from tests.support.processes import spawn, stop_process_group
from tests.support.servers import ROOT

#: Longest one bench may take before it is stopped as stuck: a full web run takes about
#: 10 minutes on 2 cores, and each bench bounds its own phases well within this.
BENCH_DEADLINE = 3600.0
#: Seconds a bench stopped as stuck gets (after SIGINT) to stop its servers, workers and
#: Redis in its own ``finally`` blocks before its group is killed.
STOP_GRACE = 120.0
#: Characters of a failure kept in a table cell (the JSON and the list under the table
#: keep it whole).
CELL_WIDTH = 48
#: What a cell says of a target of a stack the run left out.
NOT_MEASURED = "not measured"


@dataclass(frozen=True)
class Bench:
    """One bench of a run: its module's name and the arguments that measure what the
    targets need."""

    name: str
    args: tuple[str, ...]

    def command(self, quick: bool, output: Path) -> list[str]:
        return [sys.executable, "-m", f"bench.bench_{self.name}", *self.args, *(["--quick"] if quick else []),
                "--output", str(output)]


def benches(apache: bool) -> list[Bench]:
    """The three benches of a run, in the order they run."""
    return [
        Bench("queue", ("--only", "ladon-tasks API", "huey")),
        Bench("worker", ()),
        Bench("web", ("--only", "ladon-tasks", "huey", "dramatiq", "ceiling", *([] if apache else ["--no-apache"]))),
    ]


class Missing(Exception):
    """A figure a target needs is not in its bench's JSON: the bench or the row failed."""


@dataclass(frozen=True)
class Figure:
    """A target's ratio in one run, and the two figures it divides."""

    ratio: float
    detail: str


@dataclass(frozen=True)
class Target:
    """One target of the issue: a ratio read from one bench's JSON, at least or at most
    ``goal``."""

    name: str
    bench: str
    goal: float
    at_least: bool
    figure: Callable[[dict[str, Any]], Figure]
    #: Measured only with Apache's stack.
    apache: bool = False

    @property
    def goal_text(self) -> str:
        return f"{'>=' if self.at_least else '<='} {self.goal:.1f}x"

    def met(self, ratio: float) -> bool:
        return ratio >= self.goal if self.at_least else ratio <= self.goal


def _failed(row: dict[str, Any], label: str) -> Missing:
    return Missing(f"{label}: {row['error']}")


def queue_vs_huey(report: dict[str, Any]) -> Figure:
    """The best "ladon-tasks API" row's tasks/s over huey's, on the raw queue."""
    systems = report["systems"]
    huey_label = peers.huey().label
    huey = next((row for row in systems if row["label"] == huey_label), None)
    if huey is None or huey["error"] or not huey["tasks_per_s"]:
        raise _failed(huey, huey_label) if huey and huey["error"] else Missing(f"no figure of {huey_label}")
    ours = [row for row in systems if row["kind"] == "OursApi" and not row["error"] and row["tasks_per_s"]]
    if not ours:
        errors = [row for row in systems if row["kind"] == "OursApi" and row["error"]]
        raise _failed(errors[0], errors[0]["label"]) if errors else Missing("no ladon-tasks API row")
    top = max(ours, key=lambda row: row["tasks_per_s"])
    return Figure(top["tasks_per_s"] / huey["tasks_per_s"],
                  f"{top['tasks_per_s']:,.0f} ({top['label']}) / {huey['tasks_per_s']:,.0f} tasks/s")


def worker_vs_huey(slots: int) -> Callable[[dict[str, Any]], Figure]:
    """Our worker's CPU per task over huey's consumer's at ``slots`` slots (medians)."""

    def figure(report: dict[str, Any]) -> Figure:
        rows = {row["kind"]: row for row in report["rows"] if row["slots"] == slots}
        for kind in ("ours", "huey"):
            row = rows.get(kind)
            if row is None:
                raise Missing(f"no {kind} row at {slots} slots")
            if row["error"] or not row["cpu_us"]:
                raise _failed(row, row["label"])
        ours, huey = rows["ours"]["cpu_us_median"], rows["huey"]["cpu_us_median"]
        if huey <= 0:
            raise Missing(f"huey's CPU per task at {slots} slots is {huey:.0f} µs")
        return Figure(ours / huey, f"{ours:,.0f} / {huey:,.0f} µs")

    return figure


def _best(rows: list[dict[str, Any]], what: str) -> dict[str, Any]:
    """The fastest of ``rows``; :class:`Missing` with the first failure when none has a rate."""
    measured = [row for row in rows if not row["error"] and row["tasks_per_s"]]
    if measured:
        return max(measured, key=lambda row: row["tasks_per_s"])
    failed = [row for row in rows if row["error"]]
    raise _failed(failed[0], failed[0]["system"]) if failed else Missing(f"no {what} row")


def _stack(report: dict[str, Any], stack: str) -> list[dict[str, Any]]:
    if stack not in report["stacks"]:
        raise Missing(f"no {stack} stack")
    return report["stacks"][stack]


def queue_vs_peer(stack: str) -> Callable[[dict[str, Any]], Figure]:
    """The best ladon-tasks queue row's tasks/s over the best hand-wired peer's on the
    same HTTP server (waitress on ``serve``, Apache on ``apache``)."""

    def figure(report: dict[str, Any]) -> Figure:
        rows = _stack(report, stack)
        queue = _best([row for row in rows if row["group"] == "ours" and row["executor"] == "queue"], "queue")
        peer = _best([row for row in rows if row["group"] == "peer" and row["http"] == main_http(stack)],
                     f"hand-wired peer on {main_http(stack)}")
        return Figure(queue["tasks_per_s"] / peer["tasks_per_s"],
                      f"{queue['tasks_per_s']:,.0f} / {peer['tasks_per_s']:,.0f} ({peer['system']}) tasks/s")

    return figure


def thread_vs_queue(stack: str) -> Callable[[dict[str, Any]], Figure]:
    """The thread executor's tasks/s over the best ladon-tasks queue row's, on ``stack``."""

    def figure(report: dict[str, Any]) -> Figure:
        rows = _stack(report, stack)
        queue = _best([row for row in rows if row["group"] == "ours" and row["executor"] == "queue"], "queue")
        thread = _best([row for row in rows if row["group"] == "ours" and row["executor"] == "thread"],
                       "thread executor")
        return Figure(thread["tasks_per_s"] / queue["tasks_per_s"],
                      f"{thread['tasks_per_s']:,.0f} / {queue['tasks_per_s']:,.0f} tasks/s")

    return figure


#: The targets, in the order of the table.
TARGETS = (
    Target("raw queue: best ladon-tasks API / huey, tasks/s", "queue", 1.5, True, queue_vs_huey),
    Target("worker CPU per task, ours / huey, 2 slots", "worker", 1.0, False, worker_vs_huey(2)),
    Target("worker CPU per task, ours / huey, 8 slots", "worker", 1.0, False, worker_vs_huey(8)),
    Target("serve: best queue / best hand-wired on waitress", "web", PEER_TARGET["serve"], True,
           queue_vs_peer("serve")),
    Target("apache: best queue / best hand-wired under Apache", "web", PEER_TARGET["apache"], True,
           queue_vs_peer("apache"), apache=True),
    Target("serve: thread executor / best queue", "web", 1.0, True, thread_vs_queue("serve")),
    Target("apache: thread executor / best queue", "web", 1.0, True, thread_vs_queue("apache"), apache=True),
)


# -- a run ----------------------------------------------------------------------------------


@dataclass
class BenchRun:
    """One bench in one run: how it ended and what it measured."""

    name: str
    command: list[str]
    output: Path
    log: Path
    exit: int | None = None
    seconds: float = 0.0
    error: str | None = None
    report: dict[str, Any] | None = None

    @property
    def cpu(self) -> CpuShare | None:
        """The CPU shares over the windows the bench measured, from its JSON."""
        if self.report is None:
            return None
        cpu = self.report["cpu"]
        return CpuShare(cpu["wall"], cpu["capacity"], cpu["busy"], cpu["steal"], cpu["own"])

    def to_json(self) -> dict[str, Any]:
        cpu = self.cpu
        return {"command": self.command, "output": str(self.output), "log": str(self.log), "exit": self.exit,
                "seconds": round(self.seconds, 1), "error": self.error, "cpu": cpu.to_json() if cpu else None}


@dataclass
class Outcome:
    """One target in one run: its figure, or why there is none."""

    figure: Figure | None = None
    met: bool | None = None
    error: str | None = None

    @property
    def failed(self) -> bool:
        """No figure where one was to be measured."""
        return self.error is not None and not self.error.startswith(NOT_MEASURED)

    @property
    def detail(self) -> str:
        return self.figure.detail if self.figure else "-"

    def to_json(self) -> dict[str, Any]:
        return {"ratio": self.figure.ratio if self.figure else None,
                "detail": self.figure.detail if self.figure else None, "met": self.met, "error": self.error}


@dataclass
class Run:
    """One run: the three benches one after another, the load average before and after,
    and each target's outcome."""

    number: int
    load: list[float] = field(default_factory=list)
    seconds: float = 0.0
    benches: dict[str, BenchRun] = field(default_factory=dict)
    outcomes: dict[str, Outcome] = field(default_factory=dict)

    @property
    def cpu(self) -> CpuShare:
        """The CPU shares over every window its benches measured."""
        total = CpuShare()
        for bench in self.benches.values():
            total = total + (bench.cpu or CpuShare())
        return total

    def to_json(self) -> dict[str, Any]:
        return {"number": self.number, "load": self.load, "seconds": round(self.seconds, 1),
                "cpu": self.cpu.to_json(), "benches": {name: bench.to_json() for name, bench in self.benches.items()},
                "targets": {name: outcome.to_json() for name, outcome in self.outcomes.items()}}


def _last_line(path: Path) -> str:
    """The last line a bench wrote (a traceback's last line says what failed)."""
    try:
        lines = [line.strip() for line in path.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return ""
    return lines[-1][:300] if lines else ""


def run_bench(bench: Bench, quick: bool, run_dir: Path) -> BenchRun:
    """One bench as a child process leading its own process group, its output in a log; stopped
    (SIGINT, so that its own ``finally`` blocks stop its servers) once past
    ``BENCH_DEADLINE``, or when this script is interrupted."""
    output, log = run_dir / f"{bench.name}.json", run_dir / f"{bench.name}.log"
    result = BenchRun(bench.name, bench.command(quick, output), output, log)
    began = time.perf_counter()
    process = spawn(result.command, log, ROOT)
    try:
        result.exit = process.wait(timeout=BENCH_DEADLINE)
    except subprocess.TimeoutExpired:
        result.error = f"stopped after {BENCH_DEADLINE:.0f} s"
    finally:
        if process.poll() is None:
            stop_process_group(process, signal.SIGINT, STOP_GRACE)
    result.seconds = time.perf_counter() - began
    if result.error is None and result.exit != 0:
        result.error = f"exited with {result.exit}: {_last_line(log)}"
    if result.error is None:
        try:
            result.report = json.loads(output.read_text())
        except (OSError, ValueError) as error:
            result.error = f"no figures: {type(error).__name__}: {error}"
    return result


def judge(run: Run, quick: bool, apache: bool) -> None:
    """Each target's figure from its bench's JSON."""
    for target in TARGETS:
        if target.apache and not apache:
            run.outcomes[target.name] = Outcome(error=f"{NOT_MEASURED} (--no-apache)")
            continue
        bench = run.benches[target.bench]
        if bench.report is None:
            run.outcomes[target.name] = Outcome(error=f"bench_{bench.name} {bench.error}")
            continue
        try:
            figure = target.figure(bench.report)
        except Missing as error:
            run.outcomes[target.name] = Outcome(error=str(error))
            continue
        except (KeyError, TypeError, ValueError) as error:  # a JSON of another shape
            run.outcomes[target.name] = Outcome(error=f"unreadable: {type(error).__name__}: {error}")
            continue
        run.outcomes[target.name] = Outcome(figure, None if quick else target.met(figure.ratio))


def one_run(number: int, quick: bool, apache: bool, run_dir: Path) -> Run:
    shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.mkdir(parents=True)
    run = Run(number, load=[os.getloadavg()[0]])
    began = time.perf_counter()
    for bench in benches(apache):
        result = run_bench(bench, quick, run_dir)
        run.benches[bench.name] = result
        note = f"  FAILED: {result.error}" if result.error else ""
        print(f"  run {number}: bench_{bench.name:<7} {result.seconds:6.0f} s{note}", file=sys.stderr, flush=True)
    run.seconds = time.perf_counter() - began
    run.load.append(os.getloadavg()[0])
    judge(run, quick, apache)
    return run


# -- the report -----------------------------------------------------------------------------


def cell(outcome: Outcome, quick: bool) -> str:
    if outcome.error is not None:
        text = f"failed: {outcome.error}" if outcome.failed else outcome.error
        return text if len(text) <= CELL_WIDTH else text[:CELL_WIDTH - 3] + "..."
    assert outcome.figure is not None
    verdict = "not judged" if quick else ("met" if outcome.met else "missed")
    return f"{outcome.figure.ratio:.2f}x {verdict}"


def tally(target: Target, runs: list[Run], quick: bool, apache: bool) -> str:
    """``met in k of N`` for one target."""
    if quick:
        return "not judged: quick run"
    if target.apache and not apache:
        return "not measured"
    met = sum(1 for run in runs if run.outcomes[target.name].met)
    return f"{met} of {len(runs)}"


def format_report(runs: list[Run], quick: bool, apache: bool) -> str:
    header = ("target", "goal", *(f"run {run.number}" for run in runs), "met in k of N")
    table = [header]
    for target in TARGETS:
        table.append((target.name, target.goal_text, *(cell(run.outcomes[target.name], quick) for run in runs),
                      tally(target, runs, quick, apache)))
    lines = [text_table(table, left=1), ""]
    for run in runs:
        cpu = run.cpu
        per_bench = "; ".join(
            f"{name} {100 * share.steal_share:.1f} % / {100 * share.others_share:.1f} %"
            + (" noisy" if share.noisy else "")
            for name, bench in run.benches.items() if (share := bench.cpu) is not None)
        lines.append(f"run {run.number}: {run.seconds:.0f} s, load average {run.load[0]:.1f} -> {run.load[1]:.1f}; "
                     f"stolen / used elsewhere by bench: {per_bench or '-'}")
        lines.append(f"       over all three: {cpu.describe()}")
    lines += ["", "the figures behind the ratios:"]
    figures = [("target", *(f"run {run.number}" for run in runs))]
    for target in TARGETS:
        figures.append((target.name, *(run.outcomes[target.name].detail for run in runs)))
    lines.append(text_table(figures, left=len(figures[0])))
    failures = [(run.number, target.name, outcome.error) for run in runs for target in TARGETS
                if (outcome := run.outcomes[target.name]).failed]
    if failures:
        lines += ["", "failures:"] + [f"  run {number}, {name}: {error}" for number, name, error in failures]
    lines.append("")
    if quick:
        lines.append("quick run: too short for the figures to be judged against the targets")
    else:
        every = all(run.outcomes[target.name].met for run in runs for target in TARGETS
                    if apache or not target.apache)
        noisy = [str(run.number) for run in runs if run.cpu.noisy]
        lines.append(f"every target met in each of the {len(runs)} run(s): {'yes' if every else 'no'}"
                     + (f"; too noisy to judge: run {', '.join(noisy)}" if noisy else "; every run quiet enough")
                     + ("" if apache else "; Apache's targets not measured (--no-apache)"))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = arguments(__doc__, "speed", "each bench's --quick")
    parser.add_argument("--runs", type=int, default=3, help="runs in a row (default 3)")
    parser.add_argument("--no-apache", action="store_true", help="bench_web's serve stack only")
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    apache = not args.no_apache
    output: Path = args.output
    output.parent.mkdir(parents=True, exist_ok=True)
    runs_dir = output.parent / output.stem
    began = time.perf_counter()
    runs = [one_run(number, args.quick, apache, runs_dir / f"run-{number}") for number in range(1, args.runs + 1)]
    elapsed = time.perf_counter() - began
    print(format_report(runs, args.quick, apache))
    print(f"{len(runs)} run(s) in {elapsed:.0f} s; each bench's tables and figures: {runs_dir}/run-N/")
    report = {
        "environment": environment("huey", "dramatiq", "mod_wsgi"),
        "plan": {"runs": args.runs, "quick": args.quick, "apache": apache,
                 "benches": [asdict(bench) for bench in benches(apache)]},
        "seconds": round(elapsed, 1),
        "targets": [{"name": target.name, "bench": target.bench, "goal": target.goal, "at_least": target.at_least,
                     "met_runs": None if args.quick else sum(1 for run in runs if run.outcomes[target.name].met)}
                    for target in TARGETS],
        "runs": [run.to_json() for run in runs],
    }
    output.write_text(json.dumps(report, indent=2) + "\n")
    print(f"figures written to {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
