"""How long a held message stays invisible: a short rolling window, not the queue's timeout.

The consumer asks for `visibility_extension_s` (minutes) at receive, and the heartbeat grants it
again every `heartbeat_s` while the message is worked on. A worker that dies holding a message
therefore gives it back within that window, whatever the queue's own visibility timeout (hours:
the net under a consumer that never heartbeats). The one-off changes (`change_visibility`) are
the fall-backs when a message cannot be sent again fresh (`requeue`).
"""

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


def change_visibility(sqs: Any, queue_url: str, receipt: str, seconds: int, ctx: dict[str, Any]) -> bool:
    """Make a held message visible again in `seconds` (0: at once); a failure is only logged,
    since the message then returns when its current window ends."""
    try:
        sqs.change_message_visibility(QueueUrl=queue_url, ReceiptHandle=receipt, VisibilityTimeout=seconds)
    except (BotoCoreError, ClientError) as exc:
        log.warning("could not change visibility: %s", exc, extra={**ctx, "phase": "visibility"})
        return False
    return True


class Heartbeat(threading.Thread):
    """Keeps a message invisible while it is worked on, `visibility_extension_s` at a time.

    The receive already asked for the first window, so the first beat comes after `heartbeat_s`.
    When the next extension would pass SQS's 12-hour ceiling it sets `exhausted`, which stops
    the engine.
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
        timeout = int(min(self.cfg.visibility_extension_s, remaining))
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
        while not self.done.wait(self.cfg.heartbeat_s):
            if not self.extend_once():
                return

    def stop(self) -> None:
        self.done.set()
        if self.is_alive():
            self.join(timeout=30)
