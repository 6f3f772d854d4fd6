"""What every ``ladon-tasks`` command shares: its error, its sub-parser with help and
example, the ``--redis``/``--url`` options, and opening the Redis store."""

from __future__ import annotations

import argparse
import unicodedata
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ladon_tasks.stores.base import TaskStore


class CommandError(Exception):
    """A command cannot do what was asked; the message is the one line shown."""


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the examples' layout and shows each option's default where it has one."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if "%(default)" in text or action.default in (None, False, argparse.SUPPRESS) or action.option_strings == []:
            return text
        return f"{text} (default: %(default)s)"


def command(commands, name: str, help: str, example: str):  # type: ignore[no-untyped-def]
    """A sub-command with its one-line help, its example epilog and ``--log-level``."""
    parser = commands.add_parser(
        name, help=help, description=help[:1].upper() + help[1:] + ".",
        epilog="example:\n" + example, formatter_class=HelpFormatter,
    )
    parser.add_argument("--log-level", default=argparse.SUPPRESS, metavar="LEVEL",
                        help="DEBUG, INFO, WARNING or ERROR (default: $LADON_TASKS_LOG_LEVEL or INFO)")
    parser.add_argument("--log-format", default=argparse.SUPPRESS, choices=("text", "json"),
                        help="text, or json: one JSON object per line (default: $LADON_TASKS_LOG_FORMAT or text)")
    return parser


def redis_option(parser: argparse.ArgumentParser, also: str = "") -> None:
    parser.add_argument("--redis", metavar="URL", default=None,
                        help=f"the Redis store{also} (default: $LADON_TASKS_REDIS_URL or $REDIS_HOST)")


def remote_options(parser: argparse.ArgumentParser) -> None:
    """``--url``/``--token`` or ``--redis``: where the tasks are read."""
    parser.add_argument("--url", metavar="URL", default=None,
                        help="a running server (ladon-tasks serve, or dashboard): its dashboard API is used, "
                             "for either store")
    parser.add_argument("--token", default=None,
                        help="the dashboard's token, with --url (default: $LADON_TASKS_DASHBOARD_TOKEN)")
    redis_option(parser, ", without --url")


def redis_store(url: str | None, remote: bool = True) -> TaskStore:
    """The Redis store of ``url`` (or the settings); a command without one fails, naming
    what it takes: ``--url`` too where the command has it (``remote``)."""
    from ladon_tasks.deployment import make_store, read_settings

    settings = read_settings()
    if url:
        settings["LADON_TASKS_REDIS_URL"] = url
    store = make_store(settings)
    if store is None:
        where = "--url of a running server, or --redis URL" if remote else "--redis URL"
        raise CommandError(f"this command needs a store: {where} ($LADON_TASKS_REDIS_URL, $REDIS_HOST)")
    return store


def escape_controls(text: str, keep: str = "") -> str:
    """``text`` safe to print on an operator's terminal: every control character (C0,
    DEL, C1; ``keep`` excepted) written as JSON writes it, ``\\u001b``. Task messages and
    errors come from bodies and clients: raw ESC, BEL, CR or BS in them would retitle,
    clear or overwrite the terminal that lists them."""
    return "".join(f"\\u{ord(char):04x}" if unicodedata.category(char) == "Cc" and char not in keep else char
                   for char in text)
