"""`capillary consume`: the worker daemon (run by the capillary-consumer systemd unit)."""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path
from typing import Any

from capillary.worker.config import ConfigError, ConfigUnavailableError, load_config

log = logging.getLogger("capillary.worker.daemon")


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
    from capillary.contract.layout import EXIT_CONFIG
    from capillary.worker.daemon import Consumer
    from capillary.worker.engines import EngineSetupError

    try:
        cfg = _load_with_retries(args.config)
    except ConfigError as exc:
        log.error("bad configuration: %s", exc, extra={"phase": "config", "reason": str(exc)})
        return EXIT_CONFIG
    except ConfigUnavailableError as exc:
        # Not a configuration error: systemd restarts the unit and it tries again.
        log.error("configuration unavailable: %s", exc, extra={"phase": "config", "reason": str(exc)})
        return 1
    try:
        consumer = Consumer(cfg)
    except EngineSetupError as exc:
        log.error("engine unavailable: %s", exc, extra={"phase": "config", "reason": str(exc)})
        return EXIT_CONFIG
    consumer.install_signal_handlers()
    return consumer.run(once=args.once)


def _load_with_retries(path: Path | None, budget_s: float = 300.0) -> Any:
    """A worker may boot before its network or its deployment's parameters are there: retry
    Parameter Store with backoff for a few minutes instead of spending systemd's start limit."""
    deadline = time.monotonic() + budget_s
    delay = 2.0
    while True:
        try:
            return load_config(path)
        except ConfigUnavailableError as exc:
            if time.monotonic() + delay > deadline:
                raise
            log.warning(
                "configuration not readable yet, retrying in %.0f s: %s",
                delay,
                exc,
                extra={"phase": "config"},
            )
            time.sleep(delay)
            delay = min(delay * 2, 30.0)
