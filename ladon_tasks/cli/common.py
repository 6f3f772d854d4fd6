"""What every ``ladon-tasks`` command shares: its error, its sub-parser with help and
example, the ``--redis``/``--url`` options, and opening the Redis store."""

from __future__ import annotations

import argparse


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


def redis_store(url: str | None):  # type: ignore[no-untyped-def]
    from ladon_tasks.deployment import make_store, read_settings

    settings = read_settings()
    if url:
        settings["LADON_TASKS_REDIS_URL"] = url
    store = make_store(settings)
    if store is None:
        raise CommandError("this command needs a store: --url of a running server, or --redis URL "
                           "($LADON_TASKS_REDIS_URL, $REDIS_HOST)")
    return store
