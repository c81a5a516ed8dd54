"""The `capillary` command line: one entry point, one module per subcommand.

Each subcommand lives in `capillary.commands.<name>` and exposes `register(subparsers)`, which
adds its parser and sets `func` to a callable taking the parsed arguments and returning the exit
status. Adding a subcommand means adding one module and one name below.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from capillary import __version__
from capillary.logs import configure_logging

COMMANDS: tuple[str, ...] = ("consume", "status", "validate", "submit", "intake_local", "releases", "image")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="capillary",
        description="Turn cancer samples dropped into object storage into PCGR reports.",
    )
    parser.add_argument("--version", action="version", version=f"capillary {__version__}")
    parser.add_argument(
        "--log-level",
        default="INFO",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="log level of the JSON log on stderr (default: %(default)s)",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"capillary.commands.{name}").register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "func", None) is None:
        parser.print_help(sys.stderr)
        return 2
    configure_logging(args.log_level)
    status: int = args.func(args)
    return status


if __name__ == "__main__":
    sys.exit(main())
