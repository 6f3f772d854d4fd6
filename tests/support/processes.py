"""Child processes of the tests and the benches: started in a session of their own with
their output in a log, and stopped by their pid or their process group - never by name,
so nothing but what a test or bench started is ever touched."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Iterator

#: Seconds a process gets to exit after SIGTERM before it is killed.
STOP_GRACE = 10.0


def spawn(command: list[str], log_path: Path, cwd: Path, env: dict[str, str] | None = None) -> subprocess.Popen:
    """Start ``command`` in its own session (so its whole group can be stopped at once),
    stdout and stderr written to ``log_path``, with ``env`` over this process's."""
    with open(log_path, "wb") as log:
        return subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, cwd=str(cwd),
            env={**os.environ, **(env or {})}, start_new_session=True,
        )


def stop_process(process: subprocess.Popen, signum: int = signal.SIGTERM, grace: float = STOP_GRACE) -> None:
    """Send ``signum`` to one child by its pid, and SIGKILL it if it is still there after
    ``grace`` seconds."""
    if process.poll() is None:
        process.send_signal(signum)
        try:
            process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    if process.stdout is not None:
        process.stdout.close()


def stop_process_group(process: subprocess.Popen, signum: int = signal.SIGTERM, grace: float = STOP_GRACE) -> None:
    """Stop a child started in its own session and everything it started (workers fork or
    spawn children of their own) through its process group; what is left after ``grace``
    seconds, or after the leader exited, is killed."""
    if process.poll() is None:
        try:
            os.killpg(process.pid, signum)
            process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        except ProcessLookupError:
            pass
    try:  # children left behind by a leader that has exited
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    process.wait()
    if process.stdout is not None:
        process.stdout.close()


def process_alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie, killed but not yet reaped, counts as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    status = Path(f"/proc/{pid}/status")
    return not (status.exists() and "State:\tZ" in status.read_text())


@contextlib.contextmanager
def burn(count: int) -> Iterator[list[subprocess.Popen]]:
    """``count`` processes that each keep a CPU busy (``while True: pass``) for as long as
    the block runs - the other work of a busy host - stopped by their pids at the end."""
    burners: list[subprocess.Popen] = []
    try:
        for _ in range(count):
            burners.append(subprocess.Popen([sys.executable, "-c", "while True: pass"], start_new_session=True))
        yield burners
    finally:
        for burner in burners:
            stop_process(burner, signal.SIGKILL)
