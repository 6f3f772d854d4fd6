"""What Redis runs for one task, command by command: ``MONITOR`` around a few sequential
tasks of the queue bench, and each command of one task's life attributed to the step it
serves (store create + enqueue, claim, finish transition, acknowledgement, record reads),
with the commands its Lua script ran.

MONITOR costs Redis time, so it only wraps short samples, never a measured window.
"""

from __future__ import annotations

import hashlib
import threading
import time
from dataclasses import dataclass
from typing import Any

from tests.support.redis_server import RedisServer


@dataclass
class Command:
    """One command as MONITOR showed it: who sent it (``lua`` for script-internal ones)."""

    at: float
    client: str
    args: list[str]

    @property
    def name(self) -> str:
        return self.args[0].lower() if self.args else ""


class Monitor:
    """Every command Redis runs while the block is open, read on a side connection.

    MONITOR costs Redis time, so it only wraps short samples. The end is marked with an
    ``ECHO`` of a unique token, so the reader stops exactly after the sample.
    """

    def __init__(self, server: RedisServer) -> None:
        self.server = server
        self.commands: list[Command] = []
        self._token = f"bench-monitor-end-{time.time_ns()}"
        self._connection = server.client()
        self._monitor = self._connection.monitor()
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()

    def __enter__(self) -> "Monitor":
        self._monitor.__enter__()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()
        return self

    def _read(self) -> None:
        connection = self._monitor.connection
        while True:
            line = connection.read_response()
            if isinstance(line, bytes):
                line = line.decode(errors="replace")
            stamp, _, rest = line.partition(" ")
            client = rest[rest.index(" ") + 1: rest.index("]")]
            args = _split_monitor_args(rest[rest.index("]") + 2:])
            if args[:2] == ["ECHO", self._token] or args[:2] == ["echo", self._token]:
                return
            self.commands.append(Command(float(stamp), client, args))

    def __exit__(self, *exc: Any) -> None:
        self.server.counter().echo(self._token)
        assert self._thread is not None
        self._thread.join(timeout=10)
        self._monitor.__exit__(*exc)
        self._connection.close()


def _split_monitor_args(text: str) -> list[str]:
    """MONITOR quotes each argument and escapes quotes and backslashes inside it."""
    args: list[str] = []
    i = 0
    while i < len(text):
        if text[i] != '"':
            i += 1
            continue
        i += 1
        piece: list[str] = []
        while i < len(text) and text[i] != '"':
            if text[i] == "\\" and i + 1 < len(text):
                i += 1
            piece.append(text[i])
            i += 1
        args.append("".join(piece))
        i += 1
    return args



def _script_names() -> dict[str, str]:
    """SHA1 of each Lua script of the Redis backend -> a readable name (``common`` is
    shared, not a script of its own)."""
    from importlib import resources

    from ladon_tasks.redis import lua

    folder = resources.files("ladon_tasks.redis") / "scripts"
    names = [entry.name[:-4] for entry in folder.iterdir()
             if entry.name.endswith(".lua") and entry.name != "common.lua"]
    return {hashlib.sha1(lua.source(name).encode()).hexdigest(): name for name in names}


def _step(command: Command, scripts: dict[str, str], finished: bool) -> str:
    """Which step of a task's life a command serves, judged from the command alone."""
    name = command.name
    if name == "evalsha":
        script = scripts.get(command.args[1], "script " + command.args[1][:8])
        if script == "transition":
            target = command.args[5] if len(command.args) > 5 else "?"
            return {"running": "transition to running", "succeeded": "finish transition"}.get(
                target, f"transition to {target}")
        return {
            "create": "store create + enqueue", "report": "progress flush / cancel check",
            "move_due": "housekeeping (due retries)", "sweep": "housekeeping (index sweep)",
        }.get(script, script)
    if name == "xreadgroup":
        return "claim (XREADGROUP)"
    if name == "xack":
        return "acknowledge (lease release)"
    if name in ("xpending", "xclaim", "xinfo", "xtrim"):
        return "housekeeping (leases, trim)"
    if name in ("subscribe", "psubscribe"):
        return "wait subscription"
    if name == "hgetall":
        return "record read after finish" if finished else "record read before finish"
    return name


def lifecycle(commands: list[Command]) -> list[dict[str, Any]]:
    """The commands of the last task of the MONITOR sample, from its creation to the
    last read of its record: client, step, command, and the commands its script ran."""
    scripts = _script_names()
    creates = [i for i, c in enumerate(commands) if c.name == "evalsha" and scripts.get(c.args[1]) == "create"]
    if not creates:
        return []
    start = creates[-1]
    # the read before the next task's create (or the end) closes this task's life
    rows: list[dict[str, Any]] = []
    clients: dict[str, str] = {}
    finished = False
    t0 = commands[start].at
    current: dict[str, Any] | None = None
    for command in commands[start:]:
        if command.client == "lua":
            if current is not None:
                current["in_script"].append(command.name.upper())
            continue
        client = clients.setdefault(command.client, f"c{len(clients) + 1}")
        step = _step(command, scripts, finished)
        current = {"ms": round((command.at - t0) * 1000, 3), "client": client, "step": step,
                   "command": " ".join(a if len(a) <= 24 else a[:21] + "..." for a in command.args[:6]),
                   "in_script": []}
        rows.append(current)
        if step == "finish transition":
            finished = True
    return rows



def format_lifecycle(label: str, rows: list[dict[str, Any]]) -> str:
    """The rows of :func:`lifecycle` as text, with the count of commands per step."""
    if not rows:
        return ""
    lines = [f"one task's lifecycle, {label} (MONITOR; c1, c2...: client connections in order seen)"]
    for row in rows:
        inner = f"  [{len(row['in_script'])} in script: {' '.join(row['in_script'])}]" if row["in_script"] else ""
        lines.append(f"  {row['ms']:8.3f} ms  {row['client']:<4} {row['step']:<28} {row['command']}{inner}")
    steps: dict[str, list[int]] = {}
    for row in rows:
        entry = steps.setdefault(row["step"], [0, 0])
        entry[0] += 1
        entry[1] += len(row["in_script"])
    lines.append("  per step: " + "; ".join(f"{s} {n} (+{i})" for s, (n, i) in steps.items()))
    return "\n".join(lines)
