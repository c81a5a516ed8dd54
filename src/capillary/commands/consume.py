"""`capillary consume`: the worker daemon (run by the capillary-consumer systemd unit)."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

from capillary.config import ConfigError, load_config

log = logging.getLogger("capillary.consumer")


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "consume",
        help="take work messages one at a time and turn each sample into a report",
        description="The worker daemon. Exit status 75 means it went idle and the worker should power off.",
    )
    parser.add_argument(
        "--config", type=Path, default=None, help="TOML file (default /etc/capillary/consumer.toml)"
    )
    parser.add_argument("--once", action="store_true", help="process at most one message, then exit")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from capillary.consumer import EXIT_CONFIG, Consumer
    from capillary.engines import EngineSetupError

    try:
        cfg = load_config(args.config)
    except ConfigError as exc:
        log.error("bad configuration: %s", exc, extra={"phase": "config", "reason": str(exc)})
        return EXIT_CONFIG
    try:
        consumer = Consumer(cfg)
    except EngineSetupError as exc:
        log.error("engine unavailable: %s", exc, extra={"phase": "config", "reason": str(exc)})
        return EXIT_CONFIG
    consumer.install_signal_handlers()
    return consumer.run(once=args.once)
