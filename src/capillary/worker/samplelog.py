"""One sample's log lines, kept to travel with its output or its error report.

A worker's journal dies with the worker (spot instances terminate on shutdown), so what the daemon
logged about a sample goes with the sample: into `run.json` inside the output tarball, or into the
error report beside it. `SampleLog` is a logging handler that keeps the records carrying one
sample's `message_id` (the daemon's and pipeline's records all do, `WorkItem.ctx`), formatted as
the JSON log formats them: only `capillary.logs.CONTEXT_KEYS`, so never a VCF line and never a
secret. It is bounded: the first `head` and the last `tail` records are kept, with a count of
those left out between, and no record is longer than `max_chars`.

The daemon attaches one per message when it receives it and detaches it when the message is done:

    with SampleLog.capture(item.message_id) as sample_log:
        ...                                   # the pipeline runs, logging as it does now
        run_info["log"] = sample_log.lines()  # run.json (pipeline.run_json)
        report["log"] = sample_log.lines()    # the error report (outputs.report_failure)
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
from collections import deque
from collections.abc import Iterator
from typing import Any

from capillary.logs import JsonFormatter

DEFAULT_HEAD = 50
DEFAULT_TAIL = 150
DEFAULT_MAX_CHARS = 2000
LOGGER = "capillary"


class SampleLog(logging.Handler):
    """Keeps the records of one `message_id`, bounded to the first `head` and last `tail`."""

    def __init__(
        self,
        message_id: str,
        *,
        head: int = DEFAULT_HEAD,
        tail: int = DEFAULT_TAIL,
        max_chars: int = DEFAULT_MAX_CHARS,
    ) -> None:
        if not message_id:
            raise ValueError("SampleLog needs the message_id whose records it keeps")
        if head < 0 or tail < 1 or max_chars < 80:
            raise ValueError(
                f"SampleLog bounds: head >= 0, tail >= 1, max_chars >= 80 (got {head}, {tail}, {max_chars})"
            )
        super().__init__(level=logging.DEBUG)
        self.message_id = message_id
        self.setFormatter(JsonFormatter())
        self._head: list[str] = []
        self._tail: deque[str] = deque(maxlen=tail)
        self._head_size = head
        self._max_chars = max_chars
        self._seen = 0
        self._guard = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        return getattr(record, "message_id", None) == self.message_id

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record)
        except Exception:  # a record that cannot be formatted must not break the worker
            self.handleError(record)
            return
        if len(line) > self._max_chars:
            line = self._shorten(line)
        with self._guard:
            self._seen += 1
            if len(self._head) < self._head_size:
                self._head.append(line)
            else:
                self._tail.append(line)

    def _shorten(self, line: str) -> str:
        """The record with its message cut so the line fits, still one JSON object."""
        record: dict[str, Any] = json.loads(line)
        over = len(line) - self._max_chars + len(" [... cut]")
        message = str(record.get("message", ""))
        record["message"] = message[: max(0, len(message) - over)] + " [... cut]"
        shortened = json.dumps(record, default=str)
        return (
            shortened
            if len(shortened) <= self._max_chars
            else json.dumps(
                {k: record[k] for k in ("time", "level", "logger") if k in record}
                | {"message": "[record too long]"}
            )
        )

    @property
    def dropped(self) -> int:
        """Records seen but not kept (between the head and the tail)."""
        with self._guard:
            return self._seen - len(self._head) - len(self._tail)

    def lines(self) -> list[dict[str, Any]]:
        """The kept records as JSON objects, oldest first; a marker where some were left out."""
        with self._guard:
            head, tail = list(self._head), list(self._tail)
            dropped = self._seen - len(head) - len(tail)
        out: list[dict[str, Any]] = [json.loads(line) for line in head]
        if dropped:
            out.append({"message": f"[{dropped} log records left out]", "dropped": dropped})
        out.extend(json.loads(line) for line in tail)
        return out

    @classmethod
    @contextlib.contextmanager
    def capture(cls, message_id: str, logger: str = LOGGER, **bounds: int) -> Iterator[SampleLog]:
        """Attach a SampleLog for `message_id` to `logger` (the package's root) while the block runs."""
        handler = cls(message_id, **bounds)
        target = logging.getLogger(logger)
        target.addHandler(handler)
        try:
            yield handler
        finally:
            target.removeHandler(handler)
