"""``ladon-tasks``: serve services with the plugin active, and look after tasks.

    ladon-tasks serve services/task_service.py [--host 127.0.0.1] [--port 8080]

Each sub-command lives in a function ``cmd_<name>`` (in :mod:`.running`,
:mod:`.tasks` or :mod:`.operators`) that takes the parsed arguments and returns an exit code; each module's
``register`` wires its commands' arguments, each with its help text and each command
with an example. :func:`main` turns any error into one line on
stderr and a non-zero exit code: an operator reads what went wrong, not a traceback.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import Sequence

from ladon_tasks.cli import operators, running, schedules, tasks
from ladon_tasks.cli.common import CommandError, HelpFormatter
from ladon_tasks.logs import LOG_FORMATS
from ladon_tasks.logs import configure as configure_logging

__all__ = ["CommandError", "build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    """The ``ladon-tasks`` command line, every command registered."""
    parser = argparse.ArgumentParser(
        prog="ladon-tasks", formatter_class=HelpFormatter,
        description="Serve Ladon services with task methods, run their workers, and look after their tasks.",
        epilog="Each command has its own --help with an example.",
    )
    parser.add_argument("--version", action="version", version=f"ladon-tasks {_version()}")
    parser.add_argument("--log-level", default=os.environ.get("LADON_TASKS_LOG_LEVEL", "INFO"), metavar="LEVEL",
                        help="DEBUG, INFO, WARNING or ERROR; also accepted after the command")
    parser.add_argument("--log-format", default=os.environ.get("LADON_TASKS_LOG_FORMAT", "text"),
                        choices=LOG_FORMATS, help="text, or json: one JSON object per line (for log shippers); "
                                                  "also accepted after the command")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    running.register(commands)
    tasks.register(commands)
    operators.register(commands)
    schedules.register(commands)
    return parser


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("ladon-tasks")
    except PackageNotFoundError:  # run from a checkout that is not installed
        from ladon_tasks import __version__

        return __version__


def _one_line(exc: BaseException) -> str:
    """What went wrong, in one line: a fault's string, else the error's type and text."""
    from ladon.exceptions.service import ServiceFault

    from ladon_tasks.client import TaskError
    from ladon_tasks.remote import RemoteError
    from ladon_tasks.serving import AddressTaken

    if isinstance(exc, ServiceFault):
        text = str(exc.faultstring)
    elif isinstance(exc, (CommandError, ValueError, TaskError, RemoteError, AddressTaken)):
        text = str(exc)
    else:
        text = f"{type(exc).__name__}: {exc}"
    return " ".join(text.split()) or type(exc).__name__


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; errors end it with one line on stderr and a non-zero exit code
    (2: the command line was wrong, 1: the command failed). ``--log-level DEBUG`` adds
    the traceback."""
    parser = build_parser()
    args = parser.parse_args(argv)
    configure_logging(args.log_level, args.log_format)
    try:
        return args.handler(args)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        logging.getLogger("ladon_tasks.cli").debug("%s failed", args.command, exc_info=True)
        print(f"ladon-tasks {args.command}: {_one_line(exc)}", file=sys.stderr)
        return 2 if isinstance(exc, (CommandError, ValueError)) else 1


if __name__ == "__main__":
    sys.exit(main())
