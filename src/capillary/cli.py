"""The `capillary` command line: one entry point, one module per subcommand.

Each subcommand lives in `capillary.commands.<name>` and exposes `register(subparsers)`, which
adds its parser and sets `func` to a callable taking the parsed arguments and returning the exit
status. Adding a subcommand means adding one module and one name below.

Whatever goes wrong, a user reads one line naming the input and the reason and gets a non-zero
exit status, never a traceback (`capillary.commands._common`): usage errors exit 2, a command's
own errors with the status it chose, anything unforeseen 1 (`--log-level debug` logs where).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from capillary import __version__
from capillary.commands._common import CliError, OneLineParser, describe_error
from capillary.logs import configure_logging

COMMANDS: tuple[str, ...] = (
    "consume",
    "status",
    "costs",
    "validate",
    "submit",
    "pack",
    "intake_local",
    "releases",
    "operator_policy",
    "image",
)
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
EXIT_INTERRUPTED = 130

log = logging.getLogger("capillary.cli")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="capillary",
        description="Turn cancer samples dropped into object storage into PCGR reports.",
    )
    parser.add_argument("--version", action="version", version=f"capillary {__version__}")
    parser.add_argument(
        "--log-level",
        default="INFO",
        type=str.upper,
        choices=LOG_LEVELS,
        help="log level of the JSON log on stderr, any case (default: %(default)s)",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"capillary.commands.{name}").register(subparsers)
    return parser


def _prog(args: argparse.Namespace) -> str:
    words = ["capillary", args.command]
    action = getattr(args, "releases_command", None)
    if action:
        words.append(action)
    return " ".join(words)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "func", None) is None:
        parser.print_help(sys.stderr)
        return 2
    configure_logging(args.log_level)
    prog = _prog(args)
    try:
        status: int = args.func(args)
    except CliError as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return exc.code
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:  # the last line of defence: one line, never a traceback
        if args.log_level == "DEBUG":
            log.exception("%s failed", prog, extra={"phase": "cli"})
        print(f"{prog}: {describe_error(exc)}", file=sys.stderr)
        return 1
    return status


if __name__ == "__main__":
    sys.exit(main())
