"""What becomes of a held message that produced no output: sent again, fresh, or dead-lettered.

SQS counts receives, not failures: a message handed back with a visibility change comes back
with its receive count one higher, so a drain, a spot notice or a restart would spend one of
the sample's attempts, and three restarts would put a sample that never failed into the
dead-letter queue. So the consumer sends such a message again as a fresh one carrying its
history (`WorkMessage.history`: one entry per earlier attempt, failed or interrupted) and then
deletes the one it held - in that order, so a crash between the two leaves a duplicate (which
the consumer's idempotence absorbs), never a lost sample:

- `hand_back`: an interruption that is the infrastructure's (drain, spot notice, restart): back
  at once, no attempt spent;
- `retry`: the sample's own failure: back after `retry_backoff_s`, one failure recorded;
- `dead_letter`: a failure that cannot succeed on retry (`retryable: False`), or the
  `max_receive_count`-th failure: moved to the dead-letter queue by the consumer itself.

The queue's redrive policy stays the net under consumers that die holding a message.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from capillary.contract.message import FAILED, INTERRUPTED, Attempt, WorkMessage, WorkMessageError
from capillary.contract.queue import REDRIVE_POLICY, QueueAttributeError, QueueDepth
from capillary.worker.config import ConsumerConfig
from capillary.worker.item import SampleFailedError, WorkItem, now_iso
from capillary.worker.visibility import change_visibility

# The daemon's logger: every line the worker logs carries the same `logger` name.
log = logging.getLogger("capillary.worker.daemon")


class Requeue:
    """The consumer's SQS calls for a message it gives up: send again, or dead-letter."""

    def __init__(self, cfg: ConsumerConfig, sqs: Any, identity: Callable[[], dict[str, str]]) -> None:
        self.cfg = cfg
        self.sqs = sqs
        self.identity = identity
        self._dlq_url: str | None = cfg.dead_letter_queue_url or None
        self._dlq_looked_up = bool(self._dlq_url)

    # -- the three ways out --------------------------------------------------------------------

    def hand_back(self, item: WorkItem, reason: str, phase: str | None) -> None:
        """An interruption: the message is back at once, fresh, with the interruption recorded."""
        attempt = self._attempt(item, INTERRUPTED, reason, phase)
        if self._resend(item, attempt, delay_s=0):
            log.warning("handed the message back (%s)", reason, extra={**item.ctx, "phase": "drain"})

    def retry(self, item: WorkItem, failure: SampleFailedError) -> None:
        """The sample's own failure, not the last: back after `retry_backoff_s`."""
        attempt = self._attempt(item, FAILED, failure.reason, failure.phase)
        self._resend(item, attempt, delay_s=self.cfg.retry_backoff_s)

    def dead_letter(self, item: WorkItem, failure: SampleFailedError) -> None:
        """A failure retrying cannot mend, or the last one allowed: to the dead-letter queue."""
        attempt = self._attempt(item, FAILED, failure.reason, failure.phase)
        body = self._body(item, attempt)
        if self._dead_letter(body, item.message.attributes(), item.receipt, item.ctx):
            log.warning(
                "moved the message to the dead-letter queue (%s)",
                "cannot succeed on retry" if not failure.retryable else "its last attempt failed",
                extra={**item.ctx, "phase": "dead-letter"},
            )

    def dead_letter_unusable(self, message: dict[str, Any], reason: str) -> None:
        """A body that is no work message never becomes one: dead-letter it at once, as it is."""
        ctx = {"message_id": message.get("MessageId", ""), "phase": "parse"}
        if self._dead_letter(str(message.get("Body", "")), {}, message["ReceiptHandle"], ctx):
            log.error("unusable work message (%s): moved to the dead-letter queue", reason, extra=ctx)

    def release(self, held: dict[str, Any], reason: str) -> bool:
        """A message a predecessor of this consumer held (its receipt from the state file): back at
        once, fresh, with the interruption recorded. False when the record is unusable."""
        receipt, body = held.get("receipt"), held.get("body")
        ctx = {"message_id": held.get("message_id", ""), "key": held.get("key", ""), "phase": "startup"}
        if not isinstance(receipt, str) or not isinstance(body, str):
            return False
        try:
            message = WorkMessage.from_body(body)
        except WorkMessageError:
            return change_visibility(self.sqs, self.cfg.queue_url, receipt, 0, ctx)
        item = WorkItem(
            message_id=str(held.get("message_id", "")),
            receipt=receipt,
            receive_count=int(held.get("receive_count", 1)),
            received_at=0.0,
            bucket=message.bucket or self.cfg.bucket,
            message=message,
            body=body,
        )
        attempt = self._attempt(item, INTERRUPTED, reason, held.get("phase"))
        if self._resend(item, attempt, delay_s=0):
            log.warning(
                "released the message a previous run of this consumer held (%s)",
                reason,
                extra={**item.ctx, "phase": "startup"},
            )
            return True
        return False

    # -- the calls -----------------------------------------------------------------------------

    def _attempt(self, item: WorkItem, outcome: str, reason: str, phase: str | None) -> Attempt:
        return Attempt(
            outcome=outcome,
            time=now_iso(),
            reason=reason,
            phase=phase,
            message_id=item.message_id or None,
            worker=self.identity().get("instance_id") or self.identity().get("hostname"),
        )

    def _body(self, item: WorkItem, attempt: Attempt) -> str:
        """The held body with the attempt added to its history; fields this version does not
        know are kept as they came."""
        history = item.message.with_attempt(attempt).history
        try:
            data = json.loads(item.body) if item.body else None
        except ValueError:
            data = None
        if not isinstance(data, dict):
            return item.message.with_attempt(attempt).to_body()
        data["history"] = [a.as_dict() for a in history]
        return json.dumps(data)

    def _resend(self, item: WorkItem, attempt: Attempt, delay_s: int) -> bool:
        """Send the message again with `attempt` in its history, then delete the one held. If the
        send fails, the held one is made visible in `delay_s` instead (spending a receive)."""
        try:
            self.sqs.send_message(
                QueueUrl=self.cfg.queue_url,
                MessageBody=self._body(item, attempt),
                MessageAttributes=item.message.attributes(),
                DelaySeconds=delay_s,
            )
        except (BotoCoreError, ClientError) as exc:
            log.warning(
                "could not send the message again (%s): it returns in %d s instead",
                exc,
                delay_s,
                extra={**item.ctx, "phase": "requeue"},
            )
            change_visibility(self.sqs, self.cfg.queue_url, item.receipt, delay_s, item.ctx)
            return False
        self._delete(item.receipt, item.ctx)
        return True

    def _dead_letter(self, body: str, attributes: dict[str, Any], receipt: str, ctx: dict[str, Any]) -> bool:
        url = self.dead_letter_url()
        if url is None:
            log.error(
                "no dead-letter queue (none configured, none in the work queue's redrive policy): "
                "the message returns in %d s and the queue decides",
                self.cfg.retry_backoff_s,
                extra={**ctx, "phase": "dead-letter"},
            )
            change_visibility(self.sqs, self.cfg.queue_url, receipt, self.cfg.retry_backoff_s, ctx)
            return False
        try:
            self.sqs.send_message(QueueUrl=url, MessageBody=body, MessageAttributes=attributes)
        except (BotoCoreError, ClientError) as exc:
            log.error(
                "could not move the message to the dead-letter queue (%s): it returns in %d s",
                exc,
                self.cfg.retry_backoff_s,
                extra={**ctx, "phase": "dead-letter"},
            )
            change_visibility(self.sqs, self.cfg.queue_url, receipt, self.cfg.retry_backoff_s, ctx)
            return False
        self._delete(receipt, ctx)
        return True

    def _delete(self, receipt: str, ctx: dict[str, Any]) -> None:
        try:
            self.sqs.delete_message(QueueUrl=self.cfg.queue_url, ReceiptHandle=receipt)
        except (BotoCoreError, ClientError) as exc:
            # The copy is already sent: the old one returns later and is skipped as done or run
            # again (one output either way).
            log.warning("could not delete the held message: %s", exc, extra={**ctx, "phase": "requeue"})

    def dead_letter_url(self) -> str | None:
        """The configured dead-letter queue, else the one the work queue's redrive policy names
        (looked up once)."""
        if self._dlq_looked_up:
            return self._dlq_url
        try:
            attrs = self.sqs.get_queue_attributes(
                QueueUrl=self.cfg.queue_url, AttributeNames=[REDRIVE_POLICY]
            ).get("Attributes", {})
            arn = QueueDepth.from_attributes(attrs).dead_letter_arn
        except (BotoCoreError, ClientError, QueueAttributeError) as exc:
            log.warning(
                "cannot read the work queue's redrive policy: %s", exc, extra={"phase": "dead-letter"}
            )
            return None
        self._dlq_looked_up = True
        self._dlq_url = queue_url_of(arn, self.cfg.queue_url, self.sqs) if arn else None
        return self._dlq_url


def queue_url_of(arn: str, sibling_url: str, sqs: Any) -> str:
    """The URL of the queue `arn` names. A queue of the same account as `sibling_url` lives beside
    it (`<endpoint>/<account>/<name>`), so no call is needed (nor the permission to make it)."""
    parts = arn.split(":")
    account, name = parts[4], parts[5]
    base, _, _ = sibling_url.rstrip("/").rpartition("/")
    if base.rsplit("/", 1)[-1] == account:
        return f"{base}/{name}"
    url: str = sqs.get_queue_url(QueueName=name, QueueOwnerAWSAccountId=account)["QueueUrl"]
    return url
