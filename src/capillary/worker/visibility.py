"""How long a held message stays invisible: the heartbeat during a run, and the one-off changes
(back at once on a drain, after `retry_backoff_s` on a failure)."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from capillary.worker.config import SQS_MAX_VISIBILITY_S, ConsumerConfig
from capillary.worker.item import WorkItem

# The daemon's logger: every line the worker logs carries the same `logger` name.
log = logging.getLogger("capillary.worker.daemon")

# Leave this much of SQS's 12-hour window for the report and the hand-back.
_VISIBILITY_MARGIN_S = 120


def change_visibility(sqs: Any, queue_url: str, receipt: str, seconds: int, ctx: dict[str, Any]) -> None:
    """Make a held message visible again in `seconds` (0: at once); a failure is only logged,
    since the message then returns when its current timeout ends."""
    try:
        sqs.change_message_visibility(QueueUrl=queue_url, ReceiptHandle=receipt, VisibilityTimeout=seconds)
    except (BotoCoreError, ClientError) as exc:
        log.warning("could not change visibility: %s", exc, extra={**ctx, "phase": "visibility"})


class Heartbeat(threading.Thread):
    """Keeps a message invisible while it is worked on, within SQS's 12-hour ceiling.

    Extends at once (the queue's own timeout may be shorter than ours), then every `heartbeat_s`.
    When the next extension would pass the ceiling it sets `exhausted`, which stops the engine.
    """

    def __init__(self, sqs: Any, cfg: ConsumerConfig, item: WorkItem) -> None:
        super().__init__(name="visibility-heartbeat", daemon=True)
        self.sqs = sqs
        self.cfg = cfg
        self.item = item
        self.done = threading.Event()
        self.exhausted = threading.Event()

    def extend_once(self) -> bool:
        elapsed = time.monotonic() - self.item.received_at
        remaining = SQS_MAX_VISIBILITY_S - _VISIBILITY_MARGIN_S - elapsed
        timeout = int(min(self.cfg.visibility_timeout_s, remaining))
        if timeout <= self.cfg.heartbeat_s:
            log.error(
                "visibility cannot be extended past the SQS 12-hour limit; giving up on this attempt",
                extra={**self.item.ctx, "phase": "heartbeat"},
            )
            self.exhausted.set()
            return False
        try:
            self.sqs.change_message_visibility(
                QueueUrl=self.cfg.queue_url, ReceiptHandle=self.item.receipt, VisibilityTimeout=timeout
            )
        except (BotoCoreError, ClientError) as exc:
            # Keep trying: the next beat may get through before the message becomes visible.
            log.warning("visibility extension failed: %s", exc, extra={**self.item.ctx, "phase": "heartbeat"})
        return True

    def run(self) -> None:
        while not self.done.is_set():
            if not self.extend_once():
                return
            self.done.wait(self.cfg.heartbeat_s)

    def stop(self) -> None:
        self.done.set()
        if self.is_alive():
            self.join(timeout=30)
