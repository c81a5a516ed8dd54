"""JSON logging with stable keys, for journald and CloudWatch alike.

Callers log with %-style messages and pass the stable context keys through `extra`:

    log.info("uploaded %s", key, extra={"message_id": mid, "key": key, "sample": name, "phase": "upload"})

Only the keys in CONTEXT_KEYS are copied into the record, so nothing else (never a VCF line,
never a secret) reaches the log by accident.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

CONTEXT_KEYS = (
    "message_id",
    "key",
    "sample",
    "attempt",
    "phase",
    "batch",
    "uuid",
    "kind",
    "reason",
    "queue",
    "duration_s",
    "status",
    "worker",
    "engine",
)


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time, level, logger, message and the known context keys."""

    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key in CONTEXT_KEYS:
            value = record.__dict__.get(key)
            if value is not None:
                payload[key] = value
        if record.exc_info:
            payload["exception"] = self.formatException(record.exc_info)
        return json.dumps(payload, default=str, sort_keys=False)


def configure_logging(level: str = "INFO", stream: Any = None) -> None:
    """Send the `capillary` loggers to `stream` (stderr by default) as JSON lines."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger("capillary")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False
