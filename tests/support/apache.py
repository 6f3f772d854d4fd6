"""Real Apache for the tests and the benches: ``mod_wsgi-express`` set up in a server
root, with daemon processes running as ``www-data`` (when started as root: Apache refuses
to run them as root), started and stopped with the ``apachectl`` it writes, so only this
Apache is ever stopped. Where Apache or mod_wsgi is missing the test is skipped -
failed under CI, which must run it (:mod:`.needs`)."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import stat
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Sequence

from .needs import require
from .processes import process_alive
from .servers import ROOT, free_port, wait_until

HANDLER = ROOT / "deploy" / "apache" / "handler.wsgi"
USER = "www-data"
#: ``setup-server`` options besides the ones every ModWsgi gets, as ``deploy/apache``
#: recommends: every front-end child started at once (an event MPM that starts one child
#: and grows sheds its idle keep-alive connections while it grows), room for 200 clients.
EXPRESS_OPTIONS = ("--initial-workers", "1", "--max-clients", "200")


def traversable_by_others(path: Path) -> bool:
    for directory in [path, *path.parents]:
        if directory.exists() and not directory.stat().st_mode & stat.S_IXOTH:
            return False
    return True


def prepared_root(root: Path) -> Path:
    """``root``, emptied, for the server roots of a test's Apaches - once Apache is
    installed and its daemons' user can reach Python and ``root`` (else the test is
    skipped, or failed under CI)."""
    require(shutil.which("apache2") is not None or Path("/usr/sbin/apache2").exists(),
            "Apache is not installed (apt-get install apache2 apache2-dev)")
    require(traversable_by_others(Path(os.path.realpath(sys.base_prefix))),
            f"{USER} cannot reach the Python installation at {sys.base_prefix} (grant o+x on its parents)")
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    for directory in [root, *root.parents]:
        if directory == Path("/"):
            break
        require(traversable_by_others(directory), f"{USER} cannot reach {directory}")
    return root


class ApacheRoot:
    """An Apache whose files (configuration, pid file, error log) live in ``server_root``."""

    server_root: Path
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def error_log(self) -> str:
        path = self.server_root / "error_log"
        return path.read_text(errors="replace") if path.exists() else ""

    def main_pid(self) -> int | None:
        """The pid of Apache's parent process while it runs (its children and the daemons
        are below it), from its pid file."""
        try:
            return int((self.server_root / "httpd.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None


class ModWsgi(ApacheRoot):
    """``mod_wsgi-express`` set up in a server root, started and stopped with apachectl.

    ``settings`` are given as the deployment README says: in the environment of the
    command that starts Apache, so each daemon builds the application when it starts."""

    def __init__(self, server_root: Path, processes: int, settings: dict[str, str], handler: Path = HANDLER,
                 setenv: dict[str, str] | None = None, *, threads: int = 4,
                 express_options: Sequence[str] = EXPRESS_OPTIONS) -> None:
        self.server_root = server_root
        self.processes = processes
        self.threads = threads
        self.port = free_port()
        self.settings = settings
        #: Apache's parent process once started: its process group holds all of Apache.
        self.started_pid: int | None = None
        express = Path(sys.executable).parent / "mod_wsgi-express"
        require(express.exists(), "mod_wsgi-express is not installed (pip install mod_wsgi, needs apache2-dev)")
        command = [
            str(express), "setup-server", str(handler), "--port", str(self.port), "--host", "127.0.0.1",
            "--processes", str(processes), "--threads", str(self.threads), "--server-root", str(server_root),
            "--locale", "C.UTF-8", *express_options,
        ]
        if os.geteuid() == 0:
            command += ["--user", USER, "--group", USER]
        for name, value in (setenv or {}).items():  # Apache's SetEnv: seen by requests only
            command += ["--setenv", name, value]
        subprocess.run(command, check=True, capture_output=True, timeout=60)

    def start(self) -> "ModWsgi":
        subprocess.run([str(self.server_root / "apachectl"), "start"], check=True, capture_output=True, timeout=60,
                       env={**os.environ, **self.settings})

        def answers() -> bool:
            try:
                with urllib.request.urlopen(self.url + "/", timeout=2) as response:
                    return response.status == 200
            except urllib.error.HTTPError:
                return True  # Apache answers; the application's verdict is the test's business
            except OSError:
                return False

        try:
            wait_until(answers, timeout=30, what=f"Apache on {self.port}")
            self.started_pid = self.main_pid()
        except AssertionError as error:
            self.stop()
            raise AssertionError(f"{error}:\n{self.error_log()[-4000:]}") from None
        return self

    def stop(self) -> None:
        """``apachectl stop``, then wait until Apache's parent process (which stops its
        children and daemons first) has exited, not only until its pid file is gone.
        Whatever is left of its process group - all of an Apache whose parent died - is
        killed: every process of an Apache is in the group of its parent."""
        main_pid = self.main_pid() or self.started_pid
        try:
            if main_pid is not None and process_alive(main_pid):
                subprocess.run([str(self.server_root / "apachectl"), "stop"], capture_output=True, timeout=60)
                wait_until(lambda: not process_alive(main_pid), timeout=30, what="Apache to stop")
        finally:
            if main_pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(main_pid, signal.SIGKILL)
