"""``ladon-tasks apache-config``: a WSGI handler and an Apache virtual host for the
services of an installed ladon-tasks.

Writes into one directory:

* ``handler.wsgi`` - the settings (services, Redis, pool sizes) and one call of
  :func:`ladon_tasks.deployment.handler_application`; nothing of a checkout needed.
  It holds the Redis password and the dashboard token, so it is written 0640, of the
  daemons' group (:func:`write_secret`).
* ``ladon-tasks.conf`` - a virtual host for mod_wsgi daemon mode: the processes and
  threads asked for, this interpreter's environment as ``python-home``, a UTF-8
  locale, and ``WSGIImportScript`` so each daemon loads the application when it
  starts (a bad configuration is refused then, once, in the error log).
* ``wsgi.load`` - where mod_wsgi was installed with pip into this environment: the
  ``LoadModule`` line for it (a distribution's mod_wsgi is built for its own Python).

Refuses, before writing anything, what could not work: several processes without
Redis, a service file that does not exist.
"""

from __future__ import annotations

import grp
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from ladon_tasks import defaults

#: The daemon process group the virtual host defines.
PROCESS_GROUP = "ladon-tasks"

#: Mode of ``handler.wsgi``, which holds the Redis password and the dashboard token:
#: its owner writes it, the daemons' group reads it, nobody else.
HANDLER_MODE = 0o640

HANDLER_TEMPLATE = '''"""WSGI handler of {names}, written by `ladon-tasks apache-config`.

Apache loads it in each mod_wsgi daemon process at start (WSGIImportScript). A
configuration that cannot work is refused there, in one line of the error log.
Settings have the names of the environment variables ladon-tasks reads; those
written here win over the environment.
"""

from ladon_tasks.deployment import handler_application

SETTINGS = {settings}

application = handler_application(SETTINGS)
'''

VHOST_TEMPLATE = """# Apache virtual host for {names}, written by `ladon-tasks apache-config`.
#
# Enable it (Debian): copy to /etc/apache2/sites-available/, `a2ensite ladon-tasks`,
# and `systemctl reload apache2`. mod_wsgi must be built for this Python
# ({python}): see wsgi.load beside this file, or install your distribution's mod_wsgi
# for the same Python version. A port other than 80 also needs `Listen {port}`.

<VirtualHost *:{port}>
    ServerName {server_name}

    # {processes} process(es) of {threads} threads; with more than one, any of them may
    # answer a task's progress, wait, cancel or result call, so state is in Redis.
    WSGIDaemonProcess {group} processes={processes} threads={threads} \\
        display-name=%{{GROUP}} lang=C.UTF-8 locale=C.UTF-8 \\
        python-home={python_home} \\
        user={user} group={user_group}
    WSGIProcessGroup {group}
    WSGIApplicationGroup %{{GLOBAL}}
    # Load the application when a daemon starts, not at its first request.
    WSGIImportScript {handler} process-group={group} application-group=%{{GLOBAL}}
    WSGIScriptAlias / {handler}

    <Directory {directory}>
        <Files handler.wsgi>
            Require all granted
        </Files>
    </Directory>
</VirtualHost>
"""


@dataclass
class ApacheConfig:
    """What ``apache-config`` was asked for."""

    services: Sequence[str]
    directory: Path
    redis_url: str | None = None
    processes: int = defaults.APACHE_PROCESSES
    threads: int = defaults.APACHE_THREADS
    port: int = 80
    server_name: str = "localhost"
    user: str = "www-data"
    group: str = "www-data"
    thread_workers: int | None = None
    process_workers: int | None = None
    dashboard_token: str | None = None
    written: list[Path] = field(default_factory=list)
    #: What the operator must still do after :meth:`write` (a file's group it could not set).
    warnings: list[str] = field(default_factory=list)

    def check(self) -> None:
        """Raise ``ValueError`` naming the first thing that could not work."""
        if self.processes < 1 or self.threads < 1:
            raise ValueError("--processes and --threads must be at least 1")
        if self.processes > 1 and not self.redis_url:
            raise ValueError(
                f"{self.processes} processes need Redis for task state (--redis URL); "
                "or use --processes 1"
            )
        from ladon_tasks.wsgi import check_service_file

        for spec in self.services:
            check_service_file(spec)

    def settings(self) -> dict[str, str]:
        """The handler's settings; service files as absolute paths."""
        services = [os.path.abspath(s) if s.endswith(".py") or os.sep in s else s for s in self.services]
        settings = {"LADON_TASKS_SERVICES": ":".join(services)}
        if self.redis_url:
            settings["LADON_TASKS_REDIS_URL"] = self.redis_url
        if self.thread_workers is not None:
            settings["LADON_TASKS_THREAD_WORKERS"] = str(self.thread_workers)
        if self.process_workers is not None:
            settings["LADON_TASKS_PROCESS_WORKERS"] = str(self.process_workers)
        if self.dashboard_token:
            settings["LADON_TASKS_DASHBOARD_TOKEN"] = self.dashboard_token
        return settings

    def names(self) -> str:
        return ", ".join(os.path.splitext(os.path.basename(s))[0] for s in self.services)

    def handler_text(self) -> str:
        lines = ",\n".join(f"    {name!r}: {value!r}" for name, value in self.settings().items())
        return HANDLER_TEMPLATE.format(names=self.names(), settings="{\n" + lines + ",\n}")

    def vhost_text(self) -> str:
        directory = self.directory.resolve()
        return VHOST_TEMPLATE.format(
            names=self.names(), python=f"Python {sys.version_info.major}.{sys.version_info.minor}",
            port=self.port, server_name=self.server_name, group=PROCESS_GROUP,
            processes=self.processes, threads=self.threads, python_home=sys.prefix,
            user=self.user, user_group=self.group, handler=directory / "handler.wsgi", directory=directory,
        )

    def write(self) -> list[Path]:
        """Check, then write the files; returns their paths."""
        self.check()
        self.directory.mkdir(parents=True, exist_ok=True)
        files = {"handler.wsgi": self.handler_text(), "ladon-tasks.conf": self.vhost_text()}
        load = mod_wsgi_load_line()
        if load:
            files["wsgi.load"] = load
        for name, text in files.items():
            path = self.directory / name
            if name == "handler.wsgi":
                self.warnings += write_secret(path, text, self.group)
            else:
                path.write_text(text, encoding="utf-8")
            self.written.append(path)
        return self.written


def write_secret(path: Path, text: str, group: str) -> list[str]:
    """Write ``text`` (it holds the Redis password and the dashboard token) readable by
    its owner and ``group`` only (0640): the mod_wsgi daemons run as the virtual host's
    ``user``/``group`` (``mod_wsgi-express --user/--group``) and read it through the
    group; started by the file's owner instead, they read it as the owner. The mode is
    set before a byte is written, also over an older file that others could read.
    Returns what the operator must still do when the file cannot be given that group."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, HANDLER_MODE)
    warnings = []
    try:
        os.fchmod(fd, HANDLER_MODE)
        try:
            os.fchown(fd, -1, grp.getgrnam(group).gr_gid)
        except (KeyError, PermissionError) as exc:
            reason = f"no group {group} here" if isinstance(exc, KeyError) else f"not allowed to give it group {group}"
            warnings.append(f"{path} is readable by its owner and group only ({reason}): "
                            f"`chgrp {group} {path}` where the daemons run as group {group}")
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            fd = -1
            handle.write(text)
    finally:
        if fd >= 0:
            os.close(fd)
    return warnings


def mod_wsgi_load_line() -> str:
    """``LoadModule`` (and ``WSGIPythonHome``) for a mod_wsgi pip-installed in this
    environment, as ``mod_wsgi-express module-config`` prints them; else ''."""
    express = Path(sys.prefix) / "bin" / "mod_wsgi-express"
    if not express.exists():
        return ""
    answer = subprocess.run([str(express), "module-config"], capture_output=True, text=True, timeout=60)
    if answer.returncode != 0:
        return ""
    return "# mod_wsgi built for this Python (pip install mod_wsgi): load it instead of another one\n" + answer.stdout
